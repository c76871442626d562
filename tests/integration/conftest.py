"""The real brokers of the integration suite: see tests/integration/brokers.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.brokers import (
    BROKER_KINDS,
    EXTERNAL,
    EXTERNAL_ENV,
    KillableBroker,
    RealBroker,
    running_broker,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", params=BROKER_KINDS)
def real_broker(request: pytest.FixtureRequest) -> Iterator[RealBroker]:
    """One broker of each kind for the whole session (pytest runs every test of one kind,
    then ends that broker before starting the next)."""
    kind: str = request.param
    if kind == EXTERNAL:
        yield RealBroker(kind, os.environ[EXTERNAL_ENV])
        return
    with running_broker(kind) as broker:
        yield RealBroker(kind, broker.bootstrap_servers)


@pytest.fixture
def kafka_bootstrap_servers(real_broker: RealBroker) -> str:
    return real_broker.bootstrap_servers


@pytest.fixture
def broker_kind(real_broker: RealBroker) -> str:
    """``tansu``, ``kafka`` or ``external``: for the few assertions where brokers differ."""
    return real_broker.kind


@pytest.fixture(params=BROKER_KINDS)
def killable_broker(request: pytest.FixtureRequest) -> Iterator[KillableBroker]:
    """A broker of the test's own, of each kind, that the test may kill."""
    with running_broker(request.param) as broker:
        yield broker


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
