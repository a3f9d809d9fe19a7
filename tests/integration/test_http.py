"""`kretry run --http-port`: metrics, health and the dead set over real HTTP, after a known flow."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kretry import Retrier, Worker
from kretry.errors import ConfigError
from kretry.web import Server
from tests.integration.kit import create_topics, produce, read_all, unique, wait_until
from tests.integration.test_process import APP, app_env
from tests.integration.workers import kretry_process, running, stop

NewTopic = Callable[..., str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: Any = None, method: str | None = None, raw: bytes | None = None) -> tuple[int, str]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    if data is not None:
        # The endpoint refuses any other body type (a cross-site "simple" POST); urllib's default is a form.
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""  # not listening yet


def counter(metrics: str, topic: str, stage: str, outcome: str) -> float:
    pattern = rf'^kretry_messages_total\{{outcome="{outcome}",stage="{stage}",topic="{topic}"\}} (\S+)$'
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_dead_set_and_replay_over_http(bootstrap: str, new_topic: NewTopic, tmp_path: Path) -> None:
    topic = new_topic("http")
    env = app_env(bootstrap, [topic], tmp_path / "ledger.jsonl", delays="100ms")
    base = f"http://127.0.0.1:{free_port()}"
    proc = kretry_process(APP, env, "--http-port", base.rsplit(":", 1)[1], log=tmp_path / "worker.log")
    try:
        wait_until(lambda: call(base + "/readyz")[0] == 200, timeout=60, what="/readyz 200")
        assert call(base + "/healthz") == (200, '{"status": "alive"}\n')
        produce(bootstrap, topic, [(f"k{i}".encode(), f"ok-{i}".encode(), None) for i in range(3)])
        produce(bootstrap, topic, [(f"p{i}".encode(), f"poison-{i}".encode(), [("app", b"x")]) for i in range(2)])

        def metrics() -> str:
            return call(base + "/metrics")[1]

        wait_until(lambda: counter(metrics(), topic, "retry_1", "dead_lettered") == 2, timeout=30, what="2 dead")
        text = metrics()
        assert counter(text, topic, "main", "success") == 3
        assert counter(text, topic, "main", "retried") == 2
        assert counter(text, topic, "retry_1", "success") == 0

        status, body = call(f"{base}/v1/dead_set?count=10&topic={topic}")
        assert status == 200
        records = json.loads(body)["records"]
        assert sorted(r["key"] for r in records) == ["p0", "p1"]
        assert all(r["error"] == "RuntimeError: failing on purpose at attempt 1" for r in records)
        assert all(r["replays"] == 0 and r["headers"] == {"app": "x"} for r in records)

        status, body = call(base + "/v1/dead_set/replay", {"count": 10, "topic": topic})
        assert status == 200, body
        report = json.loads(body)
        assert sorted(r["dlq"] for r in report["replayed"]) == sorted(r["dlq"] for r in records)
        assert report["refused"] == []
        # The replayed records fail again: through main and retry_1 back into the DLQ, now with kretry-replays=1.
        wait_until(lambda: counter(metrics(), topic, "retry_1", "dead_lettered") == 4, timeout=30, what="4 dead")
        assert counter(metrics(), topic, "main", "retried") == 4
        again = json.loads(call(f"{base}/v1/dead_set?count=10")[1])["records"]
        assert sorted(r["key"] for r in again) == ["p0", "p1"]
        assert all(r["replays"] == 1 for r in again)

        status, body = call(base + "/v1/dead_set/replay", {"offsets": [records[0]["dlq"]]})
        assert status == 200
        assert json.loads(body)["refused"][0]["refused"].startswith(f"already replayed to {topic}")

        assert call(base + "/v1/dead_set/replay", raw=b"{not json")[0] == 400
        assert call(base + "/v1/dead_set/replay", {"count": 1, "offsets": ["0:0"]}) == (
            400,
            '{"error": "give either \\"count\\" or \\"offsets\\""}\n',
        )
        assert call(base + "/v1/dead_set/replay", {"offsets": ["zero"]})[0] == 400
        assert call(base + "/v1/dead_set?count=-1") == (400, '{"error": "count must be between 1 and 1000, got -1"}\n')
        assert call(base + "/v1/dead_set/replay")[0] == 405
        assert call(base + "/nope") == (404, '{"error": "no such endpoint: GET /nope"}\n')
    finally:
        assert stop(proc) == 0


def test_readyz_is_503_until_the_stages_are_assigned(bootstrap: str) -> None:
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    retrier.handler(unique("t"))(lambda msg: None)
    worker = Worker(retrier)  # never started: no stage has an assignment
    server = Server(worker, "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = call(base + "/readyz")
        assert (status, json.loads(body)) == (503, {"ready": False, "reason": "stages not assigned yet"})
        assert call(base + "/healthz")[0] == 200
        status, body = call(base + "/metrics")
        assert status == 200
        assert "# TYPE kretry_messages_total counter" in body
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"):
            Server(worker, "127.0.0.1", server.port)
    finally:
        server.stop()


def test_the_dead_set_is_masked_as_the_retriers_mask_says(bootstrap: str) -> None:
    """The console hides what ``Retrier(mask=...)`` names; so does the worker's endpoint, the record untouched."""
    topic, dlq_topic = unique("masked"), unique("dlq")
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=dlq_topic, mask=["email"])

    @retrier.handler(topic, delays=["0s"])
    def handle(msg: Any) -> None:
        raise RuntimeError("failing on purpose")

    value = json.dumps({"user": 7, "contact": {"email": "ada@example.com"}}).encode()
    create_topics(bootstrap, [topic])
    with running(retrier) as worker:
        server = Server(worker, "127.0.0.1", 0)
        server.start()
        try:
            produce(bootstrap, topic, [(b"k", value, [("email", b"ada@example.com"), ("trace", b"t-1")])])
            base = f"http://127.0.0.1:{server.port}"

            def dead() -> list[dict[str, Any]]:
                status, body = call(f"{base}/v1/dead_set?count=10&topic={topic}")
                return list(json.loads(body)["records"]) if status == 200 else []

            wait_until(lambda: len(dead()) == 1, timeout=60, what="the record in the DLQ")
            [record] = dead()
        finally:
            server.stop()
    assert json.loads(record["value"]) == {"user": 7, "contact": {"email": "***"}}
    assert record["headers"]["email"] == "***"
    assert record["headers"]["trace"] == "t-1"
    assert record["masked"] == "fields email masked"
    [stored] = read_all(bootstrap, dlq_topic, 1)
    assert stored.value() == value  # the DLQ keeps the record as it was
