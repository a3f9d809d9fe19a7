"""Pure: what a DLQ record is, where it sits, its state, and whether it may be replayed or discarded. No I/O."""

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
# A DLQ record's state: pending until the ledger marks it replayed or discarded.
PENDING, REPLAYED, DISCARDED, ALL = "pending", "replayed", "discarded", "all"
STATES = (PENDING, REPLAYED, DISCARDED, ALL)
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


def error_kind(record: DeadRecord) -> str:
    """The qualified exception class (``kretry-error-class``) when the record has one, else ``error_type``."""
    return record.state.error_class or error_type(record.state.error)


MESSAGE_MAX = 80
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def error_message(record: DeadRecord) -> str:
    """The text of ``kretry-error`` after its type, with every run of digits as ``#`` (ids, counts, status codes
    and ports would otherwise make each record its own group) and cut to MESSAGE_MAX characters."""
    error = record.state.error or ""
    _, sep, rest = error.partition(":")
    message = _SPACES.sub(" ", _DIGITS.sub("#", rest if sep else "")).strip()
    return message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 3] + "..."


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
    status: str = PENDING  # PENDING, REPLAYED or DISCARDED, per the ledger (shown as "state")
    status_at: int | None = None  # when the ledger marked it so (epoch ms)

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
            "state": self.status,
            "state_at": iso(self.status_at),
        }


def oldest_first(records: Iterable[DeadRecord], count: int) -> list[DeadRecord]:
    return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))[:count]


@dataclass(frozen=True)
class LedgerEntry:
    timestamp: int
    topic: str | None
    replays: int
    at: int
    action: str = REPLAYED  # an entry written before discard existed has none: it marks a replay


def marked(record: DeadRecord, ledger: Mapping[str, LedgerEntry]) -> LedgerEntry | None:
    """The ledger's entry for this very record (replayed or discarded), or None: it is pending."""
    entry = ledger.get(format_position(record.position))
    return entry if entry is not None and entry.timestamp == record.timestamp else None


def status_of(record: DeadRecord, ledger: Mapping[str, LedgerEntry]) -> str:
    entry = marked(record, ledger)
    return PENDING if entry is None else entry.action


def discard_refusal(record: DeadRecord, ledger: Mapping[str, LedgerEntry]) -> str | None:
    """Why ``record`` may not be discarded (the ledger marks it already), or None."""
    entry = marked(record, ledger)
    if entry is None:
        return None
    if entry.action == REPLAYED:
        return f"already replayed to {entry.topic} at {iso(entry.at)}"
    return f"already {entry.action} at {iso(entry.at)}"


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
    done = marked(record, ledger)
    if done is not None and done.action == DISCARDED:
        return f"discarded at {iso(done.at)}: a discarded record is never replayed"
    if done is not None:
        return discard_refusal(record, ledger)
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
