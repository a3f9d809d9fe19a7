"""The retry stage's pause/seek/resume bookkeeping, driven step by step with a recording stand-in for the consumer.

What librdkafka does with these calls is proven on the real broker (tests/integration); this pins down which calls
the stage makes, in which order, so a regression such as resuming a partition that waits is caught at once.
"""

from __future__ import annotations

from confluent_kafka import TopicPartition

from kretry import Retrier
from kretry import headers as hdr
from kretry.stage import Stage
from kretry.stage.window import Window
from tests.unit.stages import offline_stage

TOPIC = "orders_retry_1"


class Record:
    def __init__(self, partition: int, offset: int, due_ms: int) -> None:
        self._p, self._o, self._due = partition, offset, due_ms

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def topic(self) -> str:
        return TOPIC

    def headers(self) -> list[tuple[str, bytes]]:
        return [(hdr.DUE_AT, str(self._due).encode())]

    def timestamp(self) -> tuple[int, int]:
        return (1, self._due)

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return b"v"


class Consumer:
    """Records pause/resume/seek calls and hands out the batches it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []
        self.batches: list[list[Record]] = []
        # As librdkafka does, a poll may run the rebalance callback before it returns records.
        self.assign_in_next_poll: tuple[Stage, list[TopicPartition]] | None = None

    def _log(self, name: str, tps: list[TopicPartition]) -> None:
        self.calls.append((name, [(tp.partition, tp.offset) for tp in tps]))

    def pause(self, tps: list[TopicPartition]) -> None:
        self._log("pause", tps)

    def resume(self, tps: list[TopicPartition]) -> None:
        self._log("resume", tps)

    def seek(self, tp: TopicPartition) -> None:
        self._log("seek", [tp])

    def consume(self, n: int, timeout: float) -> list[Record]:
        if self.assign_in_next_poll is not None:
            stage, partitions = self.assign_in_next_poll
            self.assign_in_next_poll = None
            stage._on_assign(self, partitions)  # type: ignore[arg-type]
        return self.batches.pop(0) if self.batches else []

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return (0, 0)

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self._log("store", offsets)


class Forwarder:
    fatal = None

    def poll(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_stage(handled: list[int], window: int = 0) -> tuple[Stage, Consumer, Clock]:
    """A retry stage; ``window`` records a partition's due-time window holds (0: it waits the old way at once)."""
    retrier = Retrier("svc")
    retrier.handler("orders", delays=["1s"])(lambda msg: handled.append(msg.offset))
    clock = Clock()
    stage = offline_stage(retrier.stages()[1], clock)
    stage._window = Window(max_records=window)
    return stage, Consumer(), clock


def step(stage: Stage, consumer: Consumer) -> None:
    stage._step(consumer, Forwarder())  # type: ignore[arg-type]


def test_a_record_that_comes_with_its_assignment_keeps_its_partition_paused() -> None:
    handled: list[int] = []
    stage, consumer, clock = make_stage(handled)
    due = int((clock.now + 5) * 1000)
    consumer.assign_in_next_poll = (stage, [TopicPartition(TOPIC, 0)])
    consumer.batches = [[Record(0, 7, due), Record(0, 8, due + 1)], [Record(0, 8, due + 1)]]

    step(stage, consumer)  # assigned, and in the same poll record 7, not due: the partition waits for it
    assert consumer.calls == [("pause", [(0, 7)]), ("seek", [(0, 7)])]
    consumer.calls.clear()

    step(stage, consumer)  # the next step must not resume the waiting partition, and skips what it fetched
    assert ("resume", [(0, -1001)]) not in consumer.calls
    assert handled == []

    clock.now += 5.001  # due: resumed, and fetched again from the waiting record
    step(stage, consumer)
    assert consumer.calls[:2] == [("resume", [(0, -1001)]), ("seek", [(0, 7)])]


def test_a_fresh_partition_that_does_not_wait_is_resumed() -> None:
    stage, consumer, _ = make_stage([])
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])  # type: ignore[arg-type]
    step(stage, consumer)
    assert consumer.calls == [("resume", [(0, -1001), (1, -1001)])]


def test_due_records_are_handled_and_their_offsets_stored() -> None:
    handled: list[int] = []
    stage, consumer, clock = make_stage(handled)
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    past = int((clock.now - 1) * 1000)
    consumer.batches = [[Record(0, 3, past), Record(0, 4, past)]]
    step(stage, consumer)
    assert handled == [3, 4]
    assert ("store", [(0, 5)]) in consumer.calls
    assert stage.stats.success == 2
