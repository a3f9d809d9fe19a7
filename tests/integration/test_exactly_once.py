"""exactly_once=True on a real broker: kretry's copies written once, whatever happens to the worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic as AdminNewTopic

from kretry import Message, Retrier, cli
from kretry.commands import exits
from kretry.errors import KafkaFatalError, TransactionFenced
from kretry.stage import txn
from tests.integration.kit import (
    complete_lines,
    end_offsets,
    produce,
    read_committed,
    unique,
    wait_until,
)
from tests.integration.workers import ROOT, kretry_process, running, stop

NewTopic = Callable[..., str]
APP = "tests.integration.apps.ledger_app:retrier"


def keys(records: list[object]) -> Counter[str]:
    return Counter((m.key() or b"").decode() for m in records)  # type: ignore[attr-defined]


def test_every_copy_once_in_each_tier_and_the_dlq(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("eos", partitions=3)
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"), exactly_once=True)
    dlq = retrier.dlq_topic or ""
    seen: Counter[tuple[str, int]] = Counter()

    @retrier.handler(topic, delays=["0s", "1ms"])  # two tiers: equal delays would share one
    def handle(msg: Message) -> None:
        value = (msg.value or b"").decode()
        seen[(value, msg.attempt)] += 1
        if value.startswith("poison") or (value.startswith("fail") and msg.attempt == 0):
            raise RuntimeError("failing on purpose")

    kinds = ["poison" if i % 3 == 0 else "fail" if i % 3 == 1 else "ok" for i in range(300)]
    records = [(f"k{i}".encode(), f"{kind}-{i}".encode(), None) for i, kind in enumerate(kinds)]
    poison = {f"k{i}" for i, kind in enumerate(kinds) if kind == "poison"}
    failing = poison | {f"k{i}" for i, kind in enumerate(kinds) if kind == "fail"}
    with running(retrier) as worker:
        produce(bootstrap, topic, records)
        wait_until(lambda: len(read_committed(bootstrap, dlq)) >= len(poison), timeout=60, what="every dead letter")
        assert all(s.txn is not None and s.txn.committed > 0 for s in worker.stages)

    assert keys(read_committed(bootstrap, f"{topic}_retry_1")) == Counter(failing)
    assert keys(read_committed(bootstrap, f"{topic}_retry_2")) == Counter(poison)
    assert keys(read_committed(bootstrap, dlq)) == Counter(poison)
    # Transaction markers take offsets: the retry topic ends past its records.
    assert sum(end_offsets(bootstrap, f"{topic}_retry_1", 3)) > len(failing)
    assert all(seen[(f"ok-{i}", 0)] == 1 for i, kind in enumerate(kinds) if kind == "ok")


def test_killed_mid_transaction_leaves_no_copy_and_restart_writes_each_once(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("eoskill")
    ledger = tmp_path / "ledger"
    env = {
        "KRETRY_BOOTSTRAP_SERVERS": bootstrap,
        "KRETRY_EXACTLY_ONCE": "true",
        "KRETRY_KAFKA": json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}),
        "APP_GROUP": unique("svc"),
        "APP_DLQ": unique("dlq"),
        "APP_TOPICS": topic,
        "APP_LEDGER": str(ledger),
        "APP_DELAYS": "0s,1ms",
        "APP_SLOW": "60",
    }
    # One batch: twenty records forwarded inside the open transaction, then a handler that takes a minute.
    poison = [f"p{i}" for i in range(20)]
    records = [(k.encode(), f"poison-{k}".encode(), None) for k in poison] + [(b"slow", b"slow-1", None)]
    produce(bootstrap, topic, records)
    retry_1 = f"{topic}_retry_1"
    proc = kretry_process(APP, env, log=tmp_path / "first.log")
    try:
        wait_until(
            lambda: len(read_committed(bootstrap, retry_1, committed_only=False)) >= len(poison),
            timeout=60,
            what="the copies written in the open transaction",
        )
        assert read_committed(bootstrap, retry_1) == []  # written, not committed
    finally:
        proc.kill()
        proc.wait(10)

    env["APP_SLOW"] = "0"
    restarted = kretry_process(APP, env, log=tmp_path / "second.log")
    try:
        wait_until(
            lambda: len(read_committed(bootstrap, env["APP_DLQ"])) >= len(poison),
            timeout=90,
            interval=0.5,
            what="every dead letter after the restart",
        )
    finally:
        assert stop(restarted) == 0
    assert keys(read_committed(bootstrap, retry_1)) == Counter(poison)
    assert keys(read_committed(bootstrap, f"{topic}_retry_2")) == Counter(poison)
    assert keys(read_committed(bootstrap, env["APP_DLQ"])) == Counter(poison)
    # The handler's side effects are at-least-once: the killed worker saw the first attempts too.
    lines = [json.loads(line) for line in complete_lines(ledger)]
    first_attempts = Counter(e["key"] for e in lines if e["attempt"] == 0)
    assert all(first_attempts[k] == 2 for k in poison)
    assert first_attempts["slow"] == 1  # the killed worker never finished it


def test_a_fenced_stage_raises_transaction_fenced(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("fence")
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True}
    ident = unique("kretry.fence")
    first = txn.Transactions(txn.producer(conf, ident, 30), ident)
    first.begin()
    first.client.produce(topic, b"v")
    txn.producer(conf, ident, 30)  # a newer worker with the same id
    with pytest.raises(TransactionFenced, match="fenced"):
        first.commit([], None)
    assert read_committed(bootstrap, topic) == []


def test_no_usable_transactions_stops_the_start_up_with_exit_5(
    bootstrap: str, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = new_topic("eosbad")
    produce(bootstrap, topic, [(b"k", b"ok-1", None)])
    ledger = tmp_path / "ledger"
    env = {
        "KRETRY_BOOTSTRAP_SERVERS": bootstrap,
        "KRETRY_EXACTLY_ONCE": "1",
        # Past the broker's transaction.max.timeout.ms (15 min by default): init_transactions is refused.
        "KRETRY_KAFKA": json.dumps({"transaction.timeout.ms": 3_600_000}),
        "APP_GROUP": unique("svc"),
        "APP_DLQ": unique("dlq"),
        "APP_TOPICS": topic,
        "APP_LEDGER": str(ledger),
    }
    done = subprocess.run(
        [sys.executable, "-m", "kretry.cli", "run", APP],
        env={**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == cli.EXIT_BROKER, done.stderr[-2000:]
    assert "transaction.state.log.replication.factor" in done.stderr
    assert not ledger.exists()  # nothing consumed


def test_fenced_exit_code_is_named() -> None:
    assert cli.EXIT_FENCED == 11
    assert "11 exactly_once" in exits.RUN_EXIT_CODES
    assert exits.exit_for(TransactionFenced).code == cli.EXIT_FENCED


def test_two_workers_on_one_host_do_not_fence_each_other(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("eostwo", partitions=2)
    group = unique("svc")
    made = [
        Retrier(group_id=group, bootstrap_servers=bootstrap, dlq_topic=unique("dlq"), exactly_once=True)
        for _ in range(2)
    ]
    for retrier in made:
        retrier.handler(topic, delays=["0s"])(lambda _msg: None)
    with running(made[0]) as a, running(made[1]) as b:
        assert a.instance is not None
        assert b.instance is not None
        assert a.instance.name != b.instance.name
        produce(bootstrap, topic, [(f"k{i}".encode(), b"v", None) for i in range(20)])
        wait_until(lambda: a.failure is None and b.failure is None, timeout=5)


def test_a_refused_forward_aborts_and_handles_the_batch_again_leaving_no_copy(
    bootstrap: str, new_topic: NewTopic
) -> None:
    topic = new_topic("eosabort")
    dlq = unique("dlq")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    small = AdminNewTopic(dlq, num_partitions=1, replication_factor=1, config={"max.message.bytes": "20000"})
    admin.create_topics([small])[dlq].result(30)
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=dlq, exactly_once=True)
    seen: Counter[bytes] = Counter()

    @retrier.handler(topic)
    def handle(msg: Message) -> None:
        seen[msg.key or b""] += 1
        raise RuntimeError("straight to the DLQ")

    produce(bootstrap, topic, [(b"small", b"v", None), (b"huge", b"x" * 60_000, None)])

    def until_the_stage_gives_up() -> None:
        with running(retrier) as worker:
            wait_until(lambda: worker.failure is not None, timeout=90, what="the stage to give up")

    with pytest.raises(KafkaFatalError, match="aborted in a row"):
        until_the_stage_gives_up()
    assert seen[b"huge"] == txn.MAX_ABORTS + 1
    assert seen[b"small"] == seen[b"huge"]  # the whole batch, each time
    assert read_committed(bootstrap, dlq) == []  # the small record's copy went down with each aborted transaction
