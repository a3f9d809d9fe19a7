"""confluent-kafka callbacks given in Retrier(kafka=...) reach the clients of a running worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from kretry import Message, Retrier
from tests.integration.kit import produce, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def test_a_running_worker_calls_the_stats_cb(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("stats")
    reports: list[dict[str, object]] = []
    lock = threading.Lock()

    def stats_cb(report: str) -> None:
        with lock:
            reports.append(json.loads(report))

    retrier = Retrier(
        group_id=unique("svc"),
        bootstrap_servers=bootstrap,
        dlq_topic=unique("dlq"),
        kafka={"stats_cb": stats_cb, "statistics.interval.ms": 100},
    )
    handled: list[bytes | None] = []

    @retrier.handler(topic, delays=["1s"])
    def handle(msg: Message) -> None:
        handled.append(msg.value)

    with running(retrier):
        produce(bootstrap, topic, [(None, b"v", None)])
        wait_until(lambda: handled == [b"v"], what="the record to be handled")
        with lock:
            count = len(reports)
        wait_until(lambda: len(reports) > count, what="statistics after the record")
    with lock:
        kinds = {r["type"] for r in reports}
    # The stage's consumers and its producer report alike: the callable reached each kind of client.
    assert {"consumer", "producer"} <= kinds, kinds
