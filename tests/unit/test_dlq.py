from __future__ import annotations

from types import ModuleType

import pytest

from kretry import cli, dlq
from kretry import headers as hdr
from kretry.dlq import DeadRecord, LedgerEntry
from kretry.errors import ReplayInProgress


def record(
    partition: int = 0,
    offset: int = 0,
    *,
    ts: int = 1000,
    origin: str | None = "orders",
    error: str | None = "RuntimeError: boom",
    replays: int | None = None,
    group: str | None = None,
) -> DeadRecord:
    state = hdr.State(
        origin_topic=origin, origin_partition=1, origin_offset=5, error=error, replays=replays, group=group
    )
    return DeadRecord(partition, offset, ts, b"k", b"v", [("trace", b"1")], state)


@pytest.mark.parametrize(("text", "expected"), [("0:42", (0, 42)), (" 3:0 ", (3, 0)), ("12:1234567", (12, 1234567))])
def test_parse_position(text: str, expected: tuple[int, int]) -> None:
    assert dlq.parse_position(text) == expected
    assert dlq.parse_position(dlq.format_position(expected)) == expected


@pytest.mark.parametrize("text", ["", "0", "0:", ":1", "a:1", "1:b", "-1:2", "1:-2", "1:2:3", "1.5:2"])
def test_parse_position_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected PARTITION:OFFSET"):
        dlq.parse_position(text)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("RuntimeError: boom", "RuntimeError"),
        ("TimeoutError", "TimeoutError"),
        ("a: b: c", "a"),
        (None, "(none)"),
        ("", "(none)"),
        (": nothing before", "(none)"),
    ],
)
def test_error_type(error: str | None, kind: str) -> None:
    assert dlq.error_type(error) == kind


def test_summarize_counts_by_topic_and_error_type() -> None:
    summary = dlq.summarize(
        [
            record(offset=0, ts=300),
            record(offset=1, ts=100, error="RuntimeError: other"),
            record(offset=2, ts=200, error="KeyError: 'x'"),
            record(offset=3, ts=250, origin="payments", error=None, group="svc"),
            record(offset=4, ts=400, origin=None, group="svc"),
        ]
    )
    assert summary.total == 5
    assert summary.by_topic == {"orders": 3, "payments": 1, "(unknown)": 1}
    assert summary.by_group == {"(unknown)": 3, "svc": 2}
    assert summary.by_error == {
        ("(unknown)", "orders", "RuntimeError"): 2,
        ("(unknown)", "orders", "KeyError"): 1,
        ("svc", "payments", "(none)"): 1,
        ("svc", "(unknown)", "RuntimeError"): 1,
    }
    assert (summary.oldest, summary.newest) == (100, 400)
    assert dlq.summarize([]).to_json() == {
        "state": "all",
        "total": 0,
        "by_state": {"pending": 0, "replayed": 0, "discarded": 0},
        "by_topic": {},
        "by_group": {},
        "by_error": [],
        "by_message": [],
        "oldest": None,
        "newest": None,
    }


def test_matches_and_oldest_first() -> None:
    a, b, c = record(0, 0, ts=30), record(1, 0, ts=10, origin="pay", error="ValueError: x"), record(0, 1, ts=20)
    assert dlq.matches(a)
    assert not dlq.matches(a, origin_topic="pay")
    assert dlq.matches(b, error="valueerror")
    assert not dlq.matches(a, error="valueerror")
    assert dlq.matches(record(group="svcA"), group="svcA")
    assert not dlq.matches(record(group="svcA"), group="svcB")
    assert not dlq.matches(a, group="svcA")
    assert dlq.oldest_first([a, b, c], 2) == [b, c]


def test_refusal() -> None:
    topics = {"orders": 3}
    ledger = {"0:0": LedgerEntry(timestamp=1000, topic="orders", replays=1, at=0)}
    assert dlq.refusal(record(0, 0), ledger, topics, 3) == "already replayed to orders at 1970-01-01T00:00:00.000Z"
    # Same position, another record (the DLQ was re-created): not the one the ledger marks.
    assert dlq.refusal(record(0, 0, ts=999), ledger, topics, 3) is None
    assert dlq.refusal(record(0, 1, origin=None), ledger, topics, 3) == "no kretry-origin-topic header"
    assert dlq.refusal(record(0, 1, origin="gone"), ledger, topics, 3) == "origin topic 'gone' does not exist"
    assert dlq.refusal(record(0, 1, replays=2), ledger, topics, 3) is None
    assert dlq.refusal(record(0, 1, replays=3), ledger, topics, 3) == "replayed 3 times already (--max-replays 3)"
    assert dlq.refusal(record(0, 1), ledger, topics, 0) == "replayed 0 times already (--max-replays 0)"


