"""What every app of the one HTTP stack answers when a route raises: JSON ``{"error": "..."}`` with a status.

HTTPException (unknown path, wrong method, a refusal)   its status (404, 405, 401, 403, 415)
BadRequest / BodyTooLarge                               400 / 413
anything else                                           500, no internals (uvicorn logs the traceback)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kretry.web.body import BadRequest, BodyTooLarge
from kretry.web.responses import error

Handler = Callable[[Request, Exception], Awaitable[Response]]


def answer(status: int) -> Handler:
    """A handler that answers ``status`` with the exception's text."""

    async def handle(request: Request, exc: Exception) -> Response:
        return error(status, str(exc))

    return handle


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error(404, f"no such endpoint: {request.method} {request.url.path}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error(405, f"use {allowed} for {request.url.path}", exc.headers)
    return error(exc.status_code, exc.detail, exc.headers)


async def internal(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering: uvicorn logs the traceback, the client gets no internals.
    return error(500, "internal error")


COMMON: dict[type[Exception], Handler] = {
    HTTPException: http_error,
    BadRequest: answer(400),
    BodyTooLarge: answer(413),
    Exception: internal,
}
