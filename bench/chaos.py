"""``make chaos``: faults injected into real `kretry run` processes on a real broker, then a ledger of every record.

Each scenario produces records with unique keys through the ledger app (tests/integration/apps/ledger_app.py):
a value ``ok-…`` succeeds, ``fail-1-…`` fails once, ``poison-…`` always fails. At the end every key must have
succeeded (a ledger line) or sit in the DLQ; anything else is *lost*. Duplicates are counted and reported.

The suite starts a broker of its own (it stops and restarts it in one scenario); with KAFKA_BOOTSTRAP_SERVERS
set it uses that one and reports the broker scenario as not run. Writes bench/results/chaos.json and chaos.md; a
run of ``--only`` some scenarios keeps the earlier results of the others there.

Here: the process faults (kill -9, broker outage, scaling) and bad input. The shared accounting is in chaos_kit.py,
the scenarios about the topics themselves (two services on one topic, a deleted retry topic, records at the size
limit) in chaos_topics.py, those of ``kretry run --processes 2`` in chaos_procs.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from bench.chaos_eos import exactly_once_kill_9, exactly_once_rebalance
from bench.chaos_kit import (
    APP,
    PARTITIONS,
    ROOT,
    Outcome,
    Run,
    kafka_local,
    killed_three_times,
    progress,
    settle,
    stuck_partitions,
    traffic,
    trickle,
)
from bench.chaos_procs import kill_9_processes_2, scale_processes
from bench.chaos_topics import retry_topic_deleted, size_limit, two_services_one_topic
from kretry import headers as hdr
from tests.integration.kit import committed, create_topics, produce, read_to_end, unique, wait_until
from tests.integration.workers import stop

RESULTS = ROOT / "bench" / "results"


# -- scenarios ----------------------------------------------------------------------------------------------


def kill_nine(bootstrap: str, work: Path, out: Outcome) -> None:
    run = Run(bootstrap, work)
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(20_000)
    proc = killed_three_times(run, records, out)
    out.lost, out.duplicates, where = settle(run, records, timeout=180)
    out.records = len(records)
    out.notes.append(f"outcomes: {dict(where)}")
    code = stop(proc)
    out.passed = out.lost == 0 and code == 0


def broker_outage(bootstrap: str, work: Path, out: Outcome, broker: kafka_local.LocalKafka | None) -> None:
    if broker is None:
        out.notes.append("not run: the broker is external (KAFKA_BOOTSTRAP_SERVERS), it cannot be bounced")
        return
    run = Run(bootstrap, work)
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(5_000)
    proc = run.start()
    feeder = trickle(run, records, seconds=8)
    wait_until(lambda: progress(run) >= 500, timeout=60, what="progress before the outage")
    broker.stop()
    out.notes.append(f"broker stopped after {progress(run)} successes")
    time.sleep(10)
    alive_during = proc.poll() is None
    broker.start(timeout=120)
    out.notes.append(f"broker back; worker alive through the outage: {alive_during}")
    feeder.join(120)
    out.lost, out.duplicates, where = settle(run, records, timeout=180)
    out.records = len(records)
    out.notes.append(f"outcomes: {dict(where)}")
    alive_after = proc.poll() is None
    code = stop(proc)
    out.passed = out.lost == 0 and alive_during and alive_after and code == 0


def scale(bootstrap: str, work: Path, out: Outcome) -> None:
    run = Run(bootstrap, work, delays="500ms,600ms")
    create_topics(bootstrap, [run.topic], PARTITIONS)
    records = traffic(6_000)
    first = run.start("a")
    feeder = trickle(run, records, seconds=10)
    wait_until(lambda: progress(run) >= 500, timeout=60, what="progress on one worker")
    extra = [run.start("b"), run.start("c")]
    out.notes.append(f"scaled 1 -> 3 after {progress(run)} successes")
    time.sleep(6)
    codes = [stop(p) for p in extra]
    out.notes.append(f"scaled 3 -> 1 after {progress(run)} successes; exits {codes}")
    feeder.join(120)
    out.lost, out.duplicates, where = settle(run, records, timeout=180)
    out.records = len(records)
    # Offsets are committed a moment after a record is done: give the last ones time before calling them stuck.
    with suppress(AssertionError):
        wait_until(lambda: not stuck_partitions(run), timeout=20, interval=1.0, what="every stage committed")
    stuck = stuck_partitions(run)
    out.notes.append(f"outcomes: {dict(where)}; partitions not drained (stuck paused): {stuck}")
    code = stop(first)
    out.passed = out.lost == 0 and not stuck and code == 0 and codes == [0, 0]


def bad_input(bootstrap: str, work: Path, out: Outcome) -> None:
    run = Run(bootstrap, work, delays="0s")
    create_topics(bootstrap, [run.topic], 2)
    # A DLQ that refuses records over 20 kB: the oversized poison record must still be accounted for.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    dlq = NewTopic(run.dlq, num_partitions=2, replication_factor=1, config={"max.message.bytes": "20000"})
    admin.create_topics([dlq])[run.dlq].result(30)
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = [
        (b"corrupt-ok", b"ok-1", [(hdr.DUE_AT, b"\xff\xfe"), (hdr.ATTEMPT, b"many"), (hdr.ORIGIN_OFFSET, b"-1")]),
        (b"corrupt-poison", b"poison-2", [(hdr.ORIGIN_TIMESTAMP, b"yesterday"), (hdr.ERROR, b"\x80\x81")]),
        (None, None, None),
        (b"binary-headers", b"poison-3", [("trace", b"\xff\x00\xfe"), ("empty", b"")]),
        (b"huge", b"poison-" + b"x" * 60_000, [("size", b"60k")]),
        (b"tombstone", None, [("kind", b"delete")]),
    ]
    proc = run.start()
    produce(bootstrap, run.topic, records)
    produce(bootstrap, f"{run.topic}_retry_1", [(b"corrupt-retry", b"poison-4", [(hdr.DUE_AT, b"NaN")])])
    expected = {
        "corrupt-ok": "succeeded",
        "": "succeeded",
        "tombstone": "succeeded",
        "corrupt-poison": "dlq",
        "binary-headers": "dlq",
        "huge": "dlq",
        "corrupt-retry": "dlq",
    }

    def where() -> dict[str, str]:
        ok, dead = run.successes(), run.dead_keys()
        return {k: "succeeded" if ok[k] else "dlq" if dead[k] else "lost" for k in expected}

    with suppress(AssertionError):  # reported below record by record
        wait_until(lambda: where() == expected, timeout=60, interval=1.0, what="every bad record accounted for")
    found = where()
    huge = [m for m in read_to_end(bootstrap, run.dlq) if m.key() == b"huge"]
    if huge:
        note = dict(huge[0].headers() or []).get(hdr.ERROR, b"").decode()
        out.notes.append(f"oversized record in the DLQ as a stub (value {huge[0].value()!r}): {note}")
    out.records = len(expected)
    out.lost = sum(1 for v in found.values() if v == "lost")
    out.notes.append(f"where each went: {found}")
    alive = proc.poll() is None
    code = stop(proc)
    out.passed = found == expected and alive and code == 0


def config_mistakes(bootstrap: str, work: Path, out: Outcome) -> None:
    run = Run(bootstrap, work, delays="1s")
    create_topics(bootstrap, [run.topic], 1)
    produce(bootstrap, run.topic, [(b"k", b"ok-1", None)])
    cases: list[tuple[str, dict[str, str], list[str], str]] = [
        ("unknown setting", {"KRETRY_GROUP": "x"}, [], "KRETRY_GROUP"),
        ("bad duration", {"APP_DELAYS": "1 hour"}, [], "'1 hour'"),
        ("missing main topic", {"APP_TOPICS": unique("absent")}, [], "does not exist"),
        ("unreachable broker", {"KRETRY_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ["--connect-timeout", "2"], "127.0.0.1:1"),
    ]
    passed = True
    for name, change, args, needle in cases:
        env = {**run.env(), **change}
        proc = subprocess.run(
            [sys.executable, "-m", "kretry.cli", "run", APP, *args],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")},
                **env,
                "PYTHONPATH": str(ROOT),
            },
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        consumed = committed(bootstrap, run.group, run.topic)[0] >= 0 or run.ledger.exists()
        ok = proc.returncode not in (0, None) and needle in proc.stderr and not consumed
        passed &= ok
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        out.notes.append(f"{name}: exit {proc.returncode}, consumed nothing: {not consumed}; {last[:160]}")
    out.records = len(cases)
    out.passed = passed


# -- running ------------------------------------------------------------------------------------------------


@contextmanager
def own_broker() -> Iterator[tuple[str, kafka_local.LocalKafka | None]]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given, None
        return
    home = Path(tempfile.mkdtemp(prefix="kretry-chaos-"))
    broker = kafka_local.LocalKafka(home, kafka_local.free_port(), kafka_local.free_port(), kafka_local.free_port())
    try:
        broker.start(timeout=120)
        yield broker.bootstrap, broker
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the ledgers and worker logs, and say where")
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    prefix = "kretry-chaos-work-"
    work = nullcontext(tempfile.mkdtemp(prefix=prefix)) if args.keep else tempfile.TemporaryDirectory(prefix=prefix)
    with own_broker() as (bootstrap, broker), work as tmp:
        if args.keep:
            print(f"chaos: ledgers and worker logs in {tmp}", flush=True)
        scenarios: dict[str, Callable[[str, Path, Outcome], None]] = {
            "kill_9": kill_nine,
            "broker_outage": lambda b, w, o: broker_outage(b, w, o, broker),
            "scale_1_3_1": scale,
            "bad_input": bad_input,
            "config_mistakes": config_mistakes,
            "two_services_one_topic": two_services_one_topic,
            "retry_topic_deleted": retry_topic_deleted,
            "size_limit": size_limit,
            "exactly_once_kill_9": exactly_once_kill_9,
            "exactly_once_rebalance": exactly_once_rebalance,
            "kill_9_processes_2": kill_9_processes_2,
            "scale_processes": scale_processes,
        }
        for name, scenario in scenarios.items():
            if args.only and name not in args.only:
                continue
            out = Outcome(name)
            started = time.monotonic()
            print(f"chaos: {name} ...", flush=True)
            try:
                scenario(bootstrap, Path(tmp), out)
            except Exception as exc:  # a scenario that breaks is a failed scenario, reported as such
                out.notes.append(f"scenario failed: {type(exc).__name__}: {exc}")
                out.passed = False
            out.seconds = round(time.monotonic() - started, 1)
            print(
                f"chaos: {name}: {'PASS' if out.passed else 'FAIL'} lost={out.lost} "
                f"duplicates={out.duplicates}"
                + ("" if out.duplicate_copies is None else f" duplicate_copies={out.duplicate_copies}")
                + f" ({out.seconds}s)",
                flush=True,
            )
            for note in out.notes:
                print(f"    {note}", flush=True)
            outcomes.append(out)
    write(outcomes, list(scenarios), keep_others=bool(args.only))
    failed = [o.scenario for o in outcomes if not o.passed and not o.notes[0].startswith("not run")]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def write(outcomes: list[Outcome], order: list[str], keep_others: bool) -> None:
    """chaos.json and chaos.md, scenarios in ``order``; with ``keep_others`` (a run of --only) the earlier results
    of the scenarios not run this time stay in both files."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    earlier = RESULTS / "chaos.json"
    found = json.loads(earlier.read_text()).get("scenarios", {}) if keep_others and earlier.exists() else {}
    found.update({o.scenario: asdict(o) for o in outcomes})
    scenarios = {name: found[name] for name in order if name in found}
    summary = {
        "lost": sum(o["lost"] for o in scenarios.values()),
        "duplicates": sum(o["duplicates"] for o in scenarios.values()),
        "scenarios": scenarios,
    }
    earlier.write_text(json.dumps(summary, indent=2) + "\n")
    rows = ["| scenario | records | lost | duplicates | seconds | result |", "|---|---|---|---|---|---|"]
    rows += [
        f"| {name} | {o['records']} | {o['lost']} | {o['duplicates']} | {o['seconds']} | "
        f"{'pass' if o['passed'] else 'FAIL'} |"
        for name, o in scenarios.items()
    ]
    (RESULTS / "chaos.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
