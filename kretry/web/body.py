"""A request body, read within a limit, for every app of the one HTTP stack: the worker's endpoint, the gateway.
A body over the limit is refused before it is read whole, a chunked one as soon as it passes the limit."""

from __future__ import annotations

from starlette.requests import Request

MAX_BODY = 64 * 1024


class BadRequest(Exception):
    """The request is wrong: answered with 400 and this message."""


class BodyTooLarge(BadRequest):
    """Answered with 413."""


def declared_length(header: str | None, limit: int = MAX_BODY) -> int | None:
    """Pure: the body size a Content-Length header announces, refused before a byte of the body is read."""
    if header is None:
        return None
    if not header.isdigit():  # "-1", "+5", "1e3", " ": int() would take some of them
        raise BadRequest(f"bad Content-Length {header!r}")
    length = int(header)
    if length > limit:
        raise BodyTooLarge(f"body larger than {limit} bytes")
    return length


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, never more than ``limit`` bytes of it: a chunked body announces no length up front."""
    declared_length(request.headers.get("content-length"), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
    return bytes(body)
