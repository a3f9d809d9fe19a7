"""Triage of a DLQ on the broker: the same filters for every tool, record states, discard, summary, depth."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable

import httpx
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from kretry import Retrier, Worker, dlq
from kretry import headers as hdr
from kretry.web import create_app
from tests.integration.kit import committed, produce
from tests.integration.test_dlq import committed_records, dead, json_lines, kretry, settings_for
from tests.integration.workers import ROOT

NewTopic = Callable[..., str]


def with_class(origin: str, offset: int, error: str, error_class: str, group: str = "svc") -> hdr.Headers:
    """A DLQ record's headers as a worker writes them today: with the exception's qualified class."""
    return hdr.build(
        [],
        origin=hdr.Origin(origin, 0, offset, 1_700_000_000_000 + offset),
        attempt=2,
        error=error,
        group=group,
        due_at=None,
        replays=None,
        error_class=error_class,
    )


def fill(bootstrap: str, dlq_topic: str, origin: str, errors: list[tuple[str, str]]) -> None:
    """One DLQ record per (key, kretry-error), at origin offsets 0, 1, ..."""
    produce(bootstrap, dlq_topic, [(k.encode(), b"v", dead(origin, i, e)) for i, (k, e) in enumerate(errors)])


def test_replay_by_error_replays_only_the_oldest_matching(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    fill(
        bootstrap,
        dlq_topic,
        orders,
        [
            ("poison-0", "ValueError: bad sku 17"),
            ("fixed-1", "TimeoutError: upstream 503"),
            ("poison-2", "ValueError: bad sku 18"),
            ("fixed-3", "TimeoutError: upstream 504"),
            ("fixed-4", "TimeoutError: upstream 503"),
        ],
    )

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "2", "--error", "timeouterror")
    assert code == 0, err
    assert out.splitlines()[-1] == "replayed 2, refused 0"
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["fixed-1", "fixed-3"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--offset", "0:0", "--error", "timeout")
    assert (code, out.splitlines()[0]) == (8, "refused 0:0: kretry-error does not contain 'timeout'")
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "5", "--key", "fixed-4")
    assert code == 0
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["fixed-1", "fixed-3", "fixed-4"]
    # Nothing left that a filter matches; the poison is untouched and still pending.
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json")
    assert [(r["key"], r["state"]) for r in json_lines(out)] == [("poison-0", "pending"), ("poison-2", "pending")]


def test_time_filters_take_iso_and_durations_ago(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(bootstrap, dlq_topic, [(b"a", b"v", dead(orders, 0))])

    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--since", "1h")
    assert code == 0, err
    assert [r["key"] for r in json_lines(out)] == ["a"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--until", "1h")
    assert (code, out) == (0, "")
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--since", "2999-01-01T00:00:00Z")
    assert (code, out) == (0, "")
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary", "--json", "--until", "2999-01-01")
    assert json.loads(out)["total"] == 1
    code, _, err = kretry(bootstrap, dlq_topic, "dlq", "peek", "--since", "yesterday")
    assert code == 2
    assert "'yesterday' is neither an ISO-8601 time nor a duration" in err


def test_discard_then_peek_summary_and_replay(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    fill(
        bootstrap,
        dlq_topic,
        orders,
        [
            ("k0", "ValueError: bad sku 1"),
            ("k1", "TimeoutError: slow"),
            ("k2", "ValueError: bad sku 2"),
            ("k3", "TimeoutError: slow"),
        ],
    )

    code, out, err = kretry(
        bootstrap, dlq_topic, "dlq", "discard", "--count", "10", "--error", "ValueError", "--dry-run"
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"would discard 0:0 ({orders})",
        f"would discard 0:2 ({orders})",
        "would discard 2, refused 0",
    ]
    assert kretry(bootstrap, dlq_topic, "dlq", "summary", "--json")[1].count('"pending": 4') == 1
    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "discard", "--count", "10", "--error", "ValueError")
    assert code == 0, err
    assert out.splitlines()[-1] == "discarded 2, refused 0"
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "1")
    assert (code, out.splitlines()) == (0, [f"replayed 0:1 -> {orders} (kretry-replays=1)", "replayed 1, refused 0"])

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json")
    assert [(r["dlq"], r["state"]) for r in json_lines(out)] == [("0:3", "pending")]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--state", "all")
    assert [r["state"] for r in json_lines(out)] == ["discarded", "replayed", "discarded", "pending"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek", "--json", "--state", "discarded")
    assert [r["dlq"] for r in json_lines(out)] == ["0:0", "0:2"]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "peek")
    assert out.splitlines()[0].split() == [
        "DLQ",
        "KEY",
        "GROUP",
        "ORIGIN",
        "ATTEMPT",
        "REPLAYS",
        "TIME",
        "STATE",
        "ERROR",
    ]
    assert " pending " in out.splitlines()[1]

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary", "--json")
    summary = json.loads(out)
    assert (summary["state"], summary["total"]) == ("pending", 1)
    assert summary["by_state"] == {"pending": 1, "replayed": 1, "discarded": 2}
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary", "--json", "--state", "discarded")
    assert json.loads(out)["total"] == 2

    # A discarded record is never replayed, by offset or by count; nor discarded twice.
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--offset", "0:2", "--max-replays", "9")
    assert code == 8
    assert out.splitlines()[0].startswith("refused 0:2: discarded at ")
    assert out.splitlines()[0].endswith(": a discarded record is never replayed")
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "10")
    assert (code, out.splitlines()) == (0, [f"replayed 0:3 -> {orders} (kretry-replays=1)", "replayed 1, refused 0"])
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "discard", "--offset", "0:0", "--offset", "0:1")
    assert code == 8
    assert out.splitlines()[0].startswith("refused 0:0: already discarded at ")
    assert out.splitlines()[1].startswith(f"refused 0:1: already replayed to {orders} at ")
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["k1", "k3"]
    # Discarded and replayed records alike are settled: the cursor passed all four.
    assert committed(bootstrap, dlq.replay_group(dlq_topic), dlq_topic) == [4]
    ledger = {m["key"]: json.loads(m["payload"]) for m in committed_records(bootstrap, dlq.ledger_topic(dlq_topic))}
    assert {k: v["action"] for k, v in ledger.items()} == {
        "0:0": "discarded",
        "0:1": "replayed",
        "0:2": "discarded",
        "0:3": "replayed",
    }


def test_discard_marks_a_record_without_an_origin(bootstrap: str, new_topic: NewTopic) -> None:
    dlq_topic = new_topic("dlq")
    produce(bootstrap, dlq_topic, [(b"orphan", b"v", [(hdr.ERROR, b"RuntimeError: who knows")])])

    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "replay", "--count", "1")
    assert (code, out.splitlines()[0]) == (8, "refused 0:0: no kretry-origin-topic header")
    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "discard", "--offset", "0:0", "--json")
    assert code == 0, err
    assert json.loads(out) == {"dry_run": False, "discarded": [{"dlq": "0:0", "topic": None}], "refused": []}
    assert dlq.depth(settings_for(bootstrap, dlq_topic)) == dlq.Depth(total=1, pending=0)


def test_summary_groups_by_class_and_normalised_message(bootstrap: str, new_topic: NewTopic) -> None:
    orders, payments, dlq_topic = new_topic("orders"), new_topic("payments"), new_topic("dlq")
    produce(
        bootstrap,
        dlq_topic,
        [
            (None, b"1", with_class(orders, 1, "HTTPStatusError: 503 for order 1234", "httpx.HTTPStatusError")),
            (None, b"2", with_class(orders, 2, "HTTPStatusError: 503 for order 98", "httpx.HTTPStatusError")),
            (None, b"3", with_class(payments, 3, "HTTPStatusError: 503 for order 7", "httpx.HTTPStatusError", "b")),
            (None, b"4", dead(orders, 4, "KeyError: 'sku'")),
        ],
    )
    code, out, err = kretry(bootstrap, dlq_topic, "dlq", "summary", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {(e["group"], e["topic"], e["error"]): e["count"] for e in summary["by_error"]} == {
        ("svc", orders, "httpx.HTTPStatusError"): 2,
        ("b", payments, "httpx.HTTPStatusError"): 1,
        ("svc", orders, "KeyError"): 1,
    }
    assert summary["by_message"] == [
        {
            "error": "httpx.HTTPStatusError",
            "message": "# for order #",
            "count": 3,
            "by_topic": {orders: 2, payments: 1},
            "by_group": {"svc": 2, "b": 1},
        },
        {"error": "KeyError", "message": "'sku'", "count": 1, "by_topic": {orders: 1}, "by_group": {"svc": 1}},
    ]
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary", "--origin-topic", payments)
    assert out.splitlines()[0].startswith(f"DLQ {dlq_topic}: 1 records, oldest ")
    code, out, _ = kretry(bootstrap, dlq_topic, "dlq", "summary")
    lines = out.splitlines()
    at = lines.index("") + 1
    assert lines[at].split() == ["ERROR", "MESSAGE", "COUNT", "TOPICS", "GROUPS"]
    assert lines[at + 1].startswith("httpx.HTTPStatusError  # for order #  3")


def test_depth_counts_pending_per_the_ledger(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq", partitions=2)
    settings = settings_for(bootstrap, dlq_topic)
    assert dlq.depth(settings) == dlq.Depth(total=0, pending=0)
    produce(bootstrap, dlq_topic, [(b"a", b"v", dead(orders, i)) for i in range(3)], partition=0)
    produce(bootstrap, dlq_topic, [(b"b", b"v", dead(orders, 9))], partition=1)
    assert dlq.depth(settings) == dlq.Depth(total=4, pending=4)

    dlq.replay(settings, offsets=[(0, 0), (1, 0)])
    dlq.discard(settings, offsets=[(0, 1)])
    assert dlq.depth(settings) == dlq.Depth(total=4, pending=1)
    # What retention deletes leaves the depth, replayed or not.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_records([TopicPartition(dlq_topic, 0, 2)]).values():
        future.result(timeout=30)
    assert dlq.depth(settings) == dlq.Depth(total=2, pending=1)


def test_dlq_commands_without_app_or_dlq_topic_refuse(bootstrap: str, new_topic: NewTopic) -> None:
    dlq_topic = new_topic("dlq")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    env.update({"KRETRY_BOOTSTRAP_SERVERS": bootstrap, "PYTHONPATH": str(ROOT)})
    for args in (["peek"], ["summary"], ["replay", "--count", "1"], ["discard", "--count", "1"]):
        proc = subprocess.run(
            [sys.executable, "-m", "kretry.cli", "dlq", *args], env=env, cwd=ROOT, capture_output=True, timeout=60
        )
        assert proc.returncode == 4, proc.stderr
        assert "pass APP, set KRETRY_DLQ_TOPIC or give --dlq-topic NAME" in proc.stderr.decode()
    proc = subprocess.run(
        [sys.executable, "-m", "kretry.cli", "dlq", "peek", "--dlq-topic", dlq_topic],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_http_api_takes_the_same_filters(bootstrap: str, new_topic: NewTopic) -> None:
    orders, dlq_topic = new_topic("orders"), new_topic("dlq")
    produce(
        bootstrap,
        dlq_topic,
        [(b"k0", b"v", dead(orders, 0, "ValueError: x")), (b"k1", b"v", dead(orders, 1, "TimeoutError: y"))],
    )
    retrier = Retrier("svc", bootstrap_servers=bootstrap, dlq_topic=dlq_topic)
    retrier.handler(orders)(lambda msg: None)
    app = create_app(Worker(retrier), retrier.settings, loopback=True)

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8010") as client:
            peeked = await client.get("/v1/dead_set", params={"error": "valueerror", "since": "1d"})
            replayed = await client.post("/v1/dead_set/replay", json={"count": 5, "error": "timeout", "key": "k1"})
            everything = await client.get("/v1/dead_set", params={"state": "all"})
            return [peeked, replayed, everything]

    peeked, replayed, everything = asyncio.run(calls())
    assert [r["key"] for r in peeked.json()["records"]] == ["k0"]
    assert replayed.json()["replayed"] == [{"dlq": "0:1", "topic": orders, "replays": 1}]
    assert [(r["key"], r["state"]) for r in everything.json()["records"]] == [("k0", "pending"), ("k1", "replayed")]
    assert [m["key"] for m in committed_records(bootstrap, orders)] == ["k1"]
