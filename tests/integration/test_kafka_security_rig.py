"""KafkaCluster's secured client listeners (SSL, mTLS, SASL_PLAINTEXT, SASL_SSL), checked
with confluent-kafka (librdkafka, a client this project did not write) and Python's ssl.

The clusters are the session's (tests/integration/conftest.py, shared with
test_security.py): SSL with mTLS required (and encrypted keys), SASL_SSL and a 3-node
SASL_PLAINTEXT (every mechanism on each), and SSL serving the expired and the wrong-name
certificate.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as CkTopicPartition

from asyncproducer.testing._kafka_node import properties_text
from asyncproducer.testing._kafka_security import ClientListener, redact
from asyncproducer.testing.certs import TlsFiles, make_tls_files
from asyncproducer.testing.kafka import KafkaCluster, KafkaClusterError
from tests.integration.brokers import KEY_PASSWORD, SECURE_USERS, require_kafka_tools

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

USERS = SECURE_USERS
FAILURE_BOUND = 8.0  # seconds a client gets to report a refused connection


def topic_name() -> str:
    return f"sec-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- no JVM needed


def test_listener_arguments_are_checked_without_echoing_passwords() -> None:
    with pytest.raises(ValueError, match="need a TLS listener"):
        KafkaCluster(client_auth="required")
    with pytest.raises(ValueError, match="need a TLS listener"):
        KafkaCluster(listener="SASL_PLAINTEXT", server_certificate="expired")
    with pytest.raises(ValueError, match="need a SASL listener"):
        KafkaCluster(listener="SSL", users=USERS)
    with pytest.raises(ValueError, match="need a SASL listener"):
        KafkaCluster(sasl_mechanisms=["PLAIN"])
    with pytest.raises(ValueError, match="tls= needs a TLS listener"):
        KafkaCluster(listener="SASL_PLAINTEXT", tls=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="client_auth='maybe'"):
        KafkaCluster(listener="SSL", client_auth="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use some of PLAIN"):
        KafkaCluster(listener="SASL_SSL", sasl_mechanisms=["DIGEST-MD5"])
    with pytest.raises(ValueError, match="GSSAPI needs a Kerberos realm"):
        KafkaCluster(listener="SASL_SSL", sasl_mechanisms=["GSSAPI"])
    with pytest.raises(ValueError, match="at least one user"):
        KafkaCluster(listener="SASL_SSL", users={})
    KafkaCluster(listener="SASL_SSL", users={}, sasl_mechanisms=["OAUTHBEARER"])  # no users
    with pytest.raises(ValueError, match="user 'carol' has characters") as refused:
        KafkaCluster(listener="SASL_PLAINTEXT", users={"carol": 'has"quote,comma'})
    assert "quote" not in str(refused.value)
    with pytest.raises(ValueError, match="user name 'a b'"):
        KafkaCluster(listener="SASL_PLAINTEXT", users={"a b": "x"})


def test_no_password_in_reprs_and_the_tls_property() -> None:
    cluster = KafkaCluster(listener="SASL_SSL", users=USERS)
    for text in (repr(cluster), repr(cluster._client_listener)):
        assert "alice-secret" not in text
        assert "b0b" not in text
    assert "alice, bob" in repr(cluster._client_listener)
    assert cluster.users == USERS
    with pytest.raises(KafkaClusterError, match="not started"):
        _ = cluster.tls
    with pytest.raises(KafkaClusterError, match="PLAINTEXT listener has no TLS"):
        _ = KafkaCluster().tls
    assert KafkaCluster().users == {}
    assert redact("user alice-secret b0b~pass!", list(USERS.values())) == "user *** ***"


def test_sasl_properties_and_scram_format_arguments() -> None:
    listener = ClientListener("SASL_PLAINTEXT", users=USERS)
    properties = listener.properties(None)
    prefix = "listener.name.client."
    assert properties[prefix + "sasl.enabled.mechanisms"] == (
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER"
    )
    assert properties[prefix + "plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' user_alice="alice-secret" user_bob="b0b~pass!";'
    )
    assert properties[prefix + "scram-sha-512.sasl.jaas.config"].endswith(
        "ScramLoginModule required;"
    )
    assert "unsecuredLoginStringClaim_sub" in properties[prefix + "oauthbearer.sasl.jaas.config"]
    assert listener.format_arguments() == [
        "--add-scram",
        "SCRAM-SHA-256=[name=alice,password=alice-secret]",
        "--add-scram",
        "SCRAM-SHA-256=[name=bob,password=b0b~pass!]",
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=alice-secret]",
        "--add-scram",
        "SCRAM-SHA-512=[name=bob,password=b0b~pass!]",
    ]
    assert ClientListener("SASL_SSL", sasl_mechanisms=("PLAIN",)).format_arguments() == []
    assert ClientListener("PLAINTEXT").properties(None) == {}


def test_tls_properties_carry_the_chosen_certificate(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path, key_password=KEY_PASSWORD)
    listener = ClientListener("SSL", client_auth="required", server_certificate="expired")
    properties = {
        key.removeprefix("listener.name.client."): value
        for key, value in listener.properties(tls).items()
    }
    assert properties["ssl.keystore.type"] == "PEM"
    assert properties["ssl.keystore.certificate.chain"] == tls.expired_chain.read_text()
    assert properties["ssl.keystore.key"] == tls.expired_key.read_text()
    assert properties["ssl.truststore.certificates"] == tls.ca.read_text()
    assert properties["ssl.client.auth"] == "required"
    assert properties["ssl.key.password"] == KEY_PASSWORD
    with pytest.raises(ValueError, match="needs its TLS files"):
        listener.properties(None)


def test_properties_text_escapes_what_java_would_misread() -> None:
    text = properties_text(
        {"pem": "-----BEGIN X-----\nAB\n-----END X-----\n", "odd": " a\\b\tc\u00e9\U0001f600"}
    )
    assert text == (
        "pem=-----BEGIN X-----\\nAB\\n-----END X-----\\n\nodd=\\ a\\\\b\\tc\\u00e9\\ud83d\\ude00\n"
    )


def test_a_failed_start_names_no_password() -> None:
    """The tool's output goes into the exception; a password it echoes does not."""
    require_kafka_tools()
    secret = "Never-Show-42"
    cluster = KafkaCluster(
        listener="SASL_PLAINTEXT",
        users={"alice": secret},
        broker_config={"num.io.threads": secret},  # Kafka refuses it, quoting the value
    )
    with pytest.raises(KafkaClusterError, match="formatting node 1 failed") as failed:
        cluster.start()
    assert secret not in str(failed.value)
    assert "Invalid value *** for configuration num.io.threads" in str(failed.value)


