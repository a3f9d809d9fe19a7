"""`kretry gateway` as a user runs it: its exit codes, and a graceful stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import Broker
from tests.integration.gateways import ROOT, config, process
from tests.integration.kit import unique


def _run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "kretry.cli", "gateway", "--http-port", "0", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_bad_setting_exits_4_naming_it(kafka: Broker) -> None:
    done = _run({"KRETRY_BOOTSTRAP_SERVERS": kafka.bootstrap, "KRETRY_GATEWAY_PARTITIONS": "0"})
    assert done.returncode == 4
    assert "gateway_partitions" in done.stderr


def test_a_misspelt_gateway_setting_exits_4() -> None:
    done = _run({"KRETRY_GATEWAY_TOKN": "x"})
    assert done.returncode == 4
    assert "KRETRY_GATEWAY_TOKN" in done.stderr


def test_no_broker_exits_5() -> None:
    done = _run({"KRETRY_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "--connect-timeout", "2")
    assert done.returncode == 5


def test_sigterm_stops_it_cleanly_and_a_restart_keeps_the_configurations(
    gateway_prefix: str, kafka: Broker, tmp_path: Path
) -> None:
    prefix = gateway_prefix
    proc, url = process(kafka.bootstrap, prefix, tmp_path / "one.log")
    identifier = unique("id")
    try:
        assert (
            httpx.post(f"{url}/v1/config", json=config(identifier, ["http://127.0.0.1:9/x"], ["1h", "1h"])).status_code
            == 200
        )
        assert httpx.post(f"{url}/v1/event", json={"identifier": identifier, "eventBody": {}}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    again, url = process(kafka.bootstrap, prefix, tmp_path / "two.log")
    try:
        assert httpx.get(f"{url}/v1/config/{identifier}").status_code == 200
        second = httpx.post(f"{url}/v1/event", json={"identifier": identifier, "eventBody": {}})
        assert (second.status_code, second.text) == (200, "The event scheduled for retry 2")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
