"""The foundation: the session's broker is a real Kafka that keeps records, headers and group offsets."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaException, Producer

from tests.conftest import Broker
from tests.integration.kit import committed, produce, read_all, unique


def test_records_keep_key_value_and_headers(bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("roundtrip")
    headers = [("trace", b"abc"), ("trace", b"dup-name"), ("bin", b"\x00\xff")]
    produce(bootstrap, topic, [(b"k1", b"v1", headers), (None, None, None)])

    first, second = read_all(bootstrap, topic, expected=2)

    assert (first.key(), first.value(), first.headers()) == (b"k1", b"v1", headers)
    assert (second.key(), second.value(), second.headers()) == (None, None, None)


def test_group_commit_survives_reopening_the_group(bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("commit", partitions=2)
    produce(bootstrap, topic, [(None, f"p0-{i}".encode(), None) for i in range(5)], partition=0)
    produce(bootstrap, topic, [(None, f"p1-{i}".encode(), None) for i in range(3)], partition=1)
    group = unique("group")
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }

    consumer = Consumer(conf)
    consumer.subscribe([topic])
    seen: list[tuple[int, int]] = []
    # Store offsets only for the first three records of partition 0 and all of partition 1.
    while len(seen) < 8:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        assert msg.error() is None
        seen.append((msg.partition(), msg.offset()))
        if msg.partition() == 1 or msg.offset() < 3:
            consumer.store_offsets(msg)
    consumer.commit(asynchronous=False)
    consumer.close()

    assert committed(bootstrap, group, topic, partitions=2) == [3, 3]

    reopened = Consumer(conf)
    reopened.subscribe([topic])
    try:
        msg = None
        while msg is None:
            msg = reopened.poll(1.0)
        assert (msg.partition(), msg.offset(), msg.value()) == (0, 3, b"p0-3")
    finally:
        reopened.close()


def test_kcat_reads_key_and_headers(bootstrap: str, new_topic: Callable[..., str]) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed (Debian package 'kcat'); .ci/run installs it")
    topic = new_topic("kcat")
    produce(bootstrap, topic, [(b"order-7", b'{"total": 3}', [("source", b"web"), ("kind", b"order")])])

    out = subprocess.run(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", "1", "-e", "-f", "%k|%s|%h\n"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout

    assert out.strip() == 'order-7|{"total": 3}|source=web,kind=order'


def test_sasl_settings_reach_librdkafka(kafka: Broker, new_topic: Callable[..., str]) -> None:
    if kafka.sasl_bootstrap is None:
        pytest.skip(f"the {kafka.kind} broker has no SASL listener; only the local JVM broker does")
    topic = new_topic("sasl")
    conf = {
        "bootstrap.servers": kafka.sasl_bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "kretry",
    }

    good = Producer({**conf, "sasl.password": "kretry-secret"})
    good.produce(topic, b"authenticated")
    assert good.flush(20) == 0

    bad = Consumer({**conf, "sasl.password": "wrong", "group.id": unique("g")})
    try:
        with pytest.raises(KafkaException):
            bad.list_topics(timeout=5)
    finally:
        bad.close()
