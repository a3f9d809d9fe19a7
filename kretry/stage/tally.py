"""Rate-limited log lines that still account for every event: the first of a window in full, the rest counted.

A failure storm would spend more on log lines than on the records, so at most one line a window tells of each
kind of event; when the window closes, one more line counts those it held back, with a sample of them, whether
or not another event comes. Pure: the caller passes the clock and does the logging.
"""

from __future__ import annotations

from typing import Any

SAMPLES = 10


class Tally:
    __slots__ = ("_every", "_held", "_opened", "_samples")

    def __init__(self, every: float) -> None:
        self._every = every
        self._opened = float("-inf")
        self._held = 0
        self._samples: list[dict[str, Any]] = []

    def add(self, now: float, event: dict[str, Any]) -> bool:
        """True when this event is to be logged in full now; otherwise it is held for the window's summary."""
        if not self._held and now - self._opened >= self._every:
            self._opened = now
            return True
        self._held += 1
        if len(self._samples) < SAMPLES:
            self._samples.append(event)
        return False

    def wants(self, now: float) -> bool:
        """Whether the next event is to be logged in full or kept as a sample: only then is it worth describing (a
        failure storm describes a dozen records a window, not every one); otherwise ``skip()`` counts it."""
        return (not self._held and now - self._opened >= self._every) or len(self._samples) < SAMPLES

    def skip(self) -> None:
        """An event held for the window's summary without a sample of it (``wants()`` said so)."""
        self._held += 1

    def closed(self, now: float) -> tuple[int, list[dict[str, Any]]] | None:
        """Once the window is over: how many events were held back, and the first of them."""
        if not self._held or now - self._opened < self._every:
            return None
        summary = (self._held, self._samples)
        self._opened, self._held, self._samples = now, 0, []
        return summary
