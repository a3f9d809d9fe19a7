"""Bounded reads of what a consumer group has not finished on a topic: from the group's committed offsets (the
start without one) to the end, partition by partition. The gateway's page and the tiers' page read with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kretry.config import Settings, consumer_conf
from kretry.gateway.consume import take

TIMEOUT = 10.0
Range = tuple[TopicPartition, int, int]  # a partition, from, to


def reader_conf(settings: Settings, group: str) -> dict[str, Any]:
    """A reader that commits nothing and says where a partition ends."""
    conf = consumer_conf(settings, group, main=True)
    conf.update({"enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 1})
    return conf


def unfinished(reader: Consumer, conf: dict[str, Any], topic: str, group: str | None) -> list[Range]:
    """(partition, from, to) of what ``group`` has not finished on ``topic``; all of it for no group."""
    meta = reader.list_topics(topic, timeout=TIMEOUT).topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
    committed: dict[int, int] = {}
    if group is not None:
        probe = Consumer({**conf, "group.id": group})
        try:
            committed = {tp.partition: tp.offset for tp in probe.committed(parts, timeout=TIMEOUT) if tp.offset >= 0}
        finally:
            probe.close()
    out = []
    for tp in parts:
        low, high = reader.get_watermark_offsets(tp, timeout=TIMEOUT)
        start = max(low, committed.get(tp.partition, low))
        if high > start:
            out.append((tp, start, high))
    return out


def read(reader: Consumer, ranges: list[Range]) -> Iterator[Any]:
    """The records of each (partition, from, to), partition by partition."""
    for tp, start, end in ranges:
        if end <= start:
            continue
        reader.assign([TopicPartition(tp.topic, tp.partition, start)])
        position = start
        while position < end:
            batch = take(reader, 500, TIMEOUT)
            if not batch:
                break
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        position = end
                    continue
                if (msg.offset() or 0) >= end:
                    position = end
                    break
                position = (msg.offset() or 0) + 1
                yield msg
        reader.unassign()
