"""``kretry dlq discard``: mark DLQ records that will never be fixed as resolved. They stay in the DLQ until its
retention deletes them, but are no longer pending and are never replayed. The ledger entries and the cursor move
are written in one transaction, fenced like a replay's (the same ``transactional.id``), so a discard and a replay
of the same DLQ never run at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kretry.config import Settings
from kretry.dlq._filter import Filter, Only
from kretry.dlq._plan import Plan, Report
from kretry.dlq._reader import Reader
from kretry.dlq._records import DISCARDED, Position, discard_refusal
from kretry.dlq._txn import write

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's; only the type checker needs it
    from typing_extensions import Unpack


def discard(
    settings: Settings,
    *,
    count: int | None = None,
    offsets: Sequence[Position] = (),
    dry_run: bool = False,
    **only: Unpack[Only],
) -> Report:
    """Mark discarded the oldest ``count`` pending records the filters ``only`` match, or those at ``offsets``.

    Raises ReplayInProgress when another replay or discard of the same DLQ started meanwhile; this one then marked
    nothing.
    """
    return write(
        settings, Report(dry_run, action=DISCARDED), _judge, count=count, offsets=offsets, where=Filter(**only)
    )


def _judge(_dlq: Reader, plan: Plan, report: Report) -> None:
    for record in plan.candidates:
        why = discard_refusal(record, plan.ledger)
        if why is None:
            plan.accepted.append(record)
        else:
            report.refuse(record, why)
