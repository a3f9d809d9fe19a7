"""Benchmark 8: scale-out. Records/s of ``kretry run --processes 2`` against one process, with an I/O-bound handler
(1 ms of sleep per record) on 6 partitions: the consumer group shares the partitions, so two processes should come
close to twice the rate of one.

Each run: fresh topic and group, the processes started and the group stable with every member assigned, then the
records produced; rate = records / (first handled -> last handled), from the app's ledger of finish times.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import process
from bench.common import BOOTSTRAP, create_topics, delete_topics, median, produce, unique
from kretry.topology import retry_topic
from tests.integration.kit import complete_lines, wait_until
from tests.integration.supervised import group_members

APP = "bench.apps.sleepy_app:retrier"
RECORDS = 6_000
RUNS = 2  # of each, interleaved: 1, 2, 1, 2
DELAYS = "1s"


def handled(ledger: Path) -> list[tuple[float, int]]:
    """(finished at, pid) per record handled so far."""
    return [(float(t), int(pid)) for t, pid in (line.split() for line in complete_lines(ledger))]


def one_run(processes: int, work: Path) -> tuple[float, int]:
    """Records/s of ``processes`` worker processes, and how many of them handled records."""
    topic, group, dlq = unique("scale"), unique("scale"), unique("scale-dlq")
    ledger, log = work / f"{topic}.ledger", work / f"{topic}.log"
    create_topics([topic])
    proc = process.start(
        topic, group, dlq, DELAYS, log, "--processes", str(processes), app=APP, BENCH_LEDGER=str(ledger)
    )
    try:
        wait_until(lambda: group_members(BOOTSTRAP, group) == processes, timeout=90, interval=0.5, what="the group")
        produce(topic, RECORDS)
        wait_until(lambda: len(handled(ledger)) >= RECORDS, timeout=120, interval=0.2, what="every record handled")
    finally:
        process.stop(proc)
        delete_topics([topic, retry_topic(topic, 1), dlq])
    times = [t for t, _ in handled(ledger)]
    return RECORDS / (max(times) - min(times)), len({pid for _, pid in handled(ledger)})


def run(runs: int = RUNS) -> dict[str, Any]:
    rates: dict[int, list[float]] = {1: [], 2: []}
    workers: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            for processes in (1, 2):
                rate, busy = one_run(processes, Path(tmp))
                rates[processes].append(rate)
                if processes == 2:
                    workers.append(busy)
    one, two = median(rates[1]), median(rates[2])
    return {
        "scale_out_ratio": two / one,
        "scale_out_1_process_rps": one,
        "scale_out_2_processes_rps": two,
        "scale_out_rps_all": {"1": rates[1], "2": rates[2]},
        "scale_out_busy_processes": workers,
        "scale_out_records": RECORDS,
    }
