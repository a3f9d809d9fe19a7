"""A Retrier for `kretry run` in the benches, steered by BENCH_* variables; its handler always succeeds."""

from __future__ import annotations

import os

from kretry import Message, Retrier

retrier = Retrier(group_id=os.environ["BENCH_GROUP"], dlq_topic=os.environ["BENCH_DLQ"])


@retrier.handler(os.environ["BENCH_TOPIC"], delays=os.environ["BENCH_DELAYS"].split(","))
def handle(_msg: Message) -> None:
    return None
