"""What the owner of request partitions knows, shared by the two ways a post is decided here: the owner's loop
(requests read from ``<prefix>.requests``, kretry.gateway.owner) and a post taken by this instance for a partition
it owns (kretry.gateway.direct).

Every decision reads and changes a count under ``lock``, so the two never count the same event at once. Two rules
keep a count from ever running ahead of what it counts:

- A key the owner's loop decided stays *busy* until its count is written: a direct decision on it would write a
  count that includes a request whose event is not acknowledged yet, and a request read again after a crash is
  answered from its count, its event then lost. A direct post of a busy key goes the owner's way instead.
- Direct decisions not yet acknowledged are counted per partition: a partition is given up only once they were,
  so that the next owner reads their counts back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Protocol

from kretry.gateway.configs import Config
from kretry.gateway.events import Count

# A configuration the owner wrote is taken from here, not the view, this long: "already set" and the posts that
# follow must not wait for the view to read it back.
WRITTEN_FOR = 60.0


class Configs(Protocol):
    def get(self, identifier: str) -> Config | None: ...


class Ledger:
    def __init__(self, view: Configs) -> None:
        self.lock = threading.Lock()
        self._view = view
        self._settled = threading.Condition(self.lock)
        self.tables: dict[int, dict[str, Count]] = {}
        self.busy: set[str] = set()
        self._in_flight: dict[int, int] = {}
        self._written: dict[str, tuple[Config | None, float]] = {}

    # -- partitions (the owner's thread, at assignment and revocation) ---------------------------------------

    def own(self, partition: int, table: dict[str, Count]) -> None:
        with self.lock:
            self.tables[partition] = table

    def give_up(self, partitions: Iterable[int], timeout: float) -> bool:
        """Stop deciding for ``partitions``, then wait until their direct decisions were acknowledged; False when
        some were not within ``timeout``."""
        gone = set(partitions)
        deadline = time.monotonic() + timeout
        with self.lock:
            for p in gone:
                self.tables.pop(p, None)
            while any(self._in_flight.get(p, 0) for p in gone):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._settled.wait(left)
        return True

    # -- direct decisions in flight (callers hold the lock) --------------------------------------------------

    def begin(self, partition: int) -> None:
        self._in_flight[partition] = self._in_flight.get(partition, 0) + 1

    def end(self, partition: int) -> None:
        self._in_flight[partition] -= 1
        if not self._in_flight[partition]:
            self._settled.notify_all()

    # -- configurations (callers hold the lock) --------------------------------------------------------------

    def wrote(self, identifier: str, config: Config | None, now: float) -> None:
        self._written[identifier] = (config, now)

    def config(self, identifier: str, now: float) -> Config | None:
        written = self._written.get(identifier)
        if written is not None and now - written[1] < WRITTEN_FOR:
            return written[0]
        return self._view.get(identifier)

    def forget_written(self, now: float) -> None:
        for identifier in [i for i, (_, at) in self._written.items() if now - at > WRITTEN_FOR]:
            del self._written[identifier]
