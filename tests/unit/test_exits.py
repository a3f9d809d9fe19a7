"""The one table from exception to exit code and message, as each command reports through it."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from structlog.testing import capture_logs

from kretry import cli
from kretry.commands import exits, ops
from kretry.errors import BrokerUnavailable, ConfigError, DurationError, ReplayInProgress, TopologyError


def reported(exc: BaseException, command: str = "", counts_as: type[BaseException] | None = None) -> tuple[int, str]:
    with capture_logs() as lines:
        code = exits.failed(exc, command, counts_as=counts_as)
    (line,) = lines
    assert (line["log_level"], line["exit_code"], line["error"]) == ("error", code, str(exc))
    return code, line["event"]


def test_run_gateway_and_console_say_only_what_failed() -> None:
    assert reported(TopologyError("t")) == (cli.EXIT_TOPOLOGY, "topics are not ready")
    assert reported(DurationError("d")) == (cli.EXIT_CONFIG, "bad configuration")
    assert reported(KafkaException("k")) == (cli.EXIT_BROKER, "Kafka is unavailable")


def test_topics_dlq_tier_and_stats_name_themselves_where_the_cluster_failed() -> None:
    assert reported(BrokerUnavailable("b"), "dlq replay") == (cli.EXIT_BROKER, "dlq replay: Kafka is unavailable")
    assert reported(ReplayInProgress("r"), "dlq replay") == (cli.EXIT_REPLAY_IN_PROGRESS, "dlq replay")
    assert reported(ValueError("v"), "stats") == (cli.EXIT_CONFIG, "bad configuration")


def test_a_refused_client_setting_counts_as_bad_configuration() -> None:
    refused = KafkaException(KafkaError(KafkaError._INVALID_ARG, "no such property"))
    assert ops._refused_settings(refused)
    assert not ops._refused_settings(KafkaException(KafkaError(KafkaError._TRANSPORT, "down")))
    assert reported(refused, "stats", ConfigError) == (cli.EXIT_CONFIG, "bad configuration")
