"""``create_app(worker, settings, loopback=...)``: the endpoint next to a worker, one Starlette app per server.

Routes call kretry's core and raise; this edge turns what they raise into a status and ``{"error": "..."}``:

BadRequest (a wrong parameter or body)      400        guard.Refusal (via HTTPException)  401, 403, 415
BodyTooLarge                                413        unknown path / wrong method        404 / 405
ReplayInProgress (another replay took over) 409        KretryError, KafkaException        503
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kretry.config import Settings
from kretry.errors import KretryError, ReplayInProgress
from kretry.web import deadset, guard, probes
from kretry.web.responses import error
from kretry.worker import Worker


def create_app(worker: Worker, settings: Settings, *, loopback: bool) -> Starlette:
    """``loopback``: the server listens on a loopback address only (see kretry.web.guard)."""
    token = settings.http_token.get_secret_value() if settings.http_token is not None else None
    policy = guard.Policy(loopback=loopback, token=token)
    return Starlette(
        routes=[*probes.routes(worker, settings), *deadset.routes(settings, policy)],
        exception_handlers={
            HTTPException: _http_error,
            deadset.BadRequest: _bad_request,
            deadset.BodyTooLarge: _too_large,
            ReplayInProgress: _conflict,
            KretryError: _unavailable,
            KafkaException: _unavailable,
            Exception: _internal,
        },
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error(404, f"no such endpoint: {request.method} {request.url.path}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error(405, f"use {allowed} for {request.url.path}", exc.headers)
    return error(exc.status_code, exc.detail, exc.headers)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error(400, str(exc))


async def _too_large(request: Request, exc: Exception) -> Response:
    return error(413, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return error(409, str(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    return error(503, f"{type(exc).__name__}: {exc}")


async def _internal(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering: uvicorn logs the traceback, the client gets no internals.
    return error(500, "internal error")
