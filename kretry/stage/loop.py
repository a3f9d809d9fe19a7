"""One consume loop for one stage: the main topic, or retry topic n of it.

poll a batch -> for each record: skip another service's retries, wait until due (held in the due-time window,
kretry.stage.window, and taken with the next batch once due; a partition whose window is full pauses and seeks back,
never sleep) -> handler -> on failure decide and forward -> store the offsets of records that are done. Runs in a
thread of its own, with its own consumer and producer, so delivery callbacks and offset bookkeeping never cross
threads.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kretry import callbacks
from kretry import headers as hdr
from kretry.control import KILL, Command, Orders, order
from kretry.dispatch import Dispatcher
from kretry.errors import KafkaFatalError, TransactionFenced
from kretry.forward import Forwarder, Outgoing
from kretry.guard import Flood
from kretry.metrics import Metrics
from kretry.offsets import PartitionOffsets
from kretry.policy import Action
from kretry.retrier import StageSpec
from kretry.stage import txn
from kretry.stage.failure import instead, release
from kretry.stage.logbook import Logbook, where_of
from kretry.stage.verdicts import Verdicts
from kretry.stage.window import FOREVER, Window, due_ms, is_due, record_cost
from kretry.stage.window import MAX_BYTES as MAX_WINDOW_BYTES
from kretry.topology import stage_attempt

log = structlog.get_logger("kretry")

BATCH = 500
IDLE_POLL = 0.1  # seconds; bounds how late a due record or a stop request is noticed
REVOKE_FLUSH = 10.0
MISSING_FOR = 15.0  # seconds a topic counts as missing after the last forward it refused as unknown
MAX_POLL_INTERVAL_MS = 300_000  # librdkafka's default max.poll.interval.ms

# The target topic or partition does not exist (deleted while we run, or narrower than planned): the forward is
# held and sent again, never dropped, and /readyz says why.
MISSING = frozenset({KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART})


class Acked:
    """What a forward's acknowledgement settles: its record's offset, and the log line of a dead letter (the DLQ's
    position is known only then). One small object per forward in flight, for the garbage collector's sake."""

    __slots__ = ("attempt", "error", "msg", "offset", "origin", "stage", "tracker")

    def __init__(
        self, stage: Stage, tracker: PartitionOffsets, offset: int, msg: Any, origin: Any, attempt: int, error: str
    ) -> None:
        self.stage, self.tracker, self.offset = stage, tracker, offset
        self.msg, self.origin, self.attempt, self.error = msg, origin, attempt, error

    def __call__(self, delivered: Any) -> None:
        self.tracker.finish(self.offset)
        stage = self.stage
        if delivered.topic() == stage._dlq:
            stage._logbook.dead_lettered(delivered, self.msg, self.origin, self.attempt, self.error)


class StageStopped(Exception):
    """The stage stopped on purpose and left its offset uncommitted (``on_exhausted="stop"``)."""


def stage_label(attempt: int) -> str:
    return "main" if attempt == 0 else f"retry_{attempt}"


