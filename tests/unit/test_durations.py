from __future__ import annotations

from datetime import timedelta

import pytest

from kretry.durations import parse_duration
from kretry.errors import ConfigError, DurationError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (5, 5.0),
        (0.5, 0.5),
        (timedelta(minutes=1, milliseconds=500), 60.5),
        ("500ms", 0.5),
        ("5s", 5.0),
        ("1.5s", 1.5),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("0s", 0.0),
        ("  5 s \n", 5.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -0.001,
        timedelta(seconds=-1),
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        False,
        "5",
        "5x",
        "5 S",
        "-5s",
        ".5s",
        "1e3s",
        "",
        "s",
        "5s5s",
        None,
        [5],
        ["5s"],
        b"5s",
        "9" * 400 + "s",  # parses as a float that is infinite
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(DurationError, match=r"^handler 'orders': delays\[3\]: "):
        parse_duration(value, what="handler 'orders': delays[3]")


def test_duration_error_is_a_config_error_and_a_value_error() -> None:
    with pytest.raises(ConfigError):
        parse_duration("soon")
    with pytest.raises(ValueError, match=r"^duration: 'soon'"):
        parse_duration("soon")


def test_parse_duration_huge_int_is_a_duration_error() -> None:
    with pytest.raises(DurationError):
        parse_duration(10**400)
