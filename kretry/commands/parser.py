"""The ``kretry`` argument parser; each command's options come from its own module."""

from __future__ import annotations

import argparse

from kretry import __version__
from kretry.commands import console, dlq, gateway, run, stats, tier, topics
from kretry.commands.options import common


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kretry", description="Non-blocking Kafka retries.")
    parser.add_argument("--version", action="version", version=f"kretry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    required, optional = common("required"), common("optional")
    topics.add_parser(sub, required)
    dlq.add_parser(sub, optional)
    tier.add_parser(sub, required)
    stats.add_parser(sub, required)
    gateway.add_parser(sub)
    console.add_parser(sub)
    return parser
