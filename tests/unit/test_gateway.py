"""The gateway's pure pieces: configurations, counting, the timing wheel, records, sealing."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from kretry.gateway import configs, counts
from kretry.gateway.events import POST, RETRY, Count, Reply, Request, Scheduled, canonical, event_id, ms_ceil
from kretry.gateway.secrets import SEALED, Sealer, SecretKeyMissing
from kretry.gateway.topics import BUCKETS, HOP_MARGIN, Names, bucket_for, next_topic, route

CONFIG = {
    "identifier": "shop",
    "maxRetry": 3,
    "retryDelays": ["1s", "2s", "3s"],
    "integrations": [{"type": "HTTP", "config": {"url": "http://a/hook", "username": "u", "password": "p"}}],
}


def test_canonical_json_ignores_key_order_and_spacing() -> None:
    assert canonical({"b": [1, {"d": 1, "c": 2}], "a": "é"}) == '{"a":"é","b":[1,{"c":2,"d":1}]}'.encode()
    assert event_id("x", canonical({"a": 1})) != event_id("y", canonical({"a": 1}))


def test_times_are_kept_in_whole_milliseconds_rounded_up() -> None:
    assert ms_ceil(1.0001) == 1001
    assert ms_ceil(1.001) == 1001
    assert ms_ceil(1.0) == 1000


@pytest.mark.parametrize(
    ("remaining", "bucket"),
    [(0.5, None), (1.0, None), (1.0 + HOP_MARGIN, 1), (1.9, 1), (2.2, 2), (7.5, 4), (9000.0, 8192), (1e9, BUCKETS[-1])],
)
def test_the_wheel_takes_the_largest_bucket_that_leaves_room_for_the_hop(remaining: float, bucket: int | None) -> None:
    assert bucket_for(remaining) == bucket


def test_an_event_goes_to_the_bucket_that_fits_with_its_leave_time_or_to_the_due_topic() -> None:
    names = Names("p")
    later = Scheduled("shop", 1, 1_000_000 + 3_600_000, (0,))
    topic, moved = route(names, later, 1000.0)
    assert (topic, moved.leave_ms, moved.due_ms) == ("p.wait-2048s", 1_000_000 + 2_048_000, later.due_ms)
    soon = Scheduled("shop", 1, 1_000_900, (0,), leave_ms=5)
    topic, moved = route(names, soon, 1000.0)
    assert (topic, moved.leave_ms) == ("p.due", None)


def test_bucket_names_round_trip() -> None:
    names = Names("gw")
    assert names.bucket_delay(next_topic(names, 300.0)) == 256
    assert next_topic(names, 0.2) == "gw.due"
    assert names.bucket_delay("gw.wait-3s") is None
    assert names.bucket_delay("other.wait-2s") is None


def test_records_round_trip() -> None:
    event = Scheduled("shop", 2, 1234, (0, 2), leave_ms=999)
    assert Scheduled.read(event.headers()) == event
    assert Scheduled.read([("other", b"x")]) is None
    request = Request(RETRY, "r1", "", 0, "shop", b'{"a":1}', (1,), {1: "HTTP 500"}, False, 77, 2)
    assert Request.decode(request.encode()) == request
    assert Reply.decode(Reply("r1", 412, "no").encode()) == Reply("r1", 412, "no")
    count = Count(3, 10, 20, (("r1", 200, "ok"),))
    assert Count.decode(count.encode()) == count


def test_a_configuration_is_parsed_and_redacted() -> None:
    config = configs.parse(CONFIG)
    assert config.delays == (1.0, 2.0, 3.0)
    assert config.integrations[0].name == "HTTP http://a/hook"
    assert config.redacted()["integrations"][0]["config"]["password"] == "***"
    assert "p" not in repr(config.integrations[0]).replace("http", "")
    assert configs.parse({**CONFIG, "retryDelays": None, "retryHours": [1, 0.5, 2]}).delays == (3600.0, 1800.0, 7200.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"identifier": ""}, "identifier"),
        ({"maxRetry": True}, "maxRetry"),
        ({"retryDelays": ["1s", "2s"]}, "retryDelays"),
        ({"retryDelays": ["1s", "soon", "3s"]}, "retryDelays[1]"),
        ({"retryHours": [1, 2, 3]}, "retryHours"),  # both
        ({"integrations": [{"type": "HTTP", "config": {"url": "ftp://a/"}}]}, "integrations[0].config.url"),
        ({"integrations": [{"type": "SQS"}]}, "integrations[0].config"),
        ({"integrations": ["x"]}, "integrations[0]"),
    ],
)
def test_a_configuration_that_cannot_work_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(configs.Invalid) as caught:
        configs.parse({**CONFIG, **change})
    assert caught.value.field == field


def _post(rid: str = "r1", deadline: int = 10_000) -> Request:
    return Request(POST, rid, "me", deadline, "shop", b"{}")


def test_posts_are_scheduled_at_the_nth_entry_until_max_retry() -> None:
    config = configs.parse(CONFIG)
    count = None
    texts = []
    for i in range(4):
        decision = counts.decide(_post(f"r{i}"), count, config, 1000, 60_000)
        texts.append((decision.status, decision.text))
        if decision.schedule is not None:
            assert decision.schedule.due_ms == 1000 + (i + 1) * 1000
        count = decision.count or count
    assert texts == [
        (200, counts.FIRST),
        (200, "The event scheduled for retry 2"),
        (200, "The event scheduled for retry 3"),
        (412, counts.EXCEEDED),
    ]


def test_a_request_read_again_is_answered_not_counted_again() -> None:
    config = configs.parse(CONFIG)
    first = counts.decide(_post("same"), None, config, 1000, 60_000)
    again = counts.decide(_post("same"), first.count, config, 1000, 60_000)
    assert (again.status, again.text, again.schedule, again.count) == (200, counts.FIRST, None, None)


def test_a_count_is_forgotten_after_its_ttl() -> None:
    config = configs.parse(CONFIG)
    first = counts.decide(_post("a"), None, config, 1000, 5000)
    assert first.count is not None
    assert first.count.expires_ms == 2000 + 5000
    later = counts.decide(_post("b", deadline=10**9), first.count, config, 7001, 5000)
    assert later.text == counts.FIRST


def test_a_post_past_its_deadline_is_never_scheduled() -> None:
    decision = counts.decide(_post(deadline=999), None, configs.parse(CONFIG), 1000, 60_000)
    assert (decision.status, decision.schedule) == (503, None)


def test_a_failed_delivery_is_scheduled_at_the_next_entry_for_what_failed_then_dead_lettered() -> None:
    config = configs.parse({**CONFIG, "integrations": CONFIG["integrations"] * 2})  # type: ignore[operator]
    retry = Request(RETRY, "f1", "", 0, "shop", b"{}", (1,), {1: "HTTP 500"}, False, 5000, 1)
    decision = counts.decide(retry, Count(1, 0, 10**9), config, 1000, 60_000)
    assert decision.schedule == Scheduled("shop", 2, 5000, (1,))  # Retry-After later than the 2 s entry
    exhausted = counts.decide(retry, Count(3, 0, 10**9), config, 1000, 60_000)
    assert exhausted.schedule is None
    assert exhausted.dead is not None
    assert "exhausted" in exhausted.dead
    final = Request(RETRY, "f2", "", 0, "shop", b"{}", (0,), {0: "HTTP 404"}, True, 0, 1)
    assert counts.decide(final, None, config, 1000, 60_000).dead == "delivery refused for good"
    assert counts.decide(retry, None, None, 1000, 60_000).dead == "its configuration was deleted"


def test_secrets_are_sealed_and_opened_with_the_key_only() -> None:
    sealer = Sealer(SecretStr("key"))
    sealed = sealer.seal(configs.parse(CONFIG).stored)
    password = sealed["integrations"][0]["config"]["password"]
    assert password.startswith(SEALED)
    assert sealer.unseal(sealed)["integrations"][0]["config"]["password"] == "p"
    with pytest.raises(SecretKeyMissing):
        Sealer(SecretStr("other")).unseal(sealed)
    with pytest.raises(SecretKeyMissing):
        Sealer(None).unseal(sealed)
    assert Sealer(None).seal(configs.parse(CONFIG).stored)["integrations"][0]["config"]["password"] == "p"
