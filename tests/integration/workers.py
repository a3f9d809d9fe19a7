"""Running a Worker in a thread of the test process, and `kretry run` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kretry import Retrier, Worker
from tests.integration.kit import wait_until

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running(retrier: Retrier, **kwargs: object) -> Iterator[Worker]:
    """A started worker whose stages all have their assignment; stopped, and its failure raised, at the end."""
    worker = Worker(retrier, **kwargs)  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: worker.ready or not thread.is_alive(), timeout=60, what="every stage to be assigned")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop within 30 s"
    if errors:
        raise errors[0]


def kretry_process(app: str, env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`kretry run APP` as a user runs it, with the tests' app directory importable."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(ROOT)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "run", app, "--log-format", "json", *args],
            env=full_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.PIPE,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout)
