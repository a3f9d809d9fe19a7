"""Chaos about the topics themselves: two services sharing retry topics, a retry topic deleted, records at the limit.

Each scenario fills an `Outcome` like those of bench/chaos.py, whose main() runs them.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from bench.chaos_kit import (
    PARTITIONS,
    Outcome,
    Record,
    Run,
    kafka_local,
    settle,
    stop_or_kill,
    stuck_partitions,
    traffic,
    trickle,
)
from kretry import headers as hdr
from tests.integration.kit import create_topics, produce, read_to_end, unique, wait_until

# -- two services, one topic --------------------------------------------------------------------------------


def two_services_one_topic(bootstrap: str, work: Path, out: Outcome) -> None:
    """svcA and svcB (two groups) read one topic and share its retry topics by name; only svcA's handler fails.

    A retry record belongs to the service that failed it: a service handling another's is *foreign* handling, a
    failure of the scenario, and each such handling is counted among the duplicates too.
    """
    topic = unique("chaos")
    a = Run(bootstrap, work, topic=topic, group=unique("svcA"))
    b = Run(bootstrap, work, topic=topic, group=unique("svcB"), app_env={"APP_NEVER_FAIL": "1"})
    create_topics(bootstrap, [topic], PARTITIONS)
    records = traffic(2_000)
    procs = [a.start(), b.start()]
    produce(bootstrap, topic, [(k, v, None) for k, v in records])
    lost_a, dup_a, where_a = settle(a, records, timeout=45)
    lost_b, dup_b, where_b = settle(b, records, timeout=20, dead=set())
    # svcB's retry stages read the same retry topics as svcA's: let them get through whatever svcA put there.
    with suppress(AssertionError):
        wait_until(lambda: not stuck_partitions(b), timeout=15, interval=1.0, what="svcB's stages committed")
    _, dup_b, _ = settle(b, records, timeout=0, dead=set())
    foreign = {run.group: foreign_handlings(run) for run in (a, b)}
    codes = [stop_or_kill(p) for p in procs]
    out.records = len(records)
    out.lost, out.duplicates = lost_a + lost_b, dup_a + dup_b
    for run, where, dup in ((a, where_a, dup_a), (b, where_b, dup_b)):
        stages = foreign[run.group]
        out.notes.append(
            f"{run.group}: {dict(where)}, duplicates {dup}, handlings from another service's retry path "
            f"{sum(stages.values())} {dict(stages)}"
        )
    out.notes.append(f"exits {codes}")
    total_foreign = sum(sum(s.values()) for s in foreign.values())
    out.passed = out.lost == 0 and total_foreign == 0 and codes == [0, 0]


def foreign_handlings(run: Run) -> Counter[str]:
    """Per stage topic, the handlings of a retry record this service never failed at the attempt before."""
    entries = run.entries()
    failed = {(e["key"], e["attempt"]) for e in entries if not e["ok"]}
    return Counter(e["topic"] for e in entries if e["attempt"] > 0 and (e["key"], e["attempt"] - 1) not in failed)


# -- a retry topic deleted ----------------------------------------------------------------------------------

WIDTH = 3
OPERATOR_GRACE = 20.0  # seconds the worker has to bring a deleted retry topic back before the operator does
ERRORS_PER_SECOND = 5  # more ERROR lines than this in one second: the worker does not rate-limit them


def retry_topic_deleted(bootstrap: str, work: Path, out: Outcome) -> None:
    """T_retry_1 of a 3-partition topic deleted while it is empty, then more failing traffic.

    Deleted at a quiet moment (every earlier record accounted for, the retry_1 group committed to the end), so
    no record is destroyed by the delete itself: every key must still succeed or reach the DLQ. T_retry_1 must come
    back as wide as planned, and the worker's ERROR lines meanwhile must stay few (rate-limited).
    """
    run = Run(bootstrap, work)
    retry1 = f"{run.topic}_retry_1"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(bootstrap, [run.topic], WIDTH)
    port = kafka_local.free_port()
    proc = run.start("worker", "--http-port", str(port))
    before, after = traffic(600, "a"), traffic(600, "b")
    produce(bootstrap, run.topic, [(k, v, None) for k, v in before])
    lost, _, where = settle(run, before, timeout=30)
    with suppress(AssertionError):
        wait_until(lambda: not stuck_partitions(run, WIDTH, retries=1), timeout=10, what="retry_1 committed")
    out.notes.append(f"before the delete: {dict(where)}; stages not drained: {stuck_partitions(run, WIDTH, 1)}")
    old_id = topic_id(admin, retry1)
    log = run.log("worker")
    mark = log.stat().st_size
    readyz = Sampler(f"http://127.0.0.1:{port}/readyz")
    admin.delete_topics([retry1], operation_timeout=30)[retry1].result(30)
    deleted_at = time.time()
    readyz.start()
    feeder = trickle(run, after, seconds=5)
    operator = False
    try:
        wait_until(lambda: recreated(admin, retry1, old_id), timeout=OPERATOR_GRACE, interval=0.2, what="T_retry_1")
    except AssertionError:
        create_topics(bootstrap, [retry1], WIDTH)
        operator = True
    back_at = time.time()
    feeder.join(60)
    lost, out.duplicates, where = settle(run, before + after, timeout=40)
    readyz.stop()
    alive = proc.poll() is None
    code = stop_or_kill(proc)
    width = len(admin.list_topics(retry1, timeout=10).topics[retry1].partitions)
    outage, later = readyz.during(deleted_at, back_at)
    lines = log_lines(log, mark)
    errors, warnings = per_second(lines, "error"), per_second(lines, "warning")
    if operator:
        who = f"the scenario, as an operator would, after {OPERATOR_GRACE:.0f}s without it"
    elif any(x.get("event") == "topic created" and x.get("topic") == retry1 for x in lines):
        who = "the worker ('topic created' in its log)"
    else:
        who = "not the worker: the broker's auto-creation on a produce"
    out.records, out.lost = len(before) + len(after), lost
    out.notes += [
        f"T_retry_1 deleted empty; back after {back_at - deleted_at:.1f}s; re-created by: {who}",
        f"/readyz every 0.25s: until it was back {dict(outage)}, after {dict(later)}; {readyz.unready(deleted_at)}",
        f"worker log after the delete ({time.time() - deleted_at:.0f}s): {errors.total()} ERROR lines (at most "
        f"{max(errors.values(), default=0)} in one second), {warnings.total()} WARNING",
        f"T_retry_1 partitions after the scenario: {width} (planned {WIDTH})",
        f"outcomes: {dict(where)}; worker alive to the end: {alive}, exit {code}",
    ]
    quiet = max(errors.values(), default=0) <= ERRORS_PER_SECOND
    out.passed = lost == 0 and width == WIDTH and quiet and alive and code == 0


def topic_id(admin: AdminClient, topic: str) -> str | None:
    """The topic's id (a deleted and re-created topic has a new one); None while it does not exist."""
    try:
        description = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
    except KafkaException:
        return None
    if not all(p.leader is not None for p in description.partitions):
        return None
    return str(description.topic_id)


