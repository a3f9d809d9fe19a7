"""``serve(retrier, host, port, ...)``: the console's server until ``stopping`` is set (the command's SIGINT or
SIGTERM); requests under way get ``kretry.web.server.STOP_TIMEOUT`` to finish."""

from __future__ import annotations

import threading

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kretry import config
from kretry.console.app import create_app
from kretry.errors import BrokerUnavailable, ConfigError
from kretry.retrier import Retrier
from kretry.web import guard
from kretry.web.server import AppServer

log = structlog.get_logger("kretry")

CONNECT_TIMEOUT = 15.0


def serve(
    retrier: Retrier,
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    read_only: bool = False,
    gateway_prefix: str | None = None,
    stopping: threading.Event,
    listening: threading.Event | None = None,
) -> None:
    """Raises ConfigError (a non-loopback address without a token, a busy port) or BrokerUnavailable."""
    settings = retrier.settings
    if settings.console_token is None and not guard.is_loopback(guard.host_name(host)):
        raise ConfigError(
            f"--host {host}: the console serves an address other than loopback only with a login token; "
            "set KRETRY_CONSOLE_TOKEN"
        )
    try:
        AdminClient(config.admin_conf(settings)).list_topics(timeout=CONNECT_TIMEOUT)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no answer from {settings.bootstrap_servers}: {exc}") from None
    server = AppServer(
        lambda loopback: create_app(retrier, loopback=loopback, read_only=read_only, gateway_prefix=gateway_prefix),
        host,
        port,
        option="--port",
    )
    server.start()
    log.info("console listening", url=f"http://{host}:{server.port}/", read_only=read_only)
    if listening is not None:
        listening.set()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
    log.info("console stopped")
