"""The due stage: events due within the smallest wheel bucket, held in memory and delivered when due, to the
millisecond, whatever their order in the partition.

The offset stored for a partition never passes an event whose attempt is not done (kretry.offsets): a crash
delivers an event twice at worst. At most HELD events are held; past that the stage stops fetching until some are
delivered. Deliveries run concurrently on an event loop of their own (``gateway_concurrency`` at once).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition

from kretry.config import consumer_conf
from kretry.gateway.attempt import Attempt, Observe, attempt
from kretry.gateway.consume import take
from kretry.gateway.context import Context
from kretry.gateway.deliver import Deliverer
from kretry.gateway.events import Scheduled
from kretry.offsets import PartitionOffsets

log = structlog.get_logger("kretry.gateway")

HELD = 20_000
RETRY_AFTER = 1.0  # an attempt whose follow-up the broker did not take is tried again this much later


class DueStage:
    def __init__(
        self,
        ctx: Context,
        observe: Observe,
        lateness: Callable[[float], None],
    ) -> None:
        settings = ctx.settings
        self._settings = settings
        self._names = ctx.names
        self._outbox = ctx.outbox
        self._view = ctx.view
        self._stopping = ctx.stopping
        self._observe = observe
        self._lateness = lateness
        conf = consumer_conf(settings, ctx.names.group("delivery"), main=False)
        # Records come here up to a second before they are due: one fetch per fetch.wait.max.ms (25 ms) rather than
        # one per record sent. Only an event due at once (a 0 s delay) waits for it.
        conf["fetch.min.bytes"] = 1_000_000
        self._consumer = Consumer(conf)
        self._heap: list[tuple[int, int, int, int, Attempt]] = []  # (due ms, seq, partition, offset, attempt)
        self._seq = itertools.count()
        self._offsets: dict[int, PartitionOffsets] = {}
        self._finished: deque[tuple[int, int, Attempt, bool]] = deque()  # filled by the event loop's thread
        self._wake = threading.Event()
        self._running = 0
        self._paused = False
        self._loop = asyncio.new_event_loop()
        self._deliverer: Deliverer | None = None
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="kretry-gateway-io", daemon=True)
        self._slots = threading.Semaphore(settings.gateway_concurrency)
        self.assigned = threading.Event()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._offsets[tp.partition] = PartitionOffsets()
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        self._store()
        self._heap = [h for h in self._heap if h[2] not in gone]
        heapq.heapify(self._heap)
        for p in gone:
            self._offsets.pop(p, None)

    def run(self) -> None:
        self._loop_thread.start()
        self._deliverer = asyncio.run_coroutine_threadsafe(self._make_deliverer(), self._loop).result(30)
        self._consumer.subscribe([self._names.due], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self._stopping.is_set():
                if self._saturated():
                    # Every slot busy with a record due: wait for one to finish rather than spin on the consumer,
                    # which would take the interpreter from the deliveries that free the slots.
                    self._wake.wait(0.05)
                self._wake.clear()
                for msg in take(self._consumer, 1000, self._timeout()):
                    self._take(msg)
                self._start_due()
                self._collect()
                self._pace()
            self._drain()
        finally:
            self._consumer.close()
            self._close_loop()

    async def _make_deliverer(self) -> Deliverer:
        return Deliverer(
            http_timeout=self._settings.gateway_delivery_timeout,
            sqs_endpoint_url=self._settings.gateway_sqs_endpoint_url,
        )

    def _saturated(self) -> bool:
        due = bool(self._heap) and self._heap[0][0] <= time.time() * 1000
        return due and not self._finished and self._running >= self._settings.gateway_concurrency

    def _timeout(self) -> float:
        if self._finished:
            return 0.0
        if not self._heap or self._running >= self._settings.gateway_concurrency:
            return 0.05  # nothing to start before a record comes, or a slot frees (the wake above)
        return min(0.05, max(0.0, self._heap[0][0] / 1000 - time.time()))

    def _take(self, msg: Any) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("due topic", error=err.str())
            return
        partition, offset = msg.partition(), msg.offset()
        tracker = self._offsets.setdefault(partition, PartitionOffsets())
        event = Scheduled.read(msg.headers())
        if event is None:
            log.error("not a gateway event; skipped", partition=partition, offset=offset)
            tracker.done_now(offset)
            return
        tracker.hold(offset)
        item = Attempt(msg.key() or b"", msg.value() or b"", event)
        heapq.heappush(self._heap, (event.due_ms, next(self._seq), partition, offset, item))

    def _start_due(self) -> None:
        now_ms = time.time() * 1000
        while self._heap and self._heap[0][0] <= now_ms:
            if not self._slots.acquire(blocking=False):
                return
            due, _, partition, offset, item = heapq.heappop(self._heap)
            self._lateness(max(0.0, (now_ms - due) / 1000))
            tracker = self._offsets.get(partition)
            if tracker is not None and tracker.holds(offset):  # not when tried again: it is pending already
                tracker.begin(offset)
            self._running += 1
            future = asyncio.run_coroutine_threadsafe(self._attempt(item), self._loop)
            future.add_done_callback(self._on_done(partition, offset, item))

    async def _attempt(self, item: Attempt) -> None:
        assert self._deliverer is not None
        config = self._view.get(item.event.identifier)
        await attempt(item, config, self._deliverer, self._outbox, self._names, self._settings, self._observe)

    def _on_done(self, partition: int, offset: int, item: Attempt) -> Callable[[Any], None]:
        def done(future: Any) -> None:
            ok = future.exception() is None
            if not ok:
                log.error("delivery follow-up not acknowledged; tried again", error=str(future.exception()))
            self._finished.append((partition, offset, item, ok))
            self._slots.release()
            self._wake.set()

        return done

    def _collect(self) -> None:
        while self._finished:
            partition, offset, item, ok = self._finished.popleft()
            self._running -= 1
            tracker = self._offsets.get(partition)
            if tracker is None:
                continue  # revoked meanwhile: the new owner delivers it again
            if ok:
                tracker.finish(offset)
            else:
                due = int((time.time() + RETRY_AFTER) * 1000)
                heapq.heappush(self._heap, (due, next(self._seq), partition, offset, item))
        self._store()

    def _store(self) -> None:
        todo = []
        for partition, tracker in self._offsets.items():
            if tracker.dirty and tracker.next is not None:
                todo.append(TopicPartition(self._names.due, partition, tracker.next))
                tracker.dirty = False
        if todo:
            self._consumer.store_offsets(offsets=todo)

    def _pace(self) -> None:
        full = len(self._heap) + self._running >= HELD
        if full != self._paused:
            assignment = self._consumer.assignment()
            (self._consumer.pause if full else self._consumer.resume)(assignment)
            self._paused = full

    def _drain(self, timeout: float = 10.0) -> None:
        """At stop: let the attempts under way finish, so that their offsets are stored."""
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.01)
            self._collect()

    def _close_loop(self) -> None:
        if self._deliverer is not None:
            asyncio.run_coroutine_threadsafe(self._deliverer.aclose(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
