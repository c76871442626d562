"""``client_dns_lookup=resolve_canonical_bootstrap_servers_only``: each bootstrap name is
replaced by the canonical name of every address it resolves to (Java's ``ClientUtils``),
once, before the first metadata request."""

from __future__ import annotations

import logging
import socket

import pytest

from asyncproducer import Producer
from asyncproducer._canonical_names import canonical_bootstrap
from asyncproducer._cluster import BrokerAddress
from asyncproducer.errors import NoBrokersAvailableError
from asyncproducer.testing import FakeCluster

pytestmark = pytest.mark.anyio

CANONICAL = "resolve_canonical_bootstrap_servers_only"


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver with a load balancer's alias in it. Patched in ``socket``, which the
    asyncio and trio resolvers call in a worker thread; uvloop resolves in libuv, past it,
    so the tests that use this run on asyncio and trio only."""
    real_getaddrinfo, real_getnameinfo = socket.getaddrinfo, socket.getnameinfo
    stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
    names = {
        "alias.invalid": ["10.0.0.1", "10.0.0.2", "10.0.0.1"],
        "broker-1.invalid": ["10.0.0.1"],
    }
    reverse = {"10.0.0.1": "broker-1.invalid"}  # 10.0.0.2 has no reverse entry

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> list[object]:
        name = host.decode() if isinstance(host, bytes) else host  # trio passes IDNA bytes
        if name in names:
            return [(*stream, (ip, port)) for ip in names[name]]
        if isinstance(name, str) and name.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]

    def getnameinfo(sockaddr: tuple[str, int], flags: int) -> tuple[str, str]:
        if sockaddr[0] in reverse:
            return reverse[sockaddr[0]], str(sockaddr[1])
        if sockaddr[0].startswith("10."):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getnameinfo(sockaddr, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "getnameinfo", getnameinfo)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.usefixtures("resolver")
async def test_every_address_of_a_name_becomes_its_canonical_name(anyio_backend: str) -> None:
    addresses, resolved = await canonical_bootstrap([BrokerAddress("alias.invalid", 9093)])
    assert resolved
    # 10.0.0.1 once (listed twice), 10.0.0.2 with no reverse entry stands for itself.
    assert addresses == (BrokerAddress("broker-1.invalid", 9093), BrokerAddress("10.0.0.2", 9093))


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.usefixtures("resolver")
async def test_a_name_that_does_not_resolve_is_left_out(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    given = [BrokerAddress("gone.invalid", 9092), BrokerAddress("broker-1.invalid", 9092)]
    with caplog.at_level(logging.WARNING, "asyncproducer.metadata"):
        addresses, resolved = await canonical_bootstrap(given)
    assert (addresses, resolved) == ((BrokerAddress("broker-1.invalid", 9092),), True)
    assert "gone.invalid:9092 left out" in caplog.text
    # None resolves: kept as given, to be tried again (and named in the error).
    assert await canonical_bootstrap(given[:1]) == (tuple(given[:1]), False)


async def test_a_producer_reaches_the_cluster_through_the_canonical_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real resolution (every loop): 127.0.0.1's canonical name is what the system's
    reverse lookup says (``localhost`` on most machines), and the broker is reached
    through it; a name that does not resolve is left out."""
    try:
        expected = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
    except socket.gaierror:
        expected = "127.0.0.1"
    async with FakeCluster(brokers=1) as cluster:
        port = cluster.bootstrap_servers.rpartition(":")[2]
        servers = f"no-such-host.invalid:{port},127.0.0.1:{port}"
        with caplog.at_level(logging.INFO, "asyncproducer.metadata"):
            async with Producer(servers, client_dns_lookup=CANONICAL) as producer:
                metadata = await producer.send_and_wait("t", b"v", partition=0)
        assert metadata.offset == 0
        assert f"resolved to their canonical names {expected}:{port}" in caplog.text
        assert [r.value for r in cluster.records("t", 0)] == [b"v"]


async def test_no_name_resolves_a_typed_error_naming_it() -> None:
    async with Producer(
        "no-such-host.invalid:9092", client_dns_lookup=CANONICAL, max_block_ms=1_000
    ) as producer:
        with pytest.raises(NoBrokersAvailableError, match=r"no-such-host\.invalid:9092"):
            await producer.send("t", b"v")
