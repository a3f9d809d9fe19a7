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


def test_a_users_error_cb_hears_the_stages_errors_and_the_stage_goes_on(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("errcb")
    errors: list[str] = []

    def error_cb(err: object) -> None:
        errors.append(str(err))
        raise RuntimeError("a user's callback that fails must not stop the stage")

    # A second bootstrap address nobody listens on: every client reports it through error_cb.
    retrier = Retrier(
        group_id=unique("svc"),
        bootstrap_servers=f"{bootstrap},127.0.0.1:1",
        dlq_topic=unique("dlq"),
        kafka={"error_cb": error_cb},
    )
    handled: list[bytes | None] = []
    retrier.handler(topic, delays=["1s"])(lambda msg: handled.append(msg.value))

    with running(retrier) as worker:
        wait_until(lambda: any("127.0.0.1:1" in e for e in errors), what="the unreachable address in error_cb")
        produce(bootstrap, topic, [(None, b"v", None)])
        wait_until(lambda: handled == [b"v"] or worker.failure is not None, what="the record to be handled")
        assert worker.failure is None
        assert not worker.stopping.is_set()
