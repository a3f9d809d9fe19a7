"""Pure: the dead letter of an event, readable by ``kretry dlq peek | summary | replay``.

Its origin is the due topic, so a replay puts the event back there: it is delivered at once (its due time has
passed) to the integrations still pending, and a failure counts on from where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from kretry import headers as hdr
from kretry.gateway.configs import Config
from kretry.gateway.events import OUTCOMES, Headers, Scheduled, outcome_lines

ERROR_CLASS = "kretry.gateway.DeliveryFailed"


def headers(
    event: Scheduled, reason: str, errors: Mapping[int, str], config: Config | None, due_topic: str, group: str
) -> Headers:
    names = {i: integ.name for i, integ in enumerate(config.integrations)} if config is not None else {}
    error = f"DeliveryFailed: {reason}"
    if errors:
        # Each error names its integration's URL already (kretry.gateway.deliver).
        error += "; " + "; ".join(text for _, text in sorted(errors.items()))
    out = event.headers()
    out += [
        (OUTCOMES, outcome_lines(errors, names).encode()),
        (hdr.ORIGIN_TOPIC, due_topic.encode()),
        (hdr.ORIGIN_TIMESTAMP, str(int(time.time() * 1000)).encode()),
        (hdr.ERROR, hdr.truncate(error, hdr.ERROR_MAX_BYTES).encode()),
        (hdr.ERROR_CLASS, ERROR_CLASS.encode()),
        (hdr.GROUP, group.encode()),
    ]
    return out
