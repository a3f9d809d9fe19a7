"""Benchmark 7: what per-key order costs an async handler: the same workload with ordering key, partition, none.

Each record's handler awaits a fixed latency (a stand-in for an HTTP call); `concurrency` records of a batch are in
flight at once, less when the ordering makes records wait for one another. Runs interleaved, a fresh group each.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.common import PARTITIONS, Clock, create_topics, delete_topics, handled_rate, median, produce, unique
from kretry import Message, Retrier
from kretry.retrier import Ordering

RECORDS = 6_000
KEYS = 16 * PARTITIONS  # a multiple of the partitions: record i, key i % KEYS, lands on partition key % PARTITIONS
LATENCY = 0.002  # seconds each handler call awaits
CONCURRENCY = 10
RUNS = 3
ORDERINGS: tuple[Ordering, ...] = ("key", "partition", "none")


def rate(topic: str, count: int, ordering: Ordering) -> float:
    clock = Clock()
    retrier = Retrier(group_id=unique(f"order-{ordering}"), dlq_topic=None)

    @retrier.handler(topic, on_exhausted="drop", concurrency=CONCURRENCY, ordering=ordering)
    async def handle(_msg: Message) -> None:
        await asyncio.sleep(LATENCY)
        clock.tick()

    return handled_rate(retrier, clock, count)


def run(records: int = RECORDS, runs: int = RUNS) -> dict[str, Any]:
    topic = unique("keyorder")
    create_topics([topic])
    # Every record of a key in one partition, as a keyed producer puts them.
    produce(topic, records, key=lambda i: b"key-%d" % (i % KEYS))
    rates: dict[Ordering, list[float]] = {o: [] for o in ORDERINGS}
    try:
        for _ in range(runs):
            for ordering in ORDERINGS:
                rates[ordering].append(rate(topic, records, ordering))
    finally:
        delete_topics([topic])
    medians = {o: median(r) for o, r in rates.items()}
    out: dict[str, Any] = {
        "key_order_ratio": medians["key"] / medians["none"],
        "key_order_partition_ratio": medians["partition"] / medians["none"],
        "key_order_records": records,
        "key_order_keys": KEYS,
    }
    for ordering in ORDERINGS:
        out[f"key_order_{ordering}_rps"] = medians[ordering]
        out[f"key_order_{ordering}_rps_all"] = rates[ordering]
    return out


if __name__ == "__main__":
    print(run())
