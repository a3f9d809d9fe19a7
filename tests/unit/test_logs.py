"""The CLI's logging pieces that need no process: librdkafka's line format, the repeat gate, the help's exit codes."""

from __future__ import annotations

import pytest

from kretry import cli
from kretry.logs import Repeats, parse_native


def test_a_librdkafka_line_is_parsed_and_any_other_is_not() -> None:
    line = (
        "%3|1795597881.670|FAIL|rdkafka#producer-1| [thrd:ssl://127.0.0.1:9092/bootstrap]: ssl://127.0.0.1:9092/"
        "bootstrap: SSL handshake failed: connecting to a PLAINTEXT broker listener? "
        "(after 19ms in state SSL_HANDSHAKE)"
    )
    assert parse_native(line) == (
        "error",
        "FAIL",
        "rdkafka#producer-1",
        "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: connecting to a PLAINTEXT broker listener? "
        "(after 19ms in state SSL_HANDSHAKE)",
    )
    assert parse_native("%7|1.0|DESTROY|rdkafka#consumer-2| [thrd:main]: Destroy internal") == (
        "debug",
        "DESTROY",
        "rdkafka#consumer-2",
        "Destroy internal",
    )
    assert parse_native("Traceback (most recent call last):") is None


def test_repeats_pass_the_first_then_one_per_window_with_the_count_held_back() -> None:
    gate = Repeats(every=5.0)
    assert [gate.admit("a", t) for t in (0.0, 1.0, 2.0, 5.0, 6.0)] == [0, None, None, 2, None]
    assert gate.admit("b", 1.0) == 0


def test_the_help_of_every_command_says_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["dlq", "replay", "-h"], ["topics", "plan", "-h"], ["run", "-h"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert "2  bad command-line arguments" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        cli.main(["dlq", "replay", "--count", "0"])
    assert exited.value.code == cli.EXIT_USAGE == 2


def test_the_error_with_librdkafkas_hint_wins_over_a_later_plain_one() -> None:
    from kretry.logs import _HINT

    hinted = (
        "ssl://b/bootstrap: SSL handshake failed: connecting to a PLAINTEXT broker listener? (after 2ms in state X)"
    )
    assert _HINT.search(hinted)
    assert _HINT.search("is the broker up?")
    assert not _HINT.search("ssl://b/bootstrap: Disconnected: SSL connection closed by peer (after 0ms in state X)")
