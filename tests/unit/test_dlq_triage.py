"""The pure parts of DLQ triage: filters, times, states, the summary's error grouping, the HTTP arguments."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kretry import cli, dlq
from kretry import headers as hdr
from kretry.dlq import DeadRecord, Filter, LedgerEntry
from kretry.web.deadset import BadRequest, peek_args, replay_args

NOW = 1_700_000_000_000


def record(
    offset: int = 0,
    *,
    ts: int = NOW,
    key: bytes | None = b"k",
    error: str | None = "RuntimeError: boom",
    error_class: str | None = None,
    origin: str | None = "orders",
    group: str | None = "svc",
) -> DeadRecord:
    state = hdr.State(origin_topic=origin, group=group, error=error, error_class=error_class)
    return DeadRecord(0, offset, ts, key, b"v", [], state)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2h", NOW - 2 * 3_600_000),
        ("90s", NOW - 90_000),
        ("0s", NOW),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.5+00:00", 1_700_000_000_500),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        ("2023-11-14T22:13:20", 1_700_000_000_000),  # no offset: UTC
        ("2023-11-14", 1_699_920_000_000),
    ],
)
def test_parse_when(text: str, ms: int) -> None:
    assert dlq.parse_when(text, NOW) == ms


@pytest.mark.parametrize("text", ["", "yesterday", "-2h", "2 hours", "2023-13-01"])
def test_parse_when_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is neither an ISO-8601 time nor a duration"):
        dlq.parse_when(text, NOW)


def test_filter_says_why_a_record_does_not_match() -> None:
    r = record(ts=NOW)
    assert Filter().mismatch(r) is None
    assert (
        Filter(origin_topic="orders", error="BOOM", key="k", group="svc", since=NOW, until=NOW + 1).mismatch(r) is None
    )
    assert Filter(origin_topic="pay").mismatch(r) == "origin topic does not match"
    assert Filter(group="other").mismatch(r) == "kretry-group 'svc' is not 'other'"
    assert Filter(error="timeout").mismatch(r) == "kretry-error does not contain 'timeout'"
    assert Filter(key="x").mismatch(r) == "key 'k' is not 'x'"
    assert Filter(key="x").mismatch(record(key=None)) == "key None is not 'x'"
    assert Filter(since=NOW + 1).mismatch(r) == (
        "dead-lettered at 2023-11-14T22:13:20.000Z, before --since 2023-11-14T22:13:20.001Z"
    )
    assert Filter(until=NOW).mismatch(r) == (
        "dead-lettered at 2023-11-14T22:13:20.000Z, not before --until 2023-11-14T22:13:20.000Z"
    )
    assert dlq.matches(r, error="boom")
    assert not dlq.matches(r, key="x")


def test_status_of_and_refusals_by_ledger_action() -> None:
    replayed = LedgerEntry(timestamp=NOW, topic="orders", replays=1, at=0)
    discarded = LedgerEntry(timestamp=NOW, topic="orders", replays=0, at=0, action=dlq.DISCARDED)
    assert replayed.action == dlq.REPLAYED  # an entry written before discard existed
    assert dlq.status_of(record(), {}) == dlq.PENDING
    assert dlq.status_of(record(), {"0:0": replayed}) == dlq.REPLAYED
    assert dlq.status_of(record(), {"0:0": discarded}) == dlq.DISCARDED
    assert dlq.status_of(record(ts=NOW - 1), {"0:0": discarded}) == dlq.PENDING
    assert dlq.refusal(record(), {"0:0": discarded}, {"orders": 1}, 3) == (
        "discarded at 1970-01-01T00:00:00.000Z: a discarded record is never replayed"
    )
    assert dlq.discard_refusal(record(), {}) is None
    assert dlq.discard_refusal(record(), {"0:0": discarded}) == "already discarded at 1970-01-01T00:00:00.000Z"
    assert dlq.discard_refusal(record(), {"0:0": replayed}) == "already replayed to orders at 1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("error", "error_class", "kind", "message"),
    [
        ("HTTPStatusError: 503 for /orders/123", "httpx.HTTPStatusError", "httpx.HTTPStatusError", "# for /orders/#"),
        ("RuntimeError: boom", None, "RuntimeError", "boom"),
        ("TimeoutError", None, "TimeoutError", ""),
        ("ValueError:   a\n  b  ", None, "ValueError", "a b"),
        (None, None, "(none)", ""),
        ("E: " + "x" * 200, None, "E", "x" * 77 + "..."),
    ],
)
def test_error_kind_and_message(error: str | None, error_class: str | None, kind: str, message: str) -> None:
    r = record(error=error, error_class=error_class)
    assert dlq.error_kind(r) == kind
    assert dlq.error_message(r) == message


def test_summarize_groups_messages_and_states() -> None:
    records = [
        record(0, error="KeyError: 'a1'"),
        record(1, error="KeyError: 'a22'", origin="pay"),
        replace(record(2, error="KeyError: 'a3'", group="other"), status=dlq.REPLAYED),
    ]
    summary = dlq.summarize(records, dlq.PENDING)
    assert summary.total == 2
    assert summary.by_state == {"pending": 2, "replayed": 1, "discarded": 0}
    assert summary.to_json()["by_message"] == [
        {
            "error": "KeyError",
            "message": "'a#'",
            "count": 2,
            "by_topic": {"orders": 1, "pay": 1},
            "by_group": {"svc": 2},
        }
    ]
    assert dlq.summarize(records, dlq.ALL).total == 3


def test_peek_and_replay_args_take_the_filters() -> None:
    assert peek_args({"error": ["x"], "key": ["k"], "state": ["all"], "since": ["2h"]}, NOW) == {
        "count": 10,
        "origin_topic": None,
        "error": "x",
        "key": "k",
        "state": "all",
        "since": NOW - 2 * 3_600_000,
    }
    with pytest.raises(BadRequest, match="unknown parameter bogus"):
        peek_args({"bogus": ["x"]}, NOW)
    with pytest.raises(BadRequest, match="state must be one of pending, replayed, discarded, all"):
        peek_args({"state": ["gone"]}, NOW)
    with pytest.raises(BadRequest, match="'soon' is neither an ISO-8601 time nor a duration"):
        peek_args({"until": ["soon"]}, NOW)
    args = replay_args({"count": 2, "error": "timeout", "until": "2023-11-14T22:13:20Z"}, NOW)
    assert (args["error"], args["until"]) == ("timeout", NOW)
    with pytest.raises(BadRequest, match='"key" must be a non-empty string'):
        replay_args({"count": 2, "key": 3}, NOW)


def test_dlq_commands_share_their_selection_options(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("peek", "replay", "summary", "discard"):
        with pytest.raises(SystemExit):
            cli.main(["dlq", action, "--help"])
        out = capsys.readouterr().out
        for option in ("--origin-topic", "--error", "--key", "--since", "--until", "--group", "--dlq-topic"):
            assert option in out, (action, option)


def test_no_dlq_named_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KRETRY_DLQ_TOPIC", raising=False)
    assert cli.main(["dlq", "summary"]) == cli.EXIT_CONFIG == 4
    assert "pass APP, set KRETRY_DLQ_TOPIC or give --dlq-topic NAME" in capsys.readouterr().err
