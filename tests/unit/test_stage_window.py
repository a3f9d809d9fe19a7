"""A retry stage's due-time window, driven step by step: records handled at their own due time, the stored offset
never past a held record, a full window falling back to pause-and-seek, a rebalance dropping a partition's window."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from kretry import Retrier, RetryLater
from kretry import headers as hdr
from kretry.forward import Outgoing
from kretry.guard import DlqGuard, Flood
from tests.unit.stages import offline_stage
from tests.unit.test_stage_waiting import TOPIC, Clock, Consumer, Forwarder, Record, make_stage, step


def ms(at: float) -> int:
    return round(at * 1000)


def stores(consumer: Consumer) -> list[int]:
    return [offset for name, tps in consumer.calls if name == "store" for _, offset in tps]


def assigned(window: int) -> tuple[Any, Consumer, Clock, list[int]]:
    handled: list[int] = []
    stage, consumer, clock = make_stage(handled, window=window)
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    return stage, consumer, clock, handled


def test_a_shorter_due_time_is_not_kept_waiting_behind_a_longer_one() -> None:
    stage, consumer, clock, handled = assigned(window=1000)
    now = clock.now
    consumer.batches = [[Record(0, 6, ms(now - 1)), Record(0, 7, ms(now + 1)), Record(0, 8, ms(now + 0.3))]]
    step(stage, consumer)
    assert handled == [6]
    assert not [c for c in consumer.calls if c[0] in ("pause", "seek")]  # nothing waits: both are held
    assert stores(consumer) == [7]

    clock.now = now + 0.3
    step(stage, consumer)
    assert handled == [6, 8]  # at its own due time, with 7 still ahead of it in the partition
    assert stores(consumer) == [7]  # 7 is not done: nothing past it is stored, so a crash now loses nothing

    clock.now = now + 1
    step(stage, consumer)
    assert handled == [6, 8, 7]
    assert stores(consumer) == [7, 9]
    assert stage.stats.success == 3


def test_a_full_window_falls_back_to_waiting_at_the_first_record_that_did_not_fit() -> None:
    stage, consumer, clock, handled = assigned(window=1)
    now = clock.now
    consumer.batches = [[Record(0, 7, ms(now + 1)), Record(0, 8, ms(now + 0.3)), Record(0, 9, ms(now + 0.3))]]
    step(stage, consumer)
    # 7 is held; 8 did not fit: the partition (resumed as it was assigned) waits for it
    assert consumer.calls == [("resume", [(0, -1001)]), ("pause", [(0, 8)]), ("seek", [(0, 8)])]
    consumer.calls.clear()

    clock.now = now + 0.3  # 8 is due: the partition resumes at it, and 9 comes after it; 7 stays held
    consumer.batches = [[Record(0, 8, ms(now + 0.3)), Record(0, 9, ms(now + 0.3))]]
    step(stage, consumer)
    assert consumer.calls[:2] == [("resume", [(0, -1001)]), ("seek", [(0, 8)])]
    assert handled == [8, 9]
    assert stores(consumer) == []

    clock.now = now + 1
    step(stage, consumer)
    assert handled == [8, 9, 7]
    assert stores(consumer) == [10]


def test_a_revoked_partition_drops_its_window_and_its_next_owner_starts_at_the_held_record() -> None:
    stage, consumer, clock, handled = assigned(window=1000)
    now = clock.now
    consumer.batches = [[Record(0, 5, ms(now - 1)), Record(0, 6, ms(now + 1)), Record(0, 7, ms(now + 0.3))]]
    step(stage, consumer)
    assert stores(consumer) == [6]
    stage._on_revoke(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    assert stage._window.count() == 0
    clock.now = now + 2
    step(stage, consumer)
    assert handled == [5]  # the held records are the next owner's, fetched again from offset 6

    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    consumer.batches = [[Record(0, 6, ms(now + 1)), Record(0, 7, ms(now + 0.3))]]
    step(stage, consumer)
    assert handled == [5, 6, 7]
    assert stores(consumer) == [6, 8]


def test_a_held_record_that_fails_is_forwarded_and_its_offset_stored_once_acknowledged() -> None:
    sent: list[Outgoing] = []
    acks: list[Any] = []

    class Delivered:
        def topic(self) -> str:
            return "orders_retry_2"

    class Sending(Forwarder):
        def send(self, out: Outgoing, done: Any) -> None:
            sent.append(out)
            acks.append(done)

    retrier = Retrier("svc")

    @retrier.handler("orders", delays=["1s", "2s"])
    def handle(msg: Any) -> None:
        raise RuntimeError("still down")

    clock = Clock()
    stage = offline_stage(retrier.stages()[1], clock)
    consumer = Consumer()
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    forwarder = Sending()
    consumer.batches = [[Record(0, 3, ms(clock.now + 1)), Record(0, 4, ms(clock.now + 0.5))]]
    stage._step(consumer, forwarder)  # type: ignore[arg-type]
    clock.now += 0.5
    stage._step(consumer, forwarder)  # type: ignore[arg-type]
    assert [out.topic for out in sent] == ["orders_retry_2"]  # 4, due first; 3 still held
    acks[0](Delivered())
    stage._step(consumer, forwarder)  # type: ignore[arg-type]
    assert stores(consumer) == []  # 3 is still held
    clock.now += 0.5
    stage._step(consumer, forwarder)  # type: ignore[arg-type]
    acks[1](Delivered())
    stage._step(consumer, forwarder)  # type: ignore[arg-type]
    assert stores(consumer) == [5]


def test_a_retried_record_is_never_due_before_its_delay_is_over() -> None:
    sent: list[Outgoing] = []

    class Sending(Forwarder):
        def send(self, out: Outgoing, done: Any) -> None:
            sent.append(out)

    retrier = Retrier("svc")

    @retrier.handler("orders", delays=["1s"])
    def handle(msg: Any) -> None:
        raise RetryLater(after=0.3)

    clock = Clock()
    clock.now = 1000.0004
    stage = offline_stage(retrier.stages()[0], clock)
    consumer = Consumer()
    stage._on_assign(consumer, [TopicPartition("orders", 0)])  # type: ignore[arg-type]
    consumer.batches = [[Record(0, 0, 0)]]
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    (out,) = sent
    due = int(dict(out.headers)[hdr.DUE_AT])
    assert due == 1000301  # 1000300.4 ms, rounded up: truncated it was due 0.4 ms early


def test_a_held_record_the_flood_guard_holds_stays_in_the_window_until_the_reset() -> None:
    sent: list[Outgoing] = []

    class Sending(Forwarder):
        def send(self, out: Outgoing, done: Any) -> None:
            sent.append(out)

    retrier = Retrier("svc", dlq_topic="dlq")
    down = [True]
    handled: list[int] = []

    @retrier.handler("orders", delays=["1s"])
    def handle(msg: Any) -> None:
        if down[0]:
            raise RuntimeError("bad deploy")
        handled.append(msg.offset)

    clock = Clock()
    flood = Flood(DlqGuard(max_share=None, max_consecutive=1))
    flood.may_dead_letter(0.0)
    flood.may_dead_letter(0.0)  # tripped
    stage = offline_stage(retrier.stages()[1], clock, flood)
    consumer = Consumer()
    stage.consumer = consumer  # type: ignore[assignment]
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    now = clock.now
    consumer.batches = [[Record(0, 3, ms(now + 1)), Record(0, 4, ms(now + 0.5)), Record(0, 5, ms(now - 1))]]
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    assert stores(consumer) == []  # 5 failed too, and waits where it is, its partition paused
    assert ("pause", [(0, 5)]) in consumer.calls
    consumer.calls.clear()

    clock.now = now + 1  # both held records come due, fail, and are held again: not sought back to, not sent
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    assert sent == []
    assert not [c for c in consumer.calls if c[0] in ("seek", "store")]
    assert stage._window.count(0) == 2
    assert stage.stats.held == 3

    down[0] = False
    flood.reset()  # every held record is due now: 3 and 4 out of the window, 5 once its partition resumes
    consumer.batches = [[], [], [Record(0, 5, ms(now - 1))]]  # a step polls twice when nothing came
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    assert handled == [3, 4]
    assert stores(consumer) == [5]  # up to 5, which is not done yet
    stage._step(consumer, Sending())  # type: ignore[arg-type]
    assert handled == [3, 4, 5]
    assert stores(consumer) == [5, 6]


def test_a_partition_waiting_for_room_resumes_once_its_window_is_half_empty() -> None:
    stage, consumer, clock, handled = assigned(window=2)
    now = clock.now
    late, soon, mid, first = ms(now + 1), ms(now + 0.2), ms(now + 0.5), ms(now + 0.3)
    consumer.batches = [[Record(0, 7, late), Record(0, 8, soon), Record(0, 9, mid), Record(0, 10, first)]]
    step(stage, consumer)
    assert consumer.calls[1:] == [("pause", [(0, 9)]), ("seek", [(0, 9)])]  # 7 and 8 held, no room for 9
    consumer.calls.clear()

    clock.now = now + 0.2  # 8 out: room again, 0.3 s before 9 is due
    consumer.batches = [[], [], [Record(0, 9, mid), Record(0, 10, first)]]
    step(stage, consumer)
    assert handled == [8]
    step(stage, consumer)
    assert consumer.calls[:2] == [("resume", [(0, -1001)]), ("seek", [(0, 9)])]
    assert stage._window.count(0) == 2  # 7 and 9; 10 did not fit: waits again
    clock.now = now + 0.3
    step(stage, consumer)
    assert handled == [8]  # 10 waits behind the full window at most until its own due time
    consumer.batches = [[Record(0, 10, first)]]
    step(stage, consumer)
    assert handled == [8, 10]
    clock.now = now + 1
    step(stage, consumer)
    assert handled == [8, 10, 9, 7]
    assert stores(consumer)[-1] == 11


def test_the_worker_bounds_a_stages_window_from_its_settings() -> None:
    stage, consumer, clock, handled = assigned(window=1000)
    stage.bound_window(2, 4.0)
    assert (stage._window.max_records, stage._window.max_bytes, stage._window.max_total_bytes) == (2, 4 << 20, 4 << 20)
    stage.bound_window(0, 64.0)  # off: every record not due waits at the head of its partition, as it did
    consumer.batches = [[Record(0, 7, ms(clock.now + 1)), Record(0, 8, ms(clock.now + 0.3))]]
    step(stage, consumer)
    assert consumer.calls[1:] == [("pause", [(0, 7)]), ("seek", [(0, 7)])]
    clock.now += 0.3
    step(stage, consumer)
    assert handled == []  # 8 waits behind 7


def test_an_aborted_transaction_drops_the_window_with_everything_else_since_the_last_commit() -> None:
    class Rewinding(Consumer):
        def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
            return [TopicPartition(tp.topic, tp.partition, 6) for tp in tps]

    class Discarding(Forwarder):
        def discard(self) -> None:
            pass

    handled: list[int] = []
    stage, _, clock = make_stage(handled, window=1000)
    consumer = Rewinding()
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    now = clock.now
    consumer.batches = [[Record(0, 6, ms(now + 1)), Record(0, 7, ms(now + 0.3))]]
    step(stage, consumer)
    assert stage._window.count() == 2
    stage._rehandle(consumer, Discarding(), "commit refused")  # type: ignore[arg-type]
    assert stage._window.count() == 0
    assert ("seek", [(0, 6)]) in consumer.calls  # both fetched again from the committed offset
    consumer.batches = [[Record(0, 6, ms(now + 1)), Record(0, 7, ms(now + 0.3))]]
    step(stage, consumer)
    clock.now = now + 1
    step(stage, consumer)
    assert handled == [7, 6]
    assert stores(consumer) == [8]


def test_an_async_handler_gets_held_records_at_their_due_time_too() -> None:
    retrier = Retrier("svc")
    handled: list[int] = []

    @retrier.handler("orders", delays=["1s"], concurrency=4)
    async def handle(msg: Any) -> None:
        handled.append(msg.offset)

    clock = Clock()
    stage = offline_stage(retrier.stages()[1], clock)
    consumer = Consumer()
    stage._on_assign(consumer, [TopicPartition(TOPIC, 0)])  # type: ignore[arg-type]
    now = clock.now
    consumer.batches = [[Record(0, 6, ms(now - 1)), Record(0, 7, ms(now + 1)), Record(0, 8, ms(now + 0.3))]]
    try:
        step(stage, consumer)
        clock.now = now + 0.3
        consumer.batches = [[Record(0, 9, ms(now - 1))]]
        step(stage, consumer)
        assert handled == [6, 8, 9]
        assert stores(consumer) == [7]
        clock.now = now + 1
        step(stage, consumer)
        assert handled == [6, 8, 9, 7]
        assert stores(consumer) == [7, 10]
    finally:
        stage._dispatch.close()
