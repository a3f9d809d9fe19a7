"""The gateway's page of the console (``kretry console APP --gateway-prefix PREFIX``): what a ``kretry gateway``
keeps on the cluster, read with bounded reads, never through a gateway instance.

- Configurations: the compacted ``<prefix>.configs``, read whole (one record an identifier), secrets shown as
  ``***`` whether sealed or not: the console needs no key.
- Pending events per identifier, with the earliest next due time: the records of the wheel's buckets and of the
  due topic that their groups have not finished, at most SCAN records a partition (the page says when it stopped).
- Recent failures per integration: the failed deliveries the due stage sent back to the owners (the retry requests
  at the end of ``<prefix>.requests``, RECENT a partition), with their last error. Successes are counted only in
  each instance's ``/metrics``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer

from kretry.config import Settings
from kretry.console.waiting import read, reader_conf, unfinished
from kretry.gateway.configs import redacted
from kretry.gateway.events import RETRY, Request, Scheduled
from kretry.gateway.topics import Names

SCAN = 2_000
RECENT = 200
TIMEOUT = 10.0


@dataclass
class Pending:
    identifier: str
    events: int = 0
    next_due_ms: int | None = None


@dataclass
class Failures:
    identifier: str
    integration: int
    count: int = 0
    last_error: str = ""
    last_at_ms: int = 0


@dataclass
class GatewayLook:
    prefix: str
    configs: list[dict[str, Any]]
    pending: list[Pending]
    pending_cut: bool  # a partition held more than SCAN records: the counts are "at least"
    failures: list[Failures] = field(default_factory=list)


class GatewayReader:
    def __init__(self, settings: Settings, prefix: str) -> None:
        self.names = Names(prefix)
        self._conf = reader_conf(settings, self.names.group("delivery"))

    def look(self) -> GatewayLook:
        reader = Consumer(self._conf)
        try:
            pending, cut = self._pending(reader)
            return GatewayLook(self.names.prefix, self._configs(reader), pending, cut, self._failures(reader))
        finally:
            reader.close()

    def _configs(self, reader: Consumer) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for msg in read(reader, unfinished(reader, self._conf, self.names.configs, None)):
            identifier = (msg.key() or b"").decode("utf-8", "replace")
            if msg.value() is None:
                found.pop(identifier, None)
                continue
            try:
                found[identifier] = redacted(json.loads(msg.value()))
            except (ValueError, AttributeError):
                found[identifier] = {"identifier": identifier, "unreadable": True}
        return [found[k] for k in sorted(found)]

    def _pending(self, reader: Consumer) -> tuple[list[Pending], bool]:
        per: dict[str, Pending] = {}
        cut = False
        waiting = [(t, self.names.group("wheel")) for t in self.names.buckets]
        waiting.append((self.names.due, self.names.group("delivery")))
        for topic, group in waiting:
            ranges = unfinished(reader, self._conf, topic, group)
            cut = cut or any(end - start > SCAN for _, start, end in ranges)
            bounded = [(tp, start, min(end, start + SCAN)) for tp, start, end in ranges]
            for msg in read(reader, bounded):
                event = Scheduled.read(msg.headers())
                if event is None:
                    continue
                row = per.setdefault(event.identifier, Pending(event.identifier))
                row.events += 1
                if row.next_due_ms is None or event.due_ms < row.next_due_ms:
                    row.next_due_ms = event.due_ms
        return sorted(per.values(), key=lambda p: (p.next_due_ms or 0, p.identifier)), cut

    def _failures(self, reader: Consumer) -> list[Failures]:
        per: dict[tuple[str, int], Failures] = {}
        ranges = [
            (tp, max(start, end - RECENT), end)
            for tp, start, end in unfinished(reader, self._conf, self.names.requests, None)
        ]
        for msg in read(reader, ranges):
            try:
                request = Request.decode(msg.value() or b"")
            except (ValueError, KeyError, TypeError):
                continue
            if request.kind != RETRY:
                continue
            at = msg.timestamp()[1]
            for index, error in request.errors.items():
                row = per.setdefault((request.identifier, index), Failures(request.identifier, index))
                row.count += 1
                if at >= row.last_at_ms:
                    row.last_error, row.last_at_ms = error, at
        return sorted(per.values(), key=lambda f: -f.last_at_ms)