# --------------------------------------------------------------------------- helpers


def client_config(cluster: KafkaCluster, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": cluster.bootstrap_servers,
        "security.protocol": cluster.listener,
        "socket.connection.setup.timeout.ms": 5000,
        **extra,
    }


def tls_config(tls: TlsFiles, *, client_certificate: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"ssl.ca.location": str(tls.ca)}
    if client_certificate:
        config["ssl.certificate.location"] = str(tls.client_chain)
        config["ssl.key.location"] = str(tls.client_key)
        if tls.key_password is not None:
            config["ssl.key.password"] = tls.key_password
    return config


def sasl_config(mechanism: str, user: str = "alice", password: str | None = None) -> dict[str, Any]:
    if mechanism == "OAUTHBEARER":
        # librdkafka's unsecured JWS: alg "none", sub=<principal>, exp an hour ahead.
        return {
            "sasl.mechanism": mechanism,
            "sasl.oauthbearer.config": f"principal={user}",
            "enable.sasl.oauthbearer.unsecure.jwt": True,
        }
    return {
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": USERS[user] if password is None else password,
    }


def round_trip(cluster: KafkaCluster, config: dict[str, Any], replication: int = 1) -> None:
    """Produce five records with confluent-kafka over ``config``, read them back."""
    topic = topic_name()
    cluster.create_topic(topic, replication_factor=replication)  # over INTERNAL (PLAINTEXT)
    failures: list[Any] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({**config, "acks": "all", "message.timeout.ms": 20000})
    sent = [f"{config.get('sasl.mechanism', 'tls')}-{i}".encode() for i in range(5)]
    for value in sent:
        producer.produce(topic, value, partition=0, on_delivery=delivered)
    assert producer.flush(30) == 0, "not every record was delivered"
    assert failures == []

    consumer = Consumer({**config, "group.id": f"verify-{topic}", "enable.auto.commit": False})
    try:
        consumer.assign([CkTopicPartition(topic, 0, 0)])
        received: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                received.append(message.value() or b"")
    finally:
        consumer.close()
    assert received == sent


def refused(config: dict[str, Any]) -> list[KafkaError]:
    """The errors librdkafka reports within FAILURE_BOUND s for a connection the broker
    (or the client itself) refuses; the record it tried to send must not be delivered."""
    errors: list[KafkaError] = []
    producer = Producer(
        {**config, "error_cb": errors.append, "message.timeout.ms": int(FAILURE_BOUND * 1000)}
    )
    producer.produce("never-created", b"x")
    deadline = time.monotonic() + FAILURE_BOUND
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    undelivered = producer.flush(0)
    producer.purge()  # no waiting out message.timeout.ms when the producer is destroyed
    assert undelivered == 1, "the record went through"
    assert errors, f"no error reported within {FAILURE_BOUND:g} s"
    return errors


