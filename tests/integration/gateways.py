"""Gateways for the tests: in this process (``serving``), or ``kretry gateway`` as a user runs it (``process``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient
from kafka_local import free_port

from kretry.config import load_as
from kretry.gateway.app import create_app
from kretry.gateway.service import Gateway
from kretry.gateway.settings import GatewaySettings
from kretry.web.server import AppServer

ROOT = Path(__file__).resolve().parents[2]


# Each gateway has 23 topics; two partitions each keep the test broker's partition count (and heap) small, and
# still give two instances one partition each of every kind of work.
PARTITIONS = 2


def settings(bootstrap: str, prefix: str, **extra: Any) -> GatewaySettings:
    given = {
        "bootstrap_servers": bootstrap,
        "gateway_prefix": prefix,
        "dlq_topic": f"{prefix}.dlq",
        "gateway_partitions": PARTITIONS,
        **extra,
    }
    return load_as(GatewaySettings, given, environ={})


@contextlib.contextmanager
def serving(bootstrap: str, prefix: str, **extra: Any) -> Iterator[tuple[Gateway, str]]:
    """A started gateway and its base URL; stopped on leaving."""
    gateway = Gateway(settings(bootstrap, prefix, **extra))
    server = AppServer(lambda loopback: create_app(gateway), "127.0.0.1", 0, fast=True)  # as `kretry gateway`
    gateway.start(30)
    server.start()
    try:
        wait_ready(f"http://127.0.0.1:{server.port}")
        yield gateway, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        gateway.stop()


def process(bootstrap: str, prefix: str, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``kretry gateway`` in a process of its own, ready; its base URL."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full.update(
        KRETRY_BOOTSTRAP_SERVERS=bootstrap,
        KRETRY_GATEWAY_PREFIX=prefix,
        KRETRY_DLQ_TOPIC=f"{prefix}.dlq",
        KRETRY_GATEWAY_PARTITIONS=str(PARTITIONS),
        PYTHONPATH=str(ROOT),
        **env,
    )
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "gateway", "--http-port", str(port), "--log-format", "json"],
            env=full,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"kretry gateway exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout:.0f}s")


def config(identifier: str, urls: list[str], delays: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A configuration with HTTP integrations at ``urls`` and ``retryDelays``."""
    delays = delays if delays is not None else ["200ms", "200ms", "200ms"]
    return {
        "identifier": identifier,
        "maxRetry": len(delays),
        "retryDelays": delays,
        "integrations": [{"type": "HTTP", "config": {"url": url}} for url in urls],
        **extra,
    }


def delete_prefix(bootstrap: str, prefix: str) -> None:
    """Delete every topic of the gateway ``prefix`` (its DLQ and ledger too)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix + ".")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
