"""Reading with a consumer: a partition's offsets asked until the broker can answer (right after a topic is
created, or while its leader moves, the answer is an error for a moment, not for good), and a batch taken without
waiting when records are there."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=max(0.5, timeout))
            return int(low), int(high)
        except KafkaException as exc:
            if not exc.args[0].retriable() and "leader" not in exc.args[0].str().lower():
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def take(consumer: Consumer, most: int, timeout: float) -> list[Any]:
    """What is there, up to ``most`` records, waiting up to ``timeout`` only when nothing is: consume(n, t) waits
    for n records or t, whichever comes last, which would hold every answer for the whole timeout."""
    batch: list[Any] = consumer.consume(most, 0)
    if not batch:
        batch = consumer.consume(1, timeout)
        if batch:
            batch.extend(consumer.consume(most - 1, 0))
    return batch
