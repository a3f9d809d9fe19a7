"""``kretry stats``: lag and oldest waiting record per stage, and the DLQ's depth."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from kretry import admin
from kretry.commands.exits import EXIT_OK
from kretry.commands.options import ops_command
from kretry.commands.output import print_table
from kretry.retrier import Retrier


def add_parser(sub: Any, required: argparse.ArgumentParser) -> None:
    ops_command(sub, "stats", required, "lag and oldest waiting record per stage; DLQ depth")


def command(args: argparse.Namespace, retrier: Retrier) -> int:
    result = admin.stats(retrier, time.time())
    if args.json:
        print(json.dumps(result.to_json()))
        return EXIT_OK
    print_table(
        ["TOPIC", "STAGE", "GROUP", "LAG", "OLDEST WAITING"],
        [
            (s.topic, s.stage, s.group, s.lag, None if s.oldest_age_s is None else f"{s.oldest_age_s:.1f}s")
            for s in result.stages
        ],
    )
    depth = "-" if result.dlq_depth is None else f"{result.dlq_depth} records"
    print(f"DLQ {result.dlq_topic or '-'}: {depth}")
    return EXIT_OK
