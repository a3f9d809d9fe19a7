"""`make bench`: every benchmark in turn on the local broker, then bench/results/latest.{json,md}."""

from __future__ import annotations

import datetime
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import backlog, console, delay, gateway, hol, key_order, main_path, report, retry_path, scale_out, startup
from bench.common import quiet_kretry_logs

BENCHES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("main_path", lambda: main_path.run()),
    ("retry_path", lambda: retry_path.run()),
    ("retry_path_eos", lambda: retry_path.run_exactly_once()),
    ("delay", lambda: delay.run()),
    ("delay_jitter", lambda: delay.run_jitter()),
    ("delay_mixed", lambda: delay.run_mixed()),
    ("delay_burst", lambda: delay.run_burst()),
    ("hol", lambda: hol.run()),
    ("backlog", lambda: backlog.run()),
    ("startup", lambda: startup.run()),
    ("key_order", lambda: key_order.run()),
    ("scale_out", lambda: scale_out.run()),
    ("gateway", lambda: gateway.run()),
    ("console", lambda: console.run()),
]

NOTES = [
    f"main path: {main_path.RUNS} interleaved runs each (bare, kretry, ...), fresh consumer group per run; "
    "rate = records / (first record consumed -> last handled).",
    f"retry path: {retry_path.RUNS} interleaved runs each, fresh topics per run; end = DLQ high watermarks "
    "reach the record count (every forward acknowledged).",
    "retry path, exactly_once: the same path with exactly_once=True against exactly_once=False, interleaved; end = a "
    "read_committed reader has every DLQ record (transaction markers take offsets).",
    f"delay lateness: handled minus kretry-due-at, {delay.RECORDS:,} records over {delay.PARTITIONS} partitions in one "
    f"tier; jitter ±{delay.JITTER:.0%} of {delay.DELAY}; mixed RetryLater(after=...) in turn {delay.MIXED} s in a "
    f"{delay.DELAY} tier; burst: {delay.BURST:,} records due at the same moment.",
    f"head-of-line: kretry over {hol.KRETRY_RECORDS:,} records, the blocking loop over {hol.BARE_RECORDS:,} "
    "(each failure costs it 5 s; its rate does not depend on the count).",
    f"key order: an async handler awaiting {key_order.LATENCY * 1000:.0f} ms, concurrency {key_order.CONCURRENCY}, "
    f"{key_order.RECORDS:,} records of {key_order.KEYS} keys on {key_order.PARTITIONS} partitions, "
    f"{key_order.RUNS} interleaved runs of ordering key, partition and none; ratios against none.",
    f"scale-out: `kretry run --processes 2` against 1, a handler sleeping 1 ms, {scale_out.RECORDS:,} records on "
    f"6 partitions, {scale_out.RUNS} interleaved runs each, fresh topic and group per run; rate = records / (first "
    "handled -> last), after the group is stable.",
    f"gateway: wrk, {gateway.CLIENTS} connections for {gateway.SECONDS} s, each post a new event; baseline "
    "bench/apps/bare_accept.py (produce, await the ack, 200), interleaved, best of "
    f"{gateway.RUNS}; two instances: the same connections split over both; lateness: {gateway.LATENESS_EVENTS:,} "
    f"events at {gateway.LATENESS_RATE}/s, 1 s delay, arrival minus (sent + 1 s), as a receiver sees it.",
    f"console: the dead-set page over {console.RECORDS:,} DLQ records, real HTTP GETs of the whole page, "
    f"{console.ROUNDS} rounds of 6 kinds (newest, older, by error type, by a recent key, by a one-second time range, "
    "by a key too old for one page's read budget), once the console's background count has caught up.",
    "in-process workers log as `kretry run` does (JSON, INFO), rendered into /dev/null.",
]


def main(only: list[str]) -> int:
    quiet_kretry_logs()
    started = time.monotonic()
    data: dict[str, Any] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    data.update(report.provenance())
    errors: dict[str, str] = {}
    for name, bench in BENCHES:
        if only and name not in only:
            continue
        t = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        try:
            data.update(bench())
        except Exception as exc:
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
        data[f"{name}_seconds"] = time.monotonic() - t
        print(f"bench: {name} done in {data[f'{name}_seconds']:.0f} s", flush=True)
    data["bench_seconds"] = time.monotonic() - started
    data["notes"], data["errors"] = NOTES, errors
    path = report.write(data)
    print(report.markdown(data))
    print(f"written: {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
