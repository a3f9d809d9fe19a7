"""HTTP delivery: POST the event's JSON body to an endpoint, through one pooled client; every failure an Outcome."""

from __future__ import annotations

import time

import httpx

from kretry import __version__
from kretry.gateway.deliver.outcome import (
    Outcome,
    classify_http,
    connection_failed,
    rejected,
    timed_out,
    unexpected,
)
from kretry.gateway.deliver.targets import HttpTarget, safe_url

DEFAULT_TIMEOUT = 10.0
JSON = {"Content-Type": "application/json"}
USER_AGENT = f"kretry-gateway/{__version__}"  # so a receiver's logs say who calls

# What a timeout means to the person reading the DLQ: which step of the exchange took too long.
_TIMEOUT_STAGES: tuple[tuple[type[httpx.TimeoutException], str], ...] = (
    (httpx.ConnectTimeout, "connecting"),
    (httpx.WriteTimeout, "sending"),
    (httpx.ReadTimeout, "waiting for the answer"),
    (httpx.PoolTimeout, "waiting for a free connection"),
)


def _stage(exc: httpx.TimeoutException) -> str:
    return next((stage for kind, stage in _TIMEOUT_STAGES if isinstance(exc, kind)), "")


def _auth(target: HttpTarget) -> httpx.Auth:
    """Basic auth with the target's username; else the URL's ``user:password@``, as httpx would; else none."""
    if target.username is not None:
        return httpx.BasicAuth(target.username, target.password or "")
    url = httpx.URL(target.url)
    if url.username or url.password:
        return httpx.BasicAuth(url.username, url.password)
    return httpx.Auth()  # the base class sends the request as it is


class HttpDeliverer:
    """One shared ``httpx.AsyncClient`` for every target: connections are pooled per host and reused. Redirects are
    not followed (a 3xx is an answer the event is not retried on); the timeout applies to connecting, sending,
    waiting for the answer and waiting for a pooled connection, each."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_connections: int = 100) -> None:
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def deliver(self, target: HttpTarget, body: bytes) -> Outcome:
        """POST ``body`` as ``application/json``, with basic auth when the target has a username."""
        where = f"POST {safe_url(target.url)}"
        secrets = target.secrets()
        try:
            response = await self._client.post(target.url, content=body, headers=JSON, auth=_auth(target))
        except httpx.TimeoutException as exc:
            return timed_out(self.timeout, _stage(exc)).about(where)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            # A URL or a request no later attempt can send: the target's configuration is wrong.
            return rejected(exc, secrets).about(where)
        except httpx.TransportError as exc:
            return connection_failed(exc, secrets).about(where)
        except Exception as exc:  # the contract: a delivery failure is an Outcome, never an exception
            return unexpected(exc, secrets).about(where)
        return classify_http(response.status_code, response.headers.get("Retry-After"), time.time()).about(where)

    async def aclose(self) -> None:
        await self._client.aclose()
