"""Newest first, a page at a time, with bounded reads: what a person browsing a DLQ of millions of records needs.

``peek`` reads each partition from its start; a page here reads each partition backwards from a cursor, in chunks,
and stops after ``count`` matches or ``budget`` records read, whichever comes first. A time range is turned into
offsets first (the broker's timestamp index), so ``since``/``until`` never cost a scan. The other filters (key,
error text, origin topic) are checked record by record within the budget: a page that ran out of budget says how
far it got, and its cursor goes on from there.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from confluent_kafka import TopicPartition

from kretry.config import Settings
from kretry.dlq._depth import Depth, depth_of
from kretry.dlq._filter import Filter, Only
from kretry.dlq._ledger import read_ledger
from kretry.dlq._peek import check_state, with_status
from kretry.dlq._reader import Reader
from kretry.dlq._records import ALL, DeadRecord, Position, ledger_topic, marked

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's; only the type checker needs it
    from typing_extensions import Unpack

PAGE_MAX = 500
BUDGET = 10_000  # records read per page at most, whatever the filters
CHUNK = 2_000  # records read at once, backwards, per partition, at most
T = TypeVar("T")

Cursor = dict[int, int]  # per partition: the offset the next page reads below


@dataclass(frozen=True)
class Page:
    records: list[DeadRecord]  # newest first
    next: Cursor | None  # where the next (older) page starts; None: nothing older is left
    scanned: int = 0  # records read for this page
    searched_to: dict[int, int] = field(default_factory=dict)  # per partition, the lowest offset read

    @property
    def cut_short(self) -> bool:
        """The budget ran out before a full page matched: older records are left unsearched, not absent."""
        return self.next is not None and not self.records


def format_cursor(cursor: Mapping[int, int]) -> str:
    """``{0: 15, 1: 7}`` -> ``"0:15,1:7"``: a cursor as a query parameter."""
    return ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))


def parse_cursor(text: str) -> Cursor:
    out: Cursor = {}
    for part in filter(None, text.split(",")):
        p, sep, o = part.partition(":")
        if not sep or not p.isdigit() or not o.isdigit():
            raise ValueError(f"{text!r}: expected PARTITION:OFFSET,... e.g. 0:15,1:7")
        out[int(p)] = int(o)
    return out


def merge_page(
    found: Mapping[int, list[DeadRecord]], floors: Mapping[int, int], lows: Mapping[int, int], count: int
) -> tuple[list[DeadRecord], Cursor | None]:
    """Pure: the newest ``count`` of the records ``found`` per partition (each list newest first, read down to
    ``floors``; nothing below ``lows`` is wanted), and the cursor of the next page. A partition none of whose
    records made the page keeps its place; one whose every match did goes on from its floor."""
    taken = list(heapq.merge(*found.values(), key=lambda r: (-r.timestamp, r.partition, -r.offset)))[:count]
    by_partition: dict[int, list[DeadRecord]] = {}
    for record in taken:
        by_partition.setdefault(record.partition, []).append(record)
    cursor: Cursor = {}
    for partition, records in found.items():
        mine = by_partition.get(partition, [])
        if len(mine) == len(records):
            cursor[partition] = floors[partition]
        else:
            # The oldest taken (or, with none taken, the newest found) is where the next page reads below.
            cursor[partition] = mine[-1].offset if mine else records[0].offset + 1
    left = {p: o for p, o in cursor.items() if o > lows[p]}
    return taken, (left or None)


class Browser:
    """One DLQ read page after page through one long-lived reader, its client and the cluster's metadata kept
    between calls (``REFRESH`` seconds at most): a console's. Calls are serialised, the reader's consumer being one;
    after a failure the next call starts with a new reader."""

    REFRESH = 60.0
    # Until the first replay or discard creates the ledger, its topic is looked for this often: the metadata kept
    # would otherwise say every record is pending for a minute after one.
    NO_LEDGER_REFRESH = 5.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._reader: Reader | None = None
        self._since = 0.0

    def _dlq(self) -> Reader:
        age = time.monotonic() - self._since
        if (
            self._reader is None
            or age > self.REFRESH
            or (age > self.NO_LEDGER_REFRESH and ledger_topic(self._reader.topic) not in self._reader.widths)
        ):
            self.close()
            self._reader, self._since = Reader(self.settings), time.monotonic()
        return self._reader

    def _call(self, work: Callable[[Reader], T]) -> T:
        with self._lock:
            try:
                return work(self._dlq())
            except BaseException:
                self.close()
                raise

    def forget(self) -> None:
        """Read the cluster's metadata anew on the next call (after a replay here created the ledger, say)."""
        with self._lock:
            self.close()

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def newest(
        self,
        count: int = 50,
        *,
        before: Mapping[int, int] | None = None,
        state: str = ALL,
        budget: int = BUDGET,
        **only: Unpack[Only],
    ) -> Page:
        """See the module function ``newest``."""
        if not 1 <= count <= PAGE_MAX:
            raise ValueError(f"count must be between 1 and {PAGE_MAX}")
        check_state(state)
        where = Filter(**only)
        return self._call(lambda dlq: _newest(dlq, count, before, state, budget, where))

    def find(self, position: Position) -> DeadRecord | None:
        """See the module function ``find``."""
        return self._call(lambda dlq: _find(dlq, position))

    def depth(self) -> Depth:
        return self._call(depth_of)


