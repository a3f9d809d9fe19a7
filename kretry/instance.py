"""Which worker of a service this process is, for the transactional ids of its exactly-once stages.

A transactional.id must be the same for a worker restarted in its predecessor's place (init_transactions then
fences the predecessor and aborts its open transaction at once) and different for workers running side by side
(or they would fence each other for ever). Two workers on one host are told apart by a slot: the lowest number
whose lock file this process can lock. The kernel frees the lock when its process dies, even by kill -9, so a
worker restarted on the same host takes its predecessor's slot, and its id.

Left to KIP-447 alone (any unique id, zombies fenced through the consumer group metadata), a killed worker's open
transaction would hold up every read_committed reader of its partitions until transaction.timeout.ms; with a
stable id the successor aborts it as it starts. KRETRY_INSTANCE_ID overrides the hostname and slot (a StatefulSet's
pod name, say); a zombie whose id was taken over is still fenced through the group metadata.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import tempfile
from pathlib import Path

from kretry.errors import ConfigError

SLOTS = 256
LOCK_DIR = "kretry-instances"


def transactional_id(group: str, stage_topic: str, instance: str) -> str:
    """One stage of one worker: ``kretry.<group>.<stage topic>.<instance>``."""
    return f"kretry.{group}.{stage_topic}.{instance}"


class Instance:
    """This worker's name among its service's workers, held (with its slot's lock) until ``release``."""

    def __init__(self, name: str, fd: int | None = None) -> None:
        self.name = name
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file frees its lock
            self._fd = None


def claim(group: str, given: str | None, directory: Path | None = None) -> Instance:
    """``given`` as it is, or this host's name and the lowest slot for ``group`` no live process holds."""
    if given is not None:
        return Instance(given)
    where = directory or Path(tempfile.gettempdir()) / LOCK_DIR
    where.mkdir(mode=0o777, parents=True, exist_ok=True)
    digest = hashlib.sha256(group.encode()).hexdigest()[:16]
    host = socket.gethostname() or "localhost"
    for slot in range(SLOTS):
        fd = os.open(where / f"{digest}.{slot}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            # A lock belongs to an open file, not to a process: two workers in one process get two slots too.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return Instance(f"{host}-{slot}", fd)
    raise ConfigError(f"all {SLOTS} instance slots of group {group!r} on {host} are taken; set KRETRY_INSTANCE_ID")
