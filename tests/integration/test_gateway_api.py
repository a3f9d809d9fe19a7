"""Pretry's API on a real broker: the status codes and bodies a Pretry client relies on, under both prefixes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from kretry.gateway.secrets import SEALED
from tests.conftest import Broker
from tests.integration.gateways import config, delete_prefix, serving
from tests.integration.kit import unique

PRETRY_EXAMPLE = {
    "identifier": "identifier-1",
    "maxRetry": 3,
    "retryHours": [1, 2, 3],
    "integrations": [
        {"type": "HTTP", "config": {"url": "http://127.0.0.1:9/hook", "username": "user", "password": "hunter2"}},
        {
            "type": "SQS",
            "config": {
                "url": "http://127.0.0.1:9/000000000000/q",
                "region": "eu-west-1",
                "secretKey": "s3cr3t",
                "accessKey": "AKIAEXAMPLE",
            },
        },
    ],
}


@pytest.fixture(scope="module")
def gateway(kafka: Broker) -> Iterator[str]:
    prefix = unique("gw")
    try:
        with serving(kafka.bootstrap, prefix) as (_, url):
            yield url
    finally:
        delete_prefix(kafka.bootstrap, prefix)


@pytest.mark.parametrize("prefix", ["/v1", "/pretry/v1"])
def test_pretry_config_then_events_then_max_retry(gateway: str, prefix: str) -> None:
    body = {**PRETRY_EXAMPLE, "identifier": unique("id")}
    created = httpx.post(f"{gateway}{prefix}/config", json=body)
    assert (created.status_code, created.text) == (200, "Configurations are created!")
    again = httpx.post(f"{gateway}{prefix}/config", json=body)
    assert (again.status_code, again.text) == (400, "Configuration is already set for this identifier!")

    event = {"identifier": body["identifier"], "eventBody": {"order": 7, "lines": [1, 2]}}
    answers = [httpx.post(f"{gateway}{prefix}/event", json=event) for _ in range(4)]
    assert [(a.status_code, a.text) for a in answers] == [
        (200, "The event scheduled for retry first time!"),
        (200, "The event scheduled for retry 2"),
        (200, "The event scheduled for retry 3"),
        (412, "The event retry exceed due to reached max retry count!"),
    ]
    assert answers[0].headers["content-type"].startswith("text/plain")


def test_the_same_event_is_the_same_json_value_whatever_its_key_order_or_spacing(gateway: str) -> None:
    body = config(unique("id"), ["http://127.0.0.1:9/x"], ["1h", "2h"])
    assert httpx.post(f"{gateway}/v1/config", json=body).status_code == 200
    one = json.dumps({"identifier": body["identifier"], "eventBody": {"a": 1, "b": {"c": [1, 2]}}})
    two = '{"eventBody": {"b": {"c": [1,2]},   "a": 1}, "identifier": "IDENT"}'.replace("IDENT", body["identifier"])
    other = json.dumps({"identifier": body["identifier"], "eventBody": {"a": 2}})
    texts = [httpx.post(f"{gateway}/v1/event", content=c).text for c in (one, two, other)]
    assert texts == [
        "The event scheduled for retry first time!",
        "The event scheduled for retry 2",
        "The event scheduled for retry first time!",
    ]


def test_an_event_for_an_unknown_identifier_is_404(gateway: str) -> None:
    answer = httpx.post(f"{gateway}/v1/event", json={"identifier": unique("nobody"), "eventBody": {}})
    assert (answer.status_code, answer.text) == (404, "Configurations are not found for this identifier!")


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        ("{not json", 400, "malformed JSON"),
        ('{"identifier": "x", "eventBody": [1, 2]}', 400, "eventBody must be a JSON object"),
        ('{"identifier": "x", "eventBody": "text"}', 400, "eventBody must be a JSON object"),
        ('["identifier"]', 400, "JSON object"),
        ('{"eventBody": {}}', 400, "identifier"),
    ],
)
def test_a_bad_event_body_is_400(gateway: str, content: str, status: int, says: str) -> None:
    answer = httpx.post(f"{gateway}/v1/event", content=content)
    assert answer.status_code == status
    assert says in answer.json()["error"]


def test_a_body_over_the_limit_is_413_and_an_unknown_path_404(gateway: str) -> None:
    big = json.dumps({"identifier": "x", "eventBody": {"blob": "x" * (2 * 1024 * 1024)}})
    assert httpx.post(f"{gateway}/v1/event", content=big).status_code == 413
    missing = httpx.get(f"{gateway}/v2/nothing")
    assert missing.status_code == 404
    assert "no such endpoint" in missing.json()["error"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"retryHours": [1, 2]}, "retryHours"),
        ({"retryHours": [1, None, 3]}, "retryHours[1]"),
        ({"retryHours": [1, -2, 3]}, "retryHours[1]"),
        ({"maxRetry": 0, "retryHours": []}, "maxRetry"),
        ({"retryDelays": ["1s", "2s", "3s"]}, "retryHours"),  # both given
        ({"integrations": [{"type": "HTTP", "config": {"username": "u"}}]}, "integrations[0].config.url"),
        ({"integrations": [{"type": "FTP", "config": {"url": "http://x/"}}]}, "integrations[0].type"),
        ({"integrations": []}, "integrations"),
    ],
)
def test_a_configuration_that_cannot_work_is_422_naming_the_field(gateway: str, change: dict, field: str) -> None:
    body = {**PRETRY_EXAMPLE, "identifier": unique("id"), **change}
    answer = httpx.post(f"{gateway}/v1/config", json=body)
    assert answer.status_code == 422
    assert answer.json()["field"] == field


def test_configurations_are_listed_and_shown_with_their_secrets_redacted(gateway: str) -> None:
    body = {**PRETRY_EXAMPLE, "identifier": unique("id")}
    assert httpx.post(f"{gateway}/v1/config", json=body).status_code == 200
    shown = httpx.get(f"{gateway}/v1/config/{body['identifier']}").json()
    http, sqs = shown["integrations"]
    assert http["config"] == {"url": "http://127.0.0.1:9/hook", "username": "user", "password": "***"}
    assert (sqs["config"]["secretKey"], sqs["config"]["accessKey"]) == ("***", "***")
    listed = httpx.get(f"{gateway}/v1/config").text
    assert body["identifier"] in listed
    assert "hunter2" not in listed
    assert "s3cr3t" not in listed
    assert httpx.get(f"{gateway}/v1/config/{unique('nobody')}").status_code == 404


def test_a_deleted_configuration_refuses_new_events(gateway: str) -> None:
    body = config(unique("id"), ["http://127.0.0.1:9/x"], ["1h"])
    assert httpx.post(f"{gateway}/v1/config", json=body).status_code == 200
    deleted = httpx.delete(f"{gateway}/v1/config/{body['identifier']}")
    assert deleted.status_code == 200
    assert httpx.delete(f"{gateway}/v1/config/{body['identifier']}").status_code == 404
    answer = httpx.post(f"{gateway}/v1/event", json={"identifier": body["identifier"], "eventBody": {}})
    assert answer.status_code == 404


def test_with_a_token_every_api_route_asks_for_it(gateway_prefix: str, kafka: Broker) -> None:
    with serving(kafka.bootstrap, gateway_prefix, gateway_token="let-me-in") as (_, url):
        body = config(unique("id"), ["http://127.0.0.1:9/x"], ["1h"])
        assert httpx.post(f"{url}/v1/config", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{url}/pretry/v1/event", json={}, headers=wrong).status_code == 401
        right = {"Authorization": "Bearer let-me-in"}
        assert httpx.post(f"{url}/v1/config", json=body, headers=right).status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open


def test_secrets_are_sealed_at_rest_with_a_key(gateway_prefix: str, kafka: Broker) -> None:
    prefix = gateway_prefix
    with serving(kafka.bootstrap, prefix, gateway_secret_key="k" * 32) as (gateway, url):
        body = {**PRETRY_EXAMPLE, "identifier": unique("id")}
        assert httpx.post(f"{url}/v1/config", json=body).status_code == 200
        raw = _read_all(kafka.bootstrap, gateway.names.configs)
    assert raw, "the configuration was not written"
    assert b"hunter2" not in raw
    assert b"s3cr3t" not in raw
    assert SEALED.encode() in raw


def test_a_post_the_broker_does_not_take_in_time_is_503(gateway_prefix: str, kafka: Broker) -> None:
    """The requests and counts topics gone (auto-creation is off): whichever way the post is decided, here or by
    another owner, it is never acknowledged, and never answered 200."""
    from confluent_kafka.admin import AdminClient

    prefix = gateway_prefix
    with serving(kafka.bootstrap, prefix, gateway_accept_timeout=2.0) as (gateway, url):
        body = config(unique("id"), ["http://127.0.0.1:9/x"], ["1h"])
        assert httpx.post(f"{url}/v1/config", json=body).status_code == 200
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        for future in admin.delete_topics([gateway.names.requests, gateway.names.counts]).values():
            future.result(30)
        answer = httpx.post(f"{url}/v1/event", json={"identifier": body["identifier"], "eventBody": {}}, timeout=30)
    assert answer.status_code == 503


def _read_all(bootstrap: str, topic: str) -> bytes:
    import subprocess

    out = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%k %s\n"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def _decided(url: str) -> dict[str, float]:
    """The instance's posts by where they were decided, from its /metrics."""
    out = {"here": 0.0, "owner": 0.0}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("kretry_gateway_posts_decided_total{"):
            where = line.split('where="', 1)[1].split('"', 1)[0]
            out[where] = float(line.rsplit(" ", 1)[1])
    return out


