"""Per-key order under concurrency: an async handler sees each key's records in offset order, different keys at once."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

from kretry import Message, Retrier
from tests.integration.kit import committed, produce, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]
KEYS = [f"cust{i}".encode() for i in range(8)]
VERSIONS = 10


def test_records_of_a_key_are_handled_in_offset_order_and_keys_overlap(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("keyorder", partitions=2)
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    seen: dict[bytes, list[int]] = {key: [] for key in KEYS}
    busy: set[bytes] = set()
    overlapped: list[bytes] = []  # keys that had two records in the handler at once
    in_flight = peak = 0
    lock = threading.Lock()

    @retrier.handler(topic, delays=["1s"], concurrency=10)
    async def handle(msg: Message) -> None:
        nonlocal in_flight, peak
        key = msg.key or b""
        with lock:
            if key in busy:
                overlapped.append(key)
            busy.add(key)
            seen[key].append(int(msg.value or b"-1"))
            in_flight += 1
            peak = max(peak, in_flight)
        await asyncio.sleep(random.uniform(0, 0.02))
        with lock:
            in_flight -= 1
            busy.discard(key)

    # Versions interleaved across keys, produced before the worker starts: one batch holds them all.
    records = [(key, str(v).encode(), None) for v in range(VERSIONS) for key in KEYS]
    produce(bootstrap, topic, records)
    with running(retrier):
        wait_until(
            lambda: sum(committed(bootstrap, retrier.group_id, topic, partitions=2)) == len(records),
            timeout=30,
            what="every record handled",
        )

    assert {key: versions for key, versions in seen.items()} == {key: list(range(VERSIONS)) for key in KEYS}
    assert overlapped == []
    assert peak > 1, "different keys should be handled at once"
