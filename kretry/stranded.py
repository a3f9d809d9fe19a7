"""Retry topics of an earlier schedule that no stage of this one reads: do they still hold records of ours?

Equal delays in a row now share one retry topic, so an upgraded schedule may have fewer tiers than the topics on
the cluster. A record of this service still waiting on such a topic would never be retried: a loss. Records of
another service (another kretry-group) are that service's, and a topic this service's old stage never committed on
was never this service's at all.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from kretry import headers as hdr

SCAN_TIMEOUT = 30.0


def waiting_of_ours(conf: dict[str, Any], old_group: str, group_id: str, topic: str, partitions: int) -> int:
    """How many records of ``group_id`` on ``topic`` come after what ``old_group`` (its old stage) committed.

    A partition on which ``old_group`` never committed counts nothing: the old stage never read it."""
    probe = Consumer({**conf, "group.id": old_group, "enable.auto.commit": False})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        probe.close()
    starts = [tp for tp in committed if tp.offset >= 0]
    if not starts:
        return 0
    reader = Consumer({**conf, "group.id": f"kretry-stranded-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        return sum(_ours(reader, tp, group_id) for tp in starts)
    finally:
        reader.close()


def _ours(reader: Consumer, start: TopicPartition, group_id: str) -> int:
    _, high = reader.get_watermark_offsets(start, timeout=10)
    if start.offset >= high:
        return 0
    reader.assign([start])
    found, deadline = 0, time.monotonic() + SCAN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            batch: list[Any] = reader.consume(500, 0.5)
            for msg in batch:
                if msg.error() is None and hdr.due_and_group(msg.headers())[1] in (None, group_id):
                    found += 1
                if msg.offset() >= high - 1:
                    return found
        raise TimeoutError(f"reading {start.topic}[{start.partition}] took over {SCAN_TIMEOUT:.0f}s")
    finally:
        reader.unassign()
