"""A Retrier for process-level tests, steered by APP_* variables, that writes what it handles to a ledger.

Each ledger line is JSON: pid, topic, partition, offset, attempt, value, ok. A value ``fail-N-...`` fails while
the attempt is below N, ``poison-...`` always fails, ``slow-...`` takes APP_SLOW seconds; anything else succeeds.
With APP_NEVER_FAIL=1 every value succeeds: a second service on the same topic whose handler never fails.
"""

from __future__ import annotations

import json
import os
import time

from kretry import Message, Retrier

retrier = Retrier(group_id=os.environ["APP_GROUP"], dlq_topic=os.environ["APP_DLQ"])
LEDGER = os.environ["APP_LEDGER"]
SLOW = float(os.environ.get("APP_SLOW", "0.5"))
NEVER_FAIL = os.environ.get("APP_NEVER_FAIL") == "1"


def _write(msg: Message, ok: bool) -> None:
    line = json.dumps(
        {
            "pid": os.getpid(),
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "attempt": msg.attempt,
            "key": (msg.key or b"").decode(errors="replace"),
            "value": (msg.value or b"").decode(errors="replace"),
            "ok": ok,
            "at": time.time(),
        }
    )
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write of a short line: atomic between processes
    finally:
        os.close(fd)


def handle(msg: Message) -> None:
    value = (msg.value or b"").decode(errors="replace")
    if value.startswith("slow-"):
        time.sleep(SLOW)
    failing = not NEVER_FAIL and (
        value.startswith("poison-") or (value.startswith("fail-") and msg.attempt < int(value.split("-")[1]))
    )
    _write(msg, ok=not failing)
    if failing:
        raise RuntimeError(f"failing on purpose at attempt {msg.attempt}")


for topic in os.environ["APP_TOPICS"].split(","):
    retrier.handler(topic, delays=os.environ.get("APP_DELAYS", "0s,1ms").split(","))(handle)
