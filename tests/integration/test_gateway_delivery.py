"""Delivery by the gateway on a real broker, to real HTTP receivers and a real SQS server (ElasticMQ): at the due
time, never before; only what failed is retried; the DLQ after the last retry; counts exact across instances;
nothing accepted is lost when an instance is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from kretry.gateway.events import OUTCOMES
from tests.conftest import Broker
from tests.integration.gateways import config, process, serving
from tests.integration.kit import unique
from tests.integration.receiver import Receiver, Reply
from tests.integration.sqs import ACCESS_KEY, REGION, SECRET_KEY, receive_all, sqs_client


def _post(url: str, identifier: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/event", json={"identifier": identifier, "eventBody": body}, timeout=30)


def _dead_letters(bootstrap: str, dlq: str, expected: int, timeout: float = 30.0) -> list[dict[str, object]]:
    """``kretry dlq peek --json`` as an operator runs it, until ``expected`` records are there."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-m", "kretry.cli", "dlq", "peek", "--dlq-topic", dlq, "--count", "1000", "--json"],
            capture_output=True,
            timeout=60,
            env={"KRETRY_BOOTSTRAP_SERVERS": bootstrap, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if len(records) >= expected:
            return records
        time.sleep(0.5)
    raise AssertionError(f"{len(records)} dead letters within {timeout}s, expected {expected}")


def test_http_and_sqs_get_the_json_body_at_the_due_time_never_before(
    gateway_prefix: str, kafka: Broker, receiver: Receiver, sqs_endpoint: str, sqs_queue: Callable[[], str]
) -> None:
    queue = sqs_queue()
    prefix = gateway_prefix
    with serving(kafka.bootstrap, prefix, gateway_sqs_endpoint_url=sqs_endpoint) as (_, url):
        identifier = unique("id")
        body = {
            **config(identifier, [], ["1500ms"]),
            "integrations": [
                {"type": "HTTP", "config": {"url": receiver.url("/hook"), "username": "svc", "password": "pw"}},
                {
                    "type": "SQS",
                    "config": {"url": queue, "region": REGION, "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY},
                },
            ],
        }
        assert httpx.post(f"{url}/v1/config", json=body).status_code == 200
        posted = time.time()
        assert _post(url, identifier, {"order": 42, "note": "ünïcode"}).status_code == 200
        [request] = receiver.wait_for(1)
        messages = receive_all(sqs_client(sqs_endpoint), queue, 1)
        metrics = httpx.get(f"{url}/metrics").text
    for kind in ("HTTP", "SQS"):
        line = f'kretry_gateway_deliveries_total{{identifier="{identifier}",outcome="delivered",type="{kind}"}} 1.0'
        assert line in metrics
    assert f'kretry_gateway_posts_total{{identifier="{identifier}",status="200"}} 1.0' in metrics
    assert json.loads(request.body) == {"order": 42, "note": "ünïcode"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Basic c3ZjOnB3"  # svc:pw
    assert request.at >= posted + 1.5  # never early
    assert json.loads(messages[0]["Body"]) == {"order": 42, "note": "ünïcode"}


def test_only_the_integrations_that_failed_are_retried(gateway_prefix: str, kafka: Broker) -> None:
    with (
        Receiver() as good,
        Receiver(default=Reply(200)) as flaky,
        serving(kafka.bootstrap, gateway_prefix) as (_, url),
    ):
        flaky.script(Reply(500), Reply(503))
        identifier = unique("id")
        cfg = config(identifier, [good.url("/good"), flaky.url("/flaky")], ["100ms", "300ms", "300ms"])
        assert httpx.post(f"{url}/v1/config", json=cfg).status_code == 200
        assert _post(url, identifier, {"n": 1}).status_code == 200
        flaky.wait_for(3)
        time.sleep(1.0)  # room for a wrong extra delivery to show
        assert len(good.requests) == 1
        assert len(flaky.requests) == 3


def test_after_the_last_retry_the_event_is_dead_lettered_with_its_outcomes(gateway_prefix: str, kafka: Broker) -> None:
    prefix = gateway_prefix
    with Receiver(default=Reply(503)) as down, serving(kafka.bootstrap, prefix) as (_, url):
        identifier = unique("id")
        assert (
            httpx.post(f"{url}/v1/config", json=config(identifier, [down.url("/x")], ["100ms", "200ms"])).status_code
            == 200
        )
        assert _post(url, identifier, {"n": 7}).status_code == 200
        [dead] = _dead_letters(kafka.bootstrap, f"{prefix}.dlq", 1)
        assert len(down.requests) == 2  # maxRetry deliveries, no more
    assert json.loads(str(dead["value"])) == {"n": 7}
    assert "retries exhausted" in str(dead["error"])
    assert "HTTP 503" in str(dead["error"])
    headers = dead["headers"]
    assert isinstance(headers, dict)
    assert headers["kretry-gateway-identifier"] == identifier
    assert "HTTP 503" in headers[OUTCOMES]
    assert dead["origin"] == {"topic": f"{prefix}.due", "partition": None, "offset": None}


def test_a_4xx_dead_letters_at_once_and_a_replay_delivers_it_again(gateway_prefix: str, kafka: Broker) -> None:
    prefix = gateway_prefix
    with Receiver(default=Reply(200)) as target, serving(kafka.bootstrap, prefix) as (_, url):
        target.script(Reply(404))
        identifier = unique("id")
        assert (
            httpx.post(f"{url}/v1/config", json=config(identifier, [target.url("/x")], ["100ms"] * 3)).status_code
            == 200
        )
        assert _post(url, identifier, {"n": 1}).status_code == 200
        [dead] = _dead_letters(kafka.bootstrap, f"{prefix}.dlq", 1)
        assert "HTTP 404" in str(dead["error"])
        assert len(target.requests) == 1
        replay = subprocess.run(
            [sys.executable, "-m", "kretry.cli", "dlq", "replay", "--dlq-topic", f"{prefix}.dlq", "--count", "10"],
            capture_output=True,
            timeout=60,
            env={"KRETRY_BOOTSTRAP_SERVERS": kafka.bootstrap, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert replay.returncode == 0, replay.stderr
        second = target.wait_for(2)[1]
    assert json.loads(second.body) == {"n": 1}


def test_identical_posts_at_once_on_two_instances_are_counted_exactly(gateway_prefix: str, kafka: Broker) -> None:
    prefix = gateway_prefix
    with serving(kafka.bootstrap, prefix) as (_, one), serving(kafka.bootstrap, prefix) as (_, two):
        identifier = unique("id")
        assert (
            httpx.post(f"{one}/v1/config", json=config(identifier, ["http://127.0.0.1:9/x"], ["1h"] * 3)).status_code
            == 200
        )
        two_view = time.monotonic() + 5
        while httpx.get(f"{two}/v1/config/{identifier}").status_code != 200:  # posted to one, used by the other
            assert time.monotonic() < two_view, "the configuration did not reach the other instance within 5 s"
            time.sleep(0.05)
        start = threading.Barrier(24)

        def post(i: int) -> int:
            start.wait()
            return _post(one if i % 2 else two, identifier, {"same": True}).status_code

        with ThreadPoolExecutor(24) as pool:
            statuses = Counter(pool.map(post, range(24)))
    assert statuses == {200: 3, 412: 21}


def test_every_accepted_event_is_delivered_or_dead_lettered_when_an_instance_is_killed(
    gateway_prefix: str, kafka: Broker, tmp_path: Path
) -> None:
    prefix = gateway_prefix
    with Receiver(default=Reply(200)) as target:
        first, url_one = process(kafka.bootstrap, prefix, tmp_path / "one.log")
        second, url_two = process(kafka.bootstrap, prefix, tmp_path / "two.log")
        try:
            identifier = unique("id")
            cfg = config(identifier, [target.url("/x")], ["1s", "1s", "1s"])
            assert httpx.post(f"{url_one}/v1/config", json=cfg).status_code == 200
            time.sleep(1.0)
            accepted: set[int] = set()
            for i in range(300):
                url = url_one if i % 2 else url_two
                if first.poll() is not None:
                    url = url_two
                try:
                    if _post(url, identifier, {"i": i}).status_code == 200:
                        accepted.add(i)
                except httpx.HTTPError:
                    pass  # the killed instance: its post was never answered 200
                if i == 150:
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                delivered = {json.loads(r.body)["i"] for r in target.requests}
                if accepted <= delivered:
                    break
                time.sleep(0.5)
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
    delivered = {json.loads(r.body)["i"] for r in target.requests}
    assert len(accepted) > 250
    assert accepted - delivered == set(), f"lost: {sorted(accepted - delivered)[:20]}"


def test_a_deleted_configurations_pending_events_are_dead_lettered_with_that_reason(
    gateway_prefix: str, kafka: Broker, receiver: Receiver
) -> None:
    with serving(kafka.bootstrap, gateway_prefix) as (_, url):
        identifier = unique("id")
        cfg = config(identifier, [receiver.url("/x")], ["1500ms"])
        assert httpx.post(f"{url}/v1/config", json=cfg).status_code == 200
        assert _post(url, identifier, {"n": 3}).status_code == 200
        assert httpx.delete(f"{url}/v1/config/{identifier}").status_code == 200
        [dead] = _dead_letters(kafka.bootstrap, f"{gateway_prefix}.dlq", 1)
    assert "configuration was deleted" in str(dead["error"])
    assert json.loads(str(dead["value"])) == {"n": 3}
    assert receiver.requests == []
