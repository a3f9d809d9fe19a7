"""Benchmark 6: `kretry run` from exec until every stage has its assignment, read from its JSON log."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import process
from bench.common import create_topics, delete_topics, median, unique
from kretry.topology import retry_topic

RUNS = 5
DELAYS = "1s,2s"  # three stages: main, retry 1, retry 2 (equal delays would share one)


def run(runs: int = RUNS) -> dict[str, Any]:
    main, dlq = unique("startup"), unique("startup-dlq")
    create_topics([main])
    times: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(runs):
                log = Path(tmp) / f"worker-{i}.log"
                proc = process.start(main, unique("startup"), dlq, DELAYS, log)
                try:
                    times.append(process.wait_ready(proc, log, stages=3))
                finally:
                    process.stop(proc)
    finally:
        delete_topics([main, retry_topic(main, 1), retry_topic(main, 2), dlq])
    return {"startup_s": median(times), "startup_runs_s": times, "startup_stages": 3}
