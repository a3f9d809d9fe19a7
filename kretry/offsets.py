"""Which offset of a partition may be stored: the one past the longest prefix of records that are done.

A record is done when its handler succeeded or its forwarded copy was acknowledged. Forwarding is
asynchronous, so records finish out of order; the stored offset never passes one that is not done.

Only the records that are not done yet are kept, in offset order, with the highest offset taken: every record
taken up to that offset and not pending is done. So a batch's successes cost one call per partition
(``done_through`` its highest), whatever their number, and the stored offset is the first pending record's, or one
past the highest taken when none is pending.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """The records of one assigned partition, taken in offset order."""

    __slots__ = ("_finished", "_held", "_pending", "dirty", "next", "taken")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # taken, not done yet, in offset order
        self._finished: set[int] = set()  # pending ones done out of order: dropped once the ones before them are
        self._held: set[int] = set()  # pending, taken before their due time: their outcome comes later
        self.taken: int | None = None  # the highest offset taken, done or not
        self.next: int | None = None  # the offset to store: one past the done prefix
        self.dirty = False  # `next` moved since it was last stored

    def done_now(self, offset: int) -> None:
        """A record finished the moment it was taken (its handler succeeded)."""
        if offset in self._held:
            self._held.discard(offset)
            self.finish(offset)
        else:
            self.done_through(offset)

    def done_through(self, offset: int) -> None:
        """Every record taken up to ``offset`` that is not pending is done: a batch's successes in one call, with
        the highest of them. Only records taken in offset order after every pending one may be told so."""
        taken = self.taken
        if taken is None or offset > taken:
            self.taken = offset
            if not self._pending:
                self.next = offset + 1
                self.dirty = True

    def begin(self, offset: int) -> None:
        """A record whose outcome is not known yet (its forwarded copy is not acknowledged)."""
        if offset in self._held:
            self._held.discard(offset)  # pending since it was held, in its place
            return
        self._take(offset)

    def hold(self, offset: int) -> None:
        """A record taken now, in offset order, and handled later (when it is due): pending until then, so nothing
        past it is stored. Holding it again, or then calling begin() or done_now() for it, keeps its one place."""
        if offset not in self._held:
            self._held.add(offset)
            self._take(offset)

    def _take(self, offset: int) -> None:
        self._pending.append(offset)
        if self.taken is None or offset > self.taken:
            self.taken = offset

    def holds(self, offset: int) -> bool:
        return offset in self._held

    def finish(self, offset: int) -> None:
        pending = self._pending
        if not pending:
            return
        if pending[0] != offset:
            self._finished.add(offset)
            return
        pending.popleft()
        finished = self._finished
        while pending and pending[0] in finished:
            finished.discard(pending.popleft())
        if pending:
            self.next = pending[0]
        else:
            assert self.taken is not None  # something was taken: what finished
            self.next = self.taken + 1
        self.dirty = True

    @property
    def in_flight(self) -> int:
        return len(self._pending) - len(self._finished)
