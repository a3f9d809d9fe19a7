"""The supervisor's pure parts: backoff, exit codes, and the arguments each child is started with."""

from __future__ import annotations

import argparse

import pytest

from kretry import cli, supervisor
from kretry.commands import parser as kretry_parser


def run_args(*argv: str) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    args = kretry_parser.build().parse_args(["run", *argv])
    return args.run_parser, args


@pytest.mark.parametrize(("crashes", "seconds"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0)])
def test_backoff_doubles_from_1_s_up_to_30_s(crashes: int, seconds: float) -> None:
    assert supervisor.backoff(crashes) == seconds


def test_a_child_that_ran_a_minute_starts_its_backoff_again() -> None:
    assert supervisor.crashes_in_a_row(0, 0.5) == 1
    assert supervisor.crashes_in_a_row(4, 59.0) == 5
    assert supervisor.crashes_in_a_row(4, supervisor.HEALTHY_AFTER) == 1


def test_a_child_killed_by_a_signal_reports_as_a_shell_does() -> None:
    assert supervisor.exit_code(-9) == 137
    assert supervisor.exit_code(5) == 5


def test_the_worst_code_wins_and_all_zero_is_zero() -> None:
    assert supervisor.worst([0, 0]) == 0
    assert supervisor.worst([0, 10, 0]) == 10


def test_the_codes_not_worth_a_restart_are_clis() -> None:
    assert {cli.EXIT_USAGE, cli.EXIT_IMPORT, cli.EXIT_CONFIG, cli.EXIT_TOPOLOGY, cli.EXIT_STOPPED} == set(
        supervisor.DO_NOT_RESTART
    )
    assert supervisor.EXIT_STOP_TIMEOUT == cli.EXIT_STOP_TIMEOUT
    assert not {cli.EXIT_ERROR, cli.EXIT_BROKER, cli.EXIT_FENCED} & supervisor.DO_NOT_RESTART


def test_a_child_gets_every_option_back_with_one_process() -> None:
    given = [
        "app:retrier",
        "--app-dir",
        "/srv/app",
        "--no-create-topics",
        "--connect-timeout",
        "3.5",
        "--log-level",
        "DEBUG",
        "--log-all",
        "--log-format",
        "json",
        "--http-host",
        "0.0.0.0",
        "--processes",
        "3",
    ]
    parser, args = run_args(*given)
    _, again = run_args(*supervisor.child_argv(parser, args, 0))
    expected = {**vars(args), "processes": 1}
    assert {k: v for k, v in vars(again).items() if k != "run_parser"} == {
        k: v for k, v in expected.items() if k != "run_parser"
    }


def test_children_bind_consecutive_http_ports() -> None:
    parser, args = run_args("app:retrier", "--http-port", "8000", "--processes", "3")
    ports = [run_args(*supervisor.child_argv(parser, args, i))[1].http_port for i in range(3)]
    assert ports == [8000, 8001, 8002]


def test_defaults_stay_defaults() -> None:
    parser, args = run_args("app:retrier", "--processes", "2")
    argv = supervisor.child_argv(parser, args, 1)
    assert "--http-port" not in argv
    assert "--no-create-topics" not in argv
    assert argv[-2:] == ["--processes", "1"]


def test_processes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_args("app:retrier", "--processes", "0")
    assert exited.value.code == cli.EXIT_USAGE
    assert "must be at least 1" in capsys.readouterr().err
