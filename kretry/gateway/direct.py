"""A post decided where it is taken: when this instance owns the event's partition of ``<prefix>.requests``, the
scheduled event and its new count are sent together and the post is answered once the broker acknowledged both.
One round trip to the broker instead of three in a row (the request to its owner, the event, the reply back).

A post of a partition owned elsewhere, or of an event the owner's loop is deciding right now
(kretry.gateway.ledger), goes the owner's way. When the broker refuses either record the answer is 503 and the
count is put back as it was, unless a later decision has moved it on since: the count then stays one ahead, which
refuses a post one early at worst and never lets one more through. An event acknowledged with its count refused
is scheduled, answered 503 and, posted again, scheduled twice: never lost.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kretry.gateway import counts
from kretry.gateway.events import Count, Reply, Request, ms_ceil
from kretry.gateway.ledger import Ledger
from kretry.gateway.outbox import Outbox
from kretry.gateway.settings import GatewaySettings
from kretry.gateway.topics import Names, request_partition, route

REFUSED = "not confirmed by Kafka"


class Direct:
    def __init__(self, settings: GatewaySettings, names: Names, outbox: Outbox, ledger: Ledger) -> None:
        self._names = names
        self._outbox = outbox
        self._ledger = ledger
        self._partitions = settings.gateway_partitions
        self._ttl_ms = int(settings.gateway_count_ttl * 1000)

    def post(self, request: Request, key: bytes) -> asyncio.Future[Reply] | None:
        """The answer to a post, decided here; None when its partition's owner must decide it."""
        partition = request_partition(key, self._partitions)
        text_key = key.decode()
        now = time.time()
        ledger = self._ledger
        with ledger.lock:
            table = ledger.tables.get(partition)
            if table is None or text_key in ledger.busy:
                return None
            answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            previous = table.get(text_key)
            config = ledger.config(request.identifier, now)
            decision = counts.decide(request, previous, config, ms_ceil(now), self._ttl_ms, remember=False)
            if decision.schedule is None or decision.count is None:  # 404 or 412: nothing to write
                answer.set_result(Reply(request.id, decision.status, decision.text))
                return answer
            table[text_key] = decision.count
            ledger.begin(partition)
            reply = Reply(request.id, decision.status, decision.text)
            pending = _Pending(self, answer, reply, partition, key, previous, decision.count)
            topic, event = route(self._names, decision.schedule, now)
            # Sent under the lock: two counts of one event reach the partition in the order they were decided.
            refused = [
                error
                for error in (
                    self._produce(topic, key, request.body, event.headers(), -1, pending),
                    self._produce(self._names.counts, key, decision.count.encode(), (), partition, pending),
                )
                if error is not None
            ]
        for error in refused:  # outside the lock: settling takes it
            pending.acked(error)
        return answer

    def _produce(
        self, topic: str, key: bytes, value: bytes, headers: Any, partition: int, pending: _Pending
    ) -> str | None:
        try:
            self._outbox.produce(topic, key, value, headers, partition, pending.acked)
        except Exception as exc:  # a full queue or a refused record: that record failed
            return str(exc)
        return None

    def settle(self, pending: _Pending) -> None:
        """Both records answered for (the producer's thread, or the asker's when a send failed at once)."""
        ledger = self._ledger
        with ledger.lock:
            ledger.end(pending.partition)
            if pending.errors:
                self._put_back(pending)
        reply = pending.reply if not pending.errors else Reply(pending.reply.id, 503, REFUSED)
        self._outbox.settle_soon(pending.answer, reply)

    def _put_back(self, pending: _Pending) -> None:
        table = self._ledger.tables.get(pending.partition)
        key = pending.key.decode()
        if table is None or table.get(key) is not pending.count:
            return
        if pending.previous is None:
            table.pop(key, None)
        else:
            table[key] = pending.previous
        restored = None if pending.previous is None else pending.previous.encode()
        self._outbox.send_nowait(self._names.counts, pending.key, restored, pending.partition)


@dataclass(eq=False)
class _Pending:
    """One direct decision waiting for its two acknowledgements."""

    direct: Direct
    answer: asyncio.Future[Reply]
    reply: Reply
    partition: int
    key: bytes
    previous: Count | None
    count: Count
    errors: list[str] = field(default_factory=list)
    left: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self, err: Any, _msg: Any = None) -> None:
        with self.lock:
            if err is not None:
                self.errors.append(err if isinstance(err, str) else err.str())
            self.left -= 1
            last = self.left == 0
        if last:
            self.direct.settle(self)
