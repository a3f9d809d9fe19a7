from __future__ import annotations

import pytest

from kretry import headers as hdr

ORIGIN = hdr.Origin("orders", 3, 42, 1_700_000_000_000)


def test_split_keeps_user_headers_as_they_came() -> None:
    raw = [("b", b"1"), (hdr.ATTEMPT, b"1"), ("a", None), ("b", b"2"), (hdr.ATTEMPT, b"2"), ("kretry", b"x")]
    user, ours = hdr.split(raw)
    assert user == [("b", b"1"), ("a", None), ("b", b"2"), ("kretry", b"x")]
    assert ours == {hdr.ATTEMPT: b"2"}
    assert hdr.user_headers(raw) == user


def test_a_producers_kretry_named_header_is_theirs() -> None:
    raw = [("kretry-trace-id", b"t-1"), (hdr.ERROR, b"KeyError"), ("kretry-", b""), ("Kretry-Attempt", b"9")]
    user, ours = hdr.split(raw)
    assert user == [("kretry-trace-id", b"t-1"), ("kretry-", b""), ("Kretry-Attempt", b"9")]
    assert ours == {hdr.ERROR: b"KeyError"}


def test_own_names_every_header_kretry_writes() -> None:
    written = {v for k, v in vars(hdr).items() if k.isupper() and isinstance(v, str) and v.startswith("kretry-")}
    assert written == hdr.OWN
    assert hdr.STUB in hdr.OWN


@pytest.mark.parametrize("raw", [None, []])
def test_split_nothing(raw: hdr.RawHeaders) -> None:
    assert hdr.split(raw) == ([], {})


def test_read_all_fields() -> None:
    ours = {
        hdr.ORIGIN_TOPIC: b"orders",
        hdr.ORIGIN_PARTITION: b"3",
        hdr.ORIGIN_OFFSET: b"42",
        hdr.ORIGIN_TIMESTAMP: b"1700000000000",
        hdr.ATTEMPT: b" 2 ",
        hdr.DUE_AT: b"1700000005000",
        hdr.ERROR: "ValueError: é".encode(),
        hdr.GROUP: b"svc",
        hdr.REPLAYS: b"1",
    }
    assert hdr.read(ours) == hdr.State(
        "orders", 3, 42, 1_700_000_000_000, 2, 1_700_000_005_000, "ValueError: é", "svc", 1
    )


def test_read_zero_is_a_value() -> None:
    state = hdr.read({hdr.ORIGIN_PARTITION: b"0", hdr.ORIGIN_OFFSET: b"0", hdr.REPLAYS: b"0"})
    assert (state.origin_partition, state.origin_offset, state.replays) == (0, 0, 0)


@pytest.mark.parametrize("value", [b"\xff\xfe", b"-1", b"two", b"1.5", b"", b"0x10"])
def test_read_corrupt_numbers_as_none(value: bytes) -> None:
    state = hdr.read({hdr.ATTEMPT: value, hdr.ORIGIN_OFFSET: value, hdr.REPLAYS: value})
    assert (state.attempt, state.origin_offset, state.replays) == (None, None, None)


def test_read_corrupt_text_as_none() -> None:
    state = hdr.read({hdr.ORIGIN_TOPIC: b"\xc3", hdr.ERROR: b"\xff", hdr.GROUP: b"\x80"})
    assert (state.origin_topic, state.error, state.group) == (None, None, None)
    assert hdr.read({hdr.ORIGIN_TOPIC: b""}).origin_topic is None
    assert hdr.read({}) == hdr.State()


def test_read_a_none_value_as_absent() -> None:
    _, ours = hdr.split([(hdr.ATTEMPT, None), (hdr.ORIGIN_TOPIC, None)])
    state = hdr.read(ours)
    assert (state.attempt, state.origin_topic) == (None, None)


