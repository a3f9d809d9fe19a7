"""``make demo``: the example app on a real broker, with real traffic, retries and a DLQ, and a check of it all.

It runs ``kretry run example.app:retrier`` as a user would, produces a known mix of records (``example.traffic``),
waits until every stage's consumer group has committed up to the end of its topic, stops the worker with SIGTERM
and compares what the broker holds, stage by stage, with what the mix predicts. Everything is measured on the
broker and only this run counts (end-offset deltas, DLQ records read from this run's offsets), so the demo can run
again and again against the same broker. It exits 1 when any number differs, or the worker does not exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from example import app, traffic
from kretry import Retrier
from kretry import headers as hdr
from kretry.retrier import StageSpec

ROOT = Path(__file__).resolve().parents[1]
APP = "example.app:retrier"
LOG = ROOT / ".kafka" / "demo-worker.log"
COUNT, RATE = 200, 50.0
MAIN_PARTITIONS = 3
READY_TIMEOUT = 30.0  # the worker creates the retry topics and every stage gets its partitions
DRAIN_TIMEOUT = 60.0  # the longest path, orders' poison records, needs 1 + 2 + 4 s of delays plus commits
STOP_TIMEOUT = 20.0
SUCCEEDS_AT = {"ok": 0, "flaky": app.FLAKY_FAILURES, "poison": None}  # the attempt that succeeds; None: never

# The demo's own clients report their failures as exceptions; librdkafka's reconnect chatter would bury them.
QUIET = {"log_level": 2}

Ends = dict[str, dict[int, int]]  # topic -> partition -> end offset


class DemoFailed(Exception):
    """The demo could not run, or what the broker shows is not what the traffic mix predicts."""


@dataclass
class Counts:
    """What one stage did this run. Every record it received ends in exactly one of the three outcomes."""

    received: int = 0
    succeeded: int = 0
    retried: int = 0  # forwarded to the next retry topic
    dead: int = 0  # forwarded to the DLQ


# -- the broker ---------------------------------------------------------------------------------------------


class Broker:
    """What the demo asks the broker: topics, end offsets, the stage groups' commits and members."""

    def __init__(self, bootstrap: str, groups: Iterable[str]) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        # committed() answers for the consumer's own group; these consumers never subscribe, so never join it.
        self._groups = {
            g: Consumer({"bootstrap.servers": bootstrap, "group.id": g, **QUIET}) for g in sorted(set(groups))
        }
        self._probe = next(iter(self._groups.values()))

    def close(self) -> None:
        for consumer in self._groups.values():
            consumer.close()

    def check(self) -> None:
        try:
            self.admin.list_topics(timeout=5)
        except KafkaException:
            raise DemoFailed(f"no Kafka broker answers at {self.bootstrap}; `make kafka` starts one") from None

    def topics(self) -> dict[str, list[int]]:
        return {name: list(t.partitions) for name, t in self.admin.list_topics(timeout=10).topics.items()}

    def ensure(self, topics: Iterable[str], partitions: int) -> list[str]:
        """Create those of ``topics`` that are missing and wait for their leaders; return the ones created."""
        todo = [t for t in topics if t not in self.topics()]
        if not todo:
            return []
        for name, future in self.admin.create_topics([NewTopic(t, partitions, -1) for t in todo]).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise DemoFailed(f"creating topic {name!r}: {exc.args[0].str()}") from None
        # The worker refuses a main topic whose metadata still shows no leader, so wait for the leaders here.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            meta = self.admin.list_topics(timeout=10).topics
            if all(t in meta and all(p.leader >= 0 for p in meta[t].partitions.values()) for t in todo):
                return todo
            time.sleep(0.1)
        raise DemoFailed(f"topics {todo} have no leader 15 s after being created")

    def ends(self, topics: Iterable[str]) -> Ends:
        have = self.topics()
        ends: Ends = {}
        for topic in topics:
            if topic not in have:
                raise DemoFailed(f"topic {topic!r} does not exist; the worker should have created it")
            ends[topic] = {p: self._end(topic, p) for p in have[topic]}
        return ends

    def _end(self, topic: str, partition: int) -> int:
        high: int = self._probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        return high

    def backlog(self, stages: list[StageSpec]) -> dict[str, int]:
        """Records each stage's group has not committed yet, taken in pipeline order (main, retry 1, ...).

        A stage commits a failed record only once its copy is on the next topic, so when every stage, looked at
        in this order, has committed the end of its topic, nothing is left anywhere in the pipeline.
        """
        behind: dict[str, int] = {}
        for stage in stages:
            ends = self.ends([stage.topic])[stage.topic]
            tps = self._groups[stage.group].committed([TopicPartition(stage.topic, p) for p in ends], timeout=10)
            done = {tp.partition: max(tp.offset, 0) for tp in tps}  # nothing committed yet: -1001
            behind[stage.topic] = sum(max(0, end - done[p]) for p, end in ends.items())
        return behind

    def _described(self) -> dict[str, Any]:
        """Each stage group's ConsumerGroupDescription (state and members with their partitions)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            futures = self.admin.describe_consumer_groups(list(self._groups), request_timeout=10)
            try:
                return {name: future.result() for name, future in futures.items()}
            except KafkaException as exc:
                # A broker that has just started answers "coordinator load in progress" for a while.
                if not transient(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def unassigned(self, stages: list[StageSpec]) -> list[str]:
        """Stage topics that do not exist yet, or with a partition no member of the stage's group owns yet."""
        have, owned = self.topics(), set()
        for group in self._described().values():
            if group.state == ConsumerGroupState.STABLE:
                owned |= {(tp.topic, tp.partition) for m in group.members for tp in m.assignment.topic_partitions}
        return [s.topic for s in stages if s.topic not in have or any((s.topic, p) not in owned for p in have[s.topic])]

    def busy(self) -> list[str]:
        """Stage groups that already have members: another worker there would take part of this run's records."""
        return [f"{name}={len(g.members)}" for name, g in self._described().items() if g.members]