def tls_handshake(
    cluster: KafkaCluster, context: ssl.SSLContext, server_hostname: str = "127.0.0.1"
) -> ssl.SSLSocket:
    node = cluster.nodes[0]
    sock = socket.create_connection((node.host, node.port), timeout=5)
    try:
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def send_and_read(sock: ssl.SSLSocket) -> bytes:
    """Send a (meaningless) frame size and read the answer: the broker's TLS alert, if any."""
    sock.sendall(b"\x00\x00\x00\x00")
    return sock.recv(1)


# --------------------------------------------------------------------------- SSL


def test_mtls_round_trip(mtls_cluster: KafkaCluster) -> None:
    require_kafka_tools()
    config = client_config(mtls_cluster, **tls_config(mtls_cluster.tls, client_certificate=True))
    round_trip(mtls_cluster, config)


def test_mtls_refuses_a_client_without_a_certificate(mtls_cluster: KafkaCluster) -> None:
    require_kafka_tools()
    tls = mtls_cluster.tls
    errors = refused(client_config(mtls_cluster, **tls_config(tls)))
    # Java answers a missing client certificate with a bad_certificate alert (42).
    assert any("alert bad certificate" in e.str() for e in errors), errors
    # The same with Python's ssl: TLS 1.3 finishes the client's handshake first, and the
    # broker's verdict (the alert) arrives with the first read.
    with (
        tls_handshake(mtls_cluster, tls.client_ssl_context()) as sock,
        pytest.raises(ssl.SSLError, match="ALERT_BAD_CERTIFICATE"),
    ):
        send_and_read(sock)
    with tls_handshake(mtls_cluster, tls.client_ssl_context(client_certificate=True)) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.getpeercert() is not None


# --------------------------------------------------------------------------- SASL


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"])
def test_sasl_plaintext_round_trip(sasl_plaintext_cluster: KafkaCluster, mechanism: str) -> None:
    require_kafka_tools()
    config = client_config(sasl_plaintext_cluster, **sasl_config(mechanism, "bob"))
    round_trip(sasl_plaintext_cluster, config, replication=3)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"])
def test_sasl_ssl_round_trip(sasl_ssl_cluster: KafkaCluster, mechanism: str) -> None:
    require_kafka_tools()
    config = client_config(
        sasl_ssl_cluster, **tls_config(sasl_ssl_cluster.tls), **sasl_config(mechanism)
    )
    round_trip(sasl_ssl_cluster, config)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_wrong_password_is_refused(sasl_plaintext_cluster: KafkaCluster, mechanism: str) -> None:
    require_kafka_tools()
    config = client_config(sasl_plaintext_cluster, **sasl_config(mechanism, password="nope"))
    errors = refused(config)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_an_unknown_user_is_refused_over_tls(sasl_ssl_cluster: KafkaCluster) -> None:
    require_kafka_tools()
    config = client_config(
        sasl_ssl_cluster,
        **tls_config(sasl_ssl_cluster.tls),
        **{**sasl_config("SCRAM-SHA-512"), "sasl.username": "mallory"},
    )
    errors = refused(config)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_sasl_ssl_serves_the_valid_certificate(sasl_ssl_cluster: KafkaCluster) -> None:
    require_kafka_tools()
    tls = sasl_ssl_cluster.tls
    assert tls.directory.parent == sasl_ssl_cluster.data_dir  # made at start, in its data
    for host in ("127.0.0.1", "localhost"):
        with tls_handshake(sasl_ssl_cluster, tls.client_ssl_context(), host) as sock:
            assert sock.getpeercert() is not None
    other = ssl.create_default_context(cafile=str(tls.other_ca))
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in"):
        tls_handshake(sasl_ssl_cluster, other)


# --------------------------------------------------------------------------- bad certificates


def test_clients_refuse_the_bad_certificate(bad_certificate_cluster: KafkaCluster) -> None:
    require_kafka_tools()
    cluster = bad_certificate_cluster
    which = cluster._client_listener.server_certificate
    reason = "certificate has expired" if which == "expired" else "IP address mismatch"
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        tls_handshake(cluster, cluster.tls.client_ssl_context())
    errors = refused(client_config(cluster, **tls_config(cluster.tls)))
    # librdkafka reports it as a transport error (_TRANSPORT) naming the verification.
    assert any("certificate verify failed" in e.str() for e in errors), errors
    if which == "wrong-name":
        # The certificate is otherwise sound: without the host name check, the plain SSL
        # listener (no client certificate) works end to end.
        config = client_config(
            cluster, **tls_config(cluster.tls), **{"ssl.endpoint.identification.algorithm": "none"}
        )
        round_trip(cluster, config)
