"""`kretry topics check` on a cluster where another service consumes the same main topic, and so the same retry
topics, under its own group id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from kretry.topology import stage_group
from tests.integration.kit import unique
from tests.integration.test_process import APP, app_env
from tests.integration.test_topics_cli import kretry

NewTopic = Callable[..., str]


def consumer_group(bootstrap: str, group: str, topic: str) -> None:
    """A real consumer group on ``topic``: one that has committed an offset there, as a retry stage does."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()


def test_check_notes_another_service_on_the_same_retry_topic(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    orders = new_topic("orders")
    env = app_env(bootstrap, [orders], tmp_path / "l", delays="1m")
    code, _, err = kretry(env, "topics", "create", APP)
    assert code == 0, err
    retry_1 = f"{orders}_retry_1"
    other = unique("svcB")
    consumer_group(bootstrap, stage_group(env["APP_GROUP"], retry_1, 1), retry_1)  # this service's own stage
    consumer_group(bootstrap, stage_group(other, retry_1, 1), retry_1)

    code, out, err = kretry(env, "topics", "check", APP)
    assert code == 0, err
    assert out.splitlines() == [
        f"note: {retry_1}: also consumed by group {other} ({other}.{retry_1}); each service handles only its own "
        "records, but they share the topic's retention and partitions",
        "ok: every retry topic, the DLQ and its ledger are as kretry needs them",
    ]
