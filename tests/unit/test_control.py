"""Operators' tier commands (kretry.control): their JSON, which waiting record each covers, the worker's Orders."""

from __future__ import annotations

import pytest

from kretry import control
from kretry.control import FLUSH, KILL, Command, Orders, decode, order
from kretry.dlq import Filter
from kretry.stage.window import FOREVER, Window
from kretry.topology import control_horizon_ms, control_topic

DAY_MS = 86_400_000


def test_the_control_topic_is_named_after_the_group_and_kept_twice_the_longest_delay() -> None:
    assert control_topic("orders-service") == "orders-service.control"
    assert control_horizon_ms([1.0, 3600.0]) == DAY_MS  # a day at least
    assert control_horizon_ms([5.0, 3 * 86_400.0]) == 6 * DAY_MS
    assert control_horizon_ms([]) == DAY_MS


def test_a_command_round_trips_through_its_json() -> None:
    command = Command(KILL, "orders_retry_2", 1_700_000_000_000, Filter(key="k1", error="timeout"), "bad batch")
    assert decode(command.encode()) == command
    bare = Command(FLUSH, "orders_retry_1", 5)
    assert decode(bare.encode()) == bare
    assert b'"filters": {}' in bare.encode()


@pytest.mark.parametrize(
    "value",
    [b"", b"not json", b"[1]", b'{"action": "flush"}', b'{"id": "x", "action": "drop", "topic": "t", "issued_at": 1}'],
)
def test_a_record_that_is_no_command_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError, match="not a tier command"):
        decode(value)


def test_a_command_takes_only_the_filters_that_mean_something_for_a_waiting_record() -> None:
    with pytest.raises(ValueError, match="only the filters"):
        Command(FLUSH, "t_retry_1", 1, Filter(origin_topic="t"))
    with pytest.raises(ValueError, match="unknown filters"):
        decode(b'{"id": "x", "action": "flush", "topic": "t", "issued_at": 1, "filters": {"group": "g"}}')


def test_a_command_covers_only_records_produced_before_it() -> None:
    command = Command(FLUSH, "t_retry_1", 1000)
    assert command.covers(b"k", "boom", 999)
    assert not command.covers(b"k", "boom", 1000)  # produced as it was issued, or later: waits as usual
    assert not command.covers(b"k", "boom", 5000)


def test_filters_mean_what_they_mean_for_kretry_dlq() -> None:
    command = Command(KILL, "t_retry_1", 10_000, Filter(key="k1", error="TimeOut", since=100, until=200))
    assert command.covers(b"k1", "ReadTimeout: upstream", 150)
    assert not command.covers(b"k2", "ReadTimeout: upstream", 150)  # another key
    assert not command.covers(None, "ReadTimeout: upstream", 150)  # no key at all
    assert not command.covers(b"k1", "ValueError", 150)  # another error
    assert not command.covers(b"k1", None, 150)
    assert not command.covers(b"k1", "timeout", 99)  # before --since
    assert not command.covers(b"k1", "timeout", 200)  # --until excluded


def test_a_kill_wins_over_a_flush_and_says_why_in_the_dlq() -> None:
    flush = Command(FLUSH, "t_retry_1", 1000)
    kill = Command(KILL, "t_retry_1", 1000, Filter(key="bad"), "downstream refuses it", id="c1")
    assert order((flush, kill), b"bad", None, 1) is kill
    assert order((flush, kill), b"good", None, 1) is flush
    assert order((flush, kill), b"good", None, 2000) is None
    assert kill.error_text("TimeoutError: slow") == (
        "killed by operator: downstream refuses it (command c1); last error: TimeoutError: slow"
    )
    assert Command(KILL, "t", 1, id="c2").error_text(None) == "killed by operator: kretry tier kill (command c2)"


def test_orders_remember_each_command_once_per_topic() -> None:
    orders = Orders()
    first = Command(FLUSH, "a_retry_1", 1, id="1")
    assert orders.add(first)
    assert orders.generation == 1
    assert not orders.add(first)  # read twice (a reader that started over): nothing new
    assert orders.generation == 1
    orders.add(Command(KILL, "b_retry_1", 1, id="2"))
    assert orders.for_topic("a_retry_1") == (first,)
    assert [c.id for c in orders.for_topic("b_retry_1")] == ["2"]
    assert orders.for_topic("c_retry_1") == ()
    assert orders.generation == 2


def test_the_window_hands_out_covered_records_at_once_but_not_those_the_flood_guard_holds() -> None:
    window: Window[str] = Window()
    window.hold(0, 1, 500.0, 10, "covered")
    window.hold(0, 2, 500.0, 10, "not covered")
    window.hold(1, 7, FOREVER, 10, "covered too, but held for the guard")
    assert window.expedite(lambda r: r.startswith("covered"), 100.0) == 1
    assert window.due(100.0) == ["covered"]
    assert window.next_due() == 500.0
    assert window.due(500.0) == ["not covered"]


def test_send_needs_a_group_to_name_the_control_topic() -> None:
    from kretry.config import Settings
    from kretry.errors import ConfigError

    with pytest.raises(ConfigError, match="group_id"):
        control.send(Settings(bootstrap_servers="127.0.0.1:1"), FLUSH, "t_retry_1")