def test_origin_of_falls_back_field_by_field() -> None:
    assert hdr.origin_of(hdr.State(), ORIGIN) == ORIGIN
    state = hdr.State(origin_topic="payments", origin_offset=0)
    assert hdr.origin_of(state, ORIGIN) == hdr.Origin("payments", 3, 0, 1_700_000_000_000)
    full = hdr.State("a", 1, 2, 3)
    assert hdr.origin_of(full, ORIGIN) == hdr.Origin("a", 1, 2, 3)


@pytest.mark.parametrize(
    "ours",
    [
        {},
        {hdr.ORIGIN_TOPIC: b"payments", hdr.ORIGIN_OFFSET: b"0"},
        {hdr.ORIGIN_TOPIC: b"a", hdr.ORIGIN_PARTITION: b"1", hdr.ORIGIN_OFFSET: b"2", hdr.ORIGIN_TIMESTAMP: b"3"},
        {hdr.ORIGIN_TOPIC: b"\xc3", hdr.ORIGIN_PARTITION: b" 7 ", hdr.ORIGIN_OFFSET: b"-1"},
        {hdr.ORIGIN_TIMESTAMP: b"007"},
        {hdr.ORIGIN_TOPIC: b"", hdr.ORIGIN_PARTITION: "\u0663".encode(), hdr.ORIGIN_OFFSET: b"1_0"},
    ],
)
def test_origin_from_reads_the_origin_as_read_and_origin_of_do(ours: dict[str, bytes]) -> None:
    assert hdr.origin_from(ours, ORIGIN) == hdr.origin_of(hdr.read(ours), ORIGIN)


@pytest.mark.parametrize(
    ("exc", "text"),
    [(ValueError("bad id"), "ValueError: bad id"), (KeyError("k"), "KeyError: 'k'"), (TimeoutError(), "TimeoutError")],
)
def test_describe_error(exc: BaseException, text: str) -> None:
    assert hdr.describe_error(exc) == text


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no __str__")


class Unreadable(Unprintable):
    def __repr__(self) -> str:
        raise RuntimeError("no __repr__ either")


class Code:
    def __repr__(self) -> str:
        raise SystemExit("a repr that exits")


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (Unprintable("order 7"), "Unprintable: Unprintable('order 7')"),
        (Unreadable(), "Unreadable (its message could not be read)"),
        (SystemExit(0), "SystemExit: sys.exit(0) called"),
        (SystemExit(), "SystemExit: sys.exit(None) called"),
        (SystemExit("bye"), "SystemExit: sys.exit('bye') called"),
        (SystemExit(Code()), "SystemExit: sys.exit(?) called"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
    ],
)
def test_describe_error_never_raises(exc: BaseException, text: str) -> None:
    assert hdr.describe_error(exc) == text


@pytest.mark.parametrize("char", ["a", "é", "€", "😀"])
@pytest.mark.parametrize("extra", [0, 1, 2, 3])
def test_describe_error_is_bounded_without_splitting_a_character(char: str, extra: int) -> None:
    text = hdr.describe_error(ValueError("x" * extra + char * hdr.ERROR_MAX_BYTES))
    raw = text.encode("utf-8")  # would fail on half a character
    assert len(raw) <= hdr.ERROR_MAX_BYTES
    assert len(raw) > hdr.ERROR_MAX_BYTES - 4 - 3
    assert text.startswith("ValueError: ")
    assert text.endswith(char + "...")


def test_describe_error_keeps_an_error_that_fits_exactly() -> None:
    message = "x" * (hdr.ERROR_MAX_BYTES - len("ValueError: "))
    assert hdr.describe_error(ValueError(message)) == f"ValueError: {message}"


def test_an_error_with_a_lone_surrogate_can_be_forwarded() -> None:
    error = hdr.describe_error(ValueError(b"id \xff".decode("utf-8", errors="surrogateescape")))
    hdr.build([], origin=ORIGIN, attempt=1, error=error, group="svc", due_at=None, replays=None)


def _build(user: hdr.Headers, **kwargs: object) -> hdr.Headers:
    args: dict[str, object] = {"origin": ORIGIN, "attempt": 1, "error": "E", "group": "svc", "due_at": None}
    args.update({"replays": None, **kwargs})
    return hdr.build(user, **args)  # type: ignore[arg-type]


