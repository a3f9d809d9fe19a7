"""``kretry gateway``: one instance, its API served until SIGINT/SIGTERM (the CLI maps what it raises to exit
codes)."""

from __future__ import annotations

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
    server = AppServer(lambda loopback: create_app(gateway), host, port)
    try:
        gateway.start(connect_timeout)
        server.start()
        log.info("gateway listening", host=server.host, port=server.port)
        gateway.wait()
    finally:
        server.stop()
        gateway.stop()
    if gateway.failure is not None:
        log.error("gateway stopped on a failure", reason=gateway.failure)
        return 1
    return 0
