"""/healthz, the liveness probe, turns 503 when a handler blocks a stage's loop past KRETRY_LIVENESS_TIMEOUT."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from kretry import Message, Retrier
from kretry.web import Server
from tests.integration.kit import produce, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def test_healthz_is_503_while_a_handler_is_stuck(
    bootstrap: str, new_topic: NewTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRETRY_LIVENESS_TIMEOUT", "1s")
    topic = new_topic("stuck")
    retrier = Retrier(group_id=unique("svc"), bootstrap_servers=bootstrap, dlq_topic=unique("dlq"))
    entered, release = threading.Event(), threading.Event()

    @retrier.handler(topic, delays=["1s"])
    def handle(msg: Message) -> None:
        entered.set()
        release.wait(60)

    with running(retrier) as worker:
        server = Server(worker, "127.0.0.1", 0)
        server.start()
        healthz = f"http://127.0.0.1:{server.port}/healthz"
        try:
            assert httpx.get(healthz).json() == {"status": "alive"}
            produce(bootstrap, topic, [(None, b"v", None)])
            assert entered.wait(30)
            wait_until(lambda: httpx.get(healthz).status_code == 503, what="/healthz to call the stage stuck")
            answer = httpx.get(healthz).json()
            assert answer["status"] == "dead"
            assert answer["reason"] == f"no poll for 1s on {topic}: a handler is stuck"
            # The other stages (the retry tier) keep turning: only the stuck one is named.
            release.set()
            wait_until(lambda: httpx.get(healthz).status_code == 200, what="/healthz to recover")
        finally:
            release.set()
            server.stop()
