"""The DLQ flood guard: a bad deploy makes every record fail, and would drain the whole stream into the DLQ.

``Retrier(..., dlq_guard=DlqGuard(...))`` trips when, among the records that left the retry path (handled, or
dead-lettered), too large a share was dead-lettered within ``window`` (judged once ``min_records`` left it), or when
``max_consecutive`` dead letters came with no success between them. Tripped, the worker holds every record on its
way to the DLQ where it is (uncommitted, its partition paused) and the main stages stop taking records; nothing is
lost and nothing more reaches the DLQ. ``/readyz`` says why, ``kretry_dlq_guard_tripped`` is 1, and it stays so
until the worker restarts or an operator resets it (``POST /v1/dlq_guard/reset``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from kretry.durations import Duration, parse_duration
from kretry.errors import ConfigError


@dataclass(frozen=True)
class DlqGuard:
    """When to stop dead-lettering: ``None`` turns a rule off."""

    max_share: float | None = 0.5  # dead letters / records that left the retry path, within `window`
    window: Duration = "1m"
    min_records: int = 100  # below this many leaving records in the window, the share is not judged
    max_consecutive: int | None = 1000  # dead letters in a row, no success between them

    def checked(self) -> DlqGuard:
        """Itself, with ``window`` in seconds; a ConfigError naming the field otherwise."""
        share = self.max_share
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1):
            raise ConfigError(f"dlq_guard.max_share: a fraction above 0 and below 1, got {share!r}")
        for name in ("min_records", "max_consecutive"):
            value = getattr(self, name)
            if value is None and name == "max_consecutive":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"dlq_guard.{name}: a whole number of at least 1, got {value!r}")
        if share is None and self.max_consecutive is None:
            raise ConfigError("dlq_guard: max_share and max_consecutive are both None; the guard would never trip")
        window = parse_duration(self.window, what="dlq_guard.window")
        if window <= 0:
            raise ConfigError(f"dlq_guard.window: must be longer than 0, got {self.window!r}")
        return DlqGuard(share, window, self.min_records, self.max_consecutive)


class Flood:
    """The guard's state for one worker, shared by its stages' threads. The clock is the caller's (seconds)."""

    def __init__(self, guard: DlqGuard) -> None:
        self.guard = guard.checked()
        self._window = float(self.guard.window)  # type: ignore[arg-type]  # checked() made it seconds
        self._lock = threading.Lock()
        # Records leaving the retry path, counted per whole second: [second, records, dead-lettered]. A window
        # holds at most its length in seconds of these, however fast records go.
        self._buckets: deque[list[int]] = deque()
        self._total = self._dead = 0
        self._consecutive = 0
        self.tripped: str | None = None  # why, once tripped
        self.generation = 0  # moves on every reset, so each stage notices one

    def handled(self, now: float, records: int = 1) -> None:
        """``records`` records' handlers succeeded (a batch's, told at once)."""
        with self._lock:
            self._consecutive = 0
            self._add(now, dead=False, records=records)

    def may_dead_letter(self, now: float) -> bool:
        """Count a dead letter; False (and tripped) when it is one too many, and it must be held instead."""
        with self._lock:
            if self.tripped is not None:
                return False
            self._consecutive += 1
            self._add(now, dead=True)
            self.tripped = self._verdict()
            return self.tripped is None

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._total = self._dead = self._consecutive = 0
            self.tripped = None
            self.generation += 1

    def _add(self, now: float, *, dead: bool, records: int = 1) -> None:
        second = int(now)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
            while self._buckets[0][0] <= now - self._window:
                _, total, dead_then = self._buckets.popleft()
                self._total -= total
                self._dead -= dead_then
        bucket = self._buckets[-1]
        bucket[1] += records
        bucket[2] += dead
        self._total += records
        self._dead += dead

    def _verdict(self) -> str | None:
        g = self.guard
        if g.max_consecutive is not None and self._consecutive > g.max_consecutive:
            return f"more than {g.max_consecutive} records dead-lettered in a row (dlq_guard.max_consecutive)"
        total = self._total
        if g.max_share is not None and total >= g.min_records and self._dead / total > g.max_share:
            return (
                f"{self._dead} of the last {total} records leaving the retry path would be dead-lettered within "
                f"{self._window:g}s (dlq_guard.max_share={g.max_share})"
            )
        return None
