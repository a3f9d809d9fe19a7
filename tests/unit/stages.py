"""A Stage built without any client: its constructor does no I/O, so its bookkeeping can be driven by hand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kretry.guard import Flood
from kretry.metrics import Metrics
from kretry.retrier import StageSpec
from kretry.stage import Stage


def offline_stage(spec: StageSpec, clock: Callable[[], float] = time.time, flood: Flood | None = None) -> Stage:
    return Stage(
        spec,
        consumer_conf={},
        producer_conf={},
        dlq_topic="dlq",
        group_id="svc",
        partitions={},
        metrics=Metrics(),
        stopping=threading.Event(),
        clock=clock,
        flood=flood,
    )
