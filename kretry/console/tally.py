"""The dead set's counts by origin topic and error type, kept up to date in the background: a DLQ of millions of
records is counted once, a step at a time, then only what arrives; a page shows what is counted so far and never
waits for it.

The counts cover every record the DLQ holds, whatever its state (the page gives the pending number from the ledger
beside them); records that retention deletes stay counted until the console restarts.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import structlog

from kretry import dlq
from kretry.config import Settings

log = structlog.get_logger("kretry")

STEP = 50_000  # records read per step


@dataclass(frozen=True)
class Counts:
    counted: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)
    counting: bool = True  # not caught up with the DLQ yet: more will come


class Tally:
    def __init__(self, settings: Settings, step: int = STEP) -> None:
        self._settings = settings
        self._step = step
        self._lock = threading.Lock()
        self._counts = Counts()
        self._at: dlq.Cursor = {}
        self._thread: threading.Thread | None = None
        self._caught_up = False

    def counts(self) -> Counts:
        """What is counted so far; starts counting what arrived since, in the background."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._catch_up, name="kretry-console-tally", daemon=True)
                self._thread.start()
            c = self._counts
            return Counts(c.counted, Counter(c.by_topic), Counter(c.by_error), not self._caught_up)

    def wait(self, timeout: float | None = None) -> None:
        """Until the count under way is done (a test's or a benchmark's need, not a page's)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _catch_up(self) -> None:
        try:
            while True:
                records, at = dlq.read_from(self._settings, self._at, self._step)
                by_topic = Counter(r.origin_topic or "(unknown)" for r in records)
                by_error = Counter(dlq.error_kind(r) for r in records)
                with self._lock:
                    c = self._counts
                    self._counts = Counts(c.counted + len(records), c.by_topic + by_topic, c.by_error + by_error)
                    self._at = at
                    self._caught_up = len(records) < self._step
                if self._caught_up:
                    return
        except Exception as exc:  # the next page load tries again; the page shows what was counted
            log.warning("console: counting the DLQ failed", error=f"{type(exc).__name__}: {exc}")
