"""``AppServer(app, host, port)``: uvicorn serving one ASGI app in a background thread; ``Server(worker, host,
port)`` serves the worker's endpoint.

``kretry run`` owns SIGINT and SIGTERM (a stop finishes the in-flight records first); uvicorn must not take them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import threading
from collections.abc import Callable, Iterator

import structlog
import uvicorn
from starlette.applications import Starlette

from kretry.errors import ConfigError
from kretry.web import guard
from kretry.web.app import create_app
from kretry.worker import Worker

log = structlog.get_logger("kretry")

START_TIMEOUT = 10.0
# A replay still running at stop gets this long; a stop must not wait on a slow client forever.
STOP_TIMEOUT = 5


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn already skips this off the main thread; said here so that it never depends on where we run.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class AppServer:
    """``AppServer(make_app, host, port).start()``; ``stop()`` at the end. Port 0 picks a free one (see ``port``);
    ``make_app(loopback)`` gets whether the server listens on a loopback address only.

    ``fast``: httptools and uvloop where installed (the gateway's extra brings them), h11 and asyncio otherwise.
    The gateway's accept path is bound by its event loop's thread: both together took it from 3,600 to 5,200 posts/s
    (8 clients, 2 cores). The worker's endpoint and the console keep h11, whose handling of malformed framing the
    body-limit tests pin down."""

    def __init__(
        self,
        make_app: Callable[[bool], Starlette],
        host: str = "127.0.0.1",
        port: int = 0,
        option: str = "--http-port",
        fast: bool = False,
    ) -> None:
        # Bound here, not in uvicorn's thread: a busy port is a ConfigError, and port 0 is known.
        self._option = option
        self._socket = _listen(host, port, option)
        address = self._socket.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]
        app = make_app(guard.is_loopback(self.host))
        self._uvicorn = _Uvicorn(
            uvicorn.Config(
                app,
                host=self.host,
                port=self.port,
                log_config=None,
                log_level="warning",  # our own line says where we listen; uvicorn's errors still show
                access_log=False,
                lifespan="off",
                http=_installed("httptools") if fast else "h11",
                loop=_installed("uvloop") if fast else "asyncio",
                ws="none",
                timeout_graceful_shutdown=STOP_TIMEOUT,
            )
        )
        self._thread = threading.Thread(target=self._uvicorn.run, args=([self._socket],), name="kretry-http")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()
        if not self._uvicorn.listening.wait(START_TIMEOUT):
            self.stop()
            raise ConfigError(f"{self._option}: the HTTP server on {self.host}:{self.port} did not start")
        log.info("http listening", host=self.host, port=self.port)

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT + 5)
        self._socket.close()  # uvicorn closed it already when it ran; not when start() never came


class Server(AppServer):
    """The worker's endpoint (``kretry run --http-port``)."""

    def __init__(self, worker: Worker, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(lambda loopback: create_app(worker, worker.retrier.settings, loopback=loopback), host, port)


def _installed(module: str) -> str:
    """uvicorn's name for ``module`` when it can be imported, else for the pure-Python default."""
    if importlib.util.find_spec(module) is not None:
        return module
    return {"httptools": "h11", "uvloop": "asyncio"}[module]


def _listen(host: str, port: int, option: str) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{option}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
