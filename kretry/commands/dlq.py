"""``kretry dlq peek | summary | replay | discard``: each takes the same filters, so that what peek showed is what
replay or discard acts on."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from kretry import config, dlq, topology
from kretry.commands import dlq_changes
from kretry.commands.exits import EXIT_OK
from kretry.commands.options import WHEN_HELP, ops_command, positive, when
from kretry.commands.output import print_json_lines, print_table
from kretry.errors import ConfigError
from kretry.retrier import Retrier

GROUP_HELP = "only records this group's retry path dead-lettered (kretry-group): services may share a DLQ"
NO_DLQ = (
    "no DLQ named: pass APP, set KRETRY_DLQ_TOPIC or give --dlq-topic NAME "
    f"(kretry will not guess {topology.DEFAULT_DLQ_TOPIC!r}: on a shared cluster it may be another service's)"
)


def add_parser(sub: Any, optional: argparse.ArgumentParser) -> None:
    which = argparse.ArgumentParser(add_help=False, parents=[optional])
    which.add_argument("--dlq-topic", metavar="NAME", help="the DLQ (default: APP's, else KRETRY_DLQ_TOPIC)")
    which.add_argument("--origin-topic", help="only records that failed on this topic")
    which.add_argument("--error", help="only records whose kretry-error contains this text (any case)")
    which.add_argument("--key", help="only records with this key (as UTF-8 text)")
    which.add_argument("--since", type=when, metavar="WHEN", help=f"only records dead-lettered since: {WHEN_HELP}")
    which.add_argument("--until", type=when, metavar="WHEN", help="only records dead-lettered before WHEN")
    which.add_argument("--group", help=GROUP_HELP)
    dlq_cmd = sub.add_parser("dlq", help="peek into, summarise, replay and discard the DLQ").add_subparsers(
        dest="action", required=True
    )
    peek = ops_command(dlq_cmd, "peek", which, "show the oldest DLQ records, pending by default (read-only)")
    peek.add_argument("--count", type=positive, default=10, help="how many records (default 10)")
    _state_option(peek)
    peek.add_argument("--all", action="store_const", dest="state", const=dlq.ALL, help="the same as --state all")
    summary = ops_command(dlq_cmd, "summary", which, "counts by group, origin topic, error type and message")
    _state_option(summary)
    dlq_changes.add_parsers(dlq_cmd, which)


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", choices=dlq.STATES, default=dlq.PENDING, help="records in this state only (default pending)"
    )


def command(args: argparse.Namespace, retrier: Retrier | None) -> int:
    action: Callable[[argparse.Namespace, config.Settings, dlq.Only], int] = {
        "peek": _peek,
        "summary": _summary,
        "replay": dlq_changes.replay,
        "discard": dlq_changes.discard,
    }[args.action]
    return action(args, _settings(args, retrier, os.environ), _only(args))


def _settings(args: argparse.Namespace, retrier: Retrier | None, environ: Mapping[str, str]) -> config.Settings:
    """APP's settings, else KRETRY_*'s; the DLQ from --dlq-topic, else APP, else KRETRY_DLQ_TOPIC, never a guess:
    a replay of the default DLQ on a shared cluster would put another service's records back."""
    if retrier is None and args.dlq_topic is None and f"{config.ENV_PREFIX}DLQ_TOPIC" not in environ:
        raise ConfigError(NO_DLQ)
    settings = retrier.settings if retrier is not None else config.load({}, environ)
    if args.dlq_topic is not None:
        topology.validate_topic_name(args.dlq_topic, what="--dlq-topic")
        settings = settings.model_copy(update={"dlq_topic": args.dlq_topic})
    return settings


def _only(args: argparse.Namespace) -> dlq.Only:
    """The filters as dlq's functions take them."""
    return dlq.Only(
        origin_topic=args.origin_topic,
        error=args.error,
        key=args.key,
        since=args.since,
        until=args.until,
        group=args.group,
    )


def _peek(args: argparse.Namespace, settings: config.Settings, only: dlq.Only) -> int:
    records = dlq.peek(settings, args.count, state=args.state, **only)
    if args.json:
        print_json_lines([r.to_json() for r in records])
        return EXIT_OK
    rows = []
    for r in records:
        j = r.to_json()
        origin = f"{r.origin_topic}[{r.state.origin_partition}]@{r.state.origin_offset}"
        rows.append(
            (j["dlq"], j["key"], j["group"], origin, r.state.attempt, r.replays, j["time"], r.status, r.state.error)
        )
    print_table(["DLQ", "KEY", "GROUP", "ORIGIN", "ATTEMPT", "REPLAYS", "TIME", "STATE", "ERROR"], rows)
    return EXIT_OK


def _summary(args: argparse.Namespace, settings: config.Settings, only: dlq.Only) -> int:
    result = dlq.summary(settings, state=args.state, **only)
    if args.json:
        print(json.dumps({"dlq": settings.dlq_topic, "group": args.group, **result.to_json()}))
        return EXIT_OK
    out = result.to_json()
    oldest, newest = out["oldest"] or "-", out["newest"] or "-"
    which = settings.dlq_topic if args.group is None else f"{settings.dlq_topic}, group {args.group}"
    states = ", ".join(f"{n} {state}" for state, n in result.by_state.items())
    print(f"DLQ {which}: {result.total} records, oldest {oldest}, newest {newest} ({args.state}; of {states})")
    print_table(["GROUP", "ORIGIN TOPIC", "ERROR", "COUNT"], [(*key, n) for key, n in sorted(result.by_error.items())])
    print()
    print_table(
        ["ERROR", "MESSAGE", "COUNT", "TOPICS", "GROUPS"],
        [(e, m or "-", n.count, _counts(n.by_topic), _counts(n.by_group)) for e, m, n in result.messages()],
    )
    return EXIT_OK


def _counts(counter: Mapping[str, int]) -> str:
    return ",".join(f"{name}={n}" for name, n in sorted(counter.items(), key=lambda x: (-x[1], x[0])))
