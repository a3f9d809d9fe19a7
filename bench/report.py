"""bench/results/latest.json and latest.md from the figures of one `make bench`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# key, label, unit, target (text), passes(value) or None
ROWS: list[tuple[str, str, str, str, Any]] = [
    ("main_path_ratio", "1. Main path: kretry / bare throughput", "x", ">= 0.9", lambda v: v >= 0.9),
    ("retry_path_ratio", "2. Retry path (3 hops): kretry / bare", "x", ">= 0.8", lambda v: v >= 0.8),
    ("retry_path_eos_ratio", "2b. Retry path: exactly_once / at-least-once", "x", ">= 0.7", lambda v: v >= 0.7),
    ("lateness_p50_ms", "3. Delay lateness p50", "ms", "", None),
    ("lateness_p99_ms", "3. Delay lateness p99", "ms", "< 100", lambda v: v < 100),
    ("lateness_max_ms", "3. Delay lateness max", "ms", "", None),
    ("lateness_jitter_p99_ms", "3b. Delay lateness p99, ±50 % jitter in one tier", "ms", "< 100", lambda v: v < 100),
    ("lateness_mixed_p99_ms", "3c. Delay lateness p99, mixed RetryLater in one tier", "ms", "< 100", lambda v: v < 100),
    ("lateness_burst_p99_ms", "3d. Delay lateness p99, 2,000 records due at once", "ms", "", None),
    ("hol_ratio", "4. Head-of-line: healthy rps, kretry / blocking", "x", "", None),
    ("backlog_rss_mb", "5. Backlog: worker RSS after 60 s", "MB", "< 150", lambda v: v < 150),
    ("backlog_rss_growth_mb", "5. Backlog: RSS growth over 60 s", "MB", "flat", lambda v: abs(v) < 5),
    ("backlog_rss_settled_growth_mb", "5. Backlog: RSS growth 15-60 s", "MB", "flat", lambda v: abs(v) < 5),
    ("startup_s", "6. Start-up to every stage assigned (median)", "s", "", None),
    ("key_order_ratio", "7. Async handler: ordering key / none throughput", "x", ">= 0.9", lambda v: v >= 0.9),
    ("key_order_partition_ratio", "7. Async handler: ordering partition / none throughput", "x", "", None),
    ("scale_out_ratio", "8. Scale-out: 2 processes / 1, 1 ms I/O handler", "x", ">= 1.7", lambda v: v >= 1.7),
    (
        "console_deadset_p95_ms",
        "9. Console: dead-set page p95, 1,000,000 dead records",
        "ms",
        "< 500",
        lambda v: v < 500,
    ),
    (
        "gateway_accept_rps",
        "10. Gateway: accepted events/s, 8 clients, one instance",
        "/s",
        ">= 5000",
        lambda v: v >= 5000,
    ),
    ("gateway_accept_ratio", "10. Gateway: accepted events/s, gateway / bare durable accept", "x", "", None),
    ("gateway_accept_p99_ms", "10. Gateway: accept latency p99", "ms", "< 25", lambda v: v < 25),
    ("gateway_rss_mb", "10. Gateway: instance RSS after the load", "MB", "< 150", lambda v: v < 150),
    ("gateway_scale_ratio", "10. Gateway: two instances / one, 32 clients", "x", "", None),
    ("gateway_lateness_p99_ms", "10. Gateway: delivery lateness p99, 1 s delay", "ms", "< 50", lambda v: v < 50),
    ("gateway_lost_events", "10. Gateway: events lost", "", "0", lambda v: v == 0),
]


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=RESULTS.parent.parent, check=False)
    return done.stdout.strip()


def provenance() -> dict[str, Any]:
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "kretry"))}


def _fmt(value: float) -> str:
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"# kretry bench — {data['date']}",
        "",
        f"commit `{data['commit'][:12]}`{' (kretry/ modified)' if data['dirty'] else ''}, "
        f"bench took {data['bench_seconds']:.0f} s. Ratios are against a bare confluent-kafka loop in the same run.",
        "",
        "| figure | value | target | met |",
        "|---|---:|---|---|",
    ]
    for key, label, unit, target, passes in ROWS:
        value = data.get(key)
        if value is None:
            lines.append(f"| {label} | not measured | {target} | |")
            continue
        met = "" if passes is None else ("yes" if passes(value) else "**no**")
        lines.append(f"| {label} | {_fmt(value)} {unit} | {target} | {met} |")
    lines += ["", "Raw rates (records/s):", ""]
    for key in sorted(k for k in data if k.endswith("_rps")):
        lines.append(f"- `{key}`: {data[key]:,.0f}")
    notes = data.get("notes", [])
    errors = data.get("errors", {})
    if notes or errors:
        lines += ["", "Notes:", ""]
        lines += [f"- {n}" for n in notes]
        lines += [f"- {name} failed: {err}" for name, err in errors.items()]
    return "\n".join(lines) + "\n"


def write(data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (RESULTS / "latest.md").write_text(markdown(data))
    return path
