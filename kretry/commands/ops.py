"""``kretry topics | dlq | tier | stats``: load APP if given, run the command, map its failure to an exit code."""

from __future__ import annotations

import argparse

from confluent_kafka import KafkaError, KafkaException

from kretry.commands import dlq, exits, stats, tier, topics
from kretry.errors import (
    AppImportError,
    BrokerUnavailable,
    ConfigError,
    KafkaFatalError,
    ReplayInProgress,
    TopologyError,
)
from kretry.importer import load_app


def command(args: argparse.Namespace) -> int:
    what = f"{args.command} {getattr(args, 'action', '')}".strip()
    try:
        retrier = load_app(args.app, args.app_dir) if getattr(args, "app", None) else None
        if args.command == "dlq":
            return dlq.command(args, retrier)
        assert retrier is not None
        if args.command == "topics":
            return topics.command(args, retrier)
        if args.command == "tier":
            return tier.command(args, retrier)
        return stats.command(args, retrier)
    except (
        AppImportError,
        ConfigError,
        ValueError,
        TopologyError,
        ReplayInProgress,
        BrokerUnavailable,
        KafkaFatalError,
    ) as exc:
        return exits.failed(exc, what)
    except KafkaException as exc:
        # A client refusing its settings is the same bad configuration that `kretry run` exits 4 for.
        return exits.failed(exc, what, counts_as=ConfigError if _refused_settings(exc) else None)


def _refused_settings(exc: KafkaException) -> bool:
    return bool(exc.args) and isinstance(exc.args[0], KafkaError) and exc.args[0].code() == KafkaError._INVALID_ARG
