"""Pure: what a DLQ record is, where it sits, and whether it may be replayed. No I/O."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kretry import headers as hdr

DEFAULT_MAX_REPLAYS = 3
LEDGER_SUFFIX = ".replayed"

Position = tuple[int, int]  # (partition, offset) of a DLQ record
# How a stub written before the kretry-stub header existed ends its kretry-error.
_OLD_STUB_ERROR = re.compile(r"\d+-byte value and the producer's headers dropped$")


def parse_position(text: str) -> Position:
    """``"2:15"`` -> ``(2, 15)``: a DLQ record's partition and offset."""
    part, sep, off = text.strip().partition(":")
    if not sep or not part.isdigit() or not off.isdigit():
        raise ValueError(f"{text!r}: expected PARTITION:OFFSET, e.g. 0:42")
    return int(part), int(off)


def format_position(position: Position) -> str:
    return f"{position[0]}:{position[1]}"


def ledger_topic(dlq_topic: str) -> str:
    return dlq_topic + LEDGER_SUFFIX


def replay_group(dlq_topic: str) -> str:
    return f"kretry-replay.{dlq_topic}"


def error_type(error: str | None) -> str:
    """The part of ``kretry-error`` before the first ':' (``"RuntimeError: boom"`` -> ``"RuntimeError"``)."""
    if not error:
        return "(none)"
    return error.split(":", 1)[0].strip() or "(none)"


def text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="backslashreplace")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


@dataclass(frozen=True)
class DeadRecord:
    partition: int
    offset: int
    timestamp: int  # ms, the DLQ record's own
    key: bytes | None
    value: bytes | None
    headers: hdr.Headers  # the producer's, as they came
    state: hdr.State  # kretry's
    stub: str | None = None  # the kretry-stub header: what a stub left out of the record it stands for

    @property
    def left_out(self) -> str | None:
        """What this stub left out of the original (e.g. ``"value,headers"``); None when it is a whole record."""
        if self.stub is not None:
            return self.stub or "value,headers"
        if self.value is None and not self.headers and _OLD_STUB_ERROR.search(self.state.error or ""):
            return "value,headers"
        return None

    @property
    def position(self) -> Position:
        return self.partition, self.offset

    @property
    def origin_topic(self) -> str | None:
        return self.state.origin_topic

    @property
    def replays(self) -> int:
        return self.state.replays or 0

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "dlq": format_position(self.position),
            "key": text(self.key),
            "value": text(self.value),
            "headers": {name: text(value) for name, value in self.headers},
            "origin": {"topic": s.origin_topic, "partition": s.origin_partition, "offset": s.origin_offset},
            "origin_timestamp": s.origin_timestamp,
            "attempt": s.attempt,
            "error": s.error,
            "group": s.group,
            "replays": self.replays,
            "stub": self.left_out,
            "timestamp": self.timestamp,
            "time": iso(self.timestamp),
        }


def matches(
    record: DeadRecord, origin_topic: str | None = None, error: str | None = None, group: str | None = None
) -> bool:
    """``origin_topic`` and ``group`` (kretry-group) exactly, ``error`` as a case-insensitive substring of
    kretry-error."""
    if origin_topic is not None and record.origin_topic != origin_topic:
        return False
    if group is not None and record.state.group != group:
        return False
    return error is None or error.lower() in (record.state.error or "").lower()


def oldest_first(records: Iterable[DeadRecord], count: int) -> list[DeadRecord]:
    return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))[:count]


@dataclass(frozen=True)
class LedgerEntry:
    timestamp: int
    topic: str
    replays: int
    at: int


def is_replayed(record: DeadRecord, ledger: Mapping[str, LedgerEntry]) -> LedgerEntry | None:
    entry = ledger.get(format_position(record.position))
    return entry if entry is not None and entry.timestamp == record.timestamp else None


def refusal(
    record: DeadRecord,
    ledger: Mapping[str, LedgerEntry],
    topics: Mapping[str, int],
    max_replays: int,
    *,
    dlq_topic: str | None = None,
) -> str | None:
    """Why ``record`` may not be replayed, or None. ``topics``: the cluster's topics and their widths;
    ``dlq_topic``: the DLQ it was read from."""
    done = is_replayed(record, ledger)
    if done is not None:
        return f"already replayed to {done.topic} at {iso(done.at)}"
    if record.origin_topic is None:
        return "no kretry-origin-topic header"
    if dlq_topic is not None and record.origin_topic == dlq_topic:
        return f"origin topic {dlq_topic!r} is this DLQ itself: a replay would only copy the record within it"
    if dlq_topic is not None and record.origin_topic == ledger_topic(dlq_topic):
        return f"origin topic {record.origin_topic!r} is this DLQ's replay ledger, not a topic records come from"
    if record.origin_topic not in topics:
        return f"origin topic {record.origin_topic!r} does not exist"
    if record.replays >= max_replays:
        return f"replayed {record.replays} times already (--max-replays {max_replays})"
    if record.left_out is not None and (record.state.origin_partition is None or record.state.origin_offset is None):
        return "a stub without kretry-origin-partition/-offset: the original it stands for cannot be found"
    return None


def origin_where(record: DeadRecord) -> str:
    """``orders[2]@15``: where the record first failed."""
    return f"{record.origin_topic}[{record.state.origin_partition}]@{record.state.origin_offset}"


def replay_headers(record: DeadRecord) -> hdr.Headers:
    """The producer's headers, unchanged, plus ``kretry-replays``: one more than the record carries; and
    ``kretry-group``, the group whose retry path dead-lettered it, so that a worker can tell its own replay count
    from another service's."""
    out = [*record.headers, (hdr.REPLAYS, str(record.replays + 1).encode())]
    if record.state.group is not None:
        out.append((hdr.GROUP, record.state.group.encode()))
    return out


def advance(start: int, scanned: Sequence[tuple[int, bool]]) -> int:
    """The new cursor of a partition: past the run of settled records that begins at ``start``."""
    cursor = start
    for offset, settled in scanned:
        if not settled:
            break
        cursor = offset + 1
    return cursor
