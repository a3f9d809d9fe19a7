"""Operators' commands to the records waiting in a retry tier: *flush* (due now) and *kill* (to the DLQ now), which
running stages obey.

Modules: ``_commands`` (pure: a command, its JSON, which record it covers, the worker's ``Orders``), ``_io``
(``send``; the ``Reader`` thread of a worker).

How a command reaches the records it covers:

* ``send`` produces it, as JSON keyed by the tier's topic, to the retrier's control topic ``<group_id>.control``
  (``topology.control_topic``; one partition, created by ``kretry run`` and ``kretry topics create`` with the retry
  topics, kept ``topology.control_horizon_ms``: twice the longest delay, a day at least) and returns once the
  broker acknowledged it.
* Every worker runs one ``Reader``: no consumer group, nothing committed, so every worker sees every command. At
  start it seeks to the first command younger than the horizon, so a worker (re)started after a command still obeys
  it; then it follows the topic, so a running worker learns one within a fraction of a second. A command is
  remembered once by its id.
* A command covers the records of its tier produced *before* its ``issued_at`` (the record's timestamp, written by
  the stage that forwarded it; the sender's clock and the workers' should agree within the margin operators care
  about) that match its filters. A record produced afterwards waits as usual: a flushed record that fails again
  goes on with a fresh due time, never flushed twice by the same command.
* A retry stage asks for each record it is about to wait for (``order``): a flushed one is due now and handled as
  any due record (its outcome forwarded, its offset stored as usual); a killed one goes to the DLQ with
  ``kretry-error`` "killed by operator: <reason> (command <id>); last error: ...", and its offset is stored only
  once that copy is acknowledged. When a command arrives, the stage re-times the records its due-time window holds
  (those covered come out at once) and resumes its paused partitions (fetched again from the record each waited
  for, which are asked again). Nothing else changes: the committed offset never passes a record not done, and the
  records of a partition are taken in their order.
* What a stage has not read is asked when it is read: a partition paused behind a record the command does not cover
  (its window full, or off with ``retry_window_records=0``) has the records behind that one asked once the window
  has room again, or, with no window, once that record is due. An unfiltered command covers every head, so it
  drains such a partition all the same.
* Killing and flushing are at least once, as everything in kretry: a worker that dies between a killed record's DLQ
  copy and its offset commit kills it again after the restart (a second DLQ copy), never loses it; so is a record
  done while one before it in its partition still waits (the committed offset stays at that one), as for any
  record a retry stage handles out of order.
"""

from __future__ import annotations

import time

from kretry.config import Settings
from kretry.control._commands import ACTIONS, FILTERS, FLUSH, KILL, KILLED, Command, Orders, decode, order
from kretry.control._io import Reader
from kretry.control._io import send as send_command
from kretry.dlq import Filter
from kretry.errors import ConfigError
from kretry.topology import control_topic

__all__ = [
    "ACTIONS",
    "FILTERS",
    "FLUSH",
    "KILL",
    "KILLED",
    "Command",
    "Orders",
    "Reader",
    "decode",
    "order",
    "send",
]


def send(
    settings: Settings,
    action: str,
    topic: str,
    *,
    key: str | None = None,
    error: str | None = None,
    since: int | None = None,
    until: int | None = None,
    reason: str = "",
) -> str:
    """Flush or kill the records waiting in retry topic ``topic`` of ``settings``' retrier that match the filters;
    return the command's id. Running workers obey within a second; records produced later are not covered."""
    if settings.group_id is None:
        raise ConfigError("group_id: required to name the control topic (KRETRY_GROUP_ID or the APP's)")
    command = Command(
        action, topic, int(time.time() * 1000), Filter(key=key, error=error, since=since, until=until), reason
    )
    send_command(settings, control_topic(settings.group_id), command)
    return command.id
