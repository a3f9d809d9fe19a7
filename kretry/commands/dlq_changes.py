"""``kretry dlq replay | discard``: the two dlq commands that change what the DLQ holds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kretry import config, dlq
from kretry.commands.exits import EXIT_OK, EXIT_REFUSED
from kretry.commands.options import ops_command, positive


def add_parsers(dlq_cmd: Any, which: argparse.ArgumentParser) -> None:
    replay = ops_command(dlq_cmd, "replay", which, "put DLQ records back on their origin topic")
    _selection(replay, "replay", "show what would be replayed; produce nothing")
    replay.add_argument(
        "--max-replays",
        type=int,
        default=dlq.DEFAULT_MAX_REPLAYS,
        help=f"refuse records replayed this many times already (default {dlq.DEFAULT_MAX_REPLAYS})",
    )
    discard = ops_command(
        dlq_cmd, "discard", which, "mark DLQ records that will never be fixed as resolved: never replayed"
    )
    _selection(discard, "discard", "show what would be discarded; mark nothing")


def _selection(parser: argparse.ArgumentParser, verb: str, dry_run_help: str) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--count", type=positive, help=f"{verb} the oldest N pending records the filters match")
    which.add_argument(
        "--offset", action="append", type=_position, metavar="PARTITION:OFFSET", help="this DLQ record (repeatable)"
    )
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)


def _position(text: str) -> dlq.Position:
    try:
        return dlq.parse_position(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def replay(args: argparse.Namespace, settings: config.Settings, only: dlq.Only) -> int:
    report = dlq.replay(
        settings,
        count=args.count,
        offsets=args.offset or (),
        max_replays=args.max_replays,
        dry_run=args.dry_run,
        **only,
    )
    verb = "would replay" if report.dry_run else "replayed"
    return _report(
        args, report, [f"{verb} {_at(o)} -> {o.origin_topic} (kretry-replays={o.replays})" for o in report.done], verb
    )


def discard(args: argparse.Namespace, settings: config.Settings, only: dlq.Only) -> int:
    report = dlq.discard(settings, count=args.count, offsets=args.offset or (), dry_run=args.dry_run, **only)
    verb = "would discard" if report.dry_run else "discarded"
    return _report(args, report, [f"{verb} {_at(o)} ({o.origin_topic})" for o in report.done], verb)


def _at(outcome: dlq.Outcome) -> str:
    return dlq.format_position(outcome.position)


def _report(args: argparse.Namespace, report: dlq.Report, done: list[str], verb: str) -> int:
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for line in done:
            print(line)
        for o in report.refused:
            print(f"refused {_at(o)}: {o.refused}")
        print(f"{verb} {len(report.done)}, refused {len(report.refused)}")
    return EXIT_REFUSED if report.refused else EXIT_OK
