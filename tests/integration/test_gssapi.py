"""SASL GSSAPI (Kerberos) against Apache Kafka and a real MIT Kerberos KDC.

The module starts a throwaway realm (asyncproducer.testing.kerberos) and one Kafka node
whose client listener speaks SASL_PLAINTEXT with GSSAPI only, its broker logging in as
``kafka/localhost`` from a keytab. Round trips are read back by confluent-kafka on the
node's PLAINTEXT replication listener (this wheel's librdkafka has no GSSAPI), and once by
kafka-python over GSSAPI itself: clients this project did not write. Every async test runs
on asyncio, uvloop and trio.

Needs MIT Kerberos (``apt-get install krb5-kdc krb5-admin-server krb5-user libkrb5-dev``)
and the gssapi package, besides Java; missing, they skip, or fail with
ASYNCPRODUCER_REQUIRE_KAFKA=1 (as .ci/run sets).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import AuthenticationError
from asyncproducer.testing.kafka import KafkaCluster
from asyncproducer.testing.kerberos import (
    KerberosRealm,
    KerberosToolMissingError,
    find_kdc_tool,
)
from tests.integration.brokers import REQUIRE_ENV, require_kafka_tools
from tests.integration.independent import consume

pytestmark = [pytest.mark.kafka, pytest.mark.anyio, pytest.mark.timeout(240)]

RECORDS = 10_000
MAX_BLOCK_MS = 3_000
JAAS = "com.sun.security.auth.module.Krb5LoginModule required"


def require_kerberos() -> None:
    """Skip (or, with ASYNCPRODUCER_REQUIRE_KAFKA=1, fail) without MIT Kerberos' KDC tools,
    kinit, or the gssapi package."""
    missing = []
    for tool in ("kdb5_util", "kadmin.local", "krb5kdc", "kinit"):
        try:
            find_kdc_tool(tool)
        except KerberosToolMissingError:
            missing.append(tool)
    try:
        import gssapi  # noqa: F401
    except ImportError:
        missing.append("the gssapi package (pip install 'asyncproducer[gssapi]')")
    if not missing:
        return
    reason = (
        f"GSSAPI tests need {', '.join(missing)}: apt-get install krb5-kdc krb5-admin-server "
        "krb5-user libkrb5-dev"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires them)")
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


@dataclass
class Kerberized:
    realm: KerberosRealm
    kafka: KafkaCluster
    alice_keytab: Path

    @property
    def plaintext_servers(self) -> str:
        """The node's PLAINTEXT replication listener: for confluent-kafka's reads."""
        return ",".join(f"{node.host}:{node.internal_port}" for node in self.kafka.nodes)

    def keytab_settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "GSSAPI",
            "sasl_kerberos_principal": "alice",
            "sasl_kerberos_keytab": str(self.alice_keytab),
            **overrides,
        }


@pytest.fixture(scope="module")
def kerberized() -> Iterator[Kerberized]:
    require_kafka_tools()
    require_kerberos()
    saved = os.environ.get("KRB5_CONFIG")
    with KerberosRealm() as realm:
        alice = realm.add_principal("alice")
        realm.add_principal("mallory")
        # This process's Kerberos library reads the realm's krb5.conf (the broker's JVM
        # is given it by KafkaCluster).
        os.environ["KRB5_CONFIG"] = str(realm.krb5_conf)
        try:
            with KafkaCluster(
                listener="SASL_PLAINTEXT", sasl_mechanisms=["GSSAPI"], kerberos=realm
            ) as kafka:
                yield Kerberized(realm, kafka, alice)
        finally:
            if saved is None:
                os.environ.pop("KRB5_CONFIG", None)
            else:
                os.environ["KRB5_CONFIG"] = saved


def topic_name() -> str:
    return f"krb-{uuid.uuid4().hex[:10]}"


async def produce(bootstrap_servers: str, topic: str, count: int, **settings: Any) -> None:
    with anyio.fail_after(60):
        async with Producer(bootstrap_servers, linger_ms=5, **settings) as producer:
            futures = [
                await producer.send(topic, b"%d" % i, key=b"k%d" % (i % 7)) for i in range(count)
            ]
            offsets = [(await f).offset for f in futures[-3:]]
    assert all(offset >= 0 for offset in offsets)


# --------------------------------------------------------------------------- round trips


async def test_round_trip_from_a_keytab(kerberized: Kerberized) -> None:
    topic = topic_name()
    kerberized.kafka.create_topic(topic, partitions=3)
    await produce(
        kerberized.kafka.bootstrap_servers, topic, RECORDS, **kerberized.keytab_settings()
    )
    stored = await anyio.to_thread.run_sync(
        lambda: consume(kerberized.plaintext_servers, topic, [0, 1, 2], RECORDS)
    )
    assert sorted(int(r.value or b"") for r in stored) == list(range(RECORDS))


# kafka-python loads its protocol schemas with importlib.resources' legacy functions.
@pytest.mark.filterwarnings("ignore:(read|open)_text is deprecated:DeprecationWarning")
async def test_round_trip_from_a_ticket_cache_read_back_over_gssapi(
    kerberized: Kerberized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kinit's ticket, no keytab given; kafka-python reads the records over GSSAPI too."""
    ccache = tmp_path / "ccache"
    kerberized.realm.kinit("alice", ccache)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{ccache}")
    topic = topic_name()
    kerberized.kafka.create_topic(topic, partitions=1)
    count = 1_000
    settings = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI"}
    await produce(kerberized.kafka.bootstrap_servers, topic, count, **settings)

    def read_over_gssapi() -> list[bytes]:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kerberized.kafka.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="GSSAPI",
            sasl_kerberos_service_name="kafka",
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
        )
        try:
            values: list[bytes] = []
            for message in consumer:
                values.append(message.value)
                if len(values) == count:
                    break
            return values
        finally:
            consumer.close()

    values = await anyio.to_thread.run_sync(read_over_gssapi)
    assert [int(v) for v in values] == list(range(count))


