"""Example traffic for ``example.app``: a fixed, known mix of records on "orders" and "payments".

Each record's topic and kind are a function of its id, so whoever produced it can tell where it must end up.
Out of every 20 ids, 16 are ok, 3 flaky and 1 poison; one id in three goes to "payments" (3 and 20 are coprime,
so every kind reaches both topics). ``python -m example.traffic --count 200 --rate 50``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

TOPICS = ("orders", "payments")
KINDS = ("ok", "flaky", "poison")
SOURCE_HEADER = ("source", b"example-traffic")
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

Produced = Counter[tuple[str, str]]  # (topic, kind) -> records acknowledged by the broker


def kind_for(record_id: int) -> str:
    slot = record_id % 20
    return "poison" if slot == 0 else "flaky" if slot <= 3 else "ok"


def topic_for(record_id: int) -> str:
    return "payments" if record_id % 3 == 2 else "orders"


def produce(count: int, rate: float = 50.0, bootstrap: str | None = None, first_id: int = 0) -> Produced:
    """Produce ``count`` records at about ``rate`` per second; return what the broker acknowledged.

    Raises KafkaException if any record was not acknowledged: a demo built on a partial delivery would lie.
    """
    bootstrap = bootstrap or os.environ.get("KRETRY_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    produced: Produced = Counter()
    failed: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: object, where: tuple[str, str]) -> None:
        if err is None:
            produced[where] += 1
        else:
            failed.append(err)

    started = time.monotonic()
    for n in range(count):
        record_id = first_id + n
        topic, kind = topic_for(record_id), kind_for(record_id)
        producer.produce(
            topic,
            key=f"{topic[:-1]}-{record_id}".encode(),
            value=json.dumps({"id": record_id, "kind": kind}).encode(),
            headers=[SOURCE_HEADER],
            on_delivery=lambda err, msg, where=(topic, kind): on_delivery(err, msg, where),
        )
        producer.poll(0)
        if rate > 0:  # pace by the schedule, not by sleeping a fixed step, so slow produce calls do not add up
            time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
    left = producer.flush(30)
    if failed or left:
        raise KafkaException(failed[0] if failed else KafkaError(KafkaError._TIMED_OUT, f"{left} unacknowledged"))
    return produced


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example.traffic", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="records to produce (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="records per second, 0 = as fast as possible")
    parser.add_argument("--first-id", type=int, default=0, help="id of the first record (default 0)")
    args = parser.parse_args(argv)
    produced = produce(args.count, args.rate, first_id=args.first_id)
    for (topic, kind), n in sorted(produced.items()):
        print(f"{topic:<9} {kind:<7} {n}")
    print(f"{sum(produced.values())} records acknowledged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
