"""The DLQ flood guard's rules, on a clock of the test's own."""

from __future__ import annotations

import pytest

from kretry import ConfigError, DlqGuard
from kretry.guard import Flood


def test_a_run_of_dead_letters_longer_than_allowed_trips_it() -> None:
    flood = Flood(DlqGuard(max_share=None, max_consecutive=3))
    assert [flood.may_dead_letter(0.0) for _ in range(3)] == [True, True, True]
    assert not flood.may_dead_letter(0.0)
    assert flood.tripped is not None
    assert "max_consecutive" in flood.tripped
    assert not flood.may_dead_letter(0.0)  # stays tripped


def test_a_success_ends_the_run() -> None:
    flood = Flood(DlqGuard(max_share=None, max_consecutive=2))
    for _ in range(10):
        assert flood.may_dead_letter(0.0)
        assert flood.may_dead_letter(0.0)
        flood.handled(0.0)
    assert flood.tripped is None


def test_the_share_is_judged_over_the_window_once_enough_records_left_the_path() -> None:
    flood = Flood(DlqGuard(max_share=0.5, window="10s", min_records=10, max_consecutive=None))
    for t in range(5):
        flood.handled(float(t))
    assert all(flood.may_dead_letter(5.0) for _ in range(4))  # 4 of 9: too few records to judge
    assert flood.may_dead_letter(5.0)  # 5 of 10: not above half
    assert not flood.may_dead_letter(5.0)  # 6 of 11
    assert flood.tripped is not None
    assert "max_share=0.5" in flood.tripped


def test_records_older_than_the_window_no_longer_count() -> None:
    flood = Flood(DlqGuard(max_share=0.5, window="10s", min_records=4, max_consecutive=None))
    for _ in range(3):
        assert flood.may_dead_letter(0.0)
    for t in (20.0, 20.0, 20.0):
        flood.handled(t)
    assert flood.may_dead_letter(20.0)  # 1 of 4 within the window; the three at t=0 are gone


def test_a_reset_lets_records_through_again_and_moves_the_generation_on() -> None:
    flood = Flood(DlqGuard(max_share=None, max_consecutive=1))
    flood.may_dead_letter(0.0)
    flood.may_dead_letter(0.0)
    assert flood.tripped is not None
    flood.reset()
    assert flood.tripped is None
    assert flood.generation == 1
    assert flood.may_dead_letter(1.0)


@pytest.mark.parametrize(
    ("guard", "field"),
    [
        (DlqGuard(max_share=1.5), "max_share"),
        (DlqGuard(max_share=0), "max_share"),
        (DlqGuard(min_records=0), "min_records"),
        (DlqGuard(max_consecutive=0), "max_consecutive"),
        (DlqGuard(window="soon"), "window"),
        (DlqGuard(window=0), "window"),
        (DlqGuard(max_share=None, max_consecutive=None), "never trip"),
    ],
)
def test_a_bad_guard_is_refused_naming_the_field(guard: DlqGuard, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        guard.checked()
