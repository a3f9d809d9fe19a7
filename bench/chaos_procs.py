"""Chaos scenarios of ``kretry run --processes 2``: children killed with -9 under load, and a second supervisor of two
joining and leaving (one machine scaled out to two and back). The same accounting as every scenario: lost must be 0.
"""

from __future__ import annotations

import os
import random
import signal
import time
from contextlib import suppress
from pathlib import Path

from bench.chaos_kit import PARTITIONS, Outcome, Run, progress, settle, stop_or_kill, stuck_partitions, traffic, trickle
from tests.integration.kit import create_topics, wait_until
from tests.integration.supervised import child_pids, children_of, events

TWO = ("--processes", "2")


def kill_9_processes_2(bootstrap: str, work: Path, out: Outcome) -> None:
    """Three times a child of the supervisor is killed with SIGKILL; the supervisor starts it again each time."""
    run = Run(bootstrap, work)
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(20_000)
    rng = random.Random(7)
    supervisor = run.start("supervisor", *TWO)
    log = run.log("supervisor")
    wait_until(lambda: len(children_of(supervisor.pid)) == 2, timeout=30, what="two children")
    feeder = trickle(run, records, seconds=15)
    for n in range(3):
        target = progress(run) + rng.randint(500, 3000)
        wait_until(lambda t=target: progress(run) >= t, timeout=120, what="progress before a kill")
        victim = rng.choice(children_of(supervisor.pid))
        started = len(child_pids(log))
        with suppress(ProcessLookupError):  # a child that died on its own meanwhile is restarted all the same
            os.kill(victim, signal.SIGKILL)
        wait_until(lambda s=started: len(child_pids(log)) > s, timeout=60, what="the killed child started again")
        out.notes.append(f"kill -9 of child {victim} #{n + 1} after {progress(run)} successes")
    feeder.join(120)
    out.lost, out.duplicates, where = settle(run, records, timeout=180)
    out.records = len(records)
    restarts = len(events(log, "worker process crashed; restarting"))
    out.notes.append(f"outcomes: {dict(where)}; children restarted by the supervisor: {restarts}")
    code = stop_or_kill(supervisor)
    out.notes.append(f"supervisor exit {code}")
    out.passed = out.lost == 0 and code == 0 and restarts == 3


def scale_processes(bootstrap: str, work: Path, out: Outcome) -> None:
    """A supervisor of two; a second one of two joins (four workers: two machines) and leaves again."""
    run = Run(bootstrap, work, delays="500ms,600ms")  # two tiers: equal delays would share one topic
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(6_000)
    first = run.start("first", *TWO)
    feeder = trickle(run, records, seconds=10)
    wait_until(lambda: progress(run) >= 500, timeout=60, what="progress on two processes")
    second = run.start("second", *TWO)
    out.notes.append(f"scaled 2 -> 4 processes after {progress(run)} successes")
    time.sleep(6)
    code_second = stop_or_kill(second)
    out.notes.append(f"scaled 4 -> 2 after {progress(run)} successes; second supervisor exit {code_second}")
    feeder.join(120)
    out.lost, out.duplicates, where = settle(run, records, timeout=180)
    out.records = len(records)
    with suppress(AssertionError):  # offsets are committed a moment after a record is done
        wait_until(lambda: not stuck_partitions(run), timeout=20, interval=1.0, what="every stage committed")
    stuck = stuck_partitions(run)
    pids = {e["pid"] for e in run.entries()}
    out.notes.append(f"outcomes: {dict(where)}; processes that handled records: {len(pids)}; stuck: {stuck}")
    code_first = stop_or_kill(first)
    out.passed = out.lost == 0 and not stuck and (code_first, code_second) == (0, 0) and len(pids) == 4
