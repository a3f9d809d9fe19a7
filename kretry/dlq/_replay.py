"""``kretry dlq replay``: put DLQ records back on their origin topic, in one transaction with their ledger entries
and the cursor move. Why no record is lost or replayed twice: ``kretry.dlq``'s docstring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, Producer

from kretry.config import Settings
from kretry.dlq._filter import Filter, Only
from kretry.dlq._plan import Plan, Report
from kretry.dlq._reader import Reader
from kretry.dlq._records import DEFAULT_MAX_REPLAYS, DeadRecord, Position, marked, refusal, replay_headers
from kretry.dlq._txn import TXN_TIMEOUT, Before, write
from kretry.errors import BrokerUnavailable

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's; only the type checker needs it
    from typing_extensions import Unpack


def replay(
    settings: Settings,
    *,
    count: int | None = None,
    offsets: Sequence[Position] = (),
    max_replays: int = DEFAULT_MAX_REPLAYS,
    dry_run: bool = False,
    **only: Unpack[Only],
) -> Report:
    """Put DLQ records back on their origin topic: the oldest ``count`` pending records the filters ``only`` match,
    or those at ``offsets`` (refused when a filter does not match them).

    Raises ReplayInProgress when another replay (or discard) of the same DLQ started meanwhile; this one then put
    nothing back.
    """
    if max_replays < 0:
        raise ValueError("max_replays must be >= 0")

    def judge(dlq: Reader, plan: Plan, report: Report) -> None:
        _judge(dlq, plan, report, max_replays)

    def put_back(dlq: Reader) -> Before:
        return lambda producer, todo: _produce(producer, todo, dlq.widths)

    return write(settings, Report(dry_run), judge, count=count, offsets=offsets, where=Filter(**only), before=put_back)


def _judge(dlq: Reader, plan: Plan, report: Report, max_replays: int) -> None:
    """Accept each selected record, a stub as the original it stands for, or refuse it."""
    for record in plan.candidates:
        why = refusal(record, plan.ledger, dlq.widths, max_replays, dlq_topic=dlq.topic)
        if why is None and record.left_out is not None:
            # Put back as it is, a stub would be a tombstone: on a compacted topic, the original's key deleted.
            original = dlq.original(record)
            if isinstance(original, str):
                why = original
            else:
                record = original
        if why is None:
            plan.accepted.append(record)
            continue
        report.refuse(record, why)
        if record.replays >= max_replays and marked(record, plan.ledger) is None:
            plan.settled.add(record.position)


def _produce(producer: Producer, records: Sequence[DeadRecord], widths: Mapping[str, int]) -> dict[Position, str]:
    """Produce each record to its origin topic and wait for every acknowledgement; the failures, with why."""
    errors: dict[Position, KafkaError | str] = {}

    def on_delivery(position: Position) -> Any:
        def callback(err: KafkaError | None, _msg: Any) -> None:
            # No method call here: once the producer is fenced, flush() runs this with its KafkaException already
            # raised, and any call into the client library would turn that into a SystemError.
            if err is not None:
                errors[position] = err

        return callback

    for record in records:
        topic = record.origin_topic
        assert topic is not None  # refusal() let no record without one through
        kwargs: dict[str, Any] = {"headers": replay_headers(record)}
        part = record.state.origin_partition
        if part is not None and part < widths.get(topic, 0):
            kwargs["partition"] = part  # where the producer had put it; the key decides otherwise
        try:
            producer.produce(
                topic, key=record.key, value=record.value, on_delivery=on_delivery(record.position), **kwargs
            )
        except BufferError as exc:
            errors[record.position] = str(exc)
        producer.poll(0)
    left = producer.flush(TXN_TIMEOUT)
    if left:
        raise BrokerUnavailable(f"{left} replayed records unacknowledged after {TXN_TIMEOUT:.0f}s; none marked done")
    return {position: err if isinstance(err, str) else err.str() for position, err in errors.items()}
