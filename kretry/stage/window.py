"""Pure: a retry stage's due-time window, the fetched records that are not due yet, handed out each when it is due.

A retry topic holds records in the order they failed, not the order they come due (RetryLater, jitter, max_age and
replays give one tier many delays). Pausing the partition at its first record that is not due makes every record
behind it wait for that one; the window instead holds up to MAX_RECORDS and MAX_BYTES of them per partition and hands
each out at its own due time, whatever its place in the partition. A partition whose window is full falls back to
the stage's pause-and-seek at the first record that did not fit, so memory stays bounded however long the backlog.

Offsets are not kept here: the stage marks each held record pending in its partition's PartitionOffsets, in offset
order, so the stored offset never passes a record that is still in the window, and a crash loses none of them (the
next owner fetches them again from the committed offset).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

MAX_RECORDS = 2_000  # held per partition; past it the partition waits the old way
MAX_BYTES = 8 * 1024 * 1024  # held per partition, as record_cost() counts them
MAX_TOTAL_BYTES = 32 * 1024 * 1024  # held by one stage, whatever its number of partitions
# What a held confluent_kafka Message costs beyond its key, value and headers. Measured (bench/backlog.py): a
# worker holding about 23,000 records of 100-byte values and 3 headers grew by 71 MB, about 3.1 KB a record.
RECORD_OVERHEAD = 3_000
FOREVER = math.inf  # the due time of a record the DLQ flood guard holds until it is reset

R = TypeVar("R")


def record_cost(msg: Any) -> int:
    """What holding a record costs, roughly, in bytes: its key, value and headers, and the Message around them."""
    cost = RECORD_OVERHEAD + len(msg.key() or b"") + len(msg.value() or b"")
    for name, value in msg.headers() or ():
        cost += len(name) + len(value or b"")
    return cost


def due_ms(now: float, delay: float) -> int:
    """The ``kretry-due-at`` of a record retried ``delay`` s after ``now``: rounded up, so it is never handled early."""
    return math.ceil((now + delay) * 1000)


def is_due(due_at_ms: int, now: float) -> bool:
    """Whether a record due at ``due_at_ms`` may be handled at ``now`` (epoch s): to the millisecond, never before."""
    return due_at_ms <= now * 1000


class Window(Generic[R]):
    """Held records of every partition of one stage, by due time."""

    def __init__(
        self, max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES
    ) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.total_bytes = 0
        self.records = 0  # held, of every partition
        self._held: dict[int, dict[int, tuple[float, int, R]]] = {}  # partition -> offset -> (due, size, record)
        self._bytes: dict[int, int] = {}
        # (due, partition, offset), earliest first; an entry whose record was dropped or re-timed is skipped
        self._heap: list[tuple[float, int, int]] = []

    def hold(self, partition: int, offset: int, due: float, size: int, record: R, force: bool = False) -> bool:
        """Hold ``record`` until ``due`` (epoch s); False when the partition's window is full. Holding a record that is
        held already changes nothing. ``force`` holds it over the bounds (one just handed out, to be held again)."""
        held = self._held.setdefault(partition, {})
        if offset in held:
            return True
        used = self._bytes.get(partition, 0)
        # A record larger than max_bytes fits an empty window; max_records=0 turns the window off.
        if not force and (
            len(held) >= self.max_records
            or (held and used + size > self.max_bytes)
            or self.total_bytes + size > self.max_total_bytes
        ):
            return False
        held[offset] = (due, size, record)
        self._bytes[partition] = used + size
        self.total_bytes += size
        self.records += 1
        heapq.heappush(self._heap, (due, partition, offset))
        return True

    def due(self, now: float) -> list[R]:
        """Take out every record due at ``now``, earliest due first (offset order among equals)."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, partition, offset = heapq.heappop(heap)
            held = self._held.get(partition)
            entry = None if held is None else held.get(offset)
            if held is None or entry is None or entry[0] != due:
                continue  # dropped with its partition, or re-timed: a newer entry stands for it
            del held[offset]
            self._bytes[partition] -= entry[1]
            self.total_bytes -= entry[1]
            self.records -= 1
            out.append(entry[2])
        return out

    def next_due(self) -> float | None:
        """The earliest due time of a held record, None when none is held."""
        heap = self._heap
        while heap:
            due, partition, offset = heap[0]
            entry = self._held.get(partition, {}).get(offset)
            if entry is not None and entry[0] == due:
                return due
            heapq.heappop(heap)
        return None

    def drop(self, partition: int) -> int:
        """Forget a partition's records (revoked, or sought back to its committed offset); return how many."""
        self.total_bytes -= self._bytes.pop(partition, 0)
        dropped = len(self._held.pop(partition, {}))
        self.records -= dropped
        if len(self._heap) > 2 * self.records + 64:
            self._rebuild()  # a dropped partition's entries would sit in the heap until due (forever, if held so)
        return dropped

    def clear(self) -> None:
        self._held.clear()
        self._bytes.clear()
        self._heap.clear()
        self.total_bytes = self.records = 0

    def release(self, now: float) -> int:
        """The records held until the flood guard's reset are due at ``now``; return how many."""
        return self._retime(lambda due, _record: due == FOREVER, now)

    def expedite(self, covered: Callable[[R], bool], now: float) -> int:
        """The held records ``covered`` (by an operator's flush or kill) are due at ``now``; return how many. Those
        the flood guard holds stay held."""
        return self._retime(lambda due, record: now < due < FOREVER and covered(record), now)

    def _retime(self, which: Callable[[float, R], bool], now: float) -> int:
        count = 0
        for held in self._held.values():
            for offset, (due, size, record) in held.items():
                if which(due, record):
                    held[offset] = (now, size, record)
                    count += 1
        if count:
            self._rebuild()
        return count

    def _rebuild(self) -> None:
        """The heap again from the held records alone."""
        self._heap = [(e[0], p, o) for p, held in self._held.items() for o, e in held.items()]
        heapq.heapify(self._heap)

    def room(self, partition: int) -> bool:
        """Whether a partition's window is at most half full: worth fetching again for (never, when it is off)."""
        if self.max_records == 0:
            return False
        held = self._held.get(partition, ())
        return (
            2 * len(held) <= self.max_records
            and 2 * self._bytes.get(partition, 0) <= self.max_bytes
            and 2 * self.total_bytes <= self.max_total_bytes
        )

    def count(self, partition: int | None = None) -> int:
        """Records held, of one partition or of all."""
        return self.records if partition is None else len(self._held.get(partition, ()))

    def size(self, partition: int) -> int:
        """Bytes held of one partition."""
        return self._bytes.get(partition, 0)
