"""Which offset of a partition may be stored: the one past the longest prefix of records that are done.

A record is done when its handler succeeded or its forwarded copy was acknowledged. Forwarding is
asynchronous, so records finish out of order; the stored offset never passes one that is not done.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """The records of one assigned partition, in the order the stage took them."""

    __slots__ = ("_done", "_held", "_pending", "dirty", "next")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._held: set[int] = set()  # pending, taken before their due time: their outcome comes later
        self.next: int | None = None  # the offset to store: one past the done prefix
        self.dirty = False  # `next` moved since it was last stored

    def done_now(self, offset: int) -> None:
        """A record finished the moment it was taken (its handler succeeded)."""
        if self._pending:
            if offset in self._held:
                self._held.discard(offset)
                self.finish(offset)
                return
            self._pending.append(offset)
            self._done.add(offset)
        else:
            self.next = offset + 1
            self.dirty = True

    def begin(self, offset: int) -> None:
        """A record whose outcome is not known yet (its forwarded copy is not acknowledged)."""
        if offset in self._held:
            self._held.discard(offset)  # pending since it was held, in its place
            return
        self._pending.append(offset)

    def hold(self, offset: int) -> None:
        """A record taken now, in offset order, and handled later (when it is due): pending until then, so nothing
        past it is stored. Holding it again, or then calling begin() or done_now() for it, keeps its one place."""
        if offset not in self._held:
            self._held.add(offset)
            self._pending.append(offset)

    def holds(self, offset: int) -> bool:
        return offset in self._held

    def finish(self, offset: int) -> None:
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            head = self._pending.popleft()
            self._done.discard(head)
            self.next = head + 1
            self.dirty = True

    @property
    def in_flight(self) -> int:
        return len(self._pending) - len(self._done)
