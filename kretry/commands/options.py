"""Options and argument types that several commands share."""

from __future__ import annotations

import argparse
import time
from typing import Any

from kretry import dlq
from kretry.commands.exits import OPS_EXIT_CODES

LOG_LEVEL_HELP = "kretry's own lines (and librdkafka's); other libraries log WARNING and above unless --log-all"
LOG_ALL_HELP = "apply --log-level to every library's logger (uvicorn, asyncio, ...), not only kretry's"
WHEN_HELP = "ISO-8601 (UTC unless it says), or a duration meaning that long ago: 30m, 2h, 1d"


def logging_options(parser: argparse.ArgumentParser, level: str) -> None:
    parser.add_argument("--log-level", default=level, help=f"{LOG_LEVEL_HELP} (default {level})")
    parser.add_argument("--log-all", action="store_true", help=LOG_ALL_HELP)
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")


def long_running(sub: Any, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    """A command that runs until SIGINT/SIGTERM for the Retrier at MODULE:ATTR, logging at INFO."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("app", metavar="MODULE:ATTR", help="where the Retrier is, e.g. app:retrier")
    parser.add_argument("--app-dir", default=".", help="put this directory first on sys.path (default: .)")
    logging_options(parser, "INFO")
    return parser


def common(app: str) -> argparse.ArgumentParser:
    """Options every command but ``run`` shares; ``app`` is "required", "optional" or "none"."""
    parent = argparse.ArgumentParser(add_help=False)
    if app == "required":
        parent.add_argument("app", metavar="MODULE:ATTR", help="where the Retrier is, e.g. app:retrier")
    elif app == "optional":
        parent.add_argument(
            "app", metavar="MODULE:ATTR", nargs="?", help="use this Retrier's settings (default: KRETRY_* only)"
        )
    parent.add_argument("--app-dir", default=".", help="put this directory first on sys.path (default: .)")
    parent.add_argument("--json", action="store_true", help="print JSON (one object per line) instead of a table")
    logging_options(parent, "WARNING")
    return parent


def ops_command(parent: Any, name: str, common: argparse.ArgumentParser, help: str) -> argparse.ArgumentParser:
    """A command of ``topics``, ``dlq``, ``tier`` or ``stats``: prints its result, with their exit codes."""
    parser: argparse.ArgumentParser = parent.add_parser(
        name,
        parents=[common],
        help=help,
        epilog=OPS_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def when(text: str) -> int:
    try:
        return dlq.parse_when(text, int(time.time() * 1000))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
