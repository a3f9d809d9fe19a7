"""What a stage says about its records: retries and dead letters, rate-limited yet every one accounted for (see
tally.py), and refused forwards, one line per target and error a while, with the count since."""

from __future__ import annotations

import time
from typing import Any

from kretry.stage.tally import Tally

LOG_EVERY = 5.0  # seconds between full lines about retried or dead-lettered records, per stage (then a count)
FORWARD_LOG_EVERY = 10.0  # seconds between ERROR lines about refused forwards, per target topic and error
MISSING_HINT = " (the topic or partition does not exist; it is created again, forwards wait)"


class Logbook:
    def __init__(self, log: Any) -> None:
        self._log = log
        self._retried = Tally(LOG_EVERY)
        self._dead = Tally(LOG_EVERY)
        self._refused: dict[tuple[str, str], tuple[float, int]] = {}  # (topic, error) -> (when logged, since)

    def retried(self, msg: Any, to: str, due_ms: int | None, attempt: int, error: str) -> None:
        """``attempt`` as the forwarded record's kretry-attempt says it: the attempts made so far."""
        tally, now = self._retried, time.monotonic()
        if not tally.wants(now):
            tally.skip()
            return
        where = where_of(msg, attempt, error)
        if tally.add(now, where):
            self._log.info("record retried", to=to, due=iso(due_ms), key=key_of(msg), **where)

    def dead_lettered(self, delivered: Any, msg: Any, origin: Any, attempt: int, error: str) -> None:
        """Once the DLQ acknowledged it, so that the line names the position ``dlq replay --offset`` takes."""
        tally, now = self._dead, time.monotonic()
        if not tally.wants(now):
            tally.skip()
            return
        event = {
            **where_of(msg, attempt, error),
            "key": key_of(msg),
            "origin": f"{origin.topic}[{origin.partition}]@{origin.offset}",
            "dlq": f"{delivered.partition()}:{delivered.offset()}",
        }
        if tally.add(now, event):
            self._log.warning("record dead-lettered", to=delivered.topic(), **event)

    def summarise(self, now: float) -> None:
        """The records a window held back, counted once it closes, with the first of them."""
        for tally, what, level in (
            (self._retried, "records retried", self._log.info),
            (self._dead, "records dead-lettered", self._log.warning),
        ):
            summary = tally.closed(now)
            if summary is not None:
                count, samples = summary
                level(f"more {what}", count=count, within_s=LOG_EVERY, first=samples)

    def forward_refused(self, topic: str, err: Any, *, missing: bool) -> None:
        now = time.monotonic()
        key = (topic, err.name())
        logged_at, since = self._refused.get(key, (float("-inf"), 0))
        if now - logged_at < FORWARD_LOG_EVERY:
            self._refused[key] = (logged_at, since + 1)
            return
        self._refused[key] = (now, 0)
        self._log.error(
            "forward failed" + (MISSING_HINT if missing else ""),
            to=topic,
            code=err.name(),
            error=err.str(),
            retriable=err.retriable(),
            since_last_line=since + 1,
        )


def where_of(msg: Any, attempt: int, error: str) -> dict[str, Any]:
    """What a log line about a failed record says of it."""
    return {"partition": msg.partition(), "offset": msg.offset(), "attempt": attempt, "error": error}


def key_of(msg: Any) -> str | None:
    """A record's key for a log line: text as it is, bytes escaped, cut short."""
    key = msg.key()
    if key is None:
        return None
    text: str = key[:64].decode("utf-8", errors="backslashreplace")
    return text if len(key) <= 64 else text + "..."


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
