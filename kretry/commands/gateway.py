"""``kretry gateway``: the retry service of kretry.gateway, imported only when this command runs."""

from __future__ import annotations

import argparse
from typing import Any

from confluent_kafka import KafkaException

from kretry.commands import exits
from kretry.commands.options import logging_options
from kretry.commands.signals import stop_on_signals
from kretry.errors import BrokerUnavailable, ConfigError, TopologyError


def add_parser(sub: Any) -> None:
    gateway = sub.add_parser(
        "gateway",
        help="Pretry's retry service on Kafka: an HTTP API that schedules events for delivery to HTTP and SQS",
        epilog=exits.GATEWAY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    gateway.add_argument("--http-port", type=int, default=8080, help="port to listen on (default 8080)")
    gateway.add_argument(
        "--connect-timeout", type=float, default=15.0, help="seconds to wait for the cluster at start-up (default 15)"
    )
    logging_options(gateway, "INFO")


def command(args: argparse.Namespace) -> int:
    stopping = stop_on_signals()
    try:
        # Imported here: the gateway's dependencies are an extra a worker does without.
        from kretry.gateway.command import serve
    except ImportError as exc:
        return exits.report(exits.EXIT_CONFIG, "kretry gateway needs its extra: pip install 'kretry[gateway]'", exc)
    try:
        return serve(args.host, args.http_port, args.connect_timeout, stopping)
    except (ConfigError, TopologyError, BrokerUnavailable, KafkaException) as exc:
        return exits.failed(exc)
