"""The dead-letter queue from the outside: peek, replay and summarise it. Plain functions that return data.

Modules, one job each (none imports a later one):

* ``_records``: pure. A DLQ record, its position, filters, and the rules that refuse a replay.
* ``_reader``: read access to one DLQ on the cluster: partitions, records, the replay cursor. Commits nothing.
* ``_ledger``: the replay ledger topic: read it, create it, the entry that marks a record replayed.
* ``_peek``, ``_summary``: the read-only tools.
* ``_replay``: the one tool that writes.

Replay bookkeeping (why replaying twice never replays a DLQ record twice):

* The ledger ``<dlq>.replayed`` is a compacted topic keyed ``partition:offset`` of the DLQ record; its value is
  JSON ``{"ts": <the DLQ record's timestamp>, "topic": <origin>, "replays": n, "at": <epoch ms>}``. A DLQ record
  is "already replayed" exactly when the ledger holds its key with the same timestamp (the timestamp guards
  against a DLQ topic deleted and re-created, whose offsets start again at 0). ``--offset`` and ``--count``
  both consult it, so neither replays what the other already did.
* The cursor: the committed offsets of the consumer group ``kretry-replay.<dlq>`` on the DLQ. Every record below
  it is settled (replayed, or refused for having been replayed ``max_replays`` times already), so ``--count``
  starts scanning there instead of at the start of the DLQ. It is an optimisation; the ledger is the truth.
* One transaction per replay, with the fixed ``transactional.id`` ``kretry-replay.<dlq>``: the records put back on
  their origin topics, their ledger entries and the cursor move (``send_offsets_to_transaction`` for the group
  ``kretry-replay.<dlq>``) are committed together or not at all. A crash, or a produce the broker refuses, before
  the commit leaves nothing behind for a read_committed reader: the records are still in the DLQ, not marked, and
  the next replay takes them (a read_uncommitted reader of an origin topic may see the aborted copies: at least
  once, never lost).
* One replay at a time per DLQ, across processes and machines. The order closes the race: first
  ``init_transactions()``, which fences any older replayer of the same DLQ (its open transaction is aborted, or
  completed if it was already committing); only then read the ledger and the cursor, with ``read_committed``, so
  what an earlier replay committed is seen; then the transaction. A replayer fenced meanwhile fails its produce or
  its commit and raises ReplayInProgress: it put nothing back, the newer one does the work.
* Every read (peek, summary, ledger, cursor) is ``read_committed``: an aborted replay looks like none at all.

Nothing here commits anything but ``replay`` (not in dry-run mode, which needs no transaction either); ``peek``
and ``summary`` only read.
"""

from kretry.dlq._ledger import ensure_ledger
from kretry.dlq._peek import peek
from kretry.dlq._records import (
    DEFAULT_MAX_REPLAYS,
    LEDGER_SUFFIX,
    DeadRecord,
    LedgerEntry,
    Position,
    advance,
    error_type,
    format_position,
    is_replayed,
    ledger_topic,
    matches,
    oldest_first,
    parse_position,
    refusal,
    replay_group,
    replay_headers,
)
from kretry.dlq._replay import Outcome, ReplayReport, replay
from kretry.dlq._summary import Summary, summarize, summary

__all__ = [
    "DEFAULT_MAX_REPLAYS",
    "LEDGER_SUFFIX",
    "DeadRecord",
    "LedgerEntry",
    "Outcome",
    "Position",
    "ReplayReport",
    "Summary",
    "advance",
    "ensure_ledger",
    "error_type",
    "format_position",
    "is_replayed",
    "ledger_topic",
    "matches",
    "oldest_first",
    "parse_position",
    "peek",
    "refusal",
    "replay",
    "replay_group",
    "replay_headers",
    "summarize",
    "summary",
]
