"""``create_app(gateway)``: Pretry's API and the probes, one Starlette app; what routes raise becomes a status as
in every app of the stack (kretry.web.errors), and Unauthorised (no or wrong token) 401."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kretry.gateway.api import Unauthorised, unauthorised
from kretry.web import errors
from kretry.web.responses import JSONAnswer

if TYPE_CHECKING:
    from kretry.gateway.service import Gateway


def create_app(gateway: Gateway) -> Starlette:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        problem = gateway.problem()
        if problem is not None:
            return JSONAnswer({"status": "failing", "reason": problem}, status_code=503)
        return JSONAnswer({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = gateway.problem() or gateway.not_ready()
        if problem is not None:
            return JSONAnswer({"status": "not ready", "reason": problem}, status_code=503)
        return JSONAnswer({"status": "ready"})

    return Starlette(
        routes=[
            *gateway.api.routes(),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        exception_handlers={**errors.COMMON, Unauthorised: unauthorised},
    )
