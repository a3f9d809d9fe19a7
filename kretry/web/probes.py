"""GET /metrics, /healthz, /readyz: what a scraper and an orchestrator ask. They change nothing: never guarded.

GET /metrics  Prometheus text from the worker's own registry
GET /healthz  200 while every stage's loop comes round; 503 with the reason once one has not for
              ``liveness_timeout`` (KRETRY_LIVENESS_TIMEOUT, 5 min: a handler stuck) or a stage failed. It is
              the liveness probe: an orchestrator restarts the process, which nothing inside it can do.
GET /readyz   200 once every stage has its assignment, the broker answers and no stage has a problem (a loop
              stalled for a minute, say), else 503 with the reason: taken out of service, not restarted
"""

from __future__ import annotations

import functools

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kretry import config
from kretry.config import Settings
from kretry.web.responses import JSONAnswer
from kretry.worker import Worker

READY_TIMEOUT = 2.0


def routes(worker: Worker, settings: Settings) -> list[Route]:
    topic = next(iter(worker.retrier.handlers))

    # Made on the first /readyz: a client connects at once, and an app built only to be tested asks nothing.
    @functools.cache
    def admin() -> AdminClient:
        return AdminClient(config.admin_conf(settings))

    def broker_answers() -> bool:
        try:
            admin().list_topics(topic=topic, timeout=READY_TIMEOUT)
        except KafkaException:
            return False
        return True

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        # Never asks the broker: a broker outage is for /readyz, and restarting every worker would not end it.
        failure = worker.failure
        if failure is not None:
            reason = f"a stage failed: {type(failure).__name__}: {failure}"
        elif stalled := worker.stalled(settings.liveness_timeout):
            reason = f"no poll for {settings.liveness_timeout:g}s on {', '.join(stalled)}: a handler is stuck"
        else:
            return JSONAnswer({"status": "alive"})
        return JSONAnswer({"status": "dead", "reason": reason}, status_code=503)

    def readyz(request: Request) -> Response:  # sync: the broker check blocks up to READY_TIMEOUT
        if not worker.ready:
            reason = "stages not assigned yet"
        elif not broker_answers():
            reason = "the broker does not answer"
        elif problems := worker.problems():
            reason = "; ".join(problems)
        else:
            return JSONAnswer({"ready": True})
        return JSONAnswer({"ready": False, "reason": reason}, status_code=503)

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