def test_build_puts_user_headers_first_unchanged() -> None:
    user: hdr.Headers = [("b", b"1"), ("a", b"\xff"), ("b", b"2")]
    out = _build(user, attempt=2, error="ValueError: é", due_at=1_700_000_005_000, replays=3)
    assert out[:3] == user
    assert dict(out[3:]) == {
        hdr.ORIGIN_TOPIC: b"orders",
        hdr.ORIGIN_PARTITION: b"3",
        hdr.ORIGIN_OFFSET: b"42",
        hdr.ORIGIN_TIMESTAMP: b"1700000000000",
        hdr.ATTEMPT: b"2",
        hdr.ERROR: "ValueError: é".encode(),
        hdr.GROUP: b"svc",
        hdr.DUE_AT: b"1700000005000",
        hdr.REPLAYS: b"3",
    }


@pytest.mark.parametrize("replays", [None, 0])
def test_build_leaves_out_optional_headers(replays: int | None) -> None:
    names = [name for name, _ in _build([], due_at=None, replays=replays)]
    assert hdr.DUE_AT not in names
    assert hdr.REPLAYS not in names
    assert len(names) == 7


def test_build_round_trips_through_read() -> None:
    _, ours = hdr.split(_build([], attempt=4, due_at=99, replays=2))
    assert hdr.read(ours) == hdr.State("orders", 3, 42, 1_700_000_000_000, 4, 99, "E", "svc", 2)


def test_headers_do_not_accumulate_over_hops() -> None:
    first = _build([("trace", b"t")], due_at=10)
    user, ours = hdr.split(first)
    second = _build(user, origin=hdr.origin_of(hdr.read(ours), ORIGIN), attempt=2, due_at=None)
    names = [name for name, _ in second]
    assert len(names) == len(set(names))
    assert names[0] == "trace"
    _, ours = hdr.split(second)
    assert hdr.read(ours).attempt == 2
    assert hdr.read(ours).due_at is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ([], None),
        ([("kretry-due-at", b"1700000000000")], 1_700_000_000_000),
        ([("kretry-due-at", b"1"), ("kretry-due-at", b"2")], 2),
        ([("kretry-due-at", b"\xff")], None),
        ([("kretry-due-at", b"-5")], None),
        ([("kretry-due-at", None)], None),
        ([("other", b"5")], None),
    ],
)
def test_due_at_reads_only_its_header(headers: list[tuple[str, bytes | None]] | None, expected: int | None) -> None:
    assert hdr.due_and_group(headers)[0] == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ([("kretry-group", b"svc")], "svc"),
        ([("kretry-group", b"a"), ("kretry-group", b"b")], "b"),
        ([("kretry-group", b"\xff")], None),
        ([("kretry-group", None)], None),
        ([("kretry-groups", b"svc")], None),
    ],
)
def test_group_is_read_with_the_due_time(headers: list[tuple[str, bytes | None]] | None, expected: str | None) -> None:
    assert hdr.due_and_group(headers)[1] == expected


def test_the_trace_names_every_frame_and_cause_in_pythons_order_and_stays_bounded() -> None:
    def inner() -> None:
        raise KeyError("sku")

    def outer() -> None:
        try:
            inner()
        except KeyError as exc:
            raise ValueError("bad order") from exc

    try:
        outer()
    except ValueError as exc:
        trace = hdr.error_trace(exc)
    assert trace.index("KeyError: 'sku'") < trace.index("direct cause") < trace.index("ValueError: bad order")
    assert trace.index("in outer\n") < trace.index("in inner\n")
    assert trace.endswith("ValueError: bad order\n")

    def deep(n: int) -> None:
        if n:
            deep(n - 1)
        raise RuntimeError("at the bottom")

    try:
        deep(200)
    except RuntimeError as exc:
        long = hdr.error_trace(exc)
    assert len(long.encode()) <= hdr.TRACE_MAX_BYTES
    assert long.startswith("...")
    assert long.endswith("RuntimeError: at the bottom\n")  # the innermost frames are the ones kept
