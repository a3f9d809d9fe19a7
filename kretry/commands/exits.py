"""Exit codes of the ``kretry`` commands, the help texts that list them, and the one table from exception to exit
code and message."""

from __future__ import annotations

from typing import NamedTuple

import structlog
from confluent_kafka import KafkaException

from kretry import logs
from kretry.errors import (
    AppImportError,
    BrokerUnavailable,
    ConfigError,
    KafkaFatalError,
    ReplayInProgress,
    StopTimeout,
    TopologyError,
    TransactionFenced,
)
from kretry.stage import StageStopped

EXIT_OK = 0
EXIT_ERROR = 1  # an unexpected error: a bug in kretry or in a handler's environment
EXIT_USAGE = 2  # bad command-line arguments (argparse's own code)
EXIT_IMPORT = 3  # MODULE:ATTR could not be imported or is not a Retrier
EXIT_CONFIG = 4  # bad settings or registration
EXIT_BROKER = 5  # the cluster did not answer, or the client hit a fatal error
EXIT_TOPOLOGY = 6  # a main topic is missing, or retry topics are missing with --no-create-topics
EXIT_STOPPED = 7  # a handler with on_exhausted="stop" ran out of retries; its offset is left uncommitted
EXIT_REFUSED = 8  # `dlq replay`: some records were refused (already replayed, too many replays, ...)
EXIT_REPLAY_IN_PROGRESS = 9  # `dlq replay`: another replay of the same DLQ took over; this one put nothing back
EXIT_STOP_TIMEOUT = 10  # a handler was still running when the stop timeout ran out; the process exits anyway
EXIT_FENCED = 11  # exactly_once: a newer worker with the same transactional.id took over; this one stepped down

RUN_EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM after finishing in-flight work
  1  unexpected error
  2  bad command-line arguments
  3  MODULE:ATTR could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings, durations, handler registration)
  5  the Kafka cluster did not answer at start-up, or a fatal client error
  6  a main topic is missing (or retry topics, with --no-create-topics)
  7  on_exhausted="stop": retries ran out; the record's offset is left uncommitted
  10 a handler was still running 10 s after SIGINT/SIGTERM; its record is handled again after a restart
  11 exactly_once: fenced by a newer worker with the same transactional.id; it carries on from the last commit
--processes N: a child's 2, 3, 4, 6 or 7 at once; else, at SIGINT/SIGTERM, the worst child's code (0 if all 0)"""

GATEWAY_EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM after finishing the deliveries under way
  1  unexpected error, or one of its loops failed (the reason is logged)
  2  bad command-line arguments
  4  bad configuration (KRETRY_* and KRETRY_GATEWAY_* settings, a port in use)
  5  the Kafka cluster did not answer at start-up
  6  the gateway's topics could not be created"""

CONSOLE_EXIT_CODES = """exit codes:
  0  stopped by SIGINT/SIGTERM
  1  unexpected error
  2  bad command-line arguments
  3  MODULE:ATTR could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings; a busy port; a non-loopback --host without KRETRY_CONSOLE_TOKEN)
  5  the Kafka cluster did not answer at start-up"""

OPS_EXIT_CODES = """exit codes:
  0  done (topics check: no problem)
  1  unexpected error
  2  bad command-line arguments
  3  APP could not be imported, or is not a kretry.Retrier
  4  bad configuration (settings, handler registration, librdkafka settings)
  5  the Kafka cluster did not answer
  6  topics: a main topic is missing; topics check: problems found (one line each)
  8  dlq replay/discard: some records were refused (each is listed)
  9  dlq replay/discard: another replay or discard of the same DLQ took over; this one changed nothing"""

log = structlog.get_logger("kretry")


class Exit(NamedTuple):
    code: int
    message: str
    # topics, dlq, tier and stats put their own name before these messages ("dlq replay: Kafka is unavailable").
    named: bool = False


# Each command catches only the exceptions it expects and looks them up here; any other is a bug, and its traceback
# and exit code 1 are Python's own.
EXITS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Exit], ...] = (
    (AppImportError, Exit(EXIT_IMPORT, "cannot load app")),
    ((ConfigError, ValueError), Exit(EXIT_CONFIG, "bad configuration")),
    (TopologyError, Exit(EXIT_TOPOLOGY, "topics are not ready", named=True)),
    (ReplayInProgress, Exit(EXIT_REPLAY_IN_PROGRESS, "", named=True)),
    ((BrokerUnavailable, KafkaFatalError, KafkaException), Exit(EXIT_BROKER, "Kafka is unavailable", named=True)),
    (StageStopped, Exit(EXIT_STOPPED, "stopped: retries exhausted")),
    (TransactionFenced, Exit(EXIT_FENCED, "fenced: a newer worker with the same transactional.id took over")),
    (StopTimeout, Exit(EXIT_STOP_TIMEOUT, "stop timed out")),
)


def exit_for(kind: type[BaseException]) -> Exit:
    return next(outcome for kinds, outcome in EXITS if issubclass(kind, kinds))


def failed(exc: BaseException, command: str = "", *, counts_as: type[BaseException] | None = None) -> int:
    """Report ``exc`` (looked up as ``counts_as`` if given) with the code and message of its row in EXITS."""
    code, message, named = exit_for(counts_as or type(exc))
    return report(code, ": ".join(part for part in (command if named else "", message) if part), exc)


def report(code: int, what: str, exc: BaseException) -> int:
    """Say once, as a log line (JSON under --log-format json), why kretry exits with ``code``."""
    error = str(exc)
    native = logs.librdkafka_error() if code == EXIT_BROKER else None
    if native and native not in error:
        # librdkafka says why ("Connection refused", "connecting to a PLAINTEXT broker listener?"); the client's
        # exception only that it timed out.
        error = f"{error}; librdkafka: {native}"
    log.error(what, error=error, exit_code=code)
    return code
