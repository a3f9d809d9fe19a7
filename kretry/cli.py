"""``kretry run MODULE:ATTR``: the worker, with distinct exit codes a supervisor can act on."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

import structlog

from kretry import __version__, logs
from kretry.errors import (
    AppImportError,
    BrokerUnavailable,
    ConfigError,
    KafkaFatalError,
    TopologyError,
)
from kretry.importer import load_app
from kretry.stage import StageStopped
from kretry.worker import Worker

EXIT_OK = 0
EXIT_ERROR = 1  # an unexpected error: a bug in kretry or in a handler's environment
EXIT_USAGE = 2  # bad command-line arguments (argparse's own code)
EXIT_IMPORT = 3  # MODULE:ATTR could not be imported or is not a Retrier
EXIT_CONFIG = 4  # bad settings or registration
EXIT_BROKER = 5  # the cluster did not answer, or the client hit a fatal error
EXIT_TOPOLOGY = 6  # a main topic is missing, or retry topics are missing with --no-create-topics
EXIT_STOPPED = 7  # a handler with on_exhausted="stop" ran out of retries; its offset is left uncommitted

EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM after finishing in-flight work
  1  unexpected error
  2  bad command-line arguments
  3  MODULE:ATTR could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings, durations, handler registration)
  5  the Kafka cluster did not answer at start-up, or a fatal client error
  6  a main topic is missing (or retry topics, with --no-create-topics)
  7  on_exhausted="stop": retries ran out; the record's offset is left uncommitted"""

log = structlog.get_logger("kretry")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kretry", description="Non-blocking Kafka retries.")
    parser.add_argument("--version", action="version", version=f"kretry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run a Retrier's main and retry consumers until SIGINT/SIGTERM",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("app", metavar="MODULE:ATTR", help="where the Retrier is, e.g. app:retrier")
    run.add_argument("--app-dir", default=".", help="put this directory first on sys.path (default: .)")
    run.add_argument("--no-create-topics", action="store_true", help="fail instead of creating retry topics/DLQ")
    run.add_argument(
        "--connect-timeout", type=float, default=15.0, help="seconds to wait for the cluster at start-up (default 15)"
    )
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        logs.configure(args.log_level, args.log_format)
    except ValueError as exc:
        print(f"kretry: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(args)


def run(args: argparse.Namespace) -> int:
    try:
        retrier = load_app(args.app, args.app_dir)
        worker = Worker(retrier, create_topics=not args.no_create_topics, startup_timeout=args.connect_timeout)
    except AppImportError as exc:
        return _fail(EXIT_IMPORT, "cannot load app", exc)
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except Exception as exc:
        # Raised inside the user's module: show their traceback, not a "not found".
        traceback.print_exc()
        return _fail(EXIT_IMPORT, f"importing {args.app} failed", exc)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        worker.run()
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except TopologyError as exc:
        return _fail(EXIT_TOPOLOGY, "topics are not ready", exc)
    except (BrokerUnavailable, KafkaFatalError) as exc:
        return _fail(EXIT_BROKER, "Kafka is unavailable", exc)
    except StageStopped as exc:
        return _fail(EXIT_STOPPED, "stopped: retries exhausted", exc)
    log.info("worker stopped")
    return EXIT_OK


def _fail(code: int, what: str, exc: BaseException) -> int:
    log.error(what, error=str(exc), exit_code=code)
    print(f"kretry: {what}: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
