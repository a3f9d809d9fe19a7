"""Pretry's API, wire-compatible: the same paths (under ``/v1`` as Pretry's README shows them, and under
``/pretry/v1`` where the real server answers), the same status codes and the same plain-text answers.

POST /v1/config                 200 Configurations are created!   400 already set   422 a field that cannot work
GET  /v1/config[/{identifier}]  the configurations, secrets redacted (an extension)
DELETE /v1/config/{identifier}  its pending events are dead-lettered when they come due (an extension)
POST /v1/event                  200 scheduled (first time / n)   404 no configuration   412 maxRetry reached
                                400 malformed   413 too large   503 not confirmed durably on Kafka in time

Every post is decided by the owner of its key's partition, so that counts and "already set" are exact however many
instances answer: here when this instance owns it (kretry.gateway.direct), else through the requests topic
(kretry.gateway.owner). The answer comes only once what it says is acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from kretry.gateway import configs, counts
from kretry.gateway.configs import Config
from kretry.gateway.direct import Direct
from kretry.gateway.events import CONFIG, DELETE, POST, Reply, Request, canonical, event_id
from kretry.gateway.metrics import GatewayMetrics
from kretry.gateway.outbox import Outbox
from kretry.gateway.replies import Replies
from kretry.gateway.settings import GatewaySettings
from kretry.gateway.topics import Names, request_partition
from kretry.web.body import BadRequest, read_body
from kretry.web.responses import JSONAnswer, error

PREFIXES = ("/v1", "/pretry/v1")
# Not "not scheduled": a post decided here whose event was written but whose count was not (or whose
# acknowledgement was lost) is scheduled after all; posted again, it is delivered once more, never lost.
UNAVAILABLE = "not confirmed by Kafka in time; post it again"


class Configs(Protocol):
    def get(self, identifier: str) -> Config | None: ...
    def all(self) -> list[Config]: ...
    def catch_up(self, timeout: float) -> bool: ...


class Api:
    def __init__(
        self,
        settings: GatewaySettings,
        names: Names,
        outbox: Outbox,
        replies: Replies,
        direct: Direct,
        view: Configs,
        metrics: GatewayMetrics,
        seal: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    ) -> None:
        self._settings = settings
        self._names = names
        self._outbox = outbox
        self._replies = replies
        self._direct = direct
        # Unique across instances and restarts (the instance id is random): cheaper than a uuid4 per post, which
        # reads the kernel's random source each time.
        self._ids = itertools.count()
        self._view = view
        self._metrics = metrics
        self._seal = seal
        token = settings.gateway_token
        self._token = token.get_secret_value().encode() if token is not None else None

    def routes(self) -> list[Route]:
        out = []
        for prefix in PREFIXES:
            out += [
                Route(f"{prefix}/config", self.post_config, methods=["POST"]),
                Route(f"{prefix}/config", self.list_configs, methods=["GET"]),
                Route(f"{prefix}/config/{{identifier}}", self.get_config, methods=["GET"]),
                Route(f"{prefix}/config/{{identifier}}", self.delete_config, methods=["DELETE"]),
                Route(f"{prefix}/event", self.post_event, methods=["POST"]),
            ]
        return out

    # -- routes ----------------------------------------------------------------------------------------

    async def post_config(self, request: HttpRequest) -> Response:
        self._authorise(request)
        raw = await self._json(request)
        try:
            config = configs.parse(raw)
        except configs.Invalid as exc:
            return JSONAnswer({"error": str(exc), "field": exc.field}, status_code=422)
        stored = self._seal(config.stored)
        return await self._changed(await self._ask(CONFIG, config.identifier, config.identifier, config=stored))

    async def list_configs(self, request: HttpRequest) -> Response:
        self._authorise(request)
        return JSONAnswer([c.redacted() for c in self._view.all()])

    async def get_config(self, request: HttpRequest) -> Response:
        self._authorise(request)
        config = self._view.get(request.path_params["identifier"])
        if config is None:
            return PlainTextResponse(counts.NOT_FOUND, status_code=404)
        return JSONAnswer(config.redacted())

    async def delete_config(self, request: HttpRequest) -> Response:
        self._authorise(request)
        identifier = request.path_params["identifier"]
        return await self._changed(await self._ask(DELETE, identifier, identifier))

    async def post_event(self, request: HttpRequest) -> Response:
        self._authorise(request)
        started = time.perf_counter()
        raw = await self._json(request)
        if not isinstance(raw, dict):
            raise BadRequest("the body must be a JSON object with identifier and eventBody")
        identifier = raw.get("identifier")
        if not isinstance(identifier, str) or not identifier:
            raise BadRequest("identifier must be a non-empty string")
        body = raw.get("eventBody")
        if not isinstance(body, dict):
            raise BadRequest("eventBody must be a JSON object")
        if self._view.get(identifier) is None:
            answer: Response = PlainTextResponse(counts.NOT_FOUND, status_code=404)
        else:
            data = canonical(body)
            answer = await self._ask(POST, event_id(identifier, data), identifier, body=data)
        self._metrics.posts.labels(identifier, str(answer.status_code)).inc()
        self._metrics.accept_seconds.observe(time.perf_counter() - started)
        return answer

    # -- helpers ---------------------------------------------------------------------------------------

    async def _ask(self, kind: str, key: str, identifier: str, **fields: Any) -> Response:
        """Decide a post here when this instance owns ``key``, else ask the owner through the requests topic; answer
        what was decided, or 503 when that was not confirmed in time."""
        timeout = self._settings.gateway_accept_timeout
        request = Request(
            kind=kind,
            id=f"{self._replies.instance}-{next(self._ids):x}",
            origin=self._replies.instance,
            deadline_ms=int((time.time() + timeout) * 1000),
            identifier=identifier,
            **fields,
        )
        raw_key = key.encode()
        direct = self._direct.post(request, raw_key) if kind == POST else None
        if kind == POST:
            self._metrics.decided.labels("here" if direct is not None else "owner").inc()
        try:
            if direct is not None:
                # Answered once the event and its count are acknowledged, or refused: within the accept timeout.
                reply: Reply = await asyncio.wait_for(direct, timeout + 1.0)
            else:
                reply = await self._through_owner(request, raw_key, timeout)
        except (OSError, asyncio.TimeoutError):
            return PlainTextResponse(UNAVAILABLE, status_code=503)
        if reply.status == 503:
            return PlainTextResponse(UNAVAILABLE, status_code=503)
        return PlainTextResponse(reply.text, status_code=reply.status)

    async def _through_owner(self, request: Request, key: bytes, timeout: float) -> Reply:
        waiting = self._replies.expect(request.id)
        # The owner may answer before the broker's acknowledgement of the request reaches us: the answer is
        # awaited at once, and a request the broker refused fails it as soon as that is known.
        partition = request_partition(key, self._settings.gateway_partitions)
        sent = asyncio.ensure_future(self._outbox.send(self._names.requests, key, request.encode(), (), partition))
        sent.add_done_callback(lambda task: _refused(task, waiting))
        try:
            # A second past the deadline: the owner refuses a request past it, so no answer by then means never.
            return await asyncio.wait_for(waiting, timeout + 1.0)
        finally:
            self._replies.forget(request.id)

    async def _changed(self, answer: Response) -> Response:
        if answer.status_code == 200:
            await run_in_threadpool(self._view.catch_up, self._settings.gateway_accept_timeout)
        return answer

    async def _json(self, request: HttpRequest) -> Any:
        data = await read_body(request, self._settings.gateway_max_body_bytes)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None

    def _authorise(self, request: HttpRequest) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise Unauthorised("missing or wrong bearer token (Authorization: Bearer <KRETRY_GATEWAY_TOKEN>)")


class Unauthorised(Exception):
    """Answered with 401."""


async def unauthorised(request: HttpRequest, exc: Exception) -> Response:
    return error(401, str(exc), {"WWW-Authenticate": 'Bearer realm="kretry-gateway"'})


def _refused(sent: asyncio.Future[None], waiting: asyncio.Future[Reply]) -> None:
    """The request's send failed: so does the wait for its answer. A send that succeeded needs nothing."""
    error = None if sent.cancelled() else sent.exception()
    if error is not None and not waiting.done():
        waiting.set_exception(error)
