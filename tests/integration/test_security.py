"""TLS and SASL against Apache Kafka: round trips read back by confluent-kafka, and each
failure typed, in time, without an attempt storm and without a secret in sight.

The clusters are the session's (tests/integration/conftest.py), shared with
test_kafka_security_rig.py; a JVM start is 4-5 s. Every async test runs on asyncio,
uvloop and trio.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import (
    AuthenticationError,
    SaslAuthenticationFailedError,
    SslAuthenticationError,
    UnsupportedSaslMechanismError,
)
from asyncproducer.protocol.sasl import OAuthBearerToken
from asyncproducer.testing.kafka import KafkaCluster
from tests.integration.brokers import SECURE_USERS, require_kafka_tools
from tests.integration.independent import consume
from tests.testing.token_endpoint import token_endpoint, unsecured_jws

pytestmark = [pytest.mark.kafka, pytest.mark.anyio, pytest.mark.timeout(240)]

USER = "alice"
PASSWORD = SECURE_USERS[USER]
RECORDS = 10_000
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def topic_name() -> str:
    return f"sec-{uuid.uuid4().hex[:10]}"


def tls_settings(kafka: KafkaCluster, *, client_certificate: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {"ssl_truststore_location": str(kafka.tls.ca)}
    if client_certificate:  # as PEM text, the key perhaps encrypted
        settings["ssl_keystore_certificate_chain"] = kafka.tls.client_chain.read_text()
        settings["ssl_keystore_key"] = kafka.tls.client_key.read_text()
        settings["ssl_key_password"] = kafka.tls.key_password
    return settings


def confluent_settings(kafka: KafkaCluster, protocol: str) -> dict[str, str]:
    """How confluent-kafka reads the records back on this listener."""
    settings = {"security.protocol": protocol}
    if "SSL" in protocol:
        settings["ssl.ca.location"] = str(kafka.tls.ca)
        settings["ssl.certificate.location"] = str(kafka.tls.client_chain)
        settings["ssl.key.location"] = str(kafka.tls.client_key)
        if kafka.tls.key_password is not None:
            settings["ssl.key.password"] = kafka.tls.key_password
    if "SASL" in protocol:
        settings.update(
            {"sasl.mechanism": "PLAIN", "sasl.username": USER, "sasl.password": PASSWORD}
        )
    return settings


async def round_trip(kafka: KafkaCluster, protocol: str, **settings: Any) -> None:
    """RECORDS records through the producer, every one read back by confluent-kafka."""
    topic = topic_name()
    kafka.create_topic(topic, partitions=3)
    with anyio.fail_after(60):
        async with Producer(
            kafka.bootstrap_servers, security_protocol=protocol, linger_ms=5, **settings
        ) as producer:
            futures = [
                await producer.send(topic, b"%d" % i, key=b"k%d" % (i % 7)) for i in range(RECORDS)
            ]
            acknowledged = {(await f).offset for f in futures[-3:]}
    assert all(offset >= 0 for offset in acknowledged)
    stored = await anyio.to_thread.run_sync(
        lambda: consume(
            kafka.bootstrap_servers,
            topic,
            [0, 1, 2],
            RECORDS,
            extra=confluent_settings(kafka, protocol),
        )
    )
    assert sorted(int(r.value or b"") for r in stored) == list(range(RECORDS))


# --------------------------------------------------------------------------- round trips


async def test_tls(ssl_cluster: KafkaCluster) -> None:
    await round_trip(ssl_cluster, "SSL", **tls_settings(ssl_cluster))


async def test_mutual_tls(mtls_cluster: KafkaCluster) -> None:
    await round_trip(mtls_cluster, "SSL", **tls_settings(mtls_cluster, client_certificate=True))


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_sasl_ssl(sasl_ssl_cluster: KafkaCluster, mechanism: str) -> None:
    await round_trip(
        sasl_ssl_cluster,
        "SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
        **tls_settings(sasl_ssl_cluster),
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_sasl_plaintext(sasl_plaintext_cluster: KafkaCluster, mechanism: str) -> None:
    await round_trip(
        sasl_plaintext_cluster,
        "SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
    )


def token_provider(expires_in_s: float = 3600) -> Any:
    """A sync provider (as one calling a token endpoint over HTTP would be)."""

    def provide() -> tuple[str, int]:
        return unsecured_jws(USER, expires_in_s), int((time.time() + 3600) * 1000)

    return provide


async def test_oauthbearer(
    sasl_plaintext_cluster: KafkaCluster, sasl_ssl_cluster: KafkaCluster
) -> None:
    await round_trip(
        sasl_plaintext_cluster,
        "SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=token_provider(),
    )

    async def provide() -> OAuthBearerToken:  # an async provider, on TLS
        expires = int((time.time() + 3600) * 1000)
        return OAuthBearerToken(unsecured_jws(USER, 3600), expires, principal_name=USER)

    await round_trip(
        sasl_ssl_cluster,
        "SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=provide,
        **tls_settings(sasl_ssl_cluster),
    )


async def send_one_from_properties(kafka: KafkaCluster, properties: dict[str, str]) -> Any:
    """One record to a new topic through a producer made from Java-style properties."""
    producer = Producer.from_config({"bootstrap.servers": kafka.bootstrap_servers, **properties})
    topic = topic_name()
    kafka.create_topic(topic)
    with anyio.fail_after(30):
        async with producer:
            return await producer.send_and_wait(topic, b"configured as in Java")


async def test_oauthbearer_tokens_from_a_token_endpoint(
    sasl_plaintext_cluster: KafkaCluster,
) -> None:
    """KIP-768 as a Java properties file configures it: the producer fetches its tokens
    from an OAuth 2 endpoint with client credentials."""

    def issue(form: dict[str, str]) -> tuple[int, dict[str, object]]:
        return 200, {"access_token": unsecured_jws(USER, 3600), "expires_in": 3600}

    with token_endpoint("producer-app", "app-secret", issue) as endpoint:
        jaas = (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'clientId="producer-app" clientSecret="app-secret";'
        )
        metadata = await send_one_from_properties(
            sasl_plaintext_cluster,
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "OAUTHBEARER",
                "sasl.oauthbearer.token.endpoint.url": str(endpoint["url"]),
                "sasl.jaas.config": jaas,
            },
        )
    assert metadata.offset == 0
    assert endpoint["requests"] == [{"grant_type": "client_credentials"}]  # one token


async def test_an_expired_token_is_refused_by_the_broker(
    sasl_plaintext_cluster: KafkaCluster,
) -> None:
    # The provider claims an hour; the token itself expired a minute ago.
    error, _ = await expect_failure(
        sasl_plaintext_cluster.bootstrap_servers,
        SaslAuthenticationFailedError,
        r"refused SASL OAUTHBEARER",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=token_provider(expires_in_s=-60),
    )
    assert "eyJ" not in str(error)  # no token in the message


async def test_a_java_jaas_line_works(sasl_plaintext_cluster: KafkaCluster) -> None:
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{USER}" password="{PASSWORD}";'
    )
    metadata = await send_one_from_properties(
        sasl_plaintext_cluster,
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.jaas.config": jaas,
        },
    )
    assert metadata.offset == 0


# --------------------------------------------------------------------------- failures

MAX_BLOCK_MS = 3_000


class _Attempts(logging.Handler):
    """Counts failed connection attempts (the pool logs each at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += str(record.msg).startswith("connect to ")


async def expect_failure(
    bootstrap_servers: str, error: type[Exception], match: str, **settings: Any
) -> tuple[BaseException, int]:
    """send() fails with ``error`` within max_block_ms + 1 s, nothing acknowledged;
    returns the error and how many connection attempts failed meanwhile (a handful at
    most: no retry storm)."""
    topic = topic_name()
    attempts = _Attempts()
    log = logging.getLogger("asyncproducer.connection")
    level = log.level
    log.addHandler(attempts)
    log.setLevel(logging.DEBUG)
    try:
        async with Producer(
            bootstrap_servers, max_block_ms=MAX_BLOCK_MS, reconnect_backoff_ms=200, **settings
        ) as producer:
            started = anyio.current_time()
            with (
                anyio.fail_after(MAX_BLOCK_MS / 1000 + 5),
                pytest.raises(error, match=match) as raised,
            ):
                await producer.send_and_wait(topic, b"never")
            assert anyio.current_time() - started < MAX_BLOCK_MS / 1000 + 1
            assert producer.metrics()["record-send-total"] == 0
    finally:
        log.removeHandler(attempts)
        log.setLevel(level)
    # A handful: each broker once or twice (the first refresh and the metadata task's).
    brokers = len(bootstrap_servers.split(","))
    assert 1 <= attempts.count <= 2 * brokers + 3, f"{attempts.count} connection attempts"
    return raised.value, attempts.count


async def test_a_wrong_password_is_refused_typed_and_at_once(
    sasl_ssl_cluster: KafkaCluster,
) -> None:
    for mechanism in MECHANISMS:
        error, _ = await expect_failure(
            sasl_ssl_cluster.bootstrap_servers,
            SaslAuthenticationFailedError,
            rf"refused SASL {mechanism} as user '{USER}'",
            security_protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            sasl_username=USER,
            sasl_password="not-" + PASSWORD,
            **tls_settings(sasl_ssl_cluster),
        )
        assert isinstance(error, AuthenticationError)
        assert PASSWORD not in str(error)


@pytest.fixture(scope="module")
def scram512_only_cluster() -> Iterator[KafkaCluster]:
    require_kafka_tools()
    with KafkaCluster(
        listener="SASL_PLAINTEXT", users=SECURE_USERS, sasl_mechanisms=["SCRAM-SHA-512"]
    ) as kafka:
        yield kafka


async def test_a_mechanism_the_broker_does_not_enable_lists_what_it_does(
    scram512_only_cluster: KafkaCluster,
) -> None:
    await expect_failure(
        scram512_only_cluster.bootstrap_servers,
        UnsupportedSaslMechanismError,
        r"does not enable SASL mechanism PLAIN; it enables: SCRAM-SHA-512",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username=USER,
        sasl_password=PASSWORD,
    )


async def test_an_unknown_ca_is_refused(ssl_cluster: KafkaCluster) -> None:
    await expect_failure(
        ssl_cluster.bootstrap_servers,
        SslAuthenticationError,
        r"TLS with broker 127\.0\.0\.1:\d+ failed: .*(self.signed|unable to get local issuer)",
        security_protocol="SSL",
        ssl_truststore_location=str(ssl_cluster.tls.other_ca),
    )


async def test_no_client_certificate_where_one_is_required(mtls_cluster: KafkaCluster) -> None:
    await expect_failure(
        mtls_cluster.bootstrap_servers,
        SslAuthenticationError,
        r"failed: .*bad certificate \(the broker requires a client certificate it trusts",
        security_protocol="SSL",
        **tls_settings(mtls_cluster),
    )


async def test_a_certificate_a_client_must_refuse(bad_certificate_cluster: KafkaCluster) -> None:
    kafka = bad_certificate_cluster
    served = kafka._client_listener.server_certificate
    match = "certificate has expired" if served == "expired" else "IP address mismatch"
    await expect_failure(
        kafka.bootstrap_servers,
        SslAuthenticationError,
        rf"TLS with broker 127\.0\.0\.1:\d+ failed: {match}",
        security_protocol="SSL",
        **tls_settings(kafka),
    )


async def test_a_plaintext_client_on_a_tls_port_and_the_reverse(
    ssl_cluster: KafkaCluster, sasl_plaintext_cluster: KafkaCluster
) -> None:
    await expect_failure(
        ssl_cluster.bootstrap_servers,
        SslAuthenticationError,
        r"answered with TLS: this listener wants security_protocol='SSL' or 'SASL_SSL'",
    )
    await expect_failure(
        sasl_plaintext_cluster.bootstrap_servers,
        SslAuthenticationError,
        r"does this port speak TLS\?",
        security_protocol="SSL",
        **tls_settings(ssl_cluster),
    )


# --------------------------------------------------------------------------- secrets


async def test_no_secret_in_any_log_record_or_repr(
    sasl_ssl_cluster: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG logging through an authenticated session and a refused one: the password
    appears nowhere, nor in reprs and errors."""
    topic = topic_name()
    sasl_ssl_cluster.create_topic(topic)
    settings: dict[str, Any] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": USER,
        **tls_settings(sasl_ssl_cluster),
    }
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        producer = Producer(sasl_ssl_cluster.bootstrap_servers, sasl_password=PASSWORD, **settings)
        seen += [repr(producer), repr(producer.config), str(producer.config)]
        with anyio.fail_after(30):
            async with producer:
                await producer.send_and_wait(topic, b"ok")
        error, _ = await expect_failure(
            sasl_ssl_cluster.bootstrap_servers,
            SaslAuthenticationFailedError,
            "refused",
            sasl_password=PASSWORD + "-wrong",
            **settings,
        )
        seen += [str(error), repr(error)]
    seen += [record.getMessage() for record in caplog.records]
    seen += [str(record.args) for record in caplog.records]
    assert any("authenticated to broker" in text for text in seen)  # DEBUG was on
    for text in seen:
        assert PASSWORD not in text


# --------------------------------------------------------------------------- re-authentication

SESSION_MS = 2_000
STREAM_S = 6.0  # three sessions: each producer renews on its connection at least twice


@pytest.fixture(scope="module")
def short_session_cluster() -> Iterator[KafkaCluster]:
    """Sessions last SESSION_MS (KIP-368): a client must authenticate again on the same
    connection before then, or the broker closes it."""
    require_kafka_tools()
    with KafkaCluster(
        listener="SASL_PLAINTEXT",
        users=SECURE_USERS,
        broker_config={"connections.max.reauth.ms": str(SESSION_MS)},
    ) as kafka:
        yield kafka


class _Counting(logging.Handler):
    """Counts the connection log's DEBUG lines that start with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = prefix
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += str(record.msg).startswith(self.prefix)


async def stream(kafka: KafkaCluster, topic: str, **settings: Any) -> list[int]:
    """Records for STREAM_S seconds, one every 10 ms; their offsets."""
    async with Producer(
        kafka.bootstrap_servers, security_protocol="SASL_PLAINTEXT", linger_ms=5, **settings
    ) as producer:
        futures = []
        for i in range(int(STREAM_S * 100)):
            futures.append(await producer.send(topic, b"%d" % i))
            await anyio.sleep(0.01)
        return [(await f).offset for f in futures]


async def test_sessions_are_renewed_on_the_same_connection(
    short_session_cluster: KafkaCluster,
) -> None:
    """A SCRAM and an OAUTHBEARER producer stream for three sessions' worth: each renews
    its session on its one connection, no connection drops, and every record lands once,
    in order."""
    kafka = short_session_cluster
    topics = {"SCRAM-SHA-256": topic_name(), "OAUTHBEARER": topic_name()}
    for topic in topics.values():
        kafka.create_topic(topic, partitions=1)
    log = logging.getLogger("asyncproducer.connection")
    renewed, opened = _Counting("renewed the session"), _Counting("connected to broker")
    level = log.level
    log.addHandler(renewed)
    log.addHandler(opened)
    log.setLevel(logging.DEBUG)
    offsets: dict[str, list[int]] = {}

    async def run(mechanism: str, **settings: Any) -> None:
        offsets[mechanism] = await stream(
            kafka, topics[mechanism], sasl_mechanism=mechanism, **settings
        )

    try:
        with anyio.fail_after(STREAM_S + 30):
            async with anyio.create_task_group() as group:
                group.start_soon(
                    functools.partial(
                        run, "SCRAM-SHA-256", sasl_username=USER, sasl_password=PASSWORD
                    )
                )
                group.start_soon(
                    functools.partial(
                        run, "OAUTHBEARER", sasl_oauth_token_provider=token_provider()
                    )
                )
    finally:
        for handler in (renewed, opened):
            log.removeHandler(handler)
        log.setLevel(level)
    count = int(STREAM_S * 100)
    assert opened.count == 2, f"{opened.count} connections opened: one dropped"
    sessions = STREAM_S * 1000 / SESSION_MS
    assert renewed.count >= 2 * (sessions - 1), f"{renewed.count} renewals"
    for mechanism, topic in topics.items():
        assert offsets[mechanism] == list(range(count)), mechanism
        stored = await anyio.to_thread.run_sync(
            lambda topic=topic: consume(
                kafka.bootstrap_servers,
                topic,
                [0],
                count,
                extra=confluent_settings(kafka, "SASL_PLAINTEXT"),
            )
        )
        assert [r.value for r in stored] == [b"%d" % i for i in range(count)]
