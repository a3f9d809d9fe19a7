"""The dead-letter queue from the outside: peek, summarise, replay and discard it; its depth. Plain functions that
return data.

Modules, one job each (none imports a later one):

* ``_records``: pure. A DLQ record, its position, its state, and the rules that refuse a replay or a discard.
* ``_filter``: pure. The filters every tool takes (origin topic, error, key, time, group), and time parsing.
* ``_reader``: read access to one DLQ on the cluster: partitions, records, the replay cursor. Commits nothing.
* ``_ledger``: the ledger topic: read it, create it, the entry that marks a record replayed or discarded.
* ``_peek``, ``_summary``, ``_depth``: the read-only tools; ``_browse``: newest first, a page at a time, bounded
  reads (the console's dead set).
* ``_plan``: what a replay or a discard selects and refuses; ``_txn``: the fenced transaction both write in.
* ``_replay``, ``_discard``: the tools that write.

A DLQ record is in one of three states: *pending* until the ledger marks it *replayed* (put back on its origin
topic) or *discarded* (resolved for good: it will never be fixed, and is never replayed).

Replay bookkeeping (why replaying twice never replays a DLQ record twice):

* The ledger ``<dlq>.replayed`` is a compacted topic keyed ``partition:offset`` of the DLQ record; its value is
  JSON ``{"ts": <the DLQ record's timestamp>, "topic": <origin>, "replays": n, "at": <epoch ms>, "action":
  "replayed" | "discarded"}`` (an entry without "action", written before discard existed, marks a replay). A DLQ
  record is marked exactly when the ledger holds its key with the same timestamp (the timestamp guards
  against a DLQ topic deleted and re-created, whose offsets start again at 0). ``--offset`` and ``--count``
  both consult it, so neither replays what the other already did.
* The cursor: the committed offsets of the consumer group ``kretry-replay.<dlq>`` on the DLQ. Every record below
  it is settled (replayed, discarded, or refused for having been replayed ``max_replays`` times already), so ``--count``
  starts scanning there instead of at the start of the DLQ. It is an optimisation; the ledger is the truth.
* One transaction per replay, with the fixed ``transactional.id`` ``kretry-replay.<dlq>``: the records put back on
  their origin topics, their ledger entries and the cursor move (``send_offsets_to_transaction`` for the group
  ``kretry-replay.<dlq>``) are committed together or not at all. A crash, or a produce the broker refuses, before
  the commit leaves nothing behind for a read_committed reader: the records are still in the DLQ, not marked, and
  the next replay takes them (a read_uncommitted reader of an origin topic may see the aborted copies: at least
  once, never lost).
* A discard is the same transaction without the records put back: ledger entries with "action": "discarded" and
  the cursor move, with the same ``transactional.id``, so replays and discards of one DLQ run one at a time.
* One replay at a time per DLQ, across processes and machines. The order closes the race: first
  ``init_transactions()``, which fences any older replayer of the same DLQ (its open transaction is aborted, or
  completed if it was already committing); only then read the ledger and the cursor, with ``read_committed``, so
  what an earlier replay committed is seen; then the transaction. A replayer fenced meanwhile fails its produce or
  its commit and raises ReplayInProgress: it put nothing back, the newer one does the work.
* Every read (peek, summary, ledger, cursor) is ``read_committed``: an aborted replay looks like none at all.

Nothing here commits anything but ``replay`` and ``discard`` (not in dry-run mode, which needs no transaction
either); ``peek``, ``summary`` and ``depth`` only read.
"""

from kretry.dlq._browse import (
    PAGE_MAX,
    Browser,
    Cursor,
    Page,
    find,
    format_cursor,
    merge_page,
    newest,
    parse_cursor,
    read_from,
)
from kretry.dlq._depth import Depth, count_pending, depth
from kretry.dlq._discard import discard
from kretry.dlq._filter import Filter, Only, matches, parse_when
from kretry.dlq._ledger import ensure_ledger
from kretry.dlq._peek import peek
from kretry.dlq._plan import Outcome, Report
from kretry.dlq._records import (
    ALL,
    DEFAULT_MAX_REPLAYS,
    DISCARDED,
    LEDGER_SUFFIX,
    PENDING,
    REPLAYED,
    STATES,
    DeadRecord,
    LedgerEntry,
    Position,
    advance,
    discard_refusal,
    error_kind,
    error_message,
    error_type,
    format_position,
    iso,
    ledger_topic,
    marked,
    oldest_first,
    parse_position,
    refusal,
    replay_group,
    replay_headers,
    status_of,
    text,
)
from kretry.dlq._replay import replay
from kretry.dlq._summary import Summary, summarize, summary

ReplayReport = Report  # the name a replay's report had before discard shared it

__all__ = [
    "ALL",
    "Cursor",
    "Browser",
    "DEFAULT_MAX_REPLAYS",
    "PAGE_MAX",
    "DISCARDED",
    "LEDGER_SUFFIX",
    "PENDING",
    "REPLAYED",
    "STATES",
    "DeadRecord",
    "Depth",
    "Filter",
    "LedgerEntry",
    "Only",
    "Outcome",
    "Page",
    "Position",
    "ReplayReport",
    "Report",
    "Summary",
    "advance",
    "count_pending",
    "depth",
    "discard",
    "discard_refusal",
    "ensure_ledger",
    "error_kind",
    "error_message",
    "error_type",
    "find",
    "format_cursor",
    "format_position",
    "iso",
    "ledger_topic",
    "marked",
    "matches",
    "merge_page",
    "newest",
    "parse_cursor",
    "oldest_first",
    "parse_position",
    "parse_when",
    "peek",
    "read_from",
    "refusal",
    "replay",
    "replay_group",
    "replay_headers",
    "status_of",
    "summarize",
    "summary",
    "text",
]
