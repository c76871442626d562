"""FakeCluster's TLS and SASL listeners: the real Producer through each mechanism, each
refusal typed and in time, KIP-368 re-authentication on one connection; the broker side's
rules checked with raw requests (what Kafka closes, answers, refuses); the mechanism
servers checked on their own (an RFC 7677 test vector, token validation).

Every async test runs on asyncio, uvloop and trio (tests/conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest

from asyncproducer import Producer
from asyncproducer.errors import (
    AuthenticationError,
    SaslAuthenticationFailedError,
    SslAuthenticationError,
    UnsupportedSaslMechanismError,
)
from asyncproducer.protocol.messages import (
    api_versions_request,
    metadata_request,
    sasl_authenticate_request,
    sasl_handshake_request,
)
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.certs import TlsFiles, make_tls_files
from asyncproducer.testing.fake import FakeCluster, unsecured_jws
from asyncproducer.testing.fake._auth import (
    OAuthBearerServer,
    PlainServer,
    SaslRefused,
    ScramCredential,
    ScramServer,
)
from asyncproducer.testing.fake._session import SaslConfig, Session
from tests import raw_client

pytestmark = pytest.mark.anyio

USER, PASSWORD = "alice", "alice-secret"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
RECORDS = 30
MAX_BLOCK_MS = 2_000


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("fake-tls"))


async def round_trip(cluster: FakeCluster, **settings: Any) -> None:
    """RECORDS records over 3 partitions led by every broker: each stored once, in order."""
    brokers = cluster.broker_ids
    cluster.create_topic("orders", 3, leaders=[brokers[i % len(brokers)] for i in range(3)])
    with anyio.fail_after(15):
        async with Producer(linger_ms=2, **settings) as producer:
            futures = [
                await producer.send("orders", b"%d" % i, partition=i % 3) for i in range(RECORDS)
            ]
            for future in futures:
                await future
    for partition in range(3):
        stored = cluster.records("orders", partition)
        assert [r.value for r in stored] == [b"%d" % i for i in range(partition, RECORDS, 3)]
    assert cluster.authentication_failures == []


async def expect_refusal(
    cluster: FakeCluster, error: type[Exception], match: str, **settings: Any
) -> BaseException:
    """send() fails with ``error`` within max_block_ms + 1 s; nothing is stored."""
    cluster.create_topic("orders", 1)
    async with Producer(max_block_ms=MAX_BLOCK_MS, reconnect_backoff_ms=100, **settings) as p:
        started = anyio.current_time()
        with anyio.fail_after(MAX_BLOCK_MS / 1000 + 5), pytest.raises(error, match=match) as raised:
            await p.send_and_wait("orders", b"never")
        assert anyio.current_time() - started < MAX_BLOCK_MS / 1000 + 1
    assert cluster.records("orders", 0) == []
    return raised.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_each_mechanism_round_trip(listener: str, mechanism: str, tls: TlsFiles) -> None:
    given = {"tls": tls} if listener == "SASL_SSL" else {}
    async with FakeCluster(brokers=3, listener=listener, **given) as cluster:
        settings = cluster.producer_settings(mechanism)
        assert settings["security_protocol"] == listener
        assert settings["sasl_mechanism"] == mechanism
        await round_trip(cluster, **settings)
        assert {(a.mechanism, a.principal) for a in cluster.authentications} == {(mechanism, USER)}
        assert {a.broker for a in cluster.authentications} == {0, 1, 2}
        assert not any(a.reauthentication for a in cluster.authentications)


async def test_tls_alone_with_files_the_cluster_makes() -> None:
    async with FakeCluster(brokers=3, listener="SSL") as cluster:
        ca = cluster.tls.ca
        assert ca.exists()
        await round_trip(
            cluster,
            bootstrap_servers=cluster.bootstrap_servers,
            security_protocol="SSL",
            ssl_truststore_location=str(ca),
        )
        assert cluster.authentications == []  # no client certificate, no principal
    assert not ca.exists()  # removed with the cluster


async def test_tls_with_a_server_context_of_your_own(tls: TlsFiles) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.server_chain, tls.server_key)
    async with FakeCluster(brokers=1, listener="SSL", tls=context) as cluster:
        with pytest.raises(RuntimeError, match="no TLS files"):
            cluster.tls  # noqa: B018
        await round_trip(
            cluster,
            bootstrap_servers=cluster.bootstrap_servers,
            security_protocol="SSL",
            ssl_context=tls.client_ssl_context(),
        )


async def test_mutual_tls(tls: TlsFiles) -> None:
    async with FakeCluster(brokers=3, listener="SSL", tls=tls, client_auth="required") as cluster:
        settings = cluster.producer_settings()  # the client certificate, as it is required
        assert "ssl_keystore_certificate_chain" in settings
        await round_trip(cluster, **settings)
        assert {(a.mechanism, a.principal) for a in cluster.authentications} == {
            ("SSL", "CN=client")
        }


async def test_mutual_tls_without_a_client_certificate_is_refused(tls: TlsFiles) -> None:
    async with FakeCluster(brokers=1, listener="SSL", tls=tls, client_auth="required") as cluster:
        await expect_refusal(
            cluster,
            SslAuthenticationError,
            "the broker requires a client certificate",
            **cluster.producer_settings(client_certificate=False),
        )
        assert "peer did not return a certificate" in cluster.authentication_failures[0].reason


async def test_mutual_tls_with_sasl(tls: TlsFiles) -> None:
    async with FakeCluster(
        brokers=1, listener="SASL_SSL", tls=tls, client_auth="required"
    ) as cluster:
        await round_trip(cluster, **cluster.producer_settings("SCRAM-SHA-512"))
        # The SASL login is the principal; the certificate only opened the door.
        assert [(a.mechanism, a.principal) for a in cluster.authentications] == [
            ("SCRAM-SHA-512", USER)
        ]


async def test_a_token_validator_of_your_own_names_the_principal() -> None:
    expires_ms = int(time.time() * 1000) + 60_000
    seen: list[str] = []

    def validate(token: str) -> tuple[str, int] | None:
        seen.append(token)
        return ("bob", expires_ms) if token == "opaque-token-for-bob" else None

    async def provide() -> tuple[str, int]:
        return "opaque-token-for-bob", expires_ms

    async with FakeCluster(
        brokers=1,
        listener="SASL_PLAINTEXT",
        sasl_mechanisms=["OAUTHBEARER"],
        oauthbearer_validator=validate,
        session_lifetime_ms=3_600_000,
    ) as cluster:
        await round_trip(
            cluster,
            bootstrap_servers=cluster.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=provide,
        )
        [login] = cluster.authentications
        assert (login.mechanism, login.principal) == ("OAUTHBEARER", "bob")
        # The session ends with the token, not after the hour configured.
        assert 0 < login.session_lifetime_ms <= 60_000
        assert seen == ["opaque-token-for-bob"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_wrong_password_is_refused_typed_and_in_time(mechanism: str, tls: TlsFiles) -> None:
    async with FakeCluster(brokers=3, listener="SASL_SSL", tls=tls) as cluster:
        settings = cluster.producer_settings(mechanism)
        settings["sasl_password"] = "not-" + PASSWORD
        error = await expect_refusal(
            cluster,
            SaslAuthenticationFailedError,
            rf"refused SASL {mechanism} as user '{USER}': Authentication failed",
            **settings,
        )
        assert isinstance(error, AuthenticationError)
        assert PASSWORD not in str(error)
        assert cluster.authentications == []
        failure = cluster.authentication_failures[0]
        assert (failure.mechanism, failure.user) == (mechanism, USER)
        assert "wrong password" in failure.reason


async def test_an_expired_token_is_refused() -> None:
    async def expired() -> tuple[str, int]:
        return unsecured_jws(USER, lifetime_s=-60), int(time.time() * 1000) + 60_000

    async with FakeCluster(brokers=1, listener="SASL_PLAINTEXT") as cluster:
        await expect_refusal(
            cluster,
            SaslAuthenticationFailedError,
            r'refused SASL OAUTHBEARER: \{"status":"invalid_token"\}',
            bootstrap_servers=cluster.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=expired,
        )
        assert "the token expired" in cluster.authentication_failures[0].reason


async def test_an_unknown_ca_is_refused(tls: TlsFiles) -> None:
    async with FakeCluster(brokers=1, listener="SASL_SSL", tls=tls) as cluster:
        settings = cluster.producer_settings("PLAIN")
        settings["ssl_truststore_location"] = str(tls.other_ca)
        await expect_refusal(
            cluster,
            SslAuthenticationError,
            r"TLS with broker 127\.0\.0\.1:\d+ failed: .*(self.signed|unable to get local issuer)",
            **settings,
        )


async def test_a_certificate_for_another_name_is_refused(tls: TlsFiles) -> None:
    async with FakeCluster(
        brokers=1, listener="SSL", tls=tls, server_certificate="wrong-name"
    ) as cluster:
        await expect_refusal(
            cluster, SslAuthenticationError, "IP address mismatch", **cluster.producer_settings()
        )


async def test_a_mechanism_not_enabled_is_refused_naming_the_enabled_ones() -> None:
    async with FakeCluster(
        brokers=3, listener="SASL_PLAINTEXT", sasl_mechanisms=["SCRAM-SHA-512", "OAUTHBEARER"]
    ) as cluster:
        await expect_refusal(
            cluster,
            UnsupportedSaslMechanismError,
            r"does not enable SASL mechanism PLAIN; it enables: SCRAM-SHA-512, OAUTHBEARER",
            **cluster.producer_settings("PLAIN"),
        )


async def test_a_plaintext_client_on_a_tls_listener_is_told_so(tls: TlsFiles) -> None:
    async with FakeCluster(brokers=1, listener="SSL", tls=tls) as cluster:
        await expect_refusal(
            cluster,
            SslAuthenticationError,
            "answered with TLS: this listener wants security_protocol='SSL' or 'SASL_SSL'",
            bootstrap_servers=cluster.bootstrap_servers,
        )


# --------------------------------------------------------------------------- re-authentication

SESSION_MS = 1_500
"""Clients renew at 85-95 % of it; Kafka lets a connection re-authenticate at most once a
second, so below ~1.2 s the second renewal would be refused."""


async def test_sessions_are_renewed_on_the_same_connection() -> None:
    """A SCRAM and an OAUTHBEARER producer stream until both renewed their session on
    their one connection: every record lands once, in order, and no connection dropped."""
    async with FakeCluster(
        brokers=1, listener="SASL_PLAINTEXT", session_lifetime_ms=SESSION_MS
    ) as cluster:
        cluster.create_topic("stream", 1)
        sent: dict[str, int] = {}

        async def stream(mechanism: str) -> None:
            settings = cluster.producer_settings(mechanism)
            async with Producer(linger_ms=2, **settings) as producer:
                futures: list[Any] = []

                async def send() -> None:
                    value = f"{mechanism} {len(futures)}".encode()
                    futures.append(await producer.send("stream", value))
                    await anyio.sleep(0.01)

                while not any(
                    a.reauthentication and a.mechanism == mechanism for a in cluster.authentications
                ):  # until this connection renewed its session
                    await send()
                for _ in range(10):  # and a few records after
                    await send()
                for future in futures:
                    await future
                sent[mechanism] = len(futures)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for mechanism in ("SCRAM-SHA-256", "OAUTHBEARER"):
                    group.start_soon(stream, mechanism)

        assert sorted(sent) == ["OAUTHBEARER", "SCRAM-SHA-256"]
        stored = [r.value or b"" for r in cluster.records("stream", 0)]
        for mechanism, count in sent.items():
            logins = [a for a in cluster.authentications if a.mechanism == mechanism]
            assert len(logins) >= 2, logins
            assert len({a.connection for a in logins}) == 1  # one connection, renewed
            assert [a.reauthentication for a in logins] == [False] + [True] * (len(logins) - 1)
            assert all(a.session_lifetime_ms == SESSION_MS for a in logins)
            mine = [v for v in stored if v.startswith(mechanism.encode() + b" ")]
            assert mine == [f"{mechanism} {i}".encode() for i in range(count)]
        assert cluster.authentication_failures == []


# --------------------------------------------------------------------------- the wire rules


class RawClient(raw_client.RawClient):
    """A raw client that can log in (see tests/raw_client.py)."""

    async def closed(self) -> bool:
        """True if the broker closes the connection (with nothing more to read)."""
        with anyio.fail_after(5):
            try:
                return not await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return True

    async def api_keys(self) -> set[int]:
        response = await self.call(api_versions_request(3, "0"), ApiKey.API_VERSIONS, 3)
        return {int(k.api_key) for k in response.api_keys}

    async def handshake(self, mechanism: str) -> Any:
        return await self.call(sasl_handshake_request(1, mechanism), ApiKey.SASL_HANDSHAKE, 1)

    async def login(self, password: str = PASSWORD) -> Any:
        """PLAIN as alice."""
        assert int((await self.handshake("PLAIN")).error_code) == 0
        token = f"\0{USER}\0{password}".encode()
        return await self.call(sasl_authenticate_request(2, token), ApiKey.SASL_AUTHENTICATE, 2)

    async def metadata(self) -> Any:
        request = metadata_request(12, ["t"], allow_auto_topic_creation=True)
        return await self.call(request, ApiKey.METADATA, 12)


@contextlib.asynccontextmanager
async def raw(cluster: FakeCluster) -> AsyncIterator[RawClient]:
    host, port = cluster.bootstrap_servers.split(",")[0].rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        yield RawClient(stream)


async def test_the_sasl_apis_are_advertised_by_sasl_listeners_only() -> None:
    async with (
        FakeCluster(brokers=1) as plain,
        FakeCluster(brokers=1, listener="SASL_PLAINTEXT") as sasl,
    ):
        async with raw(plain) as client:
            assert {17, 36}.isdisjoint(await client.api_keys())
        async with raw(sasl) as client:
            assert {17, 36} <= await client.api_keys()


async def test_a_request_before_authentication_closes_the_connection_unanswered() -> None:
    async with FakeCluster(brokers=1, listener="SASL_PLAINTEXT") as cluster, raw(cluster) as client:
        await client.api_keys()
        await client.send(metadata_request(12, ["t"], allow_auto_topic_creation=True))
        assert await client.closed()
        assert cluster.request_count(ApiKey.METADATA) == 1  # read, never answered


async def test_a_request_between_handshake_and_authenticate_is_refused_then_closed() -> None:
    async with FakeCluster(brokers=1, listener="SASL_PLAINTEXT") as cluster, raw(cluster) as client:
        await client.handshake("PLAIN")
        response = await client.metadata()
        assert [int(t.error_code) for t in response.topics] == [34]  # ILLEGAL_SASL_STATE
        assert await client.closed()


async def test_a_wrong_password_is_answered_with_58_then_the_connection_closes() -> None:
    async with FakeCluster(brokers=1, listener="SASL_PLAINTEXT") as cluster, raw(cluster) as client:
        answer = await client.login(password="wrong")
        assert int(answer.error_code) == 58
        assert answer.error_message == "Authentication failed: Invalid username or password"
        assert await client.closed()


async def test_an_unknown_mechanism_is_answered_with_the_enabled_ones_then_closed() -> None:
    enabled = ["PLAIN", "SCRAM-SHA-256"]
    async with (
        FakeCluster(brokers=1, listener="SASL_PLAINTEXT", sasl_mechanisms=enabled) as cluster,
        raw(cluster) as client,
    ):
        answer = await client.handshake("GSSAPI")
        assert int(answer.error_code) == 33
        assert list(answer.mechanisms) == enabled
        assert await client.closed()


async def test_without_a_session_lifetime_a_second_handshake_is_illegal_and_harmless() -> None:
    async with FakeCluster(brokers=1, listener="SASL_PLAINTEXT") as cluster, raw(cluster) as client:
        assert (await client.login()).session_lifetime == datetime.timedelta(0)
        assert int((await client.handshake("PLAIN")).error_code) == 34
        assert [int(t.error_code) for t in (await client.metadata()).topics] == [0]


async def test_a_session_that_is_not_renewed_ends_with_its_connection() -> None:
    async with (
        FakeCluster(brokers=1, listener="SASL_PLAINTEXT", session_lifetime_ms=100) as cluster,
        raw(cluster) as client,
    ):
        answer = await client.login()
        assert answer.session_lifetime == datetime.timedelta(milliseconds=100)
        assert [int(t.error_code) for t in (await client.metadata()).topics] == [0]
        await anyio.sleep(0.15)
        await client.send(metadata_request(12, ["t"], allow_auto_topic_creation=True))
        assert await client.closed()
        assert "the session expired" in cluster.authentication_failures[-1].reason


# --------------------------------------------------------------------------- the mechanisms


def test_scram_sha_256_rfc_7677_vector() -> None:
    """RFC 7677 section 3: user "user", password "pencil"; the server side's messages."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credential = ScramCredential.from_password("SCRAM-SHA-256", "pencil", salt=salt)
    server = ScramServer(
        "SCRAM-SHA-256", {"user": credential}, server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    server_first = server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert server_first == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    server_final = server.evaluate(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert server_final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert (server.complete, server.principal) == (True, "user")


@pytest.mark.parametrize(
    ("client_final", "reason"),
    [
        (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA", "wrong length"),
        (b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "nonce"),
        (b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA", "binding"),
        (b"nonsense", "malformed"),
    ],
)
def test_scram_refuses_a_bad_client_final(client_final: bytes, reason: str) -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credential = ScramCredential.from_password("SCRAM-SHA-256", "pencil", salt=salt)
    server = ScramServer(
        "SCRAM-SHA-256", {"user": credential}, server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    with pytest.raises(SaslRefused, match=reason) as refused:
        server.evaluate(client_final)
    assert refused.value.public is None  # the client gets Kafka's generic sentence


def test_scram_refuses_an_unknown_user_at_client_first() -> None:
    server = ScramServer("SCRAM-SHA-512", {})
    with pytest.raises(SaslRefused, match="no credential for user 'bob'"):
        server.evaluate(b"n,,n=bob,r=abc")
    assert server.user == "bob"


@pytest.mark.parametrize(
    ("message", "public"),
    [
        (b"\0alice\0wrong", "Invalid username or password"),
        (b"\0bob\0alice-secret", "Invalid username or password"),
        (b"\0\0x", "username not specified"),
        (b"\0alice\0", "password not specified"),
        (b"carol\0alice\0alice-secret", "authorization id that is different"),
    ],
)
def test_plain_refusals(message: bytes, public: str) -> None:
    with pytest.raises(SaslRefused) as refused:
        PlainServer({USER: PASSWORD}).evaluate(message)
    assert public in (refused.value.public or "")
    assert PASSWORD not in str(refused.value)


def jws(header: dict[str, object], claims: dict[str, object], signature: str = "") -> str:
    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{signature}"


def oauth_message(token: str, authzid: str = "") -> bytes:
    authorization = f"a={authzid}" if authzid else ""
    return f"n,{authorization},\x01auth=Bearer {token}\x01\x01".encode()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (jws({"alg": "none"}, {"sub": "a", "exp": 1}), "expired"),
        (jws({"alg": "none"}, {"exp": 4_000_000_000}), "no 'sub'"),
        (jws({"alg": "none"}, {"sub": "a"}), "no 'exp'"),
        (jws({"alg": "HS256"}, {"sub": "a", "exp": 4_000_000_000}), "not 'none'"),
        (jws({"alg": "none"}, {"sub": "a", "exp": 4_000_000_000}, "c2ln"), "signed"),
        (jws({"alg": "none"}, {"sub": "a", "exp": 4e9, "iat": 4e9}), "future"),
        ("not-a-jws", "three dot-separated parts"),
    ],
)
def test_oauthbearer_refuses_a_token_as_kafka_does(token: str, reason: str) -> None:
    server = OAuthBearerServer(None, lambda: int(time.time() * 1000))
    assert server.evaluate(oauth_message(token)) == b'{"status":"invalid_token"}'
    with pytest.raises(SaslRefused, match=reason) as refused:
        server.evaluate(b"\x01")  # the client's acknowledgement fails the exchange
    assert refused.value.public == '{"status":"invalid_token"}'


def test_oauthbearer_accepts_an_unsecured_token_and_checks_the_authorization_id() -> None:
    token = unsecured_jws(USER, 60)
    server = OAuthBearerServer(None, lambda: int(time.time() * 1000))
    assert server.evaluate(oauth_message(token)) == b""
    assert (server.complete, server.principal) == (True, USER)
    assert server.credential_expiry_ms is not None
    with pytest.raises(SaslRefused) as refused:
        OAuthBearerServer(None, lambda: int(time.time() * 1000)).evaluate(
            oauth_message(token, authzid="bob")
        )
    assert "different from the token's principal name (alice)" in (refused.value.public or "")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def authenticated_session(
    clock: Clock, lifetime_ms: int = 5_000, users: dict[str, str] | None = None
) -> Session:
    config = SaslConfig.create(
        ("PLAIN", "SCRAM-SHA-256"), users or {USER: PASSWORD}, lifetime_ms, None
    )
    session = Session(config, 0, 0, [], [], clock=clock)
    assert session.handshake("PLAIN") == (0, ("PLAIN", "SCRAM-SHA-256"))
    answer = session.authenticate(f"\0{USER}\0{PASSWORD}".encode())
    assert answer is not None
    assert answer.error_code == 0
    return session


def test_re_authentication_keeps_the_mechanism() -> None:
    clock = Clock()
    session = authenticated_session(clock)
    clock.now += 2
    assert session.admit(ApiKey.SASL_HANDSHAKE).name == "SERVE"
    assert session.handshake("SCRAM-SHA-256")[0] == 0  # Kafka fails it one step later
    assert session.authenticate(b"n,,n=alice,r=abc") is None  # closed, unanswered
    assert session.close_after_response


def test_re_authentication_keeps_the_principal() -> None:
    clock = Clock()
    session = authenticated_session(clock, users={USER: PASSWORD, "bob": "bob-secret"})
    clock.now += 2
    session.admit(ApiKey.SASL_HANDSHAKE)
    session.handshake("PLAIN")
    answer = session.authenticate(b"\0bob\0bob-secret")
    assert answer is not None
    assert answer.error_code == 58
    assert answer.error_message == (
        "Cannot change principals during re-authentication from User.alice: User.bob"
    )


def test_re_authentication_at_most_once_a_second() -> None:
    clock = Clock()
    session = authenticated_session(clock)
    clock.now += 0.5
    session.admit(ApiKey.SASL_HANDSHAKE)
    session.handshake("PLAIN")
    assert session.authenticate(f"\0{USER}\0{PASSWORD}".encode()) is not None
    clock.now += 0.5  # one second after the last re-authentication began: not yet
    session.admit(ApiKey.SASL_HANDSHAKE)
    assert session.handshake("PLAIN") == (34, ())  # answered as an ordinary request


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"listener": "TLS"}, "unknown listener 'TLS'"),
        ({"users": {"bob": "x"}}, "need a SASL listener"),
        ({"listener": "SSL", "session_lifetime_ms": 10}, "need a SASL listener"),
        ({"tls": ssl.create_default_context()}, "need a TLS listener"),
        ({"listener": "SASL_SSL", "client_auth": "sometimes"}, "client_auth='sometimes'"),
        ({"listener": "SASL_PLAINTEXT", "sasl_mechanisms": ["GSSAPI"]}, "use some of"),
        ({"listener": "SASL_PLAINTEXT", "users": {}}, "need at least one user"),
        ({"listener": "SASL_PLAINTEXT", "session_lifetime_ms": -1}, "int >= 0"),
        (
            {"listener": "SSL", "tls": ssl.create_default_context(), "client_auth": "required"},
            "set its verify_mode",
        ),
    ],
)
def test_bad_arguments_are_refused_at_construction(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FakeCluster(**arguments)


def test_no_password_in_the_repr() -> None:
    cluster = FakeCluster(listener="SASL_SSL", users={"alice": "s3cr3t-pw"})
    assert "s3cr3t-pw" not in repr(cluster)
    assert "users=alice" in repr(cluster)
    assert cluster.users == {"alice": "s3cr3t-pw"}
    with pytest.raises(RuntimeError, match="not running"):
        cluster.tls  # noqa: B018
    with pytest.raises(RuntimeError, match="no TLS files"):
        FakeCluster(listener="SASL_PLAINTEXT").tls  # noqa: B018


def test_the_mechanisms_enabled() -> None:
    assert FakeCluster(listener="SASL_PLAINTEXT").sasl_mechanisms == tuple(MECHANISMS)
    assert FakeCluster().sasl_mechanisms == ()
