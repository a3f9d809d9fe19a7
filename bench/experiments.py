"""What-if experiments on kretry's hot path, by monkeypatching in this process only (not part of `make bench`).

    python -m bench.experiments            # prints one line per experiment

Main path: CPU per record (process time / records) of kretry against the bare loop, since on a 2-core box
with the broker alongside, the wall-clock rate of both is capped by the broker. Retry path: records/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from prometheus_client import metrics as prom

from bench import main_path, retry_path
from bench.common import create_topics, delete_topics, median, produce, quiet_kretry_logs, unique

RECORDS = 200_000


@contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextmanager
def no_metrics() -> Iterator[None]:
    """Counter.inc, Histogram.observe and Gauge.set as no-ops: what the per-record metric calls cost."""
    with (
        patched(prom.Counter, "inc", lambda *_a, **_k: None),
        patched(prom.Histogram, "observe", lambda *_a, **_k: None),
        patched(prom.Gauge, "set", lambda *_a, **_k: None),
    ):
        yield


@contextmanager
def warnings_only() -> Iterator[None]:
    """kretry's logs filtered at WARNING: the per-record INFO "record forwarded" line becomes free."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    try:
        yield
    finally:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))


@contextmanager
def nothing() -> Iterator[None]:
    yield


def cpu_per_record(measure: Callable[[], float], records: int) -> tuple[float, float]:
    """(microseconds of process CPU per record, records/s)."""
    cpu = time.process_time()
    rate = measure()
    return (time.process_time() - cpu) / records * 1e6, rate


def main_path_cpu(variants: dict[str, Callable[[], Any]], runs: int = 3) -> None:
    topic = unique("exp")
    create_topics([topic])
    produce(topic, RECORDS)
    try:
        results: dict[str, list[tuple[float, float]]] = {"bare": [], **{k: [] for k in variants}}
        for _ in range(runs):
            results["bare"].append(cpu_per_record(lambda: main_path.bare_rate(topic, RECORDS), RECORDS))
            for name, variant in variants.items():
                with variant():
                    results[name].append(cpu_per_record(lambda: main_path.kretry_rate(topic, RECORDS), RECORDS))
        for name, values in results.items():
            cpu, rate = median([v[0] for v in values]), median([v[1] for v in values])
            print(f"main path {name:>14}: {cpu:6.2f} us CPU/record, {rate:9,.0f} records/s")
    finally:
        delete_topics([topic])


def retry_rates(variants: dict[str, Callable[[], Any]], records: int = 20_000) -> None:
    for name, variant in variants.items():
        with variant():
            rate = retry_path.kretry_rate(records)
        print(f"retry path {name:>14}: {rate:9,.0f} records/s")
    print(f"retry path {'bare':>14}: {retry_path.bare_rate(records):9,.0f} records/s")


def main() -> None:
    quiet_kretry_logs()
    main_path_cpu({"kretry": nothing, "no metrics": no_metrics})
    retry_rates({"kretry": nothing, "warnings only": warnings_only, "no metrics+warn": _both})


@contextmanager
def _both() -> Iterator[None]:
    with no_metrics(), warnings_only():
        yield


if __name__ == "__main__":
    main()
