"""A Retrier for the scale-out bench: an I/O-bound handler (1 ms of sleep, as a call to a database would take) that
appends when it finished, and in which process, to BENCH_LEDGER."""

from __future__ import annotations

import os
import time

from kretry import Message, Retrier

retrier = Retrier(group_id=os.environ["BENCH_GROUP"], dlq_topic=os.environ["BENCH_DLQ"])
LEDGER = os.open(os.environ["BENCH_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
SLEEP = 0.001


@retrier.handler(os.environ["BENCH_TOPIC"], delays=os.environ["BENCH_DELAYS"].split(","))
def handle(_msg: Message) -> None:
    time.sleep(SLEEP)
    os.write(LEDGER, f"{time.time()} {os.getpid()}\n".encode())  # one short write: atomic between processes
