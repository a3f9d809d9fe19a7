"""A real HTTP receiver for delivery tests: a threaded HTTP server on 127.0.0.1 that records every request and
answers with a programmable sequence of replies (status, delay, Retry-After), then with ``default``.

    with Receiver() as receiver:
        receiver.script(Reply(503, retry_after="7"), Reply(200))
        ...deliver to receiver.url("/hook")...
        [request] = receiver.wait_for(1)
        assert request.body == b'{"a": 1}'
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One answer: ``delay`` seconds of silence first (a receiver slower than the deliverer's timeout)."""

    status: int = 200
    delay: float = 0.0
    retry_after: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.time() when the request had arrived whole: for delivery-lateness tests


class Receiver:
    """Records requests and plays replies; ``close()`` (or leaving the ``with``) stops it, cutting delays short."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self._replies: deque[Reply] = deque()
        self._requests: list[Request] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/", auth: str = "") -> str:
        """This receiver's URL; ``auth`` ("user:password") goes before the host."""
        at = f"{auth}@" if auth else ""
        return f"http://{at}127.0.0.1:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order (after any still queued)."""
        with self._changed:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[Request]:
        with self._changed:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Request]:
        """The first ``count`` requests once they arrived; AssertionError if they do not within ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(f"{len(self._requests)} requests within {timeout}s, expected {count}")
            return list(self._requests[:count])

    def _take(self, request: Request) -> Reply:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()
            return self._replies.popleft() if self._replies else self.default

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections when a test delivers many at once


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do: the deliverer's pool is exercised

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = receiver._take(Request(self.command, self.path, headers, body, time.time()))
            if reply.delay and receiver._closing.wait(reply.delay):
                self.close_connection = True
                return
            try:
                self.send_response(reply.status)
                if reply.retry_after is not None:
                    self.send_header("Retry-After", reply.retry_after)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except ConnectionError:
                self.close_connection = True  # the deliverer gave up waiting (a timeout test): nothing to tell

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test asserts on requests, not on log lines

    return Handler