def read_dlq(bootstrap: str, topic: str, start: dict[int, int], stop: dict[int, int]) -> list[dict[str, str]]:
    """kretry's headers of the DLQ records between two snapshots of its end offsets."""
    todo = {p: end for p, end in stop.items() if end > start.get(p, 0)}
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "kretry-demo-reader", "enable.auto.commit": False, **QUIET}
    )
    reader.assign([TopicPartition(topic, p, start.get(p, 0)) for p in todo])
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + 15
    try:
        while todo and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.5):
                if msg.error() is not None or msg.offset() >= todo.get(msg.partition(), 0):
                    continue
                _, ours = hdr.split(msg.headers())
                found.append({k: v.decode("utf-8", errors="replace") for k, v in ours.items()})
                if msg.offset() == todo[msg.partition()] - 1:
                    del todo[msg.partition()]
    finally:
        reader.close()
    if todo:
        raise DemoFailed(f"could not read this run's DLQ records of partitions {sorted(todo)} within 15 s")
    return found


# -- the worker ---------------------------------------------------------------------------------------------


def start_worker(bootstrap: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KRETRY_BOOTSTRAP_SERVERS": bootstrap}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "run", APP, "--log-format", "console"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise DemoFailed(f"the worker did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM; killed") from None


TRANSIENT = {
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def transient(exc: KafkaException) -> bool:
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and (err.code() in TRANSIENT or err.retriable())


def wait_for(what: str, proc: subprocess.Popen[bytes], timeout: float, pending: Callable[[], str]) -> float:
    """Poll ``pending`` (what is still missing, "" when nothing) until it is empty; return the seconds it took."""
    started = last_report = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise DemoFailed(f"the worker exited with status {proc.returncode} while waiting for {what}")
        try:
            missing = pending()
        except KafkaException as exc:
            if not transient(exc):
                raise
            missing = f"the broker ({exc.args[0].str()})"
        now = time.monotonic()
        if not missing:
            return now - started
        if now - started > timeout:
            raise DemoFailed(f"{what}: not reached within {timeout:.0f} s; still waiting for {missing}")
        if now - last_report >= 3:
            print(f"           ... waiting for {missing}", flush=True)
            last_report = now
        time.sleep(0.25)


# -- the numbers --------------------------------------------------------------------------------------------


def expected(retrier: Retrier, produced: traffic.Produced) -> dict[str, Counts]:
    """Where each record must go: a kind succeeds at a fixed attempt or never; past the last tier is the DLQ."""
    table = {s.topic: Counts() for s in retrier.stages()}
    for (topic, kind), n in produced.items():
        spec = retrier.handlers[topic]
        for attempt, stage_topic in enumerate(spec.stage_topics):
            row = table[stage_topic]
            row.received += n
            if SUCCEEDS_AT[kind] == attempt:
                row.succeeded += n
                break
            if attempt < spec.policy.retries:
                row.retried += n
            else:
                row.dead += n
    return table


def measured(retrier: Retrier, delta: dict[str, int], dead: Counter[tuple[str, int]]) -> dict[str, Counts]:
    """Per stage: records in = its topic's growth; retried = the next topic's growth; dead = its DLQ records."""
    table: dict[str, Counts] = {}
    for spec in retrier.handlers.values():
        topics = spec.stage_topics
        for attempt, topic in enumerate(topics):
            row = Counts(received=delta[topic], dead=dead[(spec.topic, attempt)])
            row.retried = delta[topics[attempt + 1]] if attempt + 1 < len(topics) else 0
            row.succeeded = row.received - row.retried - row.dead
            table[topic] = row
    return table


def report(retrier: Retrier, actual: dict[str, Counts], wanted: dict[str, Counts]) -> bool:
    """Print measured and expected side by side; True when they agree on every stage."""
    cols = " ".join(f"{c:>5}" for c in ("in", "ok", "retry", "dlq"))
    print(f"\n{'stage':<26}{'measured on the broker':<27}expected from the mix")
    print(f"{'':<26}{cols}    {cols}")
    good = True
    for spec in retrier.handlers.values():
        for attempt, topic in enumerate(spec.stage_topics):
            row, want = actual[topic], wanted[topic]
            good &= row == want
            label = "main" if attempt == 0 else f"retry {attempt}"
            cells = [" ".join(f"{n:>5}" for n in astuple(c)) for c in (row, want)]
            print(f"{topic:<18}{label:<8}{cells[0]}    {cells[1]}{'' if row == want else '   <-- MISMATCH'}")
    return good


def dead_letters(records: list[dict[str, str]], retrier: Retrier) -> tuple[Counter[tuple[str, int]], list[str]]:
    """This retrier's DLQ records by (origin topic, attempt of the stage that gave up), and a summary to print."""
    ours = [r for r in records if r.get(hdr.GROUP) == retrier.group_id and r.get(hdr.ORIGIN_TOPIC) in retrier.handlers]
    by_stage: Counter[tuple[str, int]] = Counter()
    by_error: Counter[tuple[str, str]] = Counter()
    for r in ours:
        # kretry-attempt on a forwarded record is the attempt it was headed for: the failing stage's plus one.
        by_stage[(r[hdr.ORIGIN_TOPIC], int(r.get(hdr.ATTEMPT, "0")) - 1)] += 1
        by_error[(r[hdr.ORIGIN_TOPIC], r.get(hdr.ERROR, "?").split(":")[0])] += 1
    others = f"; {len(records) - len(ours)} from other services" if len(records) > len(ours) else ""
    lines = [f"{retrier.dlq_topic}: {len(ours)} records from {retrier.group_id!r} this run{others}"]
    for topic in retrier.handlers:
        n = sum(count for (t, _), count in by_stage.items() if t == topic)
        errors = ", ".join(f"{err} x{count}" for (t, err), count in sorted(by_error.items()) if t == topic)
        lines.append(f"  kretry-origin-topic={topic:<10}{n:>4}   {errors}")
    return by_stage, lines


# -- the run ------------------------------------------------------------------------------------------------


def run(bootstrap: str) -> None:
    retrier, stages = app.retrier, app.retrier.stages()
    print(f"kretry demo: {APP} (group {retrier.group_id!r}) on {bootstrap}")
    broker = Broker(bootstrap, (s.group for s in stages))
    try:
        broker.check()
        created = broker.ensure(retrier.handlers, MAIN_PARTITIONS)
        print(f"  topics   {', '.join(retrier.handlers)}: {'created' if created else 'exist'}")
        if busy := broker.busy():
            raise DemoFailed(f"groups with members already ({', '.join(busy)}): is a `kretry run {APP}` running?")
        produced, before, after = exercise(broker, stages, bootstrap)
    finally:
        broker.close()
    verify(retrier, bootstrap, produced, before, after)


def exercise(broker: Broker, stages: list[StageSpec], bootstrap: str) -> tuple[traffic.Produced, Ends, Ends]:
    """Start the worker, send the traffic, wait until every stage is done with it, stop the worker."""
    topics = [*(s.topic for s in stages), app.retrier.dlq_topic or ""]

    def backlog() -> str:
        return ", ".join(f"{topic} ({n} to go)" for topic, n in broker.backlog(stages).items() if n)

    proc = start_worker(bootstrap)
    print(f"  worker   pid {proc.pid}, logging to {LOG.relative_to(ROOT)}", flush=True)
    try:
        took = wait_for("every stage's partitions", proc, READY_TIMEOUT, lambda: ", ".join(broker.unassigned(stages)))
        print(f"  ready    all {len(stages)} stages have their partitions, after {took:.1f} s", flush=True)
        # Records an interrupted earlier run left behind would blur the counts: let the worker finish them first.
        wait_for("records of earlier runs to drain", proc, DRAIN_TIMEOUT, backlog)
        before = broker.ends(topics)
        started = time.monotonic()
        produced = traffic.produce(COUNT, RATE, bootstrap)
        print(f"  traffic  {sum(produced.values())} records in {time.monotonic() - started:.1f} s: {mix(produced)}")
        took = wait_for("every stage to commit the end of its topic", proc, DRAIN_TIMEOUT, backlog)
        print(f"  drained  every stage committed the end of its topic {took:.1f} s later", flush=True)
        after = broker.ends(topics)
    finally:
        code = stop_worker(proc)
    if code != 0:
        raise DemoFailed(f"the worker exited with status {code} after SIGTERM, not 0")
    print("  stopped  SIGTERM; the worker exited 0")
    return produced, before, after


def verify(retrier: Retrier, bootstrap: str, produced: traffic.Produced, before: Ends, after: Ends) -> None:
    """Compare this run's growth of every stage topic and the DLQ with what the traffic mix predicts."""
    dlq = retrier.dlq_topic or ""
    delta = {t: sum(after[t].values()) - sum(before[t].values()) for t in after if t != dlq}
    dead, summary = dead_letters(read_dlq(bootstrap, dlq, before[dlq], after[dlq]), retrier)
    good = report(retrier, measured(retrier, delta, dead), expected(retrier, produced))
    print("", *summary, sep="\n")
    if not good:
        raise DemoFailed("the broker's numbers differ from what the traffic mix predicts")
    print("\nAs predicted: ok records succeed at once, flaky ones on their second retry (payments has only one")
    print("retry, so its flaky records end in the DLQ), poison ones in the DLQ after the last retry.")
    print("\nThe DLQ with kretry's headers (origin, attempt, error):")
    print(f"  kcat -b {bootstrap} -C -t {dlq} -o beginning -e -f 'key=%k headers=%h value=%s\\n'")


def mix(produced: traffic.Produced) -> str:
    """``orders 134 (ok 107, flaky 20, poison 7), ...``"""
    parts = []
    for topic in traffic.TOPICS:
        kinds = ", ".join(f"{k} {produced[(topic, k)]}" for k in traffic.KINDS)
        parts.append(f"{topic} {sum(produced[(topic, k)] for k in traffic.KINDS)} ({kinds})")
    return ", ".join(parts)


def main() -> int:
    bootstrap = os.environ.get("KRETRY_BOOTSTRAP_SERVERS", traffic.DEFAULT_BOOTSTRAP)
    started = time.time()
    try:
        run(bootstrap)
    except (DemoFailed, KafkaException) as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        if LOG.exists() and LOG.stat().st_mtime >= started:  # the worker of this run wrote to it
            tail = LOG.read_text(errors="replace").splitlines()[-15:]
            print(f"last lines of {LOG.relative_to(ROOT)}:", *tail, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
