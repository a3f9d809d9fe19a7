from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Broker
from tests.integration.kit import create_topics, unique


@pytest.fixture
def bootstrap(kafka: Broker) -> str:
    return kafka.bootstrap


@pytest.fixture
def new_topic(kafka: Broker) -> Callable[..., str]:
    """Create a fresh topic with a unique name and wait until every partition has a leader."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = unique(prefix)
        create_topics(kafka.bootstrap, [name], partitions)
        return name

    return make
