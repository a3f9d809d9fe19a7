"""The ``kretry`` command: ``run`` (the worker, with exit codes a supervisor acts on), ``topics``, ``dlq``, ``tier``,
``stats``, ``gateway`` (kretry.gateway).

Every command but ``run`` prints its result on stdout (``--json``: machine-readable) and logs to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException

from kretry import __version__, admin, config, control, dlq, logs, supervisor, topology
from kretry.errors import (
    AppImportError,
    BrokerUnavailable,
    ConfigError,
    KafkaFatalError,
    ReplayInProgress,
    StopTimeout,
    TopologyError,
    TransactionFenced,
)
from kretry.importer import load_app
from kretry.retrier import Retrier
from kretry.stage import StageStopped
from kretry.web import Server
from kretry.worker import Worker

EXIT_OK = 0
EXIT_ERROR = 1  # an unexpected error: a bug in kretry or in a handler's environment
EXIT_USAGE = 2  # bad command-line arguments (argparse's own code)
EXIT_IMPORT = 3  # MODULE:ATTR could not be imported or is not a Retrier
EXIT_CONFIG = 4  # bad settings or registration
EXIT_BROKER = 5  # the cluster did not answer, or the client hit a fatal error
EXIT_TOPOLOGY = 6  # a main topic is missing, or retry topics are missing with --no-create-topics
EXIT_STOPPED = 7  # a handler with on_exhausted="stop" ran out of retries; its offset is left uncommitted
EXIT_REFUSED = 8  # `dlq replay`: some records were refused (already replayed, too many replays, ...)
EXIT_REPLAY_IN_PROGRESS = 9  # `dlq replay`: another replay of the same DLQ took over; this one put nothing back
EXIT_STOP_TIMEOUT = 10  # a handler was still running when the stop timeout ran out; the process exits anyway
EXIT_FENCED = 11  # exactly_once: a newer worker with the same transactional.id took over; this one stepped down

EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM after finishing in-flight work
  1  unexpected error
  2  bad command-line arguments
  3  MODULE:ATTR could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings, durations, handler registration)
  5  the Kafka cluster did not answer at start-up, or a fatal client error
  6  a main topic is missing (or retry topics, with --no-create-topics)
  7  on_exhausted="stop": retries ran out; the record's offset is left uncommitted
  10 a handler was still running 10 s after SIGINT/SIGTERM; its record is handled again after a restart
  11 exactly_once: fenced by a newer worker with the same transactional.id; it carries on from the last commit
--processes N: a child's 2, 3, 4, 6 or 7 at once; else, at SIGINT/SIGTERM, the worst child's code (0 if all 0)"""

log = structlog.get_logger("kretry")

