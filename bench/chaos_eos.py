"""The exactly_once scenarios of ``make chaos``: kill -9 and rebalancing with every hop in a Kafka transaction.

Besides the ledger's accounting (nothing lost), every retry topic and the DLQ is read with read_committed and each
key counted: a record that failed once has exactly one copy on retry topic 1, a poison record one on each tier and
one in the DLQ. ``duplicate_copies`` counts the extra ones (0 is the promise), ``missing_copies`` (in the notes) the
absent ones. How often the handler saw a record again is reported too: side effects stay at-least-once.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

from bench.chaos_kit import (
    PARTITIONS,
    Outcome,
    Record,
    Run,
    killed_three_times,
    progress,
    settle,
    traffic,
    trickle,
)
from tests.integration.kit import committed, create_topics, read_committed, wait_until
from tests.integration.workers import stop


def exactly_once_kill_9(bootstrap: str, work: Path, out: Outcome) -> None:
    run = Run(bootstrap, work, exactly_once=True)
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(20_000)
    proc = killed_three_times(run, records, out)
    _account(run, records, out)
    code = stop(proc)
    out.passed = out.passed and code == 0


def exactly_once_rebalance(bootstrap: str, work: Path, out: Outcome) -> None:
    run = Run(bootstrap, work, delays="500ms,600ms", exactly_once=True)  # two tiers, as wanted below
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(20_000)
    first = run.start("a")
    feeder = trickle(run, records, seconds=15)
    wait_until(lambda: progress(run) >= 1000, timeout=60, what="progress on one worker")
    extra = [run.start("b"), run.start("c")]
    out.notes.append(f"scaled 1 -> 3 after {progress(run)} successes")
    time.sleep(8)
    codes = [stop(p) for p in extra]
    out.notes.append(f"scaled 3 -> 1 after {progress(run)} successes; exits {codes}")
    feeder.join(120)
    _account(run, records, out)
    # Offsets are committed with the transaction after a record is done: give the last ones a moment.
    with suppress(AssertionError):
        wait_until(lambda: not undrained(run), timeout=20, interval=1.0, what="every stage committed")
    stuck = undrained(run)
    out.notes.append(f"partitions not drained: {stuck}")
    code = stop(first)
    out.passed = out.passed and not stuck and code == 0 and codes == [0, 0]


def undrained(run: Run, retries: int = 2) -> list[str]:
    """Stage partitions whose group has not committed past their last record. A transaction's commit marker takes
    the offset after its last record, so the end offset is no yardstick: the last record read_committed is."""
    stuck = []
    topics = [run.topic] + [f"{run.topic}_retry_{n}" for n in range(1, retries + 1)]
    for attempt, topic in enumerate(topics):
        group = run.group if attempt == 0 else f"{run.group}.{topic}"
        last: dict[int, int] = {}
        for msg in read_committed(run.bootstrap, topic):
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())
        done = committed(run.bootstrap, group, topic, PARTITIONS)
        stuck += [f"{topic}[{p}]" for p, offset in sorted(last.items()) if done[p] <= offset]
    return stuck


def _account(run: Run, records: list[Record], out: Outcome) -> None:
    """Lost records (ledger and DLQ), then every copy on the retry topics and the DLQ, then the handler's repeats."""
    out.lost, out.duplicates, where = settle(run, records, timeout=180)
    out.records = len(records)
    out.notes.append(f"outcomes: {dict(where)}")
    keys = {k.decode(): v for k, v in records}
    poison = {k for k, v in keys.items() if v.startswith(b"poison")}
    failing = poison | {k for k, v in keys.items() if v.startswith(b"fail-1")}
    wanted = {f"{run.topic}_retry_1": failing, f"{run.topic}_retry_2": poison, run.dlq: poison}
    extra = missing = 0
    for topic, expected in wanted.items():
        found = run.copies(topic)
        extra_here = sum(n - 1 for n in found.values() if n > 1) + sum(1 for k in found if k not in expected)
        missing_here = sum(1 for k in expected if not found[k])
        out.notes.append(f"{topic}: {sum(found.values())} copies, {extra_here} extra, {missing_here} missing")
        extra += extra_here
        missing += missing_here
    out.duplicate_copies = extra
    handlings = Counter((str(e["key"]), int(e["attempt"])) for e in run.entries())
    again = sum(n - 1 for n in handlings.values() if n > 1)
    out.notes.append(
        f"the handler saw a record again {again} times ({sum(1 for n in handlings.values() if n > 1)} "
        f"(record, attempt) pairs of {len(handlings)}): side effects stay at-least-once"
    )
    out.passed = out.lost == 0 and extra == 0 and missing == 0
