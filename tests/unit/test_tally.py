"""The rate-limited log: the first event of a window in full, every other one counted when the window closes."""

from __future__ import annotations

from kretry.stage.tally import SAMPLES, Tally


def test_the_first_event_is_logged_the_rest_of_the_window_counted_once_it_closes() -> None:
    tally = Tally(5.0)
    assert tally.add(100.0, {"n": 0})
    assert [tally.add(100.001, {"n": i}) for i in range(1, 12)] == [False] * 11
    assert tally.closed(104.9) is None  # the window is still open
    count, samples = tally.closed(105.0) or (0, [])
    assert count == 11
    assert [e["n"] for e in samples] == list(range(1, SAMPLES + 1))
    assert tally.closed(200.0) is None  # nothing held back any more


def test_a_quiet_window_logs_the_next_event_in_full() -> None:
    tally = Tally(5.0)
    assert tally.add(0.0, {})
    assert tally.add(6.0, {})  # the window closed with nothing held back


def test_an_event_right_after_a_summary_is_held_for_the_next_one() -> None:
    tally = Tally(5.0)
    tally.add(0.0, {})
    tally.add(1.0, {})
    assert tally.closed(5.0) == (1, [{}])
    assert not tally.add(6.0, {"late": True})
    assert tally.closed(10.0) == (1, [{"late": True}])


def test_events_past_the_samples_are_counted_without_being_described() -> None:
    tally = Tally(5.0)
    assert tally.wants(100.0)
    assert tally.add(100.0, {"n": 0})
    for i in range(1, 20):
        if tally.wants(100.001):
            assert not tally.add(100.001, {"n": i})
        else:
            tally.skip()
    count, samples = tally.closed(105.0) or (0, [])
    assert count == 19
    assert [e["n"] for e in samples] == list(range(1, SAMPLES + 1))
