"""The timing wheel's consumer: an event waits in a bucket topic until it is due to leave it, then moves on to the
next bucket that fits what is left, or to the due topic (kretry.gateway.topics).

A bucket's records leave in the order they came, so only the first record of a partition waits: those behind it
are held in memory (at most HELD a partition, then the partition is paused) and nothing is ever fetched twice.
Offsets are stored once the moved copies were acknowledged: a crash moves an event twice at worst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition

from kretry.config import consumer_conf
from kretry.gateway import deadletter
from kretry.gateway.consume import take
from kretry.gateway.context import Context
from kretry.gateway.events import Scheduled
from kretry.gateway.outbox import ACK_TIMEOUT
from kretry.gateway.topics import route

log = structlog.get_logger("kretry.gateway")

# About 1 KB each in memory, in every bucket partition this instance reads: 1,000 keeps a busy instance near 130 MB
# (5,000 took it past 150 MB under the accept bench), and still lets a partition move 2,000 records/s or more.
HELD = 1_000
FETCH_WAIT_MS = 200
Key = tuple[str, int]


class Wheel:
    def __init__(self, ctx: Context) -> None:
        self._settings = ctx.settings
        self._names = ctx.names
        self._outbox = ctx.outbox
        self._view = ctx.view
        self._stopping = ctx.stopping
        conf = consumer_conf(ctx.settings, ctx.names.group("wheel"), main=False)
        # A record waits at least a second in its bucket: fetching it up to FETCH_WAIT late costs nothing, and a
        # fetch per record sent, as the defaults do under load, cost the broker and this process more than the
        # posts themselves (accepts 2,000 -> 3,600/s when batched).
        conf.update({"fetch.wait.max.ms": FETCH_WAIT_MS, "fetch.min.bytes": 1_000_000})
        self._consumer = Consumer(conf)
        self._held: dict[Key, deque[Any]] = {}
        self._paused: set[Key] = set()
        self.assigned = threading.Event()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._held.pop((tp.topic, tp.partition), None)
            self._paused.discard((tp.topic, tp.partition))

    def run(self) -> None:
        self._consumer.subscribe(self._names.buckets, on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self._stopping.is_set():
                for msg in take(self._consumer, 1000, self._timeout()):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("wheel", error=err.str())
                        continue
                    self._held.setdefault((msg.topic() or "", msg.partition() or 0), deque()).append(msg)
                self._move()
        finally:
            self._consumer.close()

    def _timeout(self) -> float:
        leaves = [self._leave(q[0]) for q in self._held.values() if q]
        if not leaves:
            return 0.1
        return min(0.1, max(0.0, min(leaves) / 1000 - time.time()))

    @staticmethod
    def _leave(msg: Any) -> int:
        event = Scheduled.read(msg.headers())
        return 0 if event is None or event.leave_ms is None else event.leave_ms

    def _move(self) -> None:
        now = time.time()
        now_ms = int(now * 1000)
        batch = self._outbox.batch()
        moved: dict[Key, int] = {}
        for key, queue in self._held.items():
            while queue and self._leave(queue[0]) <= now_ms:
                msg = queue.popleft()
                self._forward(msg, batch, now)
                moved[key] = msg.offset()
        if moved:
            if not batch.wait(ACK_TIMEOUT):
                # Not stored: what was moved is moved again after a restart or rebalance; nothing is lost.
                log.error("wheel moves not acknowledged", errors=batch.errors[:3])
                raise RuntimeError("wheel: the broker did not acknowledge moved events")
            self._consumer.store_offsets(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in moved.items()])
        self._pace()

    def _forward(self, msg: Any, batch: Any, now: float) -> None:
        event = Scheduled.read(msg.headers())
        if event is None:
            log.error("not a gateway event; skipped", topic=msg.topic(), offset=msg.offset())
            return
        config = self._view.get(event.identifier)
        if config is None:
            self._dead(msg, event, batch)
            return
        topic, nxt = route(self._names, event, now)
        batch.send(topic, msg.key(), msg.value(), _keep(msg.headers(), nxt))

    def _dead(self, msg: Any, event: Scheduled, batch: Any) -> None:
        dlq = self._settings.dlq_topic
        if dlq is None:
            log.error("dead letter dropped: no DLQ topic", identifier=event.identifier)
            return
        headers = deadletter.headers(
            event, "its configuration was deleted", {}, None, self._names.due, self._names.group("delivery")
        )
        batch.send(dlq, msg.key(), msg.value(), headers)

    def _pace(self) -> None:
        """Pause a partition whose held records reach HELD; resume it once they are down to half."""
        for key, queue in self._held.items():
            tp = TopicPartition(key[0], key[1])
            if key not in self._paused and len(queue) >= HELD:
                self._consumer.pause([tp])
                self._paused.add(key)
            elif key in self._paused and len(queue) <= HELD // 2:
                self._consumer.resume([tp])
                self._paused.discard(key)


def _keep(headers: Any, event: Scheduled) -> list[tuple[str, bytes]]:
    """The record's own headers, the gateway's replaced by ``event``'s."""
    out = [(n, v) for n, v in headers or () if not n.startswith("kretry-gateway-")]
    return out + event.headers()
