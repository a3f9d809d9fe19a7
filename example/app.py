"""The example service: two topics, their retry tiers, one shared dead-letter queue.

Run it with ``kretry run example.app:retrier``. The handlers decide from the record alone, never from a clock or a
random draw, so that ``python -m example.demo`` knows in advance where every record must end up. Values are JSON,
``{"id": 17, "kind": "ok" | "flaky" | "poison"}``:

- ``ok`` succeeds at once;
- ``flaky`` fails on the main topic and on the first retry tier (a downstream timeout), then succeeds. "orders"
  has three tiers, so it recovers there; "payments" has one, so it reaches the DLQ: a retry budget is per topic;
- ``poison``, or a value that is not such JSON, fails every time and ends in the DLQ after the last tier.
"""

from __future__ import annotations

import json

from kretry import Message, Retrier

GROUP_ID = "kretry-example"
FLAKY_FAILURES = 2  # a flaky record fails on this many attempts (0 = the main topic) before it succeeds

# Bootstrap servers come from KRETRY_BOOTSTRAP_SERVERS (default 127.0.0.1:9092); the DLQ keeps its default name.
retrier = Retrier(group_id=GROUP_ID)


def kind_of(msg: Message) -> str:
    """The record's kind; a value that is not our JSON is a ValueError, which is retried and then dead-lettered."""
    try:
        body = json.loads(msg.value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON record: {(msg.value or b'')[:40]!r}") from exc
    if not isinstance(body, dict) or body.get("kind") not in ("ok", "flaky", "poison"):
        raise ValueError(f"expected {{'id': ..., 'kind': 'ok'|'flaky'|'poison'}}, got {body!r}"[:200])
    return str(body["kind"])


def process(msg: Message) -> None:
    """What both topics do with a record: the outcome depends only on its kind and the attempt."""
    kind = kind_of(msg)
    if kind == "flaky" and msg.attempt < FLAKY_FAILURES:
        raise TimeoutError(f"{msg.origin_topic}: downstream service timed out (attempt {msg.attempt})")
    if kind == "poison":
        raise ValueError("poison record: this one never succeeds")


@retrier.handler("orders", delays=["1s", "2s", "4s"])
def handle_order(msg: Message) -> None:
    process(msg)


@retrier.handler("payments", delays=["2s"])
def handle_payment(msg: Message) -> None:
    process(msg)