LOG_LEVEL_HELP = "kretry's own lines (and librdkafka's); other libraries log WARNING and above unless --log-all"
LOG_ALL_HELP = "apply --log-level to every library's logger (uvicorn, asyncio, ...), not only kretry's"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kretry", description="Non-blocking Kafka retries.")
    parser.add_argument("--version", action="version", version=f"kretry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = _long_running(sub, "run", "run a Retrier's main and retry consumers until SIGINT/SIGTERM", EXIT_CODES)
    run.add_argument("--no-create-topics", action="store_true", help="fail instead of creating retry topics/DLQ")
    run.add_argument(
        "--connect-timeout", type=float, default=15.0, help="seconds to wait for the cluster at start-up (default 15)"
    )
    run.add_argument(
        "--http-port",
        type=int,
        help="serve /metrics, /healthz, /readyz and /v1/dead_set on this port (--processes N: process i on port+i)",
    )
    run.add_argument(
        "--http-host",
        default="127.0.0.1",
        help="address for --http-port (default 127.0.0.1; elsewhere the dead set needs KRETRY_HTTP_TOKEN)",
    )
    run.add_argument(
        "--processes",
        type=_positive,
        default=1,
        help="run N worker processes under a supervisor that restarts crashed ones (default 1: this process works)",
    )
    run.set_defaults(run_parser=run)  # --processes N hands each child the options this parser was given
    _ops_parsers(sub)
    _gateway_parser(sub)
    _console_parser(sub)
    return parser


def _gateway_parser(sub: Any) -> None:
    gateway = sub.add_parser(
        "gateway",
        help="Pretry's retry service on Kafka: an HTTP API that schedules events for delivery to HTTP and SQS",
        epilog=GATEWAY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    gateway.add_argument("--http-port", type=int, default=8080, help="port to listen on (default 8080)")
    gateway.add_argument(
        "--connect-timeout", type=float, default=15.0, help="seconds to wait for the cluster at start-up (default 15)"
    )
    gateway.add_argument("--log-level", default="INFO", help=f"{LOG_LEVEL_HELP} (default INFO)")
    gateway.add_argument("--log-all", action="store_true", help=LOG_ALL_HELP)
    gateway.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")


GATEWAY_EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM after finishing the deliveries under way
  1  unexpected error, or one of its loops failed (the reason is logged)
  2  bad command-line arguments
  4  bad configuration (KRETRY_* and KRETRY_GATEWAY_* settings, a port in use)
  5  the Kafka cluster did not answer at start-up
  6  the gateway's topics could not be created"""


CONSOLE_EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM
  1  unexpected error
  2  bad command-line arguments
  3  MODULE:ATTR could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings; a busy port; a non-loopback --host without KRETRY_CONSOLE_TOKEN)
  5  the Kafka cluster did not answer at start-up"""


def _long_running(sub: Any, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    """A command that runs until SIGINT/SIGTERM for the Retrier at MODULE:ATTR, logging at INFO."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("app", metavar="MODULE:ATTR", help="where the Retrier is, e.g. app:retrier")
    parser.add_argument("--app-dir", default=".", help="put this directory first on sys.path (default: .)")
    parser.add_argument("--log-level", default="INFO", help=f"{LOG_LEVEL_HELP} (default INFO)")
    parser.add_argument("--log-all", action="store_true", help=LOG_ALL_HELP)
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    return parser


def _console_parser(sub: Any) -> None:
    console = _long_running(
        sub,
        "console",
        "a web console: every stage's lag, the dead set, replays (needs only the broker)",
        CONSOLE_EXIT_CODES,
    )
    console.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; elsewhere KRETRY_CONSOLE_TOKEN)"
    )
    console.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
    console.add_argument("--read-only", action="store_true", help="show no action, and serve none")
    console.add_argument(
        "--gateway-prefix", metavar="PREFIX", help="also show the kretry gateway with this KRETRY_GATEWAY_PREFIX"
    )


OPS_EXIT_CODES = """exit codes:
  0  done (topics check: no problem)
  1  unexpected error
  2  bad command-line arguments
  3  APP could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings, handler registration, librdkafka settings)
  5  the Kafka cluster did not answer
  6  topics: a main topic is missing; topics check: problems found (one line each)
  8  dlq replay/discard: some records were refused (each is listed)
  9  dlq replay/discard: another replay or discard of the same DLQ took over; this one changed nothing"""


def _common(app: str) -> argparse.ArgumentParser:
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
    parent.add_argument("--log-level", default="WARNING", help=f"{LOG_LEVEL_HELP} (default WARNING)")
    parent.add_argument("--log-all", action="store_true", help=LOG_ALL_HELP)
    parent.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    return parent


