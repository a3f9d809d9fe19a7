"""The one real Kafka broker of a test session, and helpers that keep tests from colliding.

Which broker, in order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; testcontainers when a Docker engine answers; a JVM
broker of our own (``tools/kafka_local.py``) on free ports with a fresh data dir, stopped at the end. With none
of them the integration tests are skipped with the reason, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import kafka_local  # noqa: E402


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    # Only our own JVM broker has the SASL listener; tests that need it skip elsewhere.
    sasl_bootstrap: str | None
    kind: str


def _no_broker(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and no Kafka broker: {reason}", pytrace=False)
    pytest.skip(reason)


def _testcontainers_broker() -> Iterator[Broker]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as container:
        yield Broker(container.get_bootstrap_server(), None, "testcontainers")


def _jvm_broker() -> Iterator[Broker]:
    home = Path(tempfile.mkdtemp(prefix="kretry-kafka-"))
    broker = kafka_local.LocalKafka(home, kafka_local.free_port(), kafka_local.free_port(), kafka_local.free_port())
    try:
        broker.start(timeout=120)
        yield Broker(broker.bootstrap, broker.sasl_bootstrap, "jvm")
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka() -> Iterator[Broker]:
    """The bootstrap address of a real broker, for the whole session."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield Broker(given, None, "external")
    elif kafka_local.docker_engine_answers():
        yield from _testcontainers_broker()
    elif not kafka_local.missing_java_tools():
        yield from _jvm_broker()
    else:
        _no_broker("no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS, start a Docker engine, or install Java 17+ and Maven")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that runs the CLI in-process configures logging onto the stream pytest captured for it, which is closed
    once the test ends: the next test's log lines must not go there."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
