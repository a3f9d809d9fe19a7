"""A retry stage obeying operators' tier commands (kretry.control), driven step by step: a flushed record held in
the window is handled at once, a killed one goes to the DLQ and its offset is stored only once that copy is
acknowledged, a paused partition is fetched again, and a kill with nowhere to go changes nothing."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from kretry import headers as hdr
from kretry.control import FLUSH, KILL, Command, Orders
from kretry.dlq import Filter
from kretry.forward import Outgoing
from tests.unit.test_stage_waiting import TOPIC, Clock, Consumer, Forwarder, Record, make_stage

HOUR_MS = 3_600_000


def ms(at: float) -> int:
    return round(at * 1000)


def stores(consumer: Consumer) -> list[int]:
    return [offset for name, tps in consumer.calls if name == "store" for _, offset in tps]


class Sending(Forwarder):
    """A forwarder that keeps what is sent, with the callback its acknowledgement would call."""

    def __init__(self) -> None:
        self.sent: list[tuple[Outgoing, Any]] = []

    def send(self, out: Outgoing, done: Any) -> None:
        self.sent.append((out, done))


class Delivered:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def commanded(window: int) -> tuple[Any, Consumer, Clock, list[int], Orders, Sending]:
    handled: list[int] = []
    stage, consumer, clock = make_stage(handled, window=window)
    orders = Orders()
    stage._control = orders
    forwarder = Sending()
    stage.forwarder = forwarder
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])
    return stage, consumer, clock, handled, orders, forwarder


def step(stage: Any, consumer: Consumer, forwarder: Sending) -> None:
    stage._step(consumer, forwarder)


def test_a_flush_hands_out_the_held_records_it_covers_at_once() -> None:
    stage, consumer, clock, handled, orders, forwarder = commanded(window=1000)
    due = ms(clock.now) + HOUR_MS
    consumer.batches = [[Record(0, 7, due), Record(0, 8, due + 1)]]
    step(stage, consumer, forwarder)
    assert handled == []
    assert stage._window.count() == 2

    # Record.timestamp() is its due time: the command covers 7, produced before it, and not 8.
    orders.add(Command(FLUSH, TOPIC, due + 1))
    step(stage, consumer, forwarder)
    assert handled == [7]
    assert stores(consumer) == [8]  # 7 done, 8 still held: nothing past 8 is stored
    assert orders.generation == stage._control_seen


def test_a_kill_stores_the_offset_only_once_the_dlq_acknowledged_the_copy() -> None:
    stage, consumer, clock, handled, orders, forwarder = commanded(window=1000)
    due = ms(clock.now) + HOUR_MS
    consumer.batches = [[Record(0, 7, due)]]
    step(stage, consumer, forwarder)
    orders.add(Command(KILL, TOPIC, due + 1, Filter(), "bad batch", id="c1"))
    step(stage, consumer, forwarder)
    assert handled == []
    [(out, acked)] = forwarder.sent
    assert out.topic == "dlq"
    _, ours = hdr.split(out.headers)
    assert ours[hdr.ERROR] == b"killed by operator: bad batch (command c1)"
    assert hdr.DUE_AT not in ours
    assert stores(consumer) == []  # not acknowledged yet
    acked(Delivered("dlq"))
    step(stage, consumer, forwarder)
    assert stores(consumer) == [8]
    assert stage.stats.dead_lettered == 1


def test_a_paused_partition_is_fetched_again_and_its_head_asked_again() -> None:
    stage, consumer, clock, handled, orders, forwarder = commanded(window=0)
    due = ms(clock.now) + HOUR_MS
    consumer.batches = [[Record(0, 7, due), Record(0, 8, due)]]
    step(stage, consumer, forwarder)
    assert consumer.calls[-2:] == [("pause", [(0, 7)]), ("seek", [(0, 7)])]
    consumer.calls.clear()

    orders.add(Command(FLUSH, TOPIC, due + 1))
    consumer.batches = [[Record(0, 7, due), Record(0, 8, due)]]
    step(stage, consumer, forwarder)
    assert consumer.calls[:2] == [("resume", [(0, -1001)]), ("seek", [(0, 7)])]
    assert handled == [7, 8]
    assert stores(consumer) == [9]


def test_commands_for_another_tier_or_a_kill_without_a_dlq_change_nothing() -> None:
    stage, consumer, clock, handled, orders, forwarder = commanded(window=1000)
    stage._dlq = None
    due = ms(clock.now) + HOUR_MS
    consumer.batches = [[Record(0, 7, due)]]
    step(stage, consumer, forwarder)
    orders.add(Command(FLUSH, "other_retry_1", due + 1))
    orders.add(Command(KILL, TOPIC, due + 1))
    step(stage, consumer, forwarder)
    assert (handled, forwarder.sent, stage._window.count()) == ([], [], 1)
