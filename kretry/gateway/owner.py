"""The owners: each partition of ``<prefix>.requests`` is read by one instance at a time (a consumer group), which
decides its requests one by one, so that counts and "already set" are exact however many instances take posts.

A batch is carried out in steps: first what the decisions produce (scheduled events, dead letters,
configurations); once the broker acknowledged all of it, the replies, then the new counts; once those are
acknowledged, the offsets. A count is never written before what it counts: a request read again after a crash is
answered from its count when that was written, not counted twice, and decided again when it was not (its event at
worst scheduled twice, never lost). If a step fails, the batch's counts are put back as they were and the batch is
read again.

The counts live in a Ledger shared with the posts this instance decides itself (kretry.gateway.direct): the keys of
a batch are busy there until their counts are written, and a partition is given up only once its direct decisions
were acknowledged.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from kretry.config import consumer_conf
from kretry.gateway import counts, deadletter
from kretry.gateway.consume import take, watermarks
from kretry.gateway.context import Context
from kretry.gateway.events import CONFIG, DELETE, Count, Reply, Request, Scheduled, ms_ceil
from kretry.gateway.ledger import Ledger
from kretry.gateway.outbox import ACK_TIMEOUT, Batch
from kretry.gateway.replies import reply_partition
from kretry.gateway.topics import route

log = structlog.get_logger("kretry.gateway")

CREATED = "Configurations are created!"
ALREADY_SET = "Configuration is already set for this identifier!"
DELETED = "Configuration is deleted!"
SWEEP_EVERY = 60.0
LOAD_TIMEOUT = 120.0


class Owner:
    def __init__(
        self,
        ctx: Context,
        ledger: Ledger,
    ) -> None:
        settings = ctx.settings
        self._settings = settings
        self._names = ctx.names
        self._outbox = ctx.outbox
        self._view = ctx.view
        self._ledger = ledger
        self._stopping = ctx.stopping
        self._partitions = settings.gateway_partitions
        self._ttl_ms = int(settings.gateway_count_ttl * 1000)
        conf = consumer_conf(settings, ctx.names.group("owners"), main=True)
        conf.setdefault("fetch.wait.max.ms", 100)
        self._consumer = Consumer(conf)
        self._last_sweep = time.monotonic()
        self.assigned = threading.Event()

    # -- partitions ---------------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ends = {p: watermarks(consumer, self._names.configs, p, 10)[1] for p in range(self._partitions)}
        tables = {tp.partition: self._load(tp.partition) for tp in partitions}
        # What the previous owner wrote is acknowledged, so it is below the ends read now: wait until it is seen.
        self._view.wait_for(ends, 10)
        for partition, table in tables.items():
            self._ledger.own(partition, table)
        self.assigned.set()
        log.info("owner assigned", partitions=sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self._ledger.give_up([tp.partition for tp in partitions], ACK_TIMEOUT):
            log.error("direct decisions unacknowledged at revocation; their counts may be missed by the next owner")

    def _load(self, partition: int) -> dict[str, Count]:
        """The counts of one partition, as its previous owners left them; raises when they cannot all be read, since
        an owner that decided on part of them would count wrong."""
        conf = consumer_conf(self._settings, "kretry-gateway-unused", main=True)
        conf.update({"enable.auto.commit": False, "enable.partition.eof": True})
        reader = Consumer(conf)
        out: dict[str, Count] = {}
        try:
            low, high = watermarks(reader, self._names.counts, partition, 10)
            if high <= low:
                return out
            reader.assign([TopicPartition(self._names.counts, partition, OFFSET_BEGINNING)])
            deadline = time.monotonic() + LOAD_TIMEOUT
            while time.monotonic() < deadline:
                for msg in take(reader, 1000, 0.5):
                    err = msg.error()
                    if err is not None and err.code() == KafkaError._PARTITION_EOF:
                        return out
                    if err is None:
                        self._read_count(out, msg)
            raise RuntimeError(f"counts of partition {partition} not read within {LOAD_TIMEOUT:.0f} s")
        finally:
            reader.close()

    @staticmethod
    def _read_count(out: dict[str, Count], msg: Any) -> None:
        key = (msg.key() or b"").decode("utf-8", "replace")
        value = msg.value()
        if value is None:
            out.pop(key, None)
            return
        try:
            out[key] = Count.decode(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable count; the event counts from zero", key=key, error=str(exc))

    # -- the loop ------------------------------------------------------------------------------------------

    def run(self) -> None:
        self._consumer.subscribe([self._names.requests], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self._stopping.is_set():
                msgs = take(self._consumer, 500, 0.1)
                # A partition revoked meanwhile is its next owner's to decide.
                good = [m for m in msgs if self._readable(m) and m.partition() in self._ledger.tables]
                if good:
                    self._batch(good)
                if time.monotonic() - self._last_sweep > SWEEP_EVERY:
                    self._sweep()
        finally:
            self._consumer.close()

    def _readable(self, msg: Any) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("requests topic", error=err.str())
        return False

    def _batch(self, msgs: list[Any]) -> None:
        now = time.time()
        now_ms = ms_ceil(now)  # rounded up: a due time counted from it is never earlier than meant
        first = self._outbox.batch()
        counted: list[tuple[int, str, Count]] = []
        undo: dict[tuple[int, str], Count | None] = {}
        replies: list[tuple[Request, int, str]] = []
        with self._ledger.lock:
            for msg in msgs:
                try:
                    request = Request.decode(msg.value() or b"")
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("unreadable request", partition=msg.partition(), offset=msg.offset(), error=str(exc))
                    continue
                if request.kind in (CONFIG, DELETE):
                    status, text = self._configure(request, first, now)
                else:
                    status, text = self._count(msg, request, first, counted, undo, now, now_ms)
                if status and request.origin:
                    replies.append((request, status, text))
            busy = {key for _, key in undo}
            self._ledger.busy |= busy
        try:
            self._carry_out(msgs, first, counted, undo, replies)
        finally:
            with self._ledger.lock:
                self._ledger.busy -= busy

    def _carry_out(
        self,
        msgs: list[Any],
        first: Batch,
        counted: list[tuple[int, str, Count]],
        undo: dict[tuple[int, str], Count | None],
        replies: list[tuple[Request, int, str]],
    ) -> None:
        if not first.wait(ACK_TIMEOUT):
            self._retry_batch(msgs, undo, first.errors)
            return
        # What the answers say is durable now: answer before the counts are written. A crash before they are
        # leaves the requests to be read again and decided again, their events at worst scheduled twice; the
        # askers have their answer already and ignore a second one.
        for request, status, text in replies:
            part = reply_partition(request.origin, self._partitions)
            self._outbox.send_nowait(
                self._names.replies, request.origin.encode(), Reply(request.id, status, text).encode(), part
            )
        second = self._outbox.batch()
        for partition, key, count in counted:
            second.send(self._names.counts, key, count.encode(), partition=partition)
        if not second.wait(ACK_TIMEOUT):
            self._retry_batch(msgs, undo, second.errors)
            return
        last: dict[int, int] = {}
        for msg in msgs:
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())
        self._consumer.store_offsets(offsets=[TopicPartition(self._names.requests, p, o + 1) for p, o in last.items()])

    def _count(
        self,
        msg: Any,
        request: Request,
        batch: Batch,
        counted: list[tuple[int, str, Count]],
        undo: dict[tuple[int, str], Count | None],
        now: float,
        now_ms: int,
    ) -> tuple[int, str]:
        partition = msg.partition()
        key = (msg.key() or b"").decode()
        table = self._ledger.tables[partition]
        config = self._ledger.config(request.identifier, now)
        decision = counts.decide(request, table.get(key), config, now_ms, self._ttl_ms)
        if decision.schedule is not None:
            topic, event = route(self._names, decision.schedule, now)
            batch.send(topic, key, request.body, event.headers())
        if decision.dead is not None:
            event = Scheduled(request.identifier, request.attempt, now_ms, request.pending)
            headers = deadletter.headers(
                event, decision.dead, decision.errors, config, self._names.due, self._names.group("delivery")
            )
            dlq = self._settings.dlq_topic
            if dlq is None:
                log.error("dead letter dropped: no DLQ topic", identifier=request.identifier, reason=decision.dead)
            else:
                batch.send(dlq, key, request.body, headers)
        if decision.count is not None:
            undo.setdefault((partition, key), table.get(key))
            table[key] = decision.count
            counted.append((partition, key, decision.count))
        return decision.status, decision.text

    def _configure(self, request: Request, batch: Batch, now: float) -> tuple[int, str]:
        if request.deadline_ms < now * 1000:
            return 503, counts.EXPIRED
        existing = self._ledger.config(request.identifier, now)
        if request.kind == DELETE:
            if existing is None:
                return 404, counts.NOT_FOUND
            batch.send(self._names.configs, request.identifier, None)
            self._ledger.wrote(request.identifier, None, now)
            return 200, DELETED
        if existing is not None:
            return 400, ALREADY_SET
        assert request.config is not None
        batch.send(self._names.configs, request.identifier, json.dumps(request.config).encode())
        self._ledger.wrote(request.identifier, self._view.parse(dict(request.config)), now)
        return 200, CREATED

    def _retry_batch(self, msgs: list[Any], undo: dict[tuple[int, str], Count | None], errors: list[str]) -> None:
        log.error("owner batch not acknowledged; reading it again", errors=errors[:3])
        with self._ledger.lock:
            for (partition, key), count in undo.items():
                table = self._ledger.tables.get(partition)
                if table is None:
                    continue
                if count is None:
                    table.pop(key, None)
                else:
                    table[key] = count
        first: dict[int, int] = {}
        for msg in msgs:
            first[msg.partition()] = min(first.get(msg.partition(), msg.offset()), msg.offset())
        for partition, offset in first.items():
            self._consumer.seek(TopicPartition(self._names.requests, partition, offset))
        self._stopping.wait(1.0)

    def _sweep(self) -> None:
        """Forget counts past their expiry: tombstones, so that a new owner does not read them back either."""
        self._last_sweep = time.monotonic()
        now_ms = int(time.time() * 1000)
        batch = self._outbox.batch()
        with self._ledger.lock:
            for partition, table in self._ledger.tables.items():
                for key in [k for k, c in table.items() if c.expires_ms <= now_ms]:
                    del table[key]
                    batch.send(self._names.counts, key, None, partition=partition)
            self._ledger.forget_written(time.time())
        batch.wait(ACK_TIMEOUT)