class Stage:
    def __init__(
        self,
        spec: StageSpec,
        *,
        consumer_conf: dict[str, Any],
        producer_conf: dict[str, Any],
        dlq_topic: str | None,
        group_id: str,
        partitions: dict[str, int],
        metrics: Metrics,
        stopping: threading.Event,
        clock: Callable[[], float] = time.time,
        flood: Flood | None = None,
        transactional_id: str | None = None,
        control: Orders | None = None,
    ) -> None:
        self.spec = spec
        # Operators' flush and kill commands (kretry.control), read by the worker; a retry stage obeys its tier's.
        self._control = control if spec.attempt else None
        self._control_seen = 0
        self._orders: tuple[Command, ...] = ()
        self.transactional_id = transactional_id  # exactly_once: set, and prepare() makes the producer
        self.txn: txn.Transactions | None = None
        self._txn_committed: dict[int, int] = {}  # partition -> the offset this stage's last transaction committed
        self._flood = flood
        self._flood_generation = 0
        self.label = stage_label(spec.number)
        self.base = spec.handler.topic
        self._policy = spec.handler.policy
        self._verdicts = Verdicts(self._policy)
        self._error_classes: dict[type[BaseException], str] = {}  # exception class -> its kretry-error-class
        self._shared = spec.shared  # a tier of equal delays: each record's attempt is read from it
        self._dlq = dlq_topic
        self._group = group_id
        self._stopping = stopping
        self._clock = clock
        self._consumer_conf = consumer_conf
        self._producer_conf = producer_conf
        self._partitions = partitions
        self._offsets: dict[int, PartitionOffsets] = {}
        # partition -> (due time in epoch s, offset) of the record it waits for
        self._waiting: dict[int, tuple[float, int]] = {}
        self._window: Window[Any] = Window()  # records fetched before their due time, held until it
        self._full: set[int] = set()  # partitions waiting because their window was full: resumed once it has room
        self._fresh: list[TopicPartition] = []
        self.assigned: set[int] | None = None  # None until the first assignment
        self.fatal: BaseException | None = None
        self.last_step = time.monotonic()  # when the loop last came round: a stuck handler stops it
        self._log = log.bind(topic=spec.topic, stage=self.label, group=spec.group)
        self._logbook = Logbook(self._log)
        labels = (self.base, self.label)
        self.stats = stats = metrics.stage(*labels)
        self.missing: dict[str, float] = {}  # topic -> when a forward last found it missing (monotonic)
        self._foreign_seen: set[str] = set()
        # Past this long without a poll the group hands our partitions to another member: what is left of the
        # batch is theirs to handle, not ours.
        self._poll_budget = float(consumer_conf.get("max.poll.interval.ms", MAX_POLL_INTERVAL_MS)) / 1000.0
        self.recreated = threading.Event()  # set by the worker once it created this stage's topic again
        self._polled_at = perf_counter()  # when the last batch was fetched: the poll budget counts from it
        # Indexed by attempt: where a failure goes next, this stage's own topic again within a shared tier.
        self._topics = spec.handler.attempt_topics
        attempt_of = self._record_attempt if spec.shared else None
        self._dispatch = Dispatcher(spec.handler, spec.attempt, stopping, stats.handler, attempt_of)
        self._batched = spec.handler.is_async
        self._m_errors = metrics.kafka_errors
        self._m_lag = metrics.lag.labels(*labels)
        self.consumer: Consumer | None = None
        self.forwarder: Forwarder | None = None

    # -- the loop -------------------------------------------------------------------------------------------

    def prepare(self, timeout: float) -> None:
        """exactly_once: make the transactional producer, fencing a predecessor with the same id, before the stage
        consumes anything; raises BrokerUnavailable when the cluster refuses transactions."""
        if self.transactional_id is not None and self.txn is None:
            conf = {**self._producer_conf, "error_cb": self._on_kafka_error}
            client = txn.producer(conf, self.transactional_id, timeout)
            self.txn = txn.Transactions(client, self.transactional_id)

    def run(self) -> None:
        # The stage's error_cb decides what is fatal; a user's own error_cb is called after it.
        self.consumer = Consumer(callbacks.with_error_cb(self._consumer_conf, self._on_kafka_error))
        if self.txn is None:
            producer = Producer(callbacks.with_error_cb(self._producer_conf, self._on_kafka_error))
            begin = None
        else:
            producer, begin = self.txn.client, self.txn.begin
        self.forwarder = Forwarder(producer, self._instead, self._on_forward_error, self._partitions, before_send=begin)
        self.consumer.subscribe(
            [self.spec.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._log.info("stage started")
        try:
            while not self._stopping.is_set() and self.fatal is None:
                try:
                    self._step(self.consumer, self.forwarder)
                except (TransactionFenced, KafkaFatalError) as exc:
                    self.fatal = exc  # from a transactional call: nothing of the open transaction is committed
        finally:
            self._shutdown(self.consumer, self.forwarder)
        if self.fatal is not None:
            raise self.fatal

    def _step(self, consumer: Consumer, forwarder: Forwarder) -> None:
        self.last_step = now = time.monotonic()
        self._logbook.summarise(now)
        if self.recreated.is_set():
            self._start_over(consumer)
        if self._fresh:
            # A partition handed to us again may still carry our old pause; resuming is harmless otherwise,
            # unless it already waits for a record that came with its assignment.
            fresh = [tp for tp in self._fresh if tp.partition not in self._waiting]
            if fresh:
                consumer.resume(fresh)
            self._fresh = []
        if self._control is not None and self._control.generation != self._control_seen:
            self._obey(self._control)
        if self._waiting:
            self._resume_due(consumer)
        if self._flood is None or not self._guarded(consumer):
            self._handle(consumer, forwarder)
        forwarder.poll()
        if forwarder.fatal is not None:
            self.fatal = forwarder.fatal
        if self.txn is None:
            self._store(consumer)
        else:
            self._commit_txn(consumer, forwarder, self.txn)

    def _handle(self, consumer: Consumer, forwarder: Forwarder) -> None:
        batch = self._fetch(consumer)
        if not self.spec.attempt and not self._batched:
            self._run(consumer, forwarder, batch)
            return
        held = self._window.due(self._clock()) if self.spec.attempt else []
        ready = self._take(consumer, forwarder, held + batch if held else batch, len(held))
        self.stats.windowed = self._window.records
        if ready:
            outcomes = self._dispatch.call_batch(ready)
            if self._overdue():
                self._abandon(consumer, ready)
            else:
                for msg, outcome in zip(ready, outcomes, strict=True):
                    self._settle(forwarder, msg, outcome)

    def _run(self, consumer: Consumer, forwarder: Forwarder, batch: list[Any]) -> None:
        """A main stage's batch for a sync handler: the records in turn, their successes settled together (the highest
        offset of each partition once), each failure as it comes, for what is done with it decides whether the records
        behind it are handled now (a tripped DLQ flood guard makes its partition wait; on_exhausted="stop" stops)."""
        ready = [msg for msg in batch if msg.error() is None]
        if len(ready) < len(batch):
            for msg in batch:
                if msg.error() is not None:
                    self._on_consume_error(msg.error(), msg)
        if self._waiting:  # fetched before their partition's pause: it resumes at the waiting record
            ready = [msg for msg in ready if msg.partition() not in self._waiting]
        deadline = self._polled_at + self._poll_budget
        start = 0
        while start < len(ready) and self.fatal is None and not self._stopping.is_set():
            end, failure = self._dispatch.run(ready, start, deadline)
            if end > start:
                self._succeeded(ready, start, end)
            if end == len(ready):
                return
            if failure is None:  # the poll budget is spent, or a stop was asked for
                if not self._stopping.is_set():
                    # The handler outlasted max.poll.interval.ms: the partition may be another member's by now,
                    # which handles this record again; forwarding it too would be a second copy.
                    self._abandon(consumer, ready[end:])
                return
            self._settle(forwarder, ready[end], failure)
            start = end + 1
            if self._waiting:
                ready = ready[:start] + [msg for msg in ready[start:] if msg.partition() not in self._waiting]

    def _succeeded(self, ready: list[Any], start: int, end: int) -> None:
        """``ready[start:end]`` succeeded: each partition's offsets told once, with its highest."""
        highest: dict[int, int] = {}
        for i in range(start, end):
            msg = ready[i]
            highest[msg.partition()] = msg.offset()
        for partition, offset in highest.items():
            self._tracker(partition).done_through(offset)
        self.stats.success += end - start
        if self._flood is not None:
            self._flood.handled(time.monotonic(), end - start)

    def _take(self, consumer: Consumer, forwarder: Forwarder, batch: list[Any], held: int = 0) -> list[Any]:
        """Handle the batch's due records now (sync handlers) or return them (async handlers); its first ``held``
        records come out of the window, due now, ahead of their partitions' later records."""
        ready = []
        # The per-record loop of every stage: lookups hoisted; a main stage never waits.
        stopping, waiting, delayed, batched = self._stopping, self._waiting, self.spec.attempt > 0, self._batched
        call, settle, overdue = self._dispatch.call, self._settle, self._overdue
        for i, msg in enumerate(batch):
            if self.fatal is not None or stopping.is_set():
                break  # the rest of the batch is not stored, so it is fetched again after a restart
            err = msg.error()
            if err is not None:
                self._on_consume_error(err, msg)
            elif waiting and i >= held and msg.partition() in waiting:
                pass  # fetched before the pause; the partition resumes at the waiting record (_resume_due)
            elif delayed and not self._mine_and_due(consumer, msg):
                pass  # another service's record (done with), or its partition now waits for it
            elif batched:
                ready.append(msg)
                if delayed:
                    # Its place in the partition's offsets now, before the records held after it (settled after
                    # the whole batch, it would come after them and the stored offset could move backwards).
                    self._tracker(msg.partition()).hold(msg.offset())
            elif overdue():
                self._abandon(consumer, batch[i:])
                break
            else:
                outcome = call(msg)
                if overdue():
                    # The handler outlasted max.poll.interval.ms: the partition may be another member's by now,
                    # which handles this record again; forwarding it too would be a second copy.
                    self._abandon(consumer, batch[i:])
                    break
                settle(forwarder, msg, outcome)
        return ready

    def _fetch(self, consumer: Consumer) -> list[Any]:
        # consume(n, timeout) waits for n records or the timeout, whichever comes last: take what is there,
        # and only when nothing is, wait for the first record and then take what came with it.
        self._polled_at = perf_counter()
        batch: list[Any] = consumer.consume(BATCH, 0)
        if not batch:
            batch = consumer.consume(1, self._poll_timeout())
            if batch:
                batch.extend(consumer.consume(BATCH - 1, 0))
        return batch

    def _poll_timeout(self) -> float:
        soonest = self._window.next_due()
        if self._waiting:
            waited = min(at for at, _ in self._waiting.values())
            soonest = waited if soonest is None else min(soonest, waited)
        if soonest is None:
            return IDLE_POLL
        return max(0.0, min(IDLE_POLL, soonest - self._clock()))

    def _mine_and_due(self, consumer: Consumer, msg: Any) -> bool:
        """True when the record is this service's and may be handled now; otherwise it is done with (another
        service's) or its partition waits for it."""
        due_at, group = hdr.due_and_group(msg.headers())
        if group is not None and group != self._group:
            self._foreign(msg, group)
            return False
        if self._orders:
            command = self._ordered(msg)
            if command is not None:
                if command.action == KILL:
                    self._kill(msg, command)
                    return False
                return True  # flushed: due now, and handled as any due record
        if due_at is None:  # not kretry's (produced there by hand): due its tier's delay after it was written
            due_at = msg.timestamp()[1] + math.ceil(self.spec.delay * 1000)
        now = self._clock()
        if not is_due(due_at, now):
            self._delay(consumer, msg, due_at / 1000.0)
            return False
        self.stats.lateness.observe(now - due_at / 1000.0)
        return True

    def _delay(self, consumer: Consumer, msg: Any, due: float) -> None:
        """Hold a record that is not due in the window; when its partition's window is full, the partition waits
        for it instead (paused, and fetched again from it when it is due or the window has room again)."""
        partition, offset = msg.partition(), msg.offset()
        if partition not in self._waiting and self._window.hold(partition, offset, due, record_cost(msg), msg):
            self._tracker(partition).hold(offset)
        else:
            self._wait(consumer, msg, due, full=True)

    def _tracker(self, partition: int) -> PartitionOffsets:
        tracker = self._offsets.get(partition)
        if tracker is None:  # a record of a partition we were never told about: track it all the same
            tracker = self._offsets[partition] = PartitionOffsets()
        return tracker

    def _settle(self, forwarder: Forwarder, msg: Any, outcome: BaseException | None) -> None:
        waits = self._waiting.get(msg.partition()) if self._waiting else None
        if waits is not None and msg.offset() >= waits[1]:
            return  # a record before it in its partition waits: nothing past that may be stored
        tracker = self._tracker(msg.partition())
        if outcome is None:
            tracker.done_now(msg.offset())
            self.stats.success += 1
            if self._flood is not None:
                self._flood.handled(time.monotonic())
        else:
            self._failed(forwarder, tracker, msg, outcome)
            release(outcome)

    def _foreign(self, msg: Any, group: str) -> None:
        """Another service that reads the same main topic shares its retry topics: its records are its own."""
        self._tracker(msg.partition()).done_now(msg.offset())
        self.stats.other_group += 1
        if group not in self._foreign_seen:
            self._foreign_seen.add(group)
            self._log.warning(
                "retry topic shared with another service: its records are left to it",
                other_group=group,
                partition=msg.partition(),
                offset=msg.offset(),
            )

    def _start_over(self, consumer: Consumer) -> None:
        """Our topic was deleted and created again: its offsets start at 0, wherever we were in the old one."""
        self.recreated.clear()
        partitions = sorted(self.assigned or ())
        self._waiting.clear()
        self._window.clear()
        for p in partitions:
            self._offsets[p] = PartitionOffsets()
            with contextlib.suppress(KafkaException):
                consumer.seek(TopicPartition(self.spec.topic, p, OFFSET_BEGINNING))
        self.stats.paused = 0
        self._log.warning("topic created again: reading it from its start", partitions=partitions)

    def _overdue(self) -> bool:
        return perf_counter() - self._polled_at > self._poll_budget

    def _guarded(self, consumer: Consumer) -> bool:
        """True while the DLQ flood guard keeps this main stage from taking records; notices the guard's resets."""
        flood = self._flood
        assert flood is not None
        if flood.generation != self._flood_generation:
            self._flood_generation = flood.generation
            # Records held on their way to the DLQ are due now; a main stage takes records again.
            self._waiting = {p: (0.0, offset) for p, (_, offset) in self._waiting.items()}
            self._window.release(self._clock())
            if self.spec.attempt == 0 and self.assigned:
                consumer.resume([TopicPartition(self.spec.topic, p) for p in self.assigned if p not in self._waiting])
        if flood.tripped is None or self.spec.attempt != 0:
            return False
        if self.assigned:
            consumer.pause([TopicPartition(self.spec.topic, p) for p in self.assigned])
        # Polling on keeps the group membership; whatever was fetched before the pause is fetched again once the
        # guard is reset.
        self._polled_at = perf_counter()
        self._rewind(consumer, consumer.consume(BATCH, IDLE_POLL))
        return True

    def _hold(self, msg: Any) -> None:
        """The DLQ flood guard tripped: the record waits where it is, its partition paused, until a reset. One with
        a place in the offsets already (out of the due-time window, or taken for an async batch) goes into the window
        instead: seeking back to it would fetch again the records behind it, some held, some done."""
        assert self.consumer is not None
        partition, offset = msg.partition(), msg.offset()
        if self._tracker(partition).holds(offset):
            self._window.hold(partition, offset, FOREVER, record_cost(msg), msg, force=True)
        else:
            self._wait(self.consumer, msg, FOREVER)
        self.stats.held += 1
        if self.stats.held == 1 or self.stats.held % 1000 == 0:
            self._log.error(
                "DLQ flood guard tripped: records bound for the DLQ are held",
                reason=self._flood.tripped if self._flood else None,
                held=self.stats.held,
                partition=msg.partition(),
                offset=msg.offset(),
            )

    def _rewind(self, consumer: Consumer, rest: list[Any]) -> None:
        """Seek each partition of ``rest`` back to its first record there, so none of them is passed over."""
        first: dict[int, int] = {}
        now = self._clock()
        for msg in rest:
            if msg.error() is not None:
                continue
            partition, offset = msg.partition(), msg.offset()
            tracker = self._offsets.get(partition)
            if tracker is not None and tracker.holds(offset):
                # Out of the window, not handled: back into it, due now; seeking to it would fetch again records
                # behind it that are held or done.
                self._window.hold(partition, offset, now, record_cost(msg), msg, force=True)
            elif partition not in self._waiting:
                first.setdefault(partition, offset)
        for partition, offset in first.items():
            # The partition may be revoked already; then its next owner starts from the last commit anyway.
            with contextlib.suppress(KafkaException):
                consumer.seek(TopicPartition(self.spec.topic, partition, offset))

    def _abandon(self, consumer: Consumer, rest: list[Any]) -> None:
        """Leave ``rest`` unhandled and unstored: each partition is fetched again from its first record of it."""
        self._rewind(consumer, rest)
        self.stats.abandoned += len(rest)
        self._log.warning(
            "handling outlasted max.poll.interval.ms: the rest of the batch is left to the partitions' owner",
            max_poll_interval_s=self._poll_budget,
            records=len(rest),
        )

    # -- delays ---------------------------------------------------------------------------------------------

    def bound_window(self, records: int, total_mb: float) -> None:
        """The due-time window's bounds (the worker's settings): records a partition, MiB the stage; before run()."""
        total = int(total_mb * 2**20)
        self._window = Window(records, min(MAX_WINDOW_BYTES, total), total)

    def _wait(self, consumer: Consumer, msg: Any, due: float, full: bool = False) -> None:
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        if full:
            self._full.add(msg.partition())
        else:
            self._full.discard(msg.partition())
        consumer.pause([tp])
        # Seeking back drops what was prefetched for this partition; the record is fetched again on resume,
        # so waiting costs no memory however long the backlog is.
        consumer.seek(tp)
        self._waiting[msg.partition()] = (due, msg.offset())
        self.stats.paused = len(self._waiting)

    def _resume_due(self, consumer: Consumer) -> None:
        now = self._clock()
        full, room = self._full, self._window.room
        # A partition waiting for want of room resumes once its window is half empty: records behind the one it
        # waits for may be due sooner than it.
        due = [p for p, (at, _) in self._waiting.items() if at <= now or (p in full and room(p))]
        if due:
            consumer.resume([TopicPartition(self.spec.topic, p) for p in due])
            for p in due:
                _, offset = self._waiting.pop(p)
                # Records of a waiting partition are skipped; whatever was fetched meanwhile, the partition
                # starts again at the record it waited for, so none is ever passed over.
                consumer.seek(TopicPartition(self.spec.topic, p, offset))
                # librdkafka's broker thread, idle with every partition paused, notices a resume only when it
                # next wakes (up to a second later); a request to the partition's leader wakes it now.
                # Measured: 0.7 s -> 12 ms from resume to record on a single idle partition.
                with contextlib.suppress(KafkaException):
                    consumer.get_watermark_offsets(TopicPartition(self.spec.topic, p), timeout=1.0)
            self.stats.paused = len(self._waiting)

    # -- operators' commands (kretry.control) ----------------------------------------------------------------

    def _obey(self, control: Orders) -> None:
        """New commands came: the held records they cover are due now, and every paused partition is fetched again
        from the record it waits for, which is asked again (records the flood guard holds stay held)."""
        self._control_seen = control.generation
        orders = control.for_topic(self.spec.topic)
        if self._dlq is None:  # nowhere to kill to: those records wait as usual
            orders = tuple(c for c in orders if c.action != KILL)
        if orders == self._orders:
            return
        self._orders = orders
        expedited = self._window.expedite(lambda msg: self._ordered(msg) is not None, self._clock())
        resumed = [p for p, (at, _) in self._waiting.items() if at != FOREVER]
        for p in resumed:
            self._waiting[p] = (0.0, self._waiting[p][1])
        self._log.info("tier commands", commands=len(orders), held_due_now=expedited, partitions_resumed=resumed)

    def _ordered(self, msg: Any) -> Command | None:
        """The command that covers ``msg``, if any."""
        _, ours = hdr.split(msg.headers())
        error = ours.get(hdr.ERROR)
        return order(
            self._orders, msg.key(), None if error is None else error.decode("utf-8", "replace"), msg.timestamp()[1]
        )

    def _kill(self, msg: Any, command: Command) -> None:
        """To the DLQ now, as the operator said; the offset is stored once the DLQ copy is acknowledged."""
        assert self._dlq is not None
        assert self.forwarder is not None
        user, ours = hdr.split(msg.headers())
        partition, offset = msg.partition(), msg.offset()
        origin = hdr.origin_from(ours, hdr.Origin(self.base, partition, offset, msg.timestamp()[1]))
        attempt = stage_attempt(self.spec.attempt, self.spec.last_attempt, hdr.int_of(ours, hdr.ATTEMPT))
        previous = ours.get(hdr.ERROR)
        error = hdr.truncate(
            command.error_text(None if previous is None else previous.decode("utf-8", "replace")), hdr.ERROR_MAX_BYTES
        )
        error_class = ours.get(hdr.ERROR_CLASS)
        headers = hdr.build(
            user,
            origin=origin,
            attempt=attempt,  # the attempts made so far: none here
            error=error,
            group=self._group,
            due_at=None,
            replays=self._replays(ours),
            error_class=None if error_class is None else error_class.decode("utf-8", "replace"),
        )
        tracker = self._tracker(partition)
        tracker.begin(offset)
        self.stats.dead_lettered += 1
        out = Outgoing(self._dlq, msg.key(), msg.value(), headers, partition)
        self.forwarder.send(out, Acked(self, tracker, offset, msg, origin, attempt, error))

    def _replays(self, ours: dict[str, bytes]) -> int | None:
        """The kretry-replays count to carry into our DLQ: none set by another service's replay."""
        if hdr.REPLAYS not in ours:
            return None
        group = ours.get(hdr.GROUP)
        if group is None or hdr.read({hdr.GROUP: group}).group in (None, self._group):
            return hdr.int_of(ours, hdr.REPLAYS)
        return None

    # -- failures -------------------------------------------------------------------------------------------

    def _failed(self, forwarder: Forwarder, tracker: PartitionOffsets, msg: Any, exc: BaseException) -> None:
        # Every failed record comes here: only what its forward needs is read of its headers, the decision is the
        # one remembered for its exception's class where nothing else decides it, and log lines describe it only
        # when they will say something of it (logbook).
        user, ours = hdr.split(msg.headers())
        partition, offset = msg.partition(), msg.offset()
        here = hdr.Origin(self.base, partition, offset, msg.timestamp()[1])
        origin = hdr.origin_from(ours, here) if self.spec.attempt else here
        now = self._clock()
        attempt = self.spec.attempt
        if self._shared:
            attempt = stage_attempt(attempt, self.spec.last_attempt, hdr.int_of(ours, hdr.ATTEMPT))
        age = now - origin.timestamp / 1000.0 if self._policy.max_age is not None else None
        decision = self._verdicts.decide(attempt, exc, age)
        error = hdr.describe_error(exc)
        action = decision.action
        if action is Action.DROP:
            self._log.warning("record dropped", reason=decision.reason, **where_of(msg, attempt + 1, error))
            tracker.done_now(offset)
            self.stats.dropped += 1
            return
        if action is Action.STOP:
            self._log.error(
                "retries exhausted and on_exhausted='stop': stopping, offset left uncommitted",
                **where_of(msg, attempt + 1, error),
            )
            tracker.begin(offset)  # never finished: nothing at or past it is stored
            self.fatal = StageStopped(f"{self.spec.topic}[{partition}]@{offset}: {error}")
            return
        trace = None
        if action is Action.RETRY:
            target = self._topics[decision.tier]
            due_at: int | None = due_ms(now, decision.delay)
            self.stats.retried += 1
            # "attempt" as the forwarded record's kretry-attempt says it: the attempts made so far.
            self._logbook.retried(msg, target, due_at, attempt + 1, error)
        elif self._flood is not None and not self._flood.may_dead_letter(time.monotonic()):
            self._hold(msg)
            return
        else:
            assert self._dlq is not None  # the Retrier refuses dead_letter without a DLQ
            target, due_at = self._dlq, None
            if decision.reason != "exhausted":
                error = hdr.truncate(f"{error} [{decision.reason}]", hdr.ERROR_MAX_BYTES)
            self.stats.dead_lettered += 1
            trace = hdr.error_trace(exc)  # formatting a traceback is dear: on the way to the DLQ only
        replays = self._replays(ours)
        kind = type(exc)
        error_class = self._error_classes.get(kind)
        if error_class is None:
            error_class = self._error_classes[kind] = hdr.error_class(exc)
        out = Outgoing(
            target,
            msg.key(),
            msg.value(),
            hdr.build(
                user,
                origin=origin,
                attempt=attempt + 1,
                error=error,
                group=self._group,
                due_at=due_at,
                replays=replays,
                error_class=error_class,
                trace=trace,
            ),
            partition,
        )
        tracker.begin(offset)
        forwarder.send(out, Acked(self, tracker, offset, msg, origin, attempt + 1, error))

    def _record_attempt(self, msg: Any) -> int:
        """The attempt a record of this shared tier is at, as its kretry-attempt says."""
        return stage_attempt(self.spec.attempt, self.spec.last_attempt, hdr.attempt_of(msg.headers()))

    def _instead(self, out: Outgoing, err: KafkaError) -> Outgoing | None:
        return instead(out, err.str(), self._dlq)

    def _on_forward_error(self, out: Outgoing, err: KafkaError) -> None:
        self.stats.forward_failed += 1
        if err.code() in MISSING:
            self.missing[out.topic] = time.monotonic()
        self._logbook.forward_refused(out.topic, err, missing=out.topic in self.missing)

    # -- Kafka events ---------------------------------------------------------------------------------------

    def _on_kafka_error(self, err: KafkaError) -> None:
        self._m_errors.labels(self.base, self.label, err.name()).inc()
        if err.fatal():
            self._log.error("fatal Kafka error", code=err.name(), error=err.str())
            stop = txn.translate(err, self.transactional_id) if self.transactional_id else None
            self.fatal = stop if isinstance(stop, TransactionFenced) else KafkaException(err)
        else:
            # Transient (a broker restarting, a connection dropped): librdkafka reconnects on its own.
            self._log.warning("Kafka error", code=err.name(), error=err.str())

    def _on_consume_error(self, err: KafkaError, msg: Any) -> None:
        self._m_errors.labels(self.base, self.label, err.name()).inc()
        where = {"partition": msg.partition(), "offset": msg.offset()}
        if err.fatal():
            self.fatal = KafkaException(err)
            self._log.error("fatal consume error", code=err.name(), error=err.str(), **where)
        elif err.code() != KafkaError._PARTITION_EOF:
            self._log.warning("consume error", code=err.name(), error=err.str(), **where)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._offsets[tp.partition] = PartitionOffsets()
            self._txn_committed.pop(tp.partition, None)
            self._waiting.pop(tp.partition, None)
            self._window.drop(tp.partition)
        self._fresh.extend(TopicPartition(tp.topic, tp.partition) for tp in partitions)
        self.assigned = (self.assigned or set()) | {tp.partition for tp in partitions}
        self.stats.paused = len(self._waiting)
        self._log.info("partitions assigned", partitions=sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Finish what is in flight so the next owner starts after it rather than handling it again.
        if self.txn is not None and self.forwarder is not None:
            self._commit_txn(consumer, self.forwarder, self.txn)
        elif self.forwarder is not None:
            self.forwarder.flush(REVOKE_FLUSH)
            self._store(consumer)
            self._commit(consumer)
        self._forget(partitions)
        self._log.info("partitions revoked", partitions=sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.txn is not None and self.forwarder is not None and self.txn.open:
            # Its offsets would be refused (the group moved on): what it holds of the other partitions is redone.
            self.txn.abort("partitions lost")
            self._forget(partitions)
            self._rehandle(consumer, self.forwarder, "partitions lost")
            return
        self._forget(partitions)
        self._log.warning("partitions lost", partitions=sorted(tp.partition for tp in partitions))

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._offsets.pop(tp.partition, None)
            self._waiting.pop(tp.partition, None)
            self._window.drop(tp.partition)  # fetched again by the next owner, from the committed offset
        self.assigned = (self.assigned or set()) - {tp.partition for tp in partitions}
        self.stats.paused = len(self._waiting)

    # -- offsets --------------------------------------------------------------------------------------------

    def _store(self, consumer: Consumer) -> None:
        ready = []
        for partition, tracker in self._offsets.items():
            if tracker.dirty and tracker.next is not None:
                ready.append(TopicPartition(self.spec.topic, partition, tracker.next))
                tracker.dirty = False
        if ready:
            try:
                consumer.store_offsets(offsets=ready)
            except KafkaException as exc:
                # A partition revoked between poll and store: its next owner starts from the last commit.
                self._log.warning("storing offsets failed", error=str(exc))

    def _commit(self, consumer: Consumer) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                self._log.warning("commit failed", error=str(exc))

    def _shutdown(self, consumer: Consumer, forwarder: Forwarder) -> None:
        if self.txn is not None:
            self._shutdown_txn(consumer, forwarder, self.txn)
            return
        left = forwarder.flush(5.0)
        if left:
            self._log.warning("records still unacknowledged at shutdown; they will be handled again", count=left)
        self._store(consumer)
        self._commit(consumer)
        consumer.close()
        self._dispatch.close()
        self._log.info("stage stopped")

    # -- exactly once (kretry.stage.txn) --------------------------------------------------------------------

    def _commit_txn(self, consumer: Consumer, forwarder: Forwarder, txns: txn.Transactions) -> None:
        """Commit the turn's forwards with the offsets they settle, or abort and handle the records again."""
        if not txns.open and not any(t.dirty for t in self._offsets.values()):
            return
        reason = None
        left = forwarder.flush(txn.FLUSH_TIMEOUT) if txns.open else 0
        if forwarder.broken is not None:
            reason = f"a forward failed: {forwarder.broken.str()}"
        elif left:
            reason = f"{left} forwards unacknowledged after {txn.FLUSH_TIMEOUT:.0f}s"
        if reason is None:
            offsets = txn.ready_offsets(self.spec.topic, self._offsets)
            try:
                txns.commit(offsets, consumer.consumer_group_metadata())
            except txn.Aborted as exc:
                reason = f"commit refused: {exc}"
            else:
                for tp in offsets:
                    self._offsets[tp.partition].dirty = False
                    self._txn_committed[tp.partition] = tp.offset
                return
        else:
            txns.abort(reason)
        self._rehandle(consumer, forwarder, reason)

    def _rehandle(self, consumer: Consumer, forwarder: Forwarder, reason: str) -> None:
        """The transaction was aborted: every partition starts again at its last committed offset."""
        forwarder.discard()
        partitions = sorted(self.assigned or ())
        earliest = str(self._consumer_conf.get("auto.offset.reset", "earliest")) in (
            "earliest",
            "smallest",
            "beginning",
        )
        where = txn.rewind(consumer, self.spec.topic, partitions, self._txn_committed, earliest)
        self._window.clear()
        for p in partitions:
            self._offsets[p] = PartitionOffsets()
            self._waiting.pop(p, None)
        if partitions:
            with contextlib.suppress(KafkaException):
                consumer.resume([TopicPartition(self.spec.topic, p) for p in partitions])
        self.stats.paused = len(self._waiting)
        self._log.warning("transaction aborted: its records are handled again", reason=reason, rewound_to=where)

    def _shutdown_txn(self, consumer: Consumer, forwarder: Forwarder, txns: txn.Transactions) -> None:
        try:
            if self.fatal is None:
                self._commit_txn(consumer, forwarder, txns)
            elif txns.open and not isinstance(self.fatal, (TransactionFenced, KafkaFatalError)):
                txns.abort("stage stopping")
        except (TransactionFenced, KafkaFatalError, KafkaException) as exc:
            self._log.warning("open transaction left to the broker to abort", error=str(exc))
        consumer.close()
        self._dispatch.close()
        self._log.info("stage stopped", transactions=txns.committed, aborted=txns.aborted)

    def problems(self) -> list[str]:
        """What keeps this stage from moving records (a topic gone, a guard tripped); empty when nothing does."""
        return [
            f"{self.spec.topic}: forwards to {topic} are held: it does not exist or lacks partitions"
            for topic in self.missing_topics()
        ]

    def missing_topics(self) -> list[str]:
        """Topics a forward found missing within the last MISSING_FOR seconds."""
        now = time.monotonic()
        return sorted(t for t, at in list(self.missing.items()) if now - at < MISSING_FOR)

    def set_lag(self, lag: int) -> None:
        self._m_lag.set(lag)