def test_one_instance_decides_every_post_itself_and_two_share_them_counting_exactly(
    gateway_prefix: str, kafka: Broker
) -> None:
    """Alone, an instance owns every partition: each post is one round trip. With two, a post of an event the other
    owns goes through the requests topic; the same event posted to both in turn is still counted exactly."""
    with serving(kafka.bootstrap, gateway_prefix) as (_, one):
        identifier = unique("id")
        assert httpx.post(f"{one}/v1/config", json=config(identifier, ["http://127.0.0.1:9/x"], ["1h"] * 4)).is_success
        for i in range(10):
            assert httpx.post(f"{one}/v1/event", json={"identifier": identifier, "eventBody": {"i": i}}).is_success
        assert _decided(one) == {"here": 10, "owner": 0}

        with serving(kafka.bootstrap, gateway_prefix) as (_, two):
            wait_until_both_own_a_partition = time.monotonic() + 30
            while True:  # the first instance gave a partition up once the second joined
                event = {"identifier": identifier, "eventBody": {"probe": time.monotonic()}}
                before = _decided(one)["owner"]
                assert httpx.post(f"{one}/v1/event", json=event, timeout=30).is_success
                if _decided(one)["owner"] > before:
                    break
                assert time.monotonic() < wait_until_both_own_a_partition, "no partition moved to the second"
            answers = []
            for n in range(6):
                for i in range(10):
                    url = one if (n + i) % 2 else two
                    answer = httpx.post(f"{url}/v1/event", json={"identifier": identifier, "eventBody": {"k": i}})
                    answers.append((i, answer.status_code, answer.text))
            by_event = {i: [(s, t) for j, s, t in answers if j == i] for i in range(10)}
            for i, seen in by_event.items():
                assert seen == [
                    (200, "The event scheduled for retry first time!"),
                    (200, "The event scheduled for retry 2"),
                    (200, "The event scheduled for retry 3"),
                    (200, "The event scheduled for retry 4"),
                    (412, "The event retry exceed due to reached max retry count!"),
                    (412, "The event retry exceed due to reached max retry count!"),
                ], i
            assert _decided(one)["here"] > 10
            assert _decided(two)["here"] > 0
            assert _decided(two)["owner"] > 0


def test_the_compacted_topics_roll_their_segments_every_ten_minutes(gateway_prefix: str, kafka: Broker) -> None:
    """A new owner reads its partition of the counts topic whole: compaction, which cleans closed segments only, must
    not wait for the broker's 7-day roll."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    with serving(kafka.bootstrap, gateway_prefix) as (gateway, _):
        names = [gateway.names.counts, gateway.names.configs]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        found = future.result(30)
        assert (found["cleanup.policy"].value, found["segment.ms"].value) == ("compact", "600000"), resource
