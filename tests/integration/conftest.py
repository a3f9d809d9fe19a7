from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import kafka_local
import pytest
import sqs_local
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import Broker
from tests.integration.gateways import delete_prefix
from tests.integration.kit import create_topics, unique
from tests.integration.receiver import Receiver
from tests.integration.sqs import sqs_client


@pytest.fixture
def bootstrap(kafka: Broker) -> str:
    return kafka.bootstrap


@pytest.fixture
def new_topic(kafka: Broker) -> Callable[..., str]:
    """Create a fresh topic with a unique name and wait until every partition has a leader."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = unique(prefix)
        create_topics(kafka.bootstrap, [name], partitions)
        return name

    return make


# The gateway's delivery targets: a real SQS server (ElasticMQ) and a real HTTP receiver.


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """A real SQS API: ``KRETRY_SQS_ENDPOINT`` if set, else ElasticMQ of our own on a free port, stopped at the end."""
    given = os.environ.get("KRETRY_SQS_ENDPOINT")
    if given:
        yield given
        return
    if sqs_local.missing_java_tools():
        reason = "no SQS server: set KRETRY_SQS_ENDPOINT, or install Java 17+ and Maven for ElasticMQ"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    home = Path(tempfile.mkdtemp(prefix="kretry-sqs-"))
    server = sqs_local.LocalSqs(home, kafka_local.free_port())
    try:
        server.start(timeout=120)
        yield server.endpoint
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def sqs_queue(sqs_endpoint: str) -> Callable[[], str]:
    """Create a fresh queue with a unique name; returns its URL."""
    client = sqs_client(sqs_endpoint)

    def make() -> str:
        return client.create_queue(QueueName=unique("q"))["QueueUrl"]

    return make


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def gateway_prefix(kafka: Broker) -> Iterator[str]:
    """A fresh gateway prefix; its topics are deleted after the test."""
    prefix = unique("gw")
    yield prefix
    delete_prefix(kafka.bootstrap, prefix)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"no browser at {CHROMIUM}: `make chromium` installs Debian's chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