def _ops_command(parent: Any, name: str, common: argparse.ArgumentParser, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(
        name,
        parents=[common],
        help=help,
        epilog=OPS_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _ops_parsers(sub: Any) -> None:
    required, optional = _common("required"), _common("optional")
    topics = sub.add_parser("topics", help="the topics a Retrier needs: plan, create, check").add_subparsers(
        dest="action", required=True
    )
    plan = _ops_command(topics, "plan", required, "list every topic kretry needs, with each retry tier's delay")
    plan.add_argument(
        "--partitions",
        type=_positive,
        help="plan a main topic that does not exist yet this wide (default: its width shows as ?)",
    )
    _ops_command(topics, "create", required, "create the missing retry topics, DLQ and replay ledger")
    _ops_command(topics, "check", required, "check partitions, retention and cleanup policy")

    _dlq_parsers(sub, optional)
    _tier_parsers(sub, required)
    _ops_command(sub, "stats", required, "lag and oldest waiting record per stage; DLQ depth")


GROUP_HELP = "only records this group's retry path dead-lettered (kretry-group): services may share a DLQ"
WHEN_HELP = "ISO-8601 (UTC unless it says), or a duration meaning that long ago: 30m, 2h, 1d"
NO_DLQ = (
    "no DLQ named: pass APP, set KRETRY_DLQ_TOPIC or give --dlq-topic NAME "
    f"(kretry will not guess {topology.DEFAULT_DLQ_TOPIC!r}: on a shared cluster it may be another service's)"
)


def _dlq_parsers(sub: Any, optional: argparse.ArgumentParser) -> None:
    """``kretry dlq peek | summary | replay | discard``: each takes the same filters, so that what peek showed is
    what replay or discard acts on."""
    which = argparse.ArgumentParser(add_help=False, parents=[optional])
    which.add_argument("--dlq-topic", metavar="NAME", help="the DLQ (default: APP's, else KRETRY_DLQ_TOPIC)")
    which.add_argument("--origin-topic", help="only records that failed on this topic")
    which.add_argument("--error", help="only records whose kretry-error contains this text (any case)")
    which.add_argument("--key", help="only records with this key (as UTF-8 text)")
    which.add_argument("--since", type=_when, metavar="WHEN", help=f"only records dead-lettered since: {WHEN_HELP}")
    which.add_argument("--until", type=_when, metavar="WHEN", help="only records dead-lettered before WHEN")
    which.add_argument("--group", help=GROUP_HELP)
    dlq_cmd = sub.add_parser("dlq", help="peek into, summarise, replay and discard the DLQ").add_subparsers(
        dest="action", required=True
    )
    peek = _ops_command(dlq_cmd, "peek", which, "show the oldest DLQ records, pending by default (read-only)")
    peek.add_argument("--count", type=_positive, default=10, help="how many records (default 10)")
    _state_option(peek)
    peek.add_argument("--all", action="store_const", dest="state", const=dlq.ALL, help="the same as --state all")
    summary = _ops_command(dlq_cmd, "summary", which, "counts by group, origin topic, error type and message")
    _state_option(summary)
    replay = _ops_command(dlq_cmd, "replay", which, "put DLQ records back on their origin topic")
    _selection(replay, "replay", "show what would be replayed; produce nothing")
    replay.add_argument(
        "--max-replays",
        type=int,
        default=dlq.DEFAULT_MAX_REPLAYS,
        help=f"refuse records replayed this many times already (default {dlq.DEFAULT_MAX_REPLAYS})",
    )
    discard = _ops_command(
        dlq_cmd, "discard", which, "mark DLQ records that will never be fixed as resolved: never replayed"
    )
    _selection(discard, "discard", "show what would be discarded; mark nothing")


def _tier_parsers(sub: Any, required: argparse.ArgumentParser) -> None:
    """``kretry tier flush | kill TOPIC_retry_n APP``: a command the running workers of APP obey (kretry.control)."""
    tier = argparse.ArgumentParser(add_help=False)
    tier.add_argument("tier", metavar="TOPIC_retry_n", help="the retry topic whose waiting records it is for")
    which = argparse.ArgumentParser(add_help=False, parents=[tier, required])
    which.add_argument("--error", help="only records whose kretry-error contains this text (any case)")
    which.add_argument("--key", help="only records with this key (as UTF-8 text)")
    which.add_argument("--since", type=_when, metavar="WHEN", help=f"only records retried since: {WHEN_HELP}")
    which.add_argument("--until", type=_when, metavar="WHEN", help="only records retried before WHEN")
    tier_cmd = sub.add_parser("tier", help="drain a retry tier now: flush or kill what waits there").add_subparsers(
        dest="action", required=True
    )
    _ops_command(tier_cmd, control.FLUSH, which, "the records waiting there are due now: the workers handle them")
    kill = _ops_command(tier_cmd, control.KILL, which, "the records waiting there go to the DLQ now, unhandled")
    kill.add_argument("--reason", default="", help="why, in their kretry-error (killed by operator: REASON)")


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", choices=dlq.STATES, default=dlq.PENDING, help="records in this state only (default pending)"
    )


def _selection(parser: argparse.ArgumentParser, verb: str, dry_run_help: str) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--count", type=_positive, help=f"{verb} the oldest N pending records the filters match")
    which.add_argument(
        "--offset", action="append", type=_position, metavar="PARTITION:OFFSET", help="this DLQ record (repeatable)"
    )
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)


