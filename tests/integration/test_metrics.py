"""What /metrics says on a real broker agrees with `kretry stats`: lag is 0 once everything is handled, however
many partitions stayed idle."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from kretry import Message, Retrier, admin, dlq
from kretry import worker as worker_module
from kretry.worker import LAG_EVERY
from tests.integration.kit import committed, produce, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def lag(worker: object, topic: str, stage: str) -> float:
    value = worker.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "kretry_consumer_lag", {"topic": topic, "stage": stage}
    )
    return -1.0 if value is None else value


def test_the_lag_gauge_is_zero_after_a_drain_and_agrees_with_kretry_stats(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("lag", partitions=3)
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Message) -> None:
        if msg.attempt == 0 and msg.value.startswith(b"fail"):
            raise RuntimeError("once")

    values = [f"{'fail' if i % 3 else 'ok'}-{i}".encode() for i in range(81)]
    with running(retrier):
        for p in range(3):
            produce(bootstrap, topic, [(None, v, None) for v in values[p::3]], partition=p)
        wait_until(lambda: committed(bootstrap, retrier.group_id, topic, 3) == [27, 27, 27], what="the main commits")
        retry_group = f"{retrier.group_id}.{topic}_retry_1"
        wait_until(lambda: sum(max(0, c) for c in committed(bootstrap, retry_group, f"{topic}_retry_1", 3)) == 54)

    # A restarted worker: every partition idle, their fetch positions unknown until a record comes.
    with running(retrier) as worker:
        time.sleep(LAG_EVERY + 1)  # a refresh after the assignment
        assert (lag(worker, topic, "main"), lag(worker, topic, "retry_1")) == (0, 0)
        stats = {s.stage: s.lag for s in admin.stats(retrier).stages}
    assert stats == {"main": 0, "retry_1": 0}


def test_the_dlq_gauge_counts_pending_records_as_the_ledger_says(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "DLQ_DEPTH_EVERY", 0.5)
    topic = new_topic("depth")
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    retrier.handler(topic, delays=[])(lambda msg: (_ for _ in ()).throw(RuntimeError("poison")))

    def gauge(worker: object, state: str) -> float | None:
        registry = worker.metrics.registry  # type: ignore[attr-defined]
        value: float | None = registry.get_sample_value("kretry_dlq_records", {"state": state})
        return value

    with running(retrier) as worker:
        produce(bootstrap, topic, [(f"k{i}".encode(), b"v", None) for i in range(3)])
        wait_until(lambda: gauge(worker, "total") == 3 and gauge(worker, "pending") == 3, what="3 pending")
        dlq.discard(retrier.settings, offsets=[(0, 0)])
        wait_until(lambda: gauge(worker, "pending") == 2, what="one fewer pending after a discard")
        assert gauge(worker, "total") == 3