def newest(
    settings: Settings,
    count: int = 50,
    *,
    before: Mapping[int, int] | None = None,
    state: str = ALL,
    budget: int = BUDGET,
    **only: Unpack[Only],
) -> Page:
    """The newest ``count`` DLQ records in ``state`` that the filters ``only`` match, below the cursor ``before``
    (None: from the end), reading at most ``budget`` records."""
    browser = Browser(settings)
    try:
        return browser.newest(count, before=before, state=state, budget=budget, **only)
    finally:
        browser.close()


def _newest(dlq: Reader, count: int, before: Mapping[int, int] | None, state: str, budget: int, where: Filter) -> Page:
    ledger = read_ledger(dlq)
    lows, highs = _bounds(dlq, where, before)
    found: dict[int, list[DeadRecord]] = {}
    floors: dict[int, int] = {}
    scanned = 0
    share = max(1, budget // max(1, len(dlq.partitions)))  # each partition's part of the budget
    for partition in dlq.partitions:
        floor, read, chunk = highs[partition], 0, count  # a page without filters reads no more than it shows
        mine: list[DeadRecord] = []
        while floor > lows[partition] and len(mine) < count and read < share:
            start = max(lows[partition], floor - min(chunk, share - read))
            taken = list(dlq.records(partition, start, floor))
            read += floor - start
            for record in with_status(reversed(taken), ledger):
                if where(record) and state in (ALL, record.status):
                    mine.append(record)
            floor, chunk = start, min(CHUNK, chunk * 4)  # few matches: read on in larger steps
        found[partition], floors[partition] = mine, floor
        scanned += read
    records, cursor = merge_page(found, floors, lows, count)
    return Page(records, cursor, scanned, floors)


def _bounds(dlq: Reader, where: Filter, before: Mapping[int, int] | None) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition, the offsets [low, high) a page may read: the cursor and the time range, through the broker's
    timestamp index."""
    lows, highs = {}, {}
    for partition in dlq.partitions:
        low, high = dlq.watermarks(dlq.topic, partition)
        if where.since is not None:
            low = max(low, _offset_at(dlq, partition, where.since, high))
        if where.until is not None:
            high = min(high, _offset_at(dlq, partition, where.until, high))
        if before is not None:
            high = min(high, before.get(partition, low))
        lows[partition], highs[partition] = low, max(low, high)
    return lows, highs


def _offset_at(dlq: Reader, partition: int, when_ms: int, high: int) -> int:
    """The first offset whose timestamp is at or after ``when_ms`` (``high`` when none is)."""
    found = dlq.consumer.offsets_for_times([TopicPartition(dlq.topic, partition, when_ms)], timeout=10)
    offset = int(found[0].offset)
    return high if offset < 0 else offset


def find(settings: Settings, position: Position) -> DeadRecord | None:
    """The DLQ record at ``position`` with its state, or None: one read, never a scan."""
    browser = Browser(settings)
    try:
        return browser.find(position)
    finally:
        browser.close()


def _find(dlq: Reader, position: Position) -> DeadRecord | None:
    record = dlq.record_at(position)
    if record is None:
        return None
    entry = marked(record, read_ledger(dlq))
    return record if entry is None else replace(record, status=entry.action, status_at=entry.at)


def read_from(settings: Settings, starts: Mapping[int, int], limit: int) -> tuple[list[DeadRecord], Cursor]:
    """At most ``limit`` records from ``starts`` on (per partition; a partition not named from its start), and where
    each partition now ends up: for a caller that counts a DLQ bit by bit, never all at once."""
    dlq = Reader(settings)
    try:
        out: list[DeadRecord] = []
        ends: Cursor = {}
        for partition in dlq.partitions:
            low, high = dlq.watermarks(dlq.topic, partition)
            start = max(low, starts.get(partition, low))
            stop = min(high, start + max(0, limit - len(out)))
            out.extend(dlq.records(partition, start, stop))
            ends[partition] = stop
        return out, ends
    finally:
        dlq.close()
