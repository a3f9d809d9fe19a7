from __future__ import annotations

import time

from kretry import Retrier, Worker
from tests.unit.stages import offline_stage


def test_a_stage_whose_loop_stopped_turning_is_stalled() -> None:
    retrier = Retrier("svc")
    retrier.handler("orders", delays=["1s"])(lambda msg: None)
    worker = Worker(retrier)
    worker.stages.extend(offline_stage(spec) for spec in retrier.stages())
    assert worker.stalled(limit=60) == []
    worker.stages[1].last_step = time.monotonic() - 61
    assert worker.stalled(limit=60) == ["orders_retry_1"]
