"""Who may use the admin routes (the dead set, the DLQ flood guard): pure checks of a request's headers, and
``enforce``, which a route calls first to answer a refusal as 401/403/415.

A replay changes what the consumers see, so the dead set is guarded against the three ways a browser on the
operator's machine can be made to reach it:

- cross-site request forgery: a page elsewhere POSTs to http://127.0.0.1:PORT. Only a "simple" request (such as
  ``text/plain``) goes out without a CORS preflight, so the body must be ``application/json``; and a request that
  says where it comes from (``Origin``) must come from this very host.
- DNS rebinding: a page's own name is made to resolve to 127.0.0.1, so that the browser calls it same-origin.
  A loopback listener answers only requests that name a loopback host.
- anything else that can reach the port: with ``KRETRY_HTTP_TOKEN`` set, ``Authorization: Bearer <token>``.
  A listener on a non-loopback address serves the dead set only then.

The probes (/healthz, /readyz, /metrics) change nothing and are never guarded.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

JSON_MEDIA_TYPE = "application/json"
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Policy:
    loopback: bool  # the server listens on a loopback address only
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    """A host name or address (no port, no brackets) that can only mean this machine."""
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """``example.com:8010`` -> ``example.com``, ``[::1]:8010`` -> ``::1``: the name a Host header gives."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else ""
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def refuse(policy: Policy, method: str, headers: Mapping[str, str]) -> Refusal | None:
    """Why this dead-set request must not be served, or None. ``headers`` keys are lower-case."""
    refusal = foreign(policy.loopback, headers) or _unauthorised(policy, headers.get("authorization"))
    if refusal is not None:
        return refusal
    if method == "POST" and media_type(headers.get("content-type")) != JSON_MEDIA_TYPE:
        return Refusal(415, f"the body must be sent as Content-Type: {JSON_MEDIA_TYPE}")
    return None


def foreign(loopback: bool, headers: Mapping[str, str]) -> Refusal | None:
    """A request a page elsewhere made the browser send: a rebound DNS name on a loopback listener (``loopback``),
    or an ``Origin`` other than this very host. ``headers`` keys are lower-case."""
    host = headers.get("host", "")
    if loopback and not is_loopback(host_name(host)):
        return Refusal(403, f"Host {host!r} is not a loopback name; this server answers only localhost")
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return Refusal(403, f"cross-origin request from {origin!r} refused")
    return None


def _unauthorised(policy: Policy, authorization: str | None) -> Refusal | None:
    if policy.token is None:
        if policy.loopback:
            return None
        return Refusal(
            403,
            "the dead set is not served on a non-loopback address without a token: set KRETRY_HTTP_TOKEN "
            "and send Authorization: Bearer <token>",
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), policy.token.encode()):
        return None
    challenge = {"WWW-Authenticate": 'Bearer realm="kretry"'}
    return Refusal(401, "missing or wrong bearer token (Authorization: Bearer <KRETRY_HTTP_TOKEN>)", challenge)


def enforce(policy: Policy, request: Request) -> None:
    """Raise the HTTP error that refuses ``request``, if any (an admin route's first step)."""
    refusal = refuse(policy, request.method, request.headers)
    if refusal is not None:
        raise HTTPException(refusal.status, refusal.message, refusal.headers)
