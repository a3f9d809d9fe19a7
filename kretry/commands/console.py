"""``kretry console``: the web console (kretry.console), imported only when this command runs."""

from __future__ import annotations

import argparse
from typing import Any

from kretry.commands import exits
from kretry.commands.options import long_running
from kretry.commands.signals import stop_on_signals
from kretry.errors import AppImportError, BrokerUnavailable, ConfigError
from kretry.importer import load_app


def add_parser(sub: Any) -> None:
    console = long_running(
        sub,
        "console",
        "a web console: every stage's lag, the dead set, replays (needs only the broker)",
        exits.CONSOLE_EXIT_CODES,
    )
    console.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; elsewhere KRETRY_CONSOLE_TOKEN)"
    )
    console.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
    console.add_argument("--read-only", action="store_true", help="show no action, and serve none")
    console.add_argument(
        "--gateway-prefix", metavar="PREFIX", help="also show the kretry gateway with this KRETRY_GATEWAY_PREFIX"
    )


def command(args: argparse.Namespace) -> int:
    from kretry.console import serve  # Jinja2 and the templates, for this command only

    stopping = stop_on_signals()
    try:
        serve(
            load_app(args.app, args.app_dir),
            args.host,
            args.port,
            read_only=args.read_only,
            gateway_prefix=args.gateway_prefix,
            stopping=stopping,
        )
    except (AppImportError, ConfigError, BrokerUnavailable) as exc:
        return exits.failed(exc)
    return exits.EXIT_OK