def test_replay_headers_keep_the_producers_and_count_one_more() -> None:
    assert dlq.replay_headers(record()) == [("trace", b"1"), (hdr.REPLAYS, b"1")]
    assert dlq.replay_headers(record(replays=2)) == [("trace", b"1"), (hdr.REPLAYS, b"3")]
    grouped = DeadRecord(0, 0, 1, None, b"v", [], hdr.State(origin_topic="o", group="svc"))
    assert dlq.replay_headers(grouped) == [(hdr.REPLAYS, b"1"), (hdr.GROUP, b"svc")]


@pytest.mark.parametrize(
    ("start", "scanned", "cursor"),
    [
        (0, [], 0),
        (5, [(5, True), (6, True), (7, False), (8, True)], 7),
        (5, [(5, False), (6, True)], 5),
        (5, [(5, True), (6, True)], 7),
        (0, [(3, True)], 4),  # offsets below 3 were compacted or deleted: nothing there to wait for
    ],
)
def test_advance(start: int, scanned: list[tuple[int, bool]], cursor: int) -> None:
    assert dlq.advance(start, scanned) == cursor


def test_names() -> None:
    assert dlq.ledger_topic("dead_letter_queue") == "dead_letter_queue.replayed"
    assert dlq.replay_group("dead_letter_queue") == "kretry-replay.dead_letter_queue"


def test_to_json_is_readable_text() -> None:
    r = DeadRecord(2, 7, 1_700_000_000_123, None, b"\xff", [], hdr.State(origin_topic="o", attempt=3, replays=1))
    j = r.to_json()
    assert j["dlq"] == "2:7"
    assert j["key"] is None
    assert j["value"] == "\\xff"
    assert j["time"] == "2023-11-14T22:13:20.123Z"
    assert (j["attempt"], j["replays"]) == (3, 1)


def test_the_package_exports_exactly_its_public_names() -> None:
    public = {
        name for name, value in vars(dlq).items() if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert sorted(dlq.__all__) == sorted(public)


def test_a_replay_overtaken_by_another_exits_9(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def overtaken(*_args: object, **_kwargs: object) -> dlq.ReplayReport:
        raise ReplayInProgress("another replay of dead took over; this one put nothing back")

    monkeypatch.setattr(dlq, "replay", overtaken)
    monkeypatch.setenv("KRETRY_DLQ_TOPIC", "dead")
    assert cli.main(["dlq", "replay", "--count", "1"]) == cli.EXIT_REPLAY_IN_PROGRESS == 9
    assert "another replay of dead took over" in capsys.readouterr().err


OLD_STUB_ERROR = (
    "forward to dead failed: Broker: Message size too large; 2000000-byte value and the producer's headers dropped"
)


@pytest.mark.parametrize(
    ("value", "headers", "stub", "error", "left_out"),
    [
        (None, [], "value,headers", "x", "value,headers"),
        (None, [], "key,value,headers", "x", "key,value,headers"),
        (None, [], None, OLD_STUB_ERROR, "value,headers"),
        (None, [], None, "RuntimeError: boom", None),  # a tombstone that failed: a whole record
        (b"v", [], None, OLD_STUB_ERROR, None),
        (None, [("trace", b"1")], None, OLD_STUB_ERROR, None),
    ],
)
def test_a_stub_is_known_by_its_header_or_its_older_error(
    value: bytes | None, headers: hdr.Headers, stub: str | None, error: str, left_out: str | None
) -> None:
    r = DeadRecord(0, 0, 1, b"k", value, headers, hdr.State(origin_topic="o", error=error), stub)
    assert r.left_out == left_out
    assert r.to_json()["stub"] == left_out


def test_a_stub_that_does_not_say_where_its_original_is_is_refused() -> None:
    stub = DeadRecord(0, 0, 1, b"k", None, [], hdr.State(origin_topic="orders", origin_partition=0), "value,headers")
    assert dlq.refusal(stub, {}, {"orders": 1}, 3) == (
        "a stub without kretry-origin-partition/-offset: the original it stands for cannot be found"
    )


def test_refusal_of_a_record_from_the_dlq_itself_or_its_ledger() -> None:
    topics = {"dead": 1, "dead.replayed": 1}
    assert dlq.refusal(record(origin="dead"), {}, topics, 3, dlq_topic="dead") == (
        "origin topic 'dead' is this DLQ itself: a replay would only copy the record within it"
    )
    assert dlq.refusal(record(origin="dead.replayed"), {}, topics, 3, dlq_topic="dead") == (
        "origin topic 'dead.replayed' is this DLQ's replay ledger, not a topic records come from"
    )
    assert dlq.refusal(record(origin="dead"), {}, topics, 3, dlq_topic="other") is None
