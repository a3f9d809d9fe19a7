"""The DLQ flood guard on a real broker: a bad deploy fails every record, the guard stops the drain into the DLQ,
loses nothing, says why, and lets everything through once an operator resets it."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from kretry import DlqGuard, Message, NonRetryable, Retrier
from kretry.web import Server
from tests.integration.kit import committed, end_offsets, produce, read_all, unique, wait_until
from tests.integration.workers import running

NewTopic = Callable[..., str]


def test_a_tripped_guard_holds_records_from_the_dlq_until_it_is_reset(bootstrap: str, new_topic: NewTopic) -> None:
    topic = new_topic("flood", partitions=2)
    retrier = Retrier(
        group_id=unique("svc"),
        bootstrap_servers=bootstrap,
        dlq_topic=unique("dlq"),
        dlq_guard=DlqGuard(max_share=None, max_consecutive=5),
    )
    broken = True
    handled: list[bytes] = []

    @retrier.handler(topic, delays=[])
    def handle(msg: Message) -> None:
        if broken:
            raise NonRetryable("a bad deploy")
        handled.append(msg.value)

    values = [f"v{i}".encode() for i in range(40)]
    with running(retrier) as worker:
        server = Server(worker, "127.0.0.1", 0)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            produce(bootstrap, topic, [(v, v, None) for v in values])
            wait_until(lambda: worker.flood is not None and worker.flood.tripped is not None, what="the guard")
            ready = httpx.get(f"{base}/readyz")
            assert ready.status_code == 503
            assert "DLQ flood guard tripped" in ready.json()["reason"]
            assert "kretry_dlq_guard_tripped 1.0" in httpx.get(f"{base}/metrics").text
            wait_until(lambda: sum(end_offsets(bootstrap, retrier.dlq_topic or "", 2)) == 5, what="5 dead letters")
            assert sum(committed(bootstrap, retrier.group_id, topic, 2)) < len(values)

            broken = False  # the deploy is rolled back
            reset = httpx.post(f"{base}/v1/dlq_guard/reset", headers={"Content-Type": "application/json"})
            assert reset.status_code == 200, reset.text
            assert reset.json() == {"tripped": False, "reason": None}
            wait_until(lambda: sum(committed(bootstrap, retrier.group_id, topic, 2)) == len(values), what="all commits")
            assert httpx.get(f"{base}/readyz").status_code == 200
        finally:
            server.stop()

    dead = {m.value() for m in read_all(bootstrap, retrier.dlq_topic or "", expected=5)}
    assert len(dead) == 5
    assert set(handled) | dead == set(values), "a record was lost"
    assert sum(end_offsets(bootstrap, retrier.dlq_topic or "", 2)) == 5, "the guard let more through"