async def test_a_krb5_login_module_line_from_java_properties(kerberized: Kerberized) -> None:
    topic = topic_name()
    kerberized.kafka.create_topic(topic, partitions=1)
    properties = {
        "bootstrap.servers": kerberized.kafka.bootstrap_servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "GSSAPI",
        "sasl.kerberos.service.name": "kafka",
        "sasl.jaas.config": (
            f'{JAAS} useKeyTab=true storeKey=true keyTab="{kerberized.alice_keytab}" '
            f'principal="alice@{kerberized.realm.realm}";'
        ),
    }
    with anyio.fail_after(30):
        async with Producer.from_config(properties) as producer:
            metadata = await producer.send_and_wait(topic, b"from a properties file")
    assert metadata.offset == 0
    stored = await anyio.to_thread.run_sync(
        lambda: consume(kerberized.plaintext_servers, topic, [0], 1)
    )
    assert stored[0].value == b"from a properties file"


# --------------------------------------------------------------------------- refusals


async def expect_refusal(kerberized: Kerberized, match: str, **settings: Any) -> str:
    """send() fails with AuthenticationError within max_block_ms + 1 s, nothing sent."""
    async with Producer(
        kerberized.kafka.bootstrap_servers,
        max_block_ms=MAX_BLOCK_MS,
        reconnect_backoff_ms=200,
        **kerberized.keytab_settings(**settings),
    ) as producer:
        started = time.monotonic()
        with (
            anyio.fail_after(MAX_BLOCK_MS / 1000 + 5),
            pytest.raises(AuthenticationError, match=match) as raised,
        ):
            await producer.send_and_wait(topic_name(), b"never")
        assert time.monotonic() - started < MAX_BLOCK_MS / 1000 + 1
        assert producer.metrics()["record-send-total"] == 0
    return str(raised.value)


async def test_a_keytab_without_the_principal_is_refused(kerberized: Kerberized) -> None:
    mallory = kerberized.realm.keytab("mallory")
    message = await expect_refusal(kerberized, "SASL GSSAPI", sasl_kerberos_keytab=str(mallory))
    assert "alice" in message
    assert str(mallory) in message


async def test_a_principal_the_kdc_does_not_know_is_refused(kerberized: Kerberized) -> None:
    await expect_refusal(kerberized, "SASL GSSAPI as nobody", sasl_kerberos_principal="nobody")


async def test_a_stale_keytab_is_refused_by_the_kdc(kerberized: Kerberized, tmp_path: Path) -> None:
    """The KDC has a new key for the principal (the keytab's is an older version)."""
    realm = kerberized.realm
    stale = tmp_path / "stale.keytab"
    shutil.copy(realm.add_principal("carol"), stale)
    realm.rotate_key("carol")  # a new random key: the copy no longer matches it
    await expect_refusal(
        kerberized,
        "SASL GSSAPI as carol",
        sasl_kerberos_principal="carol",
        sasl_kerberos_keytab=str(stale),
    )


async def test_an_unknown_service_is_refused(kerberized: Kerberized) -> None:
    await expect_refusal(
        kerberized, "for service nosuch@localhost", sasl_kerberos_service_name="nosuch"
    )