def recreated(admin: AdminClient, topic: str, old_id: str | None) -> bool:
    new_id = topic_id(admin, topic)
    return new_id is not None and new_id != old_id


class Sampler:
    """GETs a URL every quarter second in the background; remembers (time, status, body) of each call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int, str]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with urlopen(self.url, timeout=2) as response:
                    status, body = response.status, response.read()
            except HTTPError as exc:
                status, body = exc.code, exc.read()
            except OSError:
                status, body = 0, b""
            self.samples.append((time.time(), status, body.decode(errors="replace")))
            self._stopping.wait(0.25)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)

    def during(self, start: float, end: float) -> tuple[Counter[int], Counter[int]]:
        """Statuses seen between start and end, and after end."""
        inside = Counter(s for t, s, _ in self.samples if start <= t < end)
        return inside, Counter(s for t, s, _ in self.samples if t >= end)

    def unready(self, since: float) -> str:
        """When (seconds after ``since``) it answered other than 200, and its first such answer."""
        bad = [(t - since, status, body) for t, status, body in self.samples if status != 200]
        if not bad:
            return "never unready"
        return f"unready from +{bad[0][0]:.1f}s to +{bad[-1][0]:.1f}s, first: {bad[0][1]} {bad[0][2].strip()[:160]}"


def log_lines(log: Path, mark: int) -> list[dict[str, Any]]:
    """The JSON lines the worker logged past byte ``mark`` of its log."""
    lines = []
    with log.open("rb") as f:
        f.seek(mark)
        for raw in f:
            with suppress(ValueError):
                lines.append(json.loads(raw))
    return lines


def per_second(lines: list[dict[str, Any]], level: str) -> Counter[int]:
    """How many lines of ``level`` the worker logged in each second (epoch)."""
    return Counter(int(_epoch(str(x.get("timestamp", "")))) for x in lines if x.get("level") == level)


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# -- records at the size limit ------------------------------------------------------------------------------

SIZE = 999_800  # bytes of value (or key): just under librdkafka's and the broker's default limits


def size_limit(bootstrap: str, work: Path, out: Outcome) -> None:
    """~1 MB values (and keys) whose handler fails once or always, on a topic with the default size limit.

    Each must reach T_retry_1 and, when poison, the DLQ whole; a stub in the DLQ is a degraded outcome.
    """
    run = Run(bootstrap, work, delays="0s")
    create_topics(bootstrap, [run.topic], 2)
    records = [(f"big-{i}".encode(), padded(f"{kind}-big-{i}-")) for i, kind in enumerate(["fail-1", "poison"] * 2)]
    records += [(padded(f"bigkey-{kind}-", b"K"), f"{kind}-bigkey".encode()) for kind in ("fail-1", "poison")]
    keeper = Keeper(run)
    produce(bootstrap, run.topic, [(k, v, None) for k, v in records])
    out.lost, out.duplicates, where = settle(run, records, timeout=40)
    exits = keeper.stop()
    retried = whole_copies(read_to_end(bootstrap, f"{run.topic}_retry_1"), records)
    dead = read_to_end(bootstrap, run.dlq)
    stubs = sum(1 for m in dead if m.value() is None or hdr.STUB in dict(m.headers() or []))
    poison = [(k, v) for k, v in records if v.startswith(b"poison")]
    whole_dead = whole_copies(dead, poison)
    out.records = len(records)
    out.notes += [
        f"outcomes: {dict(where)}",
        f"whole copies in T_retry_1: {retried} of {len(records)}; in the DLQ: {whole_dead} of {len(poison)}; "
        f"stubs in the DLQ: {stubs}",
        f"worker exits during the scenario: {exits or 'none'}",
    ]
    failed = [x for x in log_lines(run.log("worker"), 0) if x.get("event") == "stage failed"]
    if failed:
        out.notes.append(f"the first worker's stage failed: {str(failed[0].get('error'))[:200]}")
    out.passed = out.lost == 0 and not exits and retried == len(records) and whole_dead == len(poison) and not stubs


def padded(prefix: str, fill: bytes = b"x") -> bytes:
    return prefix.encode() + fill * (SIZE - len(prefix))


def whole_copies(messages: list[Any], records: list[Record]) -> int:
    """How many of the records have a copy among the messages with their full key and value."""
    found = {(m.key(), m.value()) for m in messages}
    return sum(1 for record in records if record in found)


class Keeper:
    """Keeps a worker running as a process manager would, restarting it (up to twice) and counting its exits."""

    def __init__(self, run: Run, restarts: int = 2) -> None:
        self.run, self.restarts = run, restarts
        self.exits: list[int] = []
        self.proc = run.start()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            code = self.proc.poll()
            if code is not None and len(self.exits) <= self.restarts:
                self.exits.append(code)
                if len(self.exits) <= self.restarts:
                    self.proc = self.run.start(f"restart{len(self.exits)}")

    def stop(self) -> list[int]:
        """Stop watching and stop the worker; the exits seen before (a crash loop is several)."""
        self._stopping.set()
        self._thread.join(5)
        if self.proc.poll() is None:
            code = stop_or_kill(self.proc)
            if code != 0:
                self.exits.append(code)
        return self.exits
