"""`kretry run --processes N` from outside: its children (from its JSON log), and the group they make up."""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from tests.integration.kit import complete_lines


def events(log: Path, name: str) -> list[dict[str, object]]:
    """The JSON log lines of one event, in order."""
    found = []
    for line in complete_lines(log):
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def child_pids(log: Path) -> list[int]:
    """Every child the supervisor started so far, restarts included, in order."""
    return [int(str(e["pid"])) for e in events(log, "worker process started")]


def alive(pid: int) -> bool:
    """Running, neither gone nor a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "X")
    return state not in ("Z", "X")


def group_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group once it is stable with every member assigned (so never more than the partitions);
    0 while it rebalances."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    try:
        description = future.result(timeout=15)
    except KafkaException:  # no coordinator yet (NOT_COORDINATOR, ...) for a group still forming: ask again
        return 0
    if description.state != ConsumerGroupState.STABLE:
        return 0
    members = description.members
    if any(not m.assignment.topic_partitions for m in members):
        return 0
    return len(members)


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        return []
    return [int(p) for p in path.read_text().split() if alive(int(p))]
