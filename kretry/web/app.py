"""``create_app(worker, settings, loopback=...)``: the endpoint next to a worker, one Starlette app per server.

Routes call kretry's core and raise; this edge turns what they raise into a status and ``{"error": "..."}``:

BadRequest (a wrong parameter or body)      400        guard.Refusal (via HTTPException)  401, 403, 415
BodyTooLarge                                413        unknown path / wrong method        404 / 405
ReplayInProgress (another replay took over) 409        KretryError, KafkaException        503
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from kretry.config import Settings
from kretry.errors import KretryError, ReplayInProgress
from kretry.web import deadset, dlqguard, errors, guard, probes
from kretry.web.responses import error
from kretry.worker import Worker


def create_app(worker: Worker, settings: Settings, *, loopback: bool) -> Starlette:
    """``loopback``: the server listens on a loopback address only (see kretry.web.guard)."""
    token = settings.http_token.get_secret_value() if settings.http_token is not None else None
    policy = guard.Policy(loopback=loopback, token=token)
    return Starlette(
        routes=[
            *probes.routes(worker, settings),
            *deadset.routes(settings, policy, worker.retrier.mask),
            *dlqguard.routes(worker, policy),
        ],
        exception_handlers={
            **errors.COMMON,
            ReplayInProgress: errors.answer(409),
            KretryError: _unavailable,
            KafkaException: _unavailable,
        },
    )


async def _unavailable(request: Request, exc: Exception) -> Response:
    return error(503, f"{type(exc).__name__}: {exc}")
