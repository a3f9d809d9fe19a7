"""A small HTTP endpoint next to a running worker: metrics, health, and the dead set (Ziggurat's API).

GET  /metrics                      Prometheus text from the worker's own registry
GET  /healthz                      200 while the process serves
GET  /readyz                       200 once every stage has its assignment, the broker answers and no stage's
                                   loop has stalled for a minute (a handler stuck), else 503
GET  /v1/dead_set?count=N&topic=T  the oldest N DLQ records not yet replayed (optionally of origin topic T)
POST /v1/dead_set/replay           {"count": N, "topic": T} or {"offsets": ["p:o", ...]}; optional
                                   "max_replays" and "dry_run"
Errors are JSON ``{"error": "..."}`` with a 4xx (a bad request) or 5xx (Kafka) status.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kretry import config, dlq
from kretry.errors import ConfigError, KretryError
from kretry.worker import Worker

log = structlog.get_logger("kretry")

MAX_BODY = 64 * 1024
MAX_COUNT = 1000
READY_TIMEOUT = 2.0


class BadRequest(Exception):
    """The request is wrong: answered with 400 and this message."""


def _count(raw: Any, default: int | None) -> int | None:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise BadRequest(f"count must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"count must be an integer, got {raw!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise BadRequest(f"count must be between 1 and {MAX_COUNT}, got {value}")
    return value


def replay_args(body: Any) -> dict[str, Any]:
    """Pure: the keyword arguments of dlq.replay for a POST /v1/dead_set/replay body."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"count", "topic", "offsets", "max_replays", "dry_run"})
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}")
    offsets = body.get("offsets")
    count = _count(body.get("count"), None)
    if (offsets is None) == (count is None):
        raise BadRequest('give either "count" or "offsets"')
    args: dict[str, Any] = {"count": count}
    if offsets is not None:
        if not isinstance(offsets, list) or not offsets or not all(isinstance(o, str) for o in offsets):
            raise BadRequest('"offsets" must be a non-empty list of "partition:offset" strings')
        try:
            args["offsets"] = [dlq.parse_position(o) for o in offsets]
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    topic = body.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise BadRequest('"topic" must be a string')
    args["origin_topic"] = topic
    max_replays = body.get("max_replays", dlq.DEFAULT_MAX_REPLAYS)
    if isinstance(max_replays, bool) or not isinstance(max_replays, int) or max_replays < 0:
        raise BadRequest('"max_replays" must be a non-negative integer')
    args["max_replays"] = max_replays
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest('"dry_run" must be true or false')
    args["dry_run"] = dry_run
    return args


class Server:
    """``Server(worker, host, port).start()``; ``stop()`` at the end. Port 0 picks a free one (see ``port``)."""

    def __init__(self, worker: Worker, host: str = "127.0.0.1", port: int = 0) -> None:
        self.worker = worker
        self.settings = worker.retrier.settings
        self._admin = AdminClient(config.admin_conf(self.settings))
        try:
            self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as exc:
            raise ConfigError(f"--http-port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="kretry-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http listening", host=self._httpd.server_address[0], port=self.port)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def broker_answers(self) -> bool:
        topic = next(iter(self.worker.retrier.handlers))
        try:
            self._admin.list_topics(topic=topic, timeout=READY_TIMEOUT)
        except KafkaException:
            return False
        return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            owner = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: Server
    server_version = "kretry"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", request=self.requestline, status=args[1] if len(args) > 1 else None)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, (json.dumps(payload) + "\n").encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path == "/metrics":
                self._send(200, generate_latest(self.owner.worker.metrics.registry), CONTENT_TYPE_LATEST)
            elif url.path == "/healthz":
                self._json(200, {"status": "alive"})
            elif url.path == "/readyz":
                self._ready()
            elif url.path == "/v1/dead_set":
                self._peek(parse_qs(url.query))
            elif url.path == "/v1/dead_set/replay":
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for /v1/dead_set/replay")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {url.path}")
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (KretryError, KafkaException) as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"{type(exc).__name__}: {exc}")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path != "/v1/dead_set/replay":
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {url.path}")
                return
            args = replay_args(self._body())
            report = dlq.replay(self.owner.settings, **args)
            self._json(200, report.to_json())
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (KretryError, KafkaException) as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"{type(exc).__name__}: {exc}")

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest(f"body larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None

    def _ready(self) -> None:
        if not self.owner.worker.ready:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": "stages not assigned yet"})
        elif not self.owner.broker_answers():
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": "the broker does not answer"})
        elif problems := self.owner.worker.problems():
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": "; ".join(problems)})
        else:
            self._json(200, {"ready": True})

    def _peek(self, query: dict[str, list[str]]) -> None:
        unknown = sorted(set(query) - {"count", "topic"})
        if unknown:
            raise BadRequest(f"unknown parameter {', '.join(unknown)}")
        count = _count(query.get("count", [None])[-1], 10)
        assert count is not None
        topic = query.get("topic", [None])[-1]
        records = dlq.peek(self.owner.settings, count, origin_topic=topic)
        self._json(200, {"count": len(records), "records": [r.to_json() for r in records]})
