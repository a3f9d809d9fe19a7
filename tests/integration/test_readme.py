"""Every README snippet that registers handlers runs for real: its Retrier's Worker starts on the broker once the
snippet's main topics exist (kretry never creates those), every stage gets its assignment, and it stops cleanly."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from tests.conftest import Broker
from tests.integration.kit import create_topics
from tests.integration.workers import running
from tests.unit.test_readme import SNIPPETS, namespace_of


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.splitlines()[0][:40] for s in SNIPPETS])
def test_snippet_runs_on_the_broker(snippet: str, kafka: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRETRY_BOOTSTRAP_SERVERS", kafka.bootstrap)
    retrier = namespace_of(snippet)
    existing = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics
    missing = [t for t in retrier.handlers if t not in existing]
    if missing:
        create_topics(kafka.bootstrap, missing)
    with running(retrier) as worker:
        assert len(worker.stages) == len(retrier.stages())
