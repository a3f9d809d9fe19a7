"""What the loops of one gateway instance share: its settings and topic names, its producer, the configurations
view, and the event that stops them all."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kretry.gateway.outbox import Outbox
from kretry.gateway.settings import GatewaySettings
from kretry.gateway.store import ConfigView
from kretry.gateway.topics import Names


@dataclass(frozen=True)
class Context:
    settings: GatewaySettings
    names: Names
    outbox: Outbox
    view: ConfigView
    stopping: threading.Event
