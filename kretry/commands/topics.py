"""``kretry topics plan | create | check``: the topics a Retrier needs (kretry.admin)."""

from __future__ import annotations

import argparse
from typing import Any

from kretry import admin
from kretry.commands.exits import EXIT_OK, EXIT_TOPOLOGY
from kretry.commands.options import ops_command, positive
from kretry.commands.output import print_json_lines, print_table
from kretry.retrier import Retrier


def add_parser(sub: Any, required: argparse.ArgumentParser) -> None:
    topics = sub.add_parser("topics", help="the topics a Retrier needs: plan, create, check").add_subparsers(
        dest="action", required=True
    )
    plan = ops_command(topics, "plan", required, "list every topic kretry needs, with each retry tier's delay")
    plan.add_argument(
        "--partitions",
        type=positive,
        help="plan a main topic that does not exist yet this wide (default: its width shows as ?)",
    )
    ops_command(topics, "create", required, "create the missing retry topics, DLQ and replay ledger")
    ops_command(topics, "check", required, "check partitions, retention and cleanup policy")


def command(args: argparse.Namespace, retrier: Retrier) -> int:
    if args.action == "check":
        return _check(retrier)
    if args.action == "plan":
        return _plan(args, retrier)
    needs = admin.create(retrier)
    if args.json:
        print_json_lines([n.to_json() for n in needs])
        return EXIT_OK
    for n in needs:
        print(f"created {n.name} ({n.role}, {n.partitions} partitions, retention {admin.human_ms(n.retention_ms)})")
    if not needs:
        print("nothing to create: every topic exists")
    return EXIT_OK


def _check(retrier: Retrier) -> int:
    found = admin.check(retrier)
    for line in found.problems:
        print(line)
    for line in found.notes:
        print(f"note: {line}")
    if not found.problems:
        print("ok: every retry topic, the DLQ and its ledger are as kretry needs them")
    return EXIT_TOPOLOGY if found.problems else EXIT_OK


def _plan(args: argparse.Namespace, retrier: Retrier) -> int:
    rows, notes = admin.plan(retrier, args.partitions)
    if args.json:
        print_json_lines([r.to_json() for r in rows])
        return EXIT_OK
    print_table(
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
