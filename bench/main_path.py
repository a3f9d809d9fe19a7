"""Benchmark 1: the main path, no-op handler, kretry against a bare loop, runs interleaved."""

from __future__ import annotations

from typing import Any

from bench import bare
from bench.common import Clock, create_topics, delete_topics, handled_rate, median, produce, unique
from kretry import Message, Retrier

RECORDS = 200_000
RUNS = 5


def bare_rate(topic: str, count: int) -> float:
    clock = Clock()

    def process(_msg: Any) -> None:
        clock.tick()

    first, last = bare.consume_loop(topic, unique("bare"), count, process)
    return count / (last - first)


def kretry_rate(topic: str, count: int) -> float:
    clock = Clock()
    retrier = Retrier(group_id=unique("kretry"), dlq_topic=None)

    @retrier.handler(topic, on_exhausted="drop")
    def handle(_msg: Message) -> None:
        clock.tick()

    return handled_rate(retrier, clock, count)


def run(records: int = RECORDS, runs: int = RUNS) -> dict[str, Any]:
    topic = unique("main")
    create_topics([topic])
    produce(topic, records)
    bare_rates: list[float] = []
    kretry_rates: list[float] = []
    try:
        for _ in range(runs):  # interleaved, each run with a fresh group
            bare_rates.append(bare_rate(topic, records))
            kretry_rates.append(kretry_rate(topic, records))
    finally:
        delete_topics([topic])
    bare_median, kretry_median = median(bare_rates), median(kretry_rates)
    return {
        "main_path_ratio": kretry_median / bare_median,
        "main_path_records": records,
        "main_path_runs": runs,
        "main_path_bare_rps": bare_median,
        "main_path_kretry_rps": kretry_median,
        "main_path_bare_rps_all": bare_rates,
        "main_path_kretry_rps_all": kretry_rates,
    }
