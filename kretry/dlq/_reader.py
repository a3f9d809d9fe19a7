"""Read access to one DLQ: its partitions, its records, its replay cursor. Commits nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from kretry import config
from kretry import headers as hdr
from kretry.config import Settings
from kretry.dlq._records import DeadRecord, Position, origin_where, replay_group
from kretry.errors import BrokerUnavailable, ConfigError, TopologyError

SCAN_TIMEOUT = 30.0  # seconds to read one partition range before giving up


class Reader:
    """One DLQ as the cluster holds it right now."""

    def __init__(self, settings: Settings) -> None:
        if settings.dlq_topic is None:
            raise ConfigError("no DLQ configured: set KRETRY_DLQ_TOPIC or give an APP whose Retrier has one")
        self.settings = settings
        self.topic: str = settings.dlq_topic
        self.admin = AdminClient(config.admin_conf(settings))
        try:
            meta = self.admin.list_topics(timeout=10)
        except KafkaException as exc:
            raise BrokerUnavailable(f"no answer from {settings.bootstrap_servers}: {exc}") from None
        if self.topic not in meta.topics or meta.topics[self.topic].error is not None:
            raise TopologyError(f"DLQ topic {self.topic!r} does not exist on {settings.bootstrap_servers}")
        self.partitions = sorted(meta.topics[self.topic].partitions)
        self.widths = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
        self.consumer = self.group_consumer(f"kretry-reader-{uuid.uuid4().hex[:8]}")

    def group_consumer(self, group: str) -> Consumer:
        """A consumer that never commits by itself and sees only committed transactions: the ledger, the cursor
        and origin topics are written in transactions, and an aborted replay must look like none at all."""
        conf = config.consumer_conf(self.settings, group, main=False)
        # A read ends at the end of its range; the fetch that follows it would otherwise wait its full long poll on
        # the broker, and every request behind it on the connection (the next watermarks, the next range) with it.
        conf["fetch.wait.max.ms"] = 1
        return Consumer(
            {**conf, "enable.auto.commit": False, "isolation.level": "read_committed", "enable.partition.eof": True}
        )

    def close(self) -> None:
        self.consumer.close()

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)

    def scan(self, topic: str, partition: int, start: int, end: int) -> Iterator[Any]:
        """The raw records of ``topic[partition]`` from ``start`` up to (not including) ``end``."""
        if start >= end:
            return
        self.consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + SCAN_TIMEOUT
        following = start  # the offset expected next
        try:
            while time.monotonic() < deadline:
                # No more than the range still holds: a batch of 500 would wait out its timeout on a short range.
                for msg in self.consumer.consume(max(1, min(500, end - following)), 0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            return
                        raise KafkaException(err)
                    offset = msg.offset()
                    if offset is None or offset >= end:
                        return
                    yield msg
                    following = offset + 1
                    if offset >= end - 1:
                        return
                    deadline = time.monotonic() + SCAN_TIMEOUT
            raise BrokerUnavailable(f"reading {topic}[{partition}] from {start}: nothing for {SCAN_TIMEOUT:.0f}s")
        finally:
            self.consumer.unassign()

    def records(self, partition: int, start: int, end: int) -> Iterator[DeadRecord]:
        for msg in self.scan(self.topic, partition, start, end):
            user, ours = hdr.split(msg.headers())
            stub = ours.get(hdr.STUB)
            yield DeadRecord(
                msg.partition(),
                msg.offset(),
                msg.timestamp()[1],
                msg.key(),
                msg.value(),
                user,
                hdr.read(ours),
                None if stub is None else stub.decode("utf-8", errors="replace"),
            )

    def all_records(self) -> Iterator[DeadRecord]:
        for partition in self.partitions:
            low, high = self.watermarks(self.topic, partition)
            yield from self.records(partition, low, high)

    def record_at(self, position: Position) -> DeadRecord | None:
        partition, offset = position
        if partition not in self.partitions:
            return None
        low, high = self.watermarks(self.topic, partition)
        if not low <= offset < high:
            return None
        found = next(self.records(partition, offset, offset + 1), None)
        return found if found is not None and found.offset == offset else None

    def original(self, stub: DeadRecord) -> DeadRecord | str:
        """The record ``stub`` stands for, as it is at its origin (its key, value and producer's headers), or why it
        cannot be had."""
        topic, partition, offset = stub.origin_topic, stub.state.origin_partition, stub.state.origin_offset
        if topic is None or partition is None or offset is None:
            return "a stub without kretry-origin-topic/-partition/-offset: the original cannot be found"
        where = origin_where(stub)
        if partition >= self.widths.get(topic, 0):
            return f"the original {where} cannot be read: {topic} has no partition {partition}"
        low, high = self.watermarks(topic, partition)
        if offset < low:
            return (
                f"the original {where} is gone (the partition now starts at offset {low}); "
                "a stub has nothing of its own to put back"
            )
        found = next(self.scan(topic, partition, offset, offset + 1), None) if offset < high else None
        if found is None or found.offset() != offset:
            return f"the original {where} cannot be read: no record there (the partition ends at offset {high})"
        return replace(stub, key=found.key(), value=found.value(), headers=hdr.user_headers(found.headers()), stub=None)

    def cursor(self) -> dict[int, int]:
        """The replay cursor per partition, never below the start of what the DLQ still holds."""
        probe = self.group_consumer(replay_group(self.topic))  # read_committed: waits out a pending commit
        try:
            committed = probe.committed([TopicPartition(self.topic, p) for p in self.partitions], timeout=10)
        finally:
            probe.close()
        return {tp.partition: max(tp.offset, self.watermarks(self.topic, tp.partition)[0]) for tp in committed}