def _when(text: str) -> int:
    try:
        return dlq.parse_when(text, int(time.time() * 1000))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _position(text: str) -> dlq.Position:
    try:
        return dlq.parse_position(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kretry`` command; with ``argv`` given, as a call inside another program: stderr is left alone."""
    args = _parser().parse_args(argv)
    # Only the process's own command reads descriptor 2: a caller's stderr is not ours to take.
    native = logs.capture_librdkafka() if argv is None else None
    try:
        logs.configure(args.log_level, args.log_format, everything=args.log_all)
    except ValueError as exc:
        print(f"kretry: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            return run(args)
        if args.command == "gateway":
            return _gateway(args)
        if args.command == "console":
            return _console(args)
        return _ops(args)
    finally:
        if native is not None:
            # The clients left (the worker's admin client, say) are destroyed now, their last lines still captured.
            gc.collect()
            native.close()


def _stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set: the command stops cleanly once it sees it."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stopping


def run(args: argparse.Namespace) -> int:
    # Installed before anything else, so that a stop asked for during import or start-up is a clean stop too.
    stopping = _stop_on_signals()
    if args.processes > 1:
        return supervisor.supervise(args.run_parser, args, stopping)
    return _work(args, stopping)


def _console(args: argparse.Namespace) -> int:
    from kretry.console import serve  # Jinja2 and the templates, for this command only

    stopping = _stop_on_signals()
    try:
        serve(
            load_app(args.app, args.app_dir),
            args.host,
            args.port,
            read_only=args.read_only,
            gateway_prefix=args.gateway_prefix,
            stopping=stopping,
        )
    except AppImportError as exc:
        return _fail(EXIT_IMPORT, "cannot load app", exc)
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except BrokerUnavailable as exc:
        return _fail(EXIT_BROKER, "Kafka is unavailable", exc)
    return EXIT_OK


def _work(args: argparse.Namespace, stopping: threading.Event) -> int:
    """This process is the worker: load the app, run it until ``stopping``, map its failure to an exit code."""
    try:
        retrier = load_app(args.app, args.app_dir)
        worker = Worker(
            retrier,
            create_topics=not args.no_create_topics,
            startup_timeout=args.connect_timeout,
            stopping=stopping,
        )
    except AppImportError as exc:
        return _fail(EXIT_IMPORT, "cannot load app", exc)
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except Exception as exc:
        # Raised inside the user's module: show their traceback, not a "not found".
        traceback.print_exc()
        return _fail(EXIT_IMPORT, f"importing {args.app} failed", exc)

    server = None
    try:
        if args.http_port is not None:
            server = Server(worker, args.http_host, args.http_port)
            server.start()
        worker.run()
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except TopologyError as exc:
        return _fail(EXIT_TOPOLOGY, "topics are not ready", exc)
    except (BrokerUnavailable, KafkaFatalError) as exc:
        return _fail(EXIT_BROKER, "Kafka is unavailable", exc)
    except (StageStopped, TransactionFenced) as exc:
        return _fail(*_stopped(exc), exc)
    except StopTimeout as exc:
        _fail(EXIT_STOP_TIMEOUT, "stop timed out", exc)
        # The stuck handler's thread holds the interpreter's shutdown (and librdkafka's) hostage; nothing of
        # ours is left to flush, and its record is uncommitted, so it is handled again after a restart.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_STOP_TIMEOUT)
    finally:
        if server is not None:
            server.stop()
    log.info("worker stopped")
    return EXIT_OK


def _stopped(exc: Exception) -> tuple[int, str]:
    """A stage that stopped on purpose: retries ran out (``on_exhausted="stop"``), or a newer worker fenced it."""
    if isinstance(exc, TransactionFenced):
        return EXIT_FENCED, "fenced: a newer worker with the same transactional.id took over"
    return EXIT_STOPPED, "stopped: retries exhausted"


def _gateway(args: argparse.Namespace) -> int:
    stopping = _stop_on_signals()
    try:
        # Imported here: the gateway's dependencies are an extra a worker does without.
        from kretry.gateway.command import serve
    except ImportError as exc:
        return _fail(EXIT_CONFIG, "kretry gateway needs its extra: pip install 'kretry[gateway]'", exc)
    try:
        return serve(args.host, args.http_port, args.connect_timeout, stopping)
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except TopologyError as exc:
        return _fail(EXIT_TOPOLOGY, "topics are not ready", exc)
    except (BrokerUnavailable, KafkaException) as exc:
        return _fail(EXIT_BROKER, "Kafka is unavailable", exc)


# -- topics, dlq, stats -------------------------------------------------------------------------------------


def _ops(args: argparse.Namespace) -> int:
    what = f"{args.command} {getattr(args, 'action', '')}".strip()
    try:
        retrier = load_app(args.app, args.app_dir) if getattr(args, "app", None) else None
        if args.command == "topics":
            assert retrier is not None
            return _topics(args, retrier)
        if args.command == "dlq":
            return _dlq(args, retrier)
        if args.command == "tier":
            assert retrier is not None
            return _tier(args, retrier)
        assert retrier is not None
        return _stats(args, retrier)
    except AppImportError as exc:
        return _fail(EXIT_IMPORT, "cannot load app", exc)
    except (ConfigError, ValueError) as exc:
        return _fail(EXIT_CONFIG, "bad configuration", exc)
    except TopologyError as exc:
        return _fail(EXIT_TOPOLOGY, f"{what}: topics are not ready", exc)
    except ReplayInProgress as exc:
        return _fail(EXIT_REPLAY_IN_PROGRESS, what, exc)
    except (BrokerUnavailable, KafkaFatalError) as exc:
        return _fail(EXIT_BROKER, f"{what}: Kafka is unavailable", exc)
    except KafkaException as exc:
        # A client refusing its settings is the same bad configuration that `kretry run` exits 4 for.
        if exc.args and isinstance(exc.args[0], KafkaError) and exc.args[0].code() == KafkaError._INVALID_ARG:
            return _fail(EXIT_CONFIG, "bad configuration", exc)
        return _fail(EXIT_BROKER, f"{what}: Kafka is unavailable", exc)


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _print_json_lines(items: Sequence[Any]) -> None:
    for item in items:
        print(json.dumps(item))


def _topics(args: argparse.Namespace, retrier: Retrier) -> int:
    if args.action == "check":
        found = admin.check(retrier)
        for line in found.problems:
            print(line)
        for line in found.notes:
            print(f"note: {line}")
        if not found.problems:
            print("ok: every retry topic, the DLQ and its ledger are as kretry needs them")
        return EXIT_TOPOLOGY if found.problems else EXIT_OK
    if args.action == "plan":
        return _topics_plan(args, retrier)
    needs = admin.create(retrier)
    if args.json:
        _print_json_lines([n.to_json() for n in needs])
        return EXIT_OK
    for n in needs:
        print(f"created {n.name} ({n.role}, {n.partitions} partitions, retention {admin.human_ms(n.retention_ms)})")
    if not needs:
        print("nothing to create: every topic exists")
    return EXIT_OK


def _topics_plan(args: argparse.Namespace, retrier: Retrier) -> int:
    rows, notes = admin.plan(retrier, args.partitions)
    if args.json:
        _print_json_lines([r.to_json() for r in rows])
        return EXIT_OK
    _print_table(
        ["TOPIC", "ROLE", "PARTITIONS", "DELAY", "RETENTION", "AT LEAST", "CLEANUP"],
        [
            (
                r.need.name,
                r.need.role,
                "?" if r.partitions is None else r.partitions,
                r.delay,
                admin.human_ms(r.need.retention_ms),
                admin.human_ms(r.need.min_retention_ms),
                r.need.cleanup,
            )
            for r in rows
        ],
    )
    for line in notes:
        print(f"note: {line}")
    return EXIT_OK


def _dlq(args: argparse.Namespace, retrier: Retrier | None) -> int:
    action: Callable[[argparse.Namespace, config.Settings], int] = {
        "peek": _dlq_peek,
        "summary": _dlq_summary,
        "replay": _dlq_replay,
        "discard": _dlq_discard,
    }[args.action]
    return action(args, _dlq_settings(args, retrier, os.environ))


def _dlq_settings(args: argparse.Namespace, retrier: Retrier | None, environ: Mapping[str, str]) -> config.Settings:
    """APP's settings, else KRETRY_*'s; the DLQ from --dlq-topic, else APP, else KRETRY_DLQ_TOPIC, never a guess:
    a replay of the default DLQ on a shared cluster would put another service's records back."""
    if retrier is None and args.dlq_topic is None and f"{config.ENV_PREFIX}DLQ_TOPIC" not in environ:
        raise ConfigError(NO_DLQ)
    settings = retrier.settings if retrier is not None else config.load({}, environ)
    if args.dlq_topic is not None:
        topology.validate_topic_name(args.dlq_topic, what="--dlq-topic")
        settings = settings.model_copy(update={"dlq_topic": args.dlq_topic})
    return settings


def _dlq_only(args: argparse.Namespace) -> dlq.Only:
    """The filters as dlq's functions take them."""
    return dlq.Only(
        origin_topic=args.origin_topic,
        error=args.error,
        key=args.key,
        since=args.since,
        until=args.until,
        group=args.group,
    )


def _dlq_peek(args: argparse.Namespace, settings: config.Settings) -> int:
    records = dlq.peek(settings, args.count, state=args.state, **_dlq_only(args))
    if args.json:
        _print_json_lines([r.to_json() for r in records])
        return EXIT_OK
    rows = []
    for r in records:
        j = r.to_json()
        origin = f"{r.origin_topic}[{r.state.origin_partition}]@{r.state.origin_offset}"
        rows.append(
            (j["dlq"], j["key"], j["group"], origin, r.state.attempt, r.replays, j["time"], r.status, r.state.error)
        )
    _print_table(["DLQ", "KEY", "GROUP", "ORIGIN", "ATTEMPT", "REPLAYS", "TIME", "STATE", "ERROR"], rows)
    return EXIT_OK


def _dlq_replay(args: argparse.Namespace, settings: config.Settings) -> int:
    report = dlq.replay(
        settings,
        count=args.count,
        offsets=args.offset or (),
        max_replays=args.max_replays,
        dry_run=args.dry_run,
        **_dlq_only(args),
    )
    verb = "would replay" if report.dry_run else "replayed"
    return _dlq_report(
        args, report, [f"{verb} {_at(o)} -> {o.origin_topic} (kretry-replays={o.replays})" for o in report.done], verb
    )


def _dlq_discard(args: argparse.Namespace, settings: config.Settings) -> int:
    report = dlq.discard(settings, count=args.count, offsets=args.offset or (), dry_run=args.dry_run, **_dlq_only(args))
    verb = "would discard" if report.dry_run else "discarded"
    return _dlq_report(args, report, [f"{verb} {_at(o)} ({o.origin_topic})" for o in report.done], verb)


def _at(outcome: dlq.Outcome) -> str:
    return dlq.format_position(outcome.position)


def _dlq_report(args: argparse.Namespace, report: dlq.Report, done: list[str], verb: str) -> int:
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for line in done:
            print(line)
        for o in report.refused:
            print(f"refused {_at(o)}: {o.refused}")
        print(f"{verb} {len(report.done)}, refused {len(report.refused)}")
    return EXIT_REFUSED if report.refused else EXIT_OK


def _dlq_summary(args: argparse.Namespace, settings: config.Settings) -> int:
    only = _dlq_only(args)
    result = dlq.summary(settings, state=args.state, **only)
    if args.json:
        print(json.dumps({"dlq": settings.dlq_topic, "group": args.group, **result.to_json()}))
        return EXIT_OK
    out = result.to_json()
    oldest, newest = out["oldest"] or "-", out["newest"] or "-"
    which = settings.dlq_topic if args.group is None else f"{settings.dlq_topic}, group {args.group}"
    states = ", ".join(f"{n} {state}" for state, n in result.by_state.items())
    print(f"DLQ {which}: {result.total} records, oldest {oldest}, newest {newest} ({args.state}; of {states})")
    _print_table(["GROUP", "ORIGIN TOPIC", "ERROR", "COUNT"], [(*key, n) for key, n in sorted(result.by_error.items())])
    print()
    _print_table(
        ["ERROR", "MESSAGE", "COUNT", "TOPICS", "GROUPS"],
        [(e, m or "-", n.count, _counts(n.by_topic), _counts(n.by_group)) for e, m, n in result.messages()],
    )
    return EXIT_OK


def _tier(args: argparse.Namespace, retrier: Retrier) -> int:
    tiers = [s.topic for s in retrier.stages() if s.attempt]
    if args.tier not in tiers:
        raise ConfigError(f"{args.tier!r} is not a retry topic of {retrier!r}; its tiers: {', '.join(tiers) or 'none'}")
    if args.action == control.KILL and retrier.dlq_topic is None:
        raise ConfigError(f"{retrier!r} has no DLQ: there is nowhere to kill records to")
    only = {"key": args.key, "error": args.error, "since": args.since, "until": args.until}
    reason = getattr(args, "reason", "")
    command = control.send(retrier.settings, args.action, args.tier, reason=reason, **only)
    if args.json:
        print(json.dumps({"id": command, "action": args.action, "tier": args.tier, **only}))
    else:
        print(f"{args.action} {args.tier}: command {command} sent; running workers obey it within a second")
    return EXIT_OK


def _counts(counter: Mapping[str, int]) -> str:
    return ",".join(f"{name}={n}" for name, n in sorted(counter.items(), key=lambda x: (-x[1], x[0])))


def _stats(args: argparse.Namespace, retrier: Retrier) -> int:
    result = admin.stats(retrier, time.time())
    if args.json:
        print(json.dumps(result.to_json()))
        return EXIT_OK
    _print_table(
        ["TOPIC", "STAGE", "GROUP", "LAG", "OLDEST WAITING"],
        [
            (s.topic, s.stage, s.group, s.lag, None if s.oldest_age_s is None else f"{s.oldest_age_s:.1f}s")
            for s in result.stages
        ],
    )
    depth = "-" if result.dlq_depth is None else f"{result.dlq_depth} records"
    print(f"DLQ {result.dlq_topic or '-'}: {depth}")
    return EXIT_OK


def _fail(code: int, what: str, exc: BaseException) -> int:
    """Say once, as a log line (JSON under --log-format json), why kretry exits with ``code``."""
    error = str(exc)
    native = logs.librdkafka_error() if code == EXIT_BROKER else None
    if native and native not in error:
        # librdkafka says why ("Connection refused", "connecting to a PLAINTEXT broker listener?"); the client's
        # exception only that it timed out.
        error = f"{error}; librdkafka: {native}"
    log.error(what, error=error, exit_code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
