"""A failed record leaves nothing for the garbage collector: its forward, its acknowledgement and its exception are
freed by reference counting (a reference cycle per failed record made collecting most of a retry stage's time)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from kretry import Retrier
from kretry.forward import Outgoing
from kretry.stage.failure import release
from tests.unit.stages import offline_stage
from tests.unit.test_stage_waiting import Clock, Consumer, Forwarder, Record


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Delivered:
    def topic(self) -> str:
        return "orders_retry_1"


def charge(amount: int) -> None:
    try:
        raise KeyError(amount)
    except KeyError as exc:
        raise RuntimeError("card declined") from exc


@pytest.mark.parametrize("stage_number", [0, 1])
@pytest.mark.usefixtures("no_collector")
def test_failed_records_leave_no_reference_cycle(stage_number: int) -> None:
    acks: list[Any] = []

    class Sending(Forwarder):
        def send(self, out: Outgoing, done: Any) -> None:
            acks.append(done)

    retrier = Retrier("svc")

    @retrier.handler("orders", delays=["1s", "2s"])
    def handle(msg: Any) -> None:
        charge(msg.offset)

    clock = Clock()
    stage = offline_stage(retrier.stages()[stage_number], clock)
    consumer = Consumer()
    topic = stage.spec.topic
    stage._on_assign(consumer, [TopicPartition(topic, 0)])  # type: ignore[arg-type]
    consumer.batches = [[Record(0, offset, 0) for offset in range(50)]]
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    for done in acks:
        done(Delivered())
    acks.clear()
    assert stage.stats.retried == 50
    assert gc.collect() == 0


def test_release_drops_the_tracebacks_of_the_exception_and_its_causes() -> None:
    try:
        charge(1)
    except RuntimeError as exc:
        failure = exc
    assert failure.__traceback__ is not None
    assert failure.__cause__ is not None
    release(failure)
    assert failure.__traceback__ is None
    assert failure.__cause__.__traceback__ is None
    assert str(failure) == "card declined"  # the failure itself is kept
