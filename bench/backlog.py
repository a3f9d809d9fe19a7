"""Benchmark 5: a `kretry run` worker facing a big backlog on a retry topic that is due only in an hour."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench import process
from bench.common import create_topics, delete_topics, end_total, produce, unique
from kretry import headers as hdr
from kretry.topology import retry_topic

RECORDS = 1_000_000
SAMPLE_FOR = 60.0
# The retry stage first fills its due-time window to its bound (KRETRY_RETRY_WINDOW_MB), then holds: growth from
# this many seconds on shows whether anything else grows.
SETTLE_AFTER = 15.0


def run(records: int = RECORDS, sample_for: float = SAMPLE_FOR) -> dict[str, Any]:
    main, dlq = unique("backlog"), unique("backlog-dlq")
    retry = retry_topic(main, 1)
    create_topics([main, retry, dlq])
    due = str(int((time.time() + 3600) * 1000)).encode()
    fixed = [(hdr.ATTEMPT, b"1"), (hdr.ORIGIN_TOPIC, main.encode()), (hdr.DUE_AT, due)]
    started = time.monotonic()
    produce(retry, records, headers=lambda _i: fixed)
    produce_s = time.monotonic() - started
    assert end_total(retry) >= records
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "worker.log"
        proc = process.start(main, unique("backlog"), dlq, "1h", log)
        try:
            process.wait_ready(proc, log, stages=2)
            t0 = time.monotonic()
            while (elapsed := time.monotonic() - t0) <= sample_for:
                samples.append((elapsed, process.rss_mb(proc.pid)))
                time.sleep(1.0)
        finally:
            process.stop(proc)
            delete_topics([main, retry, dlq])
    first, last = samples[0][1], samples[-1][1]
    settled = next((rss for at, rss in samples if at >= SETTLE_AFTER), last)
    return {
        "backlog_records": records,
        "backlog_rss_mb": last,
        "backlog_rss_growth_mb": last - first,
        "backlog_rss_settled_growth_mb": last - settled,
        "backlog_rss_ready_mb": first,
        "backlog_rss_peak_mb": max(rss for _, rss in samples),
        "backlog_sampled_s": samples[-1][0],
        "backlog_produce_s": produce_s,
    }
