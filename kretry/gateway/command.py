"""``kretry gateway``: one instance, its API served until SIGINT/SIGTERM (the CLI maps what it raises to exit
codes)."""

from __future__ import annotations

import gc
import threading

import structlog

from kretry import config
from kretry.gateway.app import create_app
from kretry.gateway.service import Gateway
from kretry.gateway.settings import GatewaySettings
from kretry.web.server import AppServer

log = structlog.get_logger("kretry.gateway")


def serve(host: str, port: int, connect_timeout: float, stopping: threading.Event) -> int:
    settings = config.load_as(GatewaySettings, {})
    gateway = Gateway(settings, stopping)
    server = AppServer(lambda loopback: create_app(gateway), host, port, fast=True)
    try:
        gateway.start(connect_timeout)
        server.start()
        _tune_collector()
        log.info("gateway listening", host=server.host, port=server.port)
        gateway.wait()
    finally:
        server.stop()
        gateway.stop()
    if gateway.failure is not None:
        log.error("gateway stopped on a failure", reason=gateway.failure)
        return 1
    return 0


def _tune_collector() -> None:
    """A service's process, so the command's call (the library never touches the collector): what start-up
    allocated is moved out of the collector's sight, and its young generation is collected less often. Measured on
    the accept path (8 clients, 2 cores): p99 26-38 ms -> 6-9 ms, from full collections that stopped every thread
    while they walked what start-up allocated. Cyclic garbage is still collected, in fewer, larger rounds."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)
