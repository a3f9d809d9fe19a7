from __future__ import annotations

import threading
import time

from kretry import Retrier, Worker
from kretry.metrics import Metrics
from kretry.stage import Stage


def test_a_stage_whose_loop_stopped_turning_is_stalled() -> None:
    retrier = Retrier("svc")
    retrier.handler("orders", delays=["1s"])(lambda msg: None)
    worker = Worker(retrier)
    for spec in retrier.stages():
        worker.stages.append(
            Stage(
                spec,
                consumer_conf={},
                producer_conf={},
                dlq_topic="dlq",
                group_id="svc",
                partitions={},
                metrics=Metrics(),
                stopping=threading.Event(),
            )
        )
    assert worker.stalled(limit=60) == []
    worker.stages[1].last_step = time.monotonic() - 61
    assert worker.stalled(limit=60) == ["orders_retry_1"]
