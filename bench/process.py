"""`kretry run` as a separate process: start it, read its JSON log, sample its memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BOOTSTRAP
from tests.integration.kit import complete_lines

ROOT = Path(__file__).resolve().parents[1]
APP = "bench.apps.backlog_app:retrier"


def start(
    topic: str, group: str, dlq: str, delays: str, log: Path, *args: str, app: str = APP, **more_env: str
) -> subprocess.Popen[bytes]:
    """``kretry run APP ARGS`` on the bench broker; ``more_env``: the app's other BENCH_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    env.update(
        {
            "KRETRY_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "BENCH_TOPIC": topic,
            "BENCH_GROUP": group,
            "BENCH_DLQ": dlq,
            "BENCH_DELAYS": delays,
            "PYTHONPATH": str(ROOT),
            **more_env,
        }
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "run", app, "--log-format", "json", *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def assigned_stages(log: Path) -> int:
    """How many stages logged their first "partitions assigned"."""
    stages = set()
    for line in complete_lines(log):
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "partitions assigned":
                stages.add(event.get("stage"))
    return len(stages)


def wait_ready(proc: subprocess.Popen[bytes], log: Path, stages: int, timeout: float = 60.0) -> float:
    """Seconds until every stage has its assignment (from now)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"kretry run exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if assigned_stages(log) >= stages:
            return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError(f"kretry run: not every stage assigned after {timeout}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for {pid}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)
