"""A Retrier for process-level tests of handler faults, steered by APP_* variables.

APP_DELAYS is a JSON list, so that a test can register a delay no duration string spells (``[1e300]``). A record
whose value is ``exit`` makes the handler call ``sys.exit(0)`` on the main topic; every other record succeeds.
"""

from __future__ import annotations

import json
import os
import sys

from kretry import Message, Retrier

retrier = Retrier(group_id=os.environ["APP_GROUP"], dlq_topic=os.environ["APP_DLQ"])


@retrier.handler(os.environ["APP_TOPIC"], delays=json.loads(os.environ.get("APP_DELAYS", '["30s"]')))
def handle(msg: Message) -> None:
    if msg.value == b"exit" and msg.attempt == 0:
        sys.exit(0)
