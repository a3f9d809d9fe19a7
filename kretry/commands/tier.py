"""``kretry tier flush | kill TOPIC_retry_n APP``: a command the running workers of APP obey (kretry.control)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kretry import control
from kretry.commands.exits import EXIT_OK
from kretry.commands.options import WHEN_HELP, ops_command, when
from kretry.errors import ConfigError
from kretry.retrier import Retrier


def add_parser(sub: Any, required: argparse.ArgumentParser) -> None:
    tier = argparse.ArgumentParser(add_help=False)
    tier.add_argument("tier", metavar="TOPIC_retry_n", help="the retry topic whose waiting records it is for")
    which = argparse.ArgumentParser(add_help=False, parents=[tier, required])
    which.add_argument("--error", help="only records whose kretry-error contains this text (any case)")
    which.add_argument("--key", help="only records with this key (as UTF-8 text)")
    which.add_argument("--since", type=when, metavar="WHEN", help=f"only records retried since: {WHEN_HELP}")
    which.add_argument("--until", type=when, metavar="WHEN", help="only records retried before WHEN")
    tier_cmd = sub.add_parser("tier", help="drain a retry tier now: flush or kill what waits there").add_subparsers(
        dest="action", required=True
    )
    ops_command(tier_cmd, control.FLUSH, which, "the records waiting there are due now: the workers handle them")
    kill = ops_command(tier_cmd, control.KILL, which, "the records waiting there go to the DLQ now, unhandled")
    kill.add_argument("--reason", default="", help="why, in their kretry-error (killed by operator: REASON)")


def command(args: argparse.Namespace, retrier: Retrier) -> int:
    tiers = [s.topic for s in retrier.stages() if s.attempt]
    if args.tier not in tiers:
        raise ConfigError(f"{args.tier!r} is not a retry topic of {retrier!r}; its tiers: {', '.join(tiers) or 'none'}")
    if args.action == control.KILL and retrier.dlq_topic is None:
        raise ConfigError(f"{retrier!r} has no DLQ: there is nowhere to kill records to")
    only = {"key": args.key, "error": args.error, "since": args.since, "until": args.until}
    reason = getattr(args, "reason", "")
    sent = control.send(retrier.settings, args.action, args.tier, reason=reason, **only)
    if args.json:
        print(json.dumps({"id": sent, "action": args.action, "tier": args.tier, **only}))
    else:
        print(f"{args.action} {args.tier}: command {sent} sent; running workers obey it within a second")
    return EXIT_OK
