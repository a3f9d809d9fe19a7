"""The ``kretry`` command: ``run`` (the worker, with exit codes a supervisor acts on), ``topics``, ``dlq``, ``tier``,
``stats``, ``gateway`` (kretry.gateway), ``console`` (kretry.console); each lives in kretry.commands.

Every command but ``run`` prints its result on stdout (``--json``: machine-readable) and logs to stderr.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Mapping, Sequence

from kretry import logs
from kretry.commands import console, gateway, ops, parser, run
from kretry.commands.exits import (
    EXIT_BROKER,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_FENCED,
    EXIT_IMPORT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_REPLAY_IN_PROGRESS,
    EXIT_STOP_TIMEOUT,
    EXIT_STOPPED,
    EXIT_TOPOLOGY,
    EXIT_USAGE,
)

__all__ = [
    "EXIT_BROKER",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_FENCED",
    "EXIT_IMPORT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_REPLAY_IN_PROGRESS",
    "EXIT_STOPPED",
    "EXIT_STOP_TIMEOUT",
    "EXIT_TOPOLOGY",
    "EXIT_USAGE",
    "main",
]

# topics, dlq, tier and stats: ops.command.
COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "run": run.command,
    "gateway": gateway.command,
    "console": console.command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kretry`` command; with ``argv`` given, as a call inside another program: stderr is left alone."""
    args = parser.build().parse_args(argv)
    # Only the process's own command reads descriptor 2: a caller's stderr is not ours to take.
    native = logs.capture_librdkafka() if argv is None else None
    try:
        logs.configure(args.log_level, args.log_format, everything=args.log_all)
    except ValueError as exc:
        print(f"kretry: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS.get(args.command, ops.command)(args)
    finally:
        if native is not None:
            # The clients left (the worker's admin client, say) are destroyed now, their last lines still captured.
            gc.collect()
            native.close()


if __name__ == "__main__":
    sys.exit(main())
