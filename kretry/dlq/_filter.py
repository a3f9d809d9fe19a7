"""Pure: which DLQ records a tool works on. Every tool (peek, summary, replay, discard; the CLI and the HTTP API)
takes the same filters, so that what ``peek`` showed is what ``replay`` or ``discard`` acts on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypedDict

from kretry.dlq._records import DeadRecord, error_kind, error_type, iso, text
from kretry.durations import parse_duration
from kretry.errors import DurationError

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's; only the type checker needs it
    from typing_extensions import Unpack


class Only(TypedDict, total=False):
    """The filters as keyword arguments of ``peek``, ``summary``, ``replay`` and ``discard``; None: any."""

    origin_topic: str | None  # kretry-origin-topic, exactly
    error: str | None  # a case-insensitive substring of kretry-error
    key: str | None  # the record's key as UTF-8 text, exactly
    since: int | None  # dead-lettered at or after (epoch ms, the DLQ record's timestamp)
    until: int | None  # dead-lettered before (epoch ms)
    group: str | None  # kretry-group, exactly: the service whose retry path dead-lettered it
    error_type: str | None  # the error's type, exactly: its qualified class (kretry-error-class) or its short name


@dataclass(frozen=True)
class Filter:
    origin_topic: str | None = None
    error: str | None = None
    key: str | None = None
    since: int | None = None
    until: int | None = None
    group: str | None = None
    error_type: str | None = None

    def mismatch(self, record: DeadRecord) -> str | None:
        """Why ``record`` is not one of those asked for (said to whoever named it by its offset), or None."""
        if self.origin_topic is not None and record.origin_topic != self.origin_topic:
            return "origin topic does not match"
        if self.group is not None and record.state.group != self.group:
            return f"kretry-group {record.state.group!r} is not {self.group!r}"
        if self.error is not None and self.error.lower() not in (record.state.error or "").lower():
            return f"kretry-error does not contain {self.error!r}"
        if self.error_type is not None and self.error_type not in (error_kind(record), error_type(record.state.error)):
            return f"error type {error_kind(record)!r} is not {self.error_type!r}"
        if self.key is not None and text(record.key) != self.key:
            return f"key {text(record.key)!r} is not {self.key!r}"
        if self.since is not None and record.timestamp < self.since:
            return f"dead-lettered at {iso(record.timestamp)}, before --since {iso(self.since)}"
        if self.until is not None and record.timestamp >= self.until:
            return f"dead-lettered at {iso(record.timestamp)}, not before --until {iso(self.until)}"
        return None

    def __call__(self, record: DeadRecord) -> bool:
        return self.mismatch(record) is None


def matches(record: DeadRecord, **only: Unpack[Only]) -> bool:
    return Filter(**only)(record)


def parse_when(value: str, now_ms: int) -> int:
    """Epoch ms of an ISO-8601 time (UTC when it names no offset; a date alone is its midnight) or of a kretry
    duration taken as "that long ago": ``"2h"`` is two hours before ``now_ms``."""
    try:
        return now_ms - round(parse_duration(value) * 1000)
    except DurationError:
        pass
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is neither an ISO-8601 time nor a duration (e.g. 2h, 30m, 1d)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return round(when.timestamp() * 1000)
