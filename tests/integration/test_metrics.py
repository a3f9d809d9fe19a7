"""What /metrics says on a real broker agrees with `kretry stats`: lag is 0 once everything is handled, however
many partitions stayed idle."""

from __future__ import annotations

import time
from collections.abc import Callable

from kretry import Message, Retrier, admin
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
