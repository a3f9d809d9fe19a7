"""Benchmark 9: `kretry console`'s dead-set page over a DLQ of 1,000,000 records: its load time, p95.

The console runs in this process on the one ASGI stack (uvicorn, a thread), as `kretry console` serves it; each
request is a real HTTP GET of the whole page (the page, its DLQ depth and counts, the records read from the broker).
Measured once the console's background count of the DLQ has caught up, over a mix of pages: the newest, an older
one, filtered by error type, by a recent key, by a time range, and by a key too old for one page's read budget.
"""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Any

from bench.common import BOOTSTRAP, create_topics, delete_topics, percentile, produce, unique
from kretry import Retrier
from kretry import headers as hdr
from kretry.console import create_app
from kretry.dlq import iso
from kretry.web.server import AppServer

RECORDS = 1_000_000
ROUNDS = 10  # requests of each page kind
COUNT_TIMEOUT = 900.0  # seconds for the console to count the DLQ in the background


def _headers(origin: str) -> list[hdr.Headers]:
    errors = ["RuntimeError: boom", "ValueError: bad amount 12", "TimeoutError: upstream", "KeyError: 'sku'"]
    return [
        hdr.build(
            [("trace-id", b"t-1")],
            origin=hdr.Origin(origin, 0, i, 1_700_000_000_000),
            attempt=3,
            error=error,
            group="bench",
            due_at=None,
            replays=None,
            error_class=error.split(":")[0],
        )
        for i, error in enumerate(errors)
    ]


def _get(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        body = answer.read().decode()
    return (time.perf_counter() - started) * 1000, body


def run(records: int = RECORDS, rounds: int = ROUNDS) -> dict[str, Any]:
    origin, dlq_topic = unique("console"), unique("console-dlq")
    create_topics([origin, dlq_topic])
    try:
        variants = _headers(origin)
        started, wall = time.monotonic(), time.time()
        produce(dlq_topic, records, key=lambda i: b"k%d" % i, headers=lambda i: variants[i % len(variants)])
        produced = time.monotonic()
        middle = int((wall + (produced - started) / 2) * 1000)  # a second in the middle of the DLQ: a seek, no scan
        retrier = Retrier(group_id=unique("console"), bootstrap_servers=BOOTSTRAP, dlq_topic=dlq_topic)
        retrier.handler(origin)(lambda msg: None)
        server = AppServer(lambda loopback: create_app(retrier, loopback=loopback), "127.0.0.1", 0, option="--port")
        server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            _, first = _get(base + "/dead")
            counting = time.monotonic()
            while "counting the rest" in first and time.monotonic() - counting < COUNT_TIMEOUT:
                time.sleep(2)
                _, first = _get(base + "/dead")
            counted = time.monotonic() - counting
            older = re.search(r'href="/dead\?(before=[^"]+)" id="older"', first)
            assert older is not None, "the newest page links no older one"
            pages = {
                "newest": "/dead",
                "older": "/dead?" + older.group(1).replace("&amp;", "&"),
                "error_type": "/dead?error_type=ValueError",
                "recent_key": f"/dead?key=k{records - 10}",
                "time_range": f"/dead?since={iso(middle)}&until={iso(middle + 1000)}",
                "old_key_budget": "/dead?key=k5",
            }
            times: dict[str, list[float]] = {name: [] for name in pages}
            for _ in range(rounds):
                for name, path in pages.items():
                    times[name].append(_get(base + path)[0])
        finally:
            server.stop()
        every = [t for ts in times.values() for t in ts]
        return {
            "console_deadset_p95_ms": percentile(every, 95),
            "console_deadset_p50_ms": percentile(every, 50),
            "console_deadset_p95_by_page_ms": {name: percentile(ts, 95) for name, ts in times.items()},
            "console_deadset_records": records,
            "console_deadset_produce_s": produced - started,
            "console_deadset_count_s": counted,
            "console_deadset_requests": len(every),
        }
    finally:
        delete_topics([origin, dlq_topic])
