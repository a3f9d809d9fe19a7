"""Small, honest Kafka helpers for the integration tests: unique topics, producing, reading back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

Headers = list[tuple[str, bytes]]


def unique(prefix: str = "t") -> str:
    """A topic or group name no other test (or earlier run on the same broker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    for future in futures.values():
        future.result(timeout=30)
    wait_for_leaders(admin, list(futures), partitions)


def wait_for_leaders(admin: AdminClient, names: Sequence[str], partitions: int, timeout: float = 30) -> None:
    """A created topic answers produce requests only once every partition has a leader."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10)
        ready = all(
            name in meta.topics
            and meta.topics[name].error is None
            and len(meta.topics[name].partitions) == partitions
            and all(p.leader >= 0 for p in meta.topics[name].partitions.values())
            for name in names
        )
        if ready:
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {names} have no leaders after {timeout}s")


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, Headers | None]],
    partition: int | None = None,
    **conf: Any,
) -> int:
    """Produce and wait for every acknowledgement; raise on any delivery error. ``conf``: producer settings."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **conf})
    errors: list[Any] = []

    def on_delivery(err: Any, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    count = 0
    for key, value, headers in records:
        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        producer.poll(0)
        count += 1
    remaining = producer.flush(30)
    if errors or remaining:
        raise KafkaException(f"delivery failed: {errors or remaining}")
    return count


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Message]:
    """Read `expected` records of a topic from the start, outside any group; fail if they do not come."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            records.append(msg)
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe")})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in parts]
    finally:
        consumer.close()


def wait_until(predicate: Any, timeout: float = 30, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def header(msg: Message, name: str) -> bytes | None:
    """The last value of a header, as a reader would take it."""
    values = [v for k, v in (msg.headers() or []) if k == name]
    return values[-1] if values else None


def read_to_end(bootstrap: str, topic: str, timeout: float = 30) -> list[Message]:
    """Every record a topic holds right now, whatever their number (duplicates included)."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    partitions = len(meta.topics[topic].partitions)
    ends = end_offsets(bootstrap, topic, partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < sum(ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} of {sum(ends)} records of {topic}")
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                records.append(msg)
        return records
    finally:
        consumer.close()


def complete_lines(path: Path) -> list[str]:
    """The newline-terminated lines of a file another process is appending to; a line still being written is left
    for the next read."""
    if not path.exists():
        return []
    return path.read_text(errors="replace").split("\n")[:-1]


def read_committed(bootstrap: str, topic: str, timeout: float = 30, committed_only: bool = True) -> list[Message]:
    """Every record of a topic a read_committed reader sees right now (``committed_only=False``: every record written,
    aborted or open transactions included). Transaction markers take offsets, so the end offsets are no count:
    each partition is read to its end of partition event instead."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    partitions = len(meta.topics[topic].partitions)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        records: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(set(range(partitions)) - at_end)} never reached EOF")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                records.append(msg)
                at_end.discard(msg.partition())
            elif err.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
        return records
    finally:
        consumer.close()
