"""Benchmark 2: always-failing records through two zero-delay retry tiers into the DLQ, against three bare hops."""

from __future__ import annotations

import itertools
from typing import Any

from bench import bare
from bench.common import (
    Clock,
    CommittedWatch,
    WatermarkWatch,
    create_topics,
    delete_topics,
    median,
    produce,
    running,
    unique,
)
from kretry import Message, Retrier
from kretry.topology import retry_topic

RECORDS = 50_000
RUNS = 3
TIMEOUT = 180.0


def _fail(_msg: Any) -> None:
    raise RuntimeError("always failing")


def _topics(prefix: str) -> list[str]:
    """main, retry 1, retry 2, DLQ: fresh for every run, the main topic filled."""
    main = unique(prefix)
    names = [main, retry_topic(main, 1), retry_topic(main, 2), unique(f"{prefix}-dlq")]
    create_topics(names)
    return names


def bare_rate(count: int) -> float:
    names = _topics("rbare")
    produce(names[0], count)
    clock = Clock()
    group = unique("rbare")
    hops = [
        bare.Hop(src, dst, f"{group}-{i}", _fail, clock if i == 0 else None)
        for i, (src, dst) in enumerate(itertools.pairwise(names))
    ]
    watch = WatermarkWatch(names[-1], count)
    for hop in hops:
        hop.start()
    try:
        end = watch.wait(TIMEOUT)
    finally:
        for hop in hops:
            hop.stopping.set()
        for hop in hops:
            hop.join(30)
        delete_topics(names)
    errors = [h.error for h in hops if h.error is not None]
    if errors:
        raise errors[0]
    assert clock.first is not None
    return count / (end - clock.first)


def kretry_rate(count: int, *, exactly_once: bool = False, committed: bool = False) -> float:
    """``committed``: the end is when a read_committed reader has every DLQ record (the watermarks overcount once
    transactions write their markers)."""
    names = _topics("rkretry")
    produce(names[0], count)
    clock = Clock()
    retrier = Retrier(group_id=unique("rkretry"), dlq_topic=names[-1], exactly_once=exactly_once)

    @retrier.handler(names[0], delays=["0s", "1ms"])  # two retry topics: equal delays would share one
    def handle(msg: Message) -> None:
        if msg.attempt == 0 and clock.first is None:
            clock.tick()
        raise RuntimeError("always failing")

    watch = (CommittedWatch if committed else WatermarkWatch)(names[-1], count)
    try:
        with running(retrier):
            end = watch.wait(TIMEOUT)
    finally:
        delete_topics(names)
    assert clock.first is not None
    return count / (end - clock.first)


def run(records: int = RECORDS, runs: int = RUNS) -> dict[str, Any]:
    bare_rates: list[float] = []
    kretry_rates: list[float] = []
    for _ in range(runs):
        bare_rates.append(bare_rate(records))
        kretry_rates.append(kretry_rate(records))
    bare_median, kretry_median = median(bare_rates), median(kretry_rates)
    return {
        "retry_path_ratio": kretry_median / bare_median,
        "retry_path_records": records,
        "retry_path_runs": runs,
        "retry_path_bare_rps": bare_median,
        "retry_path_kretry_rps": kretry_median,
        "retry_path_bare_rps_all": bare_rates,
        "retry_path_kretry_rps_all": kretry_rates,
    }


def run_exactly_once(records: int = RECORDS, runs: int = RUNS) -> dict[str, Any]:
    """exactly_once=True against the at-least-once path, interleaved, both timed by a read_committed reader."""
    at_least: list[float] = []
    exactly: list[float] = []
    for _ in range(runs):
        at_least.append(kretry_rate(records, committed=True))
        exactly.append(kretry_rate(records, exactly_once=True, committed=True))
    return {
        "retry_path_eos_ratio": median(exactly) / median(at_least),
        "retry_path_eos_rps": median(exactly),
        "retry_path_alo_rps": median(at_least),
        "retry_path_eos_rps_all": exactly,
        "retry_path_alo_rps_all": at_least,
    }
