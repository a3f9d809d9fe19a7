"""SIGINT and SIGTERM as a clean stop of a long-running command."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

log = structlog.get_logger("kretry")


def stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set: the command stops cleanly once it sees it."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stopping
