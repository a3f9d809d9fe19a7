"""What every chaos scenario shares: its outcome, a service run of the ledger app, traffic, and the accounting.

A record's key is its identity. The ledger app appends one JSON line per handling (key, attempt, ok, ...); a key
is accounted for once it has a successful line or sits in the DLQ, and *lost* otherwise.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.kit import (
    committed,
    complete_lines,
    end_offsets,
    produce,
    read_committed,
    read_to_end,
    unique,
    wait_until,
)
from tests.integration.workers import kretry_process, stop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import kafka_local as kafka_local  # noqa: E402 - the local broker and free ports, re-exported for the scenarios

APP = "tests.integration.apps.ledger_app:retrier"
PARTITIONS = 6

Record = tuple[bytes, bytes]


@dataclass
class Outcome:
    scenario: str
    records: int = 0
    lost: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    passed: bool = False
    notes: list[str] = field(default_factory=list)
    duplicate_copies: int | None = None  # exactly_once scenarios: extra copies on the retry topics and the DLQ


@dataclass
class Run:
    """One service on one topic: its group, DLQ, app environment and ledger."""

    bootstrap: str
    work: Path
    topic: str = field(default_factory=lambda: unique("chaos"))
    group: str = field(default_factory=lambda: unique("svc"))
    dlq: str = field(default_factory=lambda: unique("dlq"))
    delays: str = "200ms,300ms"  # two tiers: equal delays in a row would share one topic
    app_env: dict[str, str] = field(default_factory=dict)  # more APP_* switches of the ledger app
    exactly_once: bool = False

    @property
    def ledger(self) -> Path:
        return self.work / f"{self.topic}.{self.group}.ledger"

    def env(self) -> dict[str, str]:
        return {
            "KRETRY_BOOTSTRAP_SERVERS": self.bootstrap,
            "KRETRY_KAFKA": json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}),
            "APP_GROUP": self.group,
            "APP_DLQ": self.dlq,
            "APP_TOPICS": self.topic,
            "APP_LEDGER": str(self.ledger),
            "APP_DELAYS": self.delays,
            **({"KRETRY_EXACTLY_ONCE": "true"} if self.exactly_once else {}),
            **self.app_env,
        }

    def log(self, name: str) -> Path:
        return self.work / f"{self.topic}.{self.group}.{name}.log"

    def start(self, name: str = "worker", *args: str) -> subprocess.Popen[bytes]:
        return kretry_process(APP, self.env(), *args, log=self.log(name))

    def entries(self) -> list[dict[str, Any]]:
        """Every handling so far, one dict per ledger line."""
        return [json.loads(line) for line in complete_lines(self.ledger) if line.strip()]

    def successes(self) -> Counter[str]:
        return Counter(str(e["key"]) for e in self.entries() if e["ok"])

    def dead_keys(self) -> Counter[str]:
        return self.copies(self.dlq)

    def copies(self, topic: str) -> Counter[str]:
        """The keys a topic holds, as a read_committed reader sees them (transaction markers take offsets too)."""
        read = read_committed if self.exactly_once else read_to_end
        return Counter((m.key() or b"").decode(errors="replace") for m in read(self.bootstrap, topic))


def traffic(count: int, prefix: str = "r") -> list[Record]:
    """(key, value): 10% always fail, 10% fail once, the rest succeed."""
    records = []
    for i in range(count):
        kind = "poison" if i % 10 == 0 else "fail-1" if i % 10 == 1 else "ok"
        records.append((f"{prefix}{i}".encode(), f"{kind}-{prefix}{i}".encode()))
    return records


def settle(
    run: Run, records: list[Record], timeout: float, dead: set[str] | None = None
) -> tuple[int, int, Counter[str]]:
    """Wait until every record is accounted for (or the timeout); return lost, duplicates and where each went.

    ``dead``: the keys that must end in the DLQ; by default those whose value is ``poison-...``.
    """
    keys = [k.decode(errors="replace") for k, _ in records]
    poison = {k.decode(errors="replace") for k, v in records if v.startswith(b"poison")} if dead is None else dead

    def done() -> bool:
        ok, dead_now = run.successes(), run.dead_keys()
        return all(ok[k] for k in keys if k not in poison) and all(dead_now[k] for k in poison)

    with suppress(AssertionError):  # what is still missing at the timeout is counted below as lost
        wait_until(done, timeout=timeout, interval=1.0, what="every record accounted for")
    ok, dead_now = run.successes(), run.dead_keys()
    where = Counter("succeeded" if ok[k] else "dlq" if dead_now[k] else "lost" for k in keys)
    duplicates = sum(n - 1 for n in ok.values() if n > 1) + sum(n - 1 for n in dead_now.values() if n > 1)
    return where["lost"], duplicates, where


def trickle(run: Run, records: list[Record], seconds: float) -> threading.Thread:
    """Produce the records evenly over ``seconds`` in the background."""
    chunks = 20
    size = max(1, len(records) // chunks)

    def go() -> None:
        for i in range(0, len(records), size):
            produce(run.bootstrap, run.topic, [(k, v, None) for k, v in records[i : i + size]])
            time.sleep(seconds / chunks)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def killed_three_times(run: Run, records: list[Record], out: Outcome) -> subprocess.Popen[bytes]:
    """Trickle ``records`` in while the worker is killed with SIGKILL and restarted three times, each after a few
    thousand successes; return the running worker once the last record is produced."""
    rng = random.Random(7)
    proc = run.start()
    feeder = trickle(run, records, seconds=15)
    for n in range(3):
        target = progress(run) + rng.randint(500, 3000)
        wait_until(lambda t=target: progress(run) >= t, timeout=120, what="progress before a kill")
        proc.kill()
        proc.wait(10)
        out.notes.append(f"kill -9 #{n + 1} after {progress(run)} successes")
        proc = run.start(f"restart{n + 1}")
    feeder.join(120)
    return proc


def progress(run: Run) -> int:
    return sum(run.successes().values())


def stuck_partitions(run: Run, partitions: int = PARTITIONS, retries: int = 2) -> list[str]:
    """Stage partitions whose group has not committed up to the end: a partition left paused would be one."""
    stuck = []
    topics = [run.topic] + [f"{run.topic}_retry_{n}" for n in range(1, retries + 1)]
    for attempt, topic in enumerate(topics):
        group = run.group if attempt == 0 else f"{run.group}.{topic}"
        ends = end_offsets(run.bootstrap, topic, partitions)
        done = committed(run.bootstrap, group, topic, partitions)
        stuck += [f"{topic}[{p}]" for p in range(partitions) if ends[p] and done[p] < ends[p]]
    return stuck


def stop_or_kill(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait for the exit code; a worker still running 15 s later is killed (its code is then -9)."""
    try:
        return stop(proc)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)
