"""``kretry run``: the worker, or ``--processes N`` of them under the supervisor, with exit codes it acts on."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
from typing import Any

import structlog

from kretry import supervisor
from kretry.commands import exits
from kretry.commands.options import long_running, positive
from kretry.commands.signals import stop_on_signals
from kretry.errors import (
    AppImportError,
    BrokerUnavailable,
    ConfigError,
    KafkaFatalError,
    StopTimeout,
    TopologyError,
    TransactionFenced,
)
from kretry.importer import load_app
from kretry.stage import StageStopped
from kretry.web import Server
from kretry.worker import Worker

log = structlog.get_logger("kretry")


def add_parser(sub: Any) -> None:
    run = long_running(
        sub, "run", "run a Retrier's main and retry consumers until SIGINT/SIGTERM", exits.RUN_EXIT_CODES
    )
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
        type=positive,
        default=1,
        help="run N worker processes under a supervisor that restarts crashed ones (default 1: this process works)",
    )
    run.set_defaults(run_parser=run)  # --processes N hands each child the options this parser was given


def command(args: argparse.Namespace) -> int:
    # Installed before anything else, so that a stop asked for during import or start-up is a clean stop too.
    stopping = stop_on_signals()
    if args.processes > 1:
        return supervisor.supervise(args.run_parser, args, stopping)
    return _work(args, stopping)


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
    except (AppImportError, ConfigError) as exc:
        return exits.failed(exc)
    except Exception as exc:
        # Raised inside the user's module: show their traceback, not a "not found".
        traceback.print_exc()
        return exits.report(exits.EXIT_IMPORT, f"importing {args.app} failed", exc)

    server = None
    try:
        if args.http_port is not None:
            server = Server(worker, args.http_host, args.http_port)
            server.start()
        worker.run()
    except (ConfigError, TopologyError, BrokerUnavailable, KafkaFatalError, StageStopped, TransactionFenced) as exc:
        return exits.failed(exc)
    except StopTimeout as exc:
        code = exits.failed(exc)
        # The stuck handler's thread holds the interpreter's shutdown (and librdkafka's) hostage; nothing of
        # ours is left to flush, and its record is uncommitted, so it is handled again after a restart.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    finally:
        if server is not None:
            server.stop()
    log.info("worker stopped")
    return exits.EXIT_OK
