from __future__ import annotations

import pytest

from asyncproducer.errors import ConfigError, KafkaError
from asyncproducer.protocol.sasl import PlainClient, SaslError

SECRET = "s3cr3t-Pa55word"


def test_initial_response_is_empty_authzid_username_password() -> None:
    client = PlainClient("alice", SECRET)
    assert not client.complete
    assert client.initial_response() == b"\0alice\0" + SECRET.encode()
    assert client.complete  # the broker's verdict is the SaslAuthenticate error code
    assert client.name == "PLAIN"


def test_utf8() -> None:
    assert PlainClient("józef", "pässwörd").initial_response() == (
        b"\0j\xc3\xb3zef\0p\xc3\xa4ssw\xc3\xb6rd"
    )


@pytest.mark.parametrize(
    ("username", "password", "what"),
    [
        ("ali\0ce", SECRET, "username"),
        ("alice", SECRET + "\0tail", "password"),
        ("", SECRET, "username"),
        ("alice", "", "password"),
    ],
)
def test_refuses_nul_and_empty_values_without_echoing_them(
    username: str, password: str, what: str
) -> None:
    with pytest.raises(ConfigError, match=what) as caught:
        PlainClient(username, password)
    message = str(caught.value)
    assert SECRET not in message
    assert "tail" not in message
    assert "ali" not in message


def test_refuses_non_str() -> None:
    with pytest.raises(ConfigError, match="must be a str, not bytes"):
        PlainClient("alice", b"secret")  # type: ignore[arg-type]


def test_calls_out_of_turn() -> None:
    client = PlainClient("alice", SECRET)
    with pytest.raises(SaslError, match="before initial_response"):
        client.evaluate(b"")
    client.initial_response()
    with pytest.raises(SaslError, match="already called"):
        client.initial_response()
    with pytest.raises(SaslError, match="after the exchange completed"):
        client.evaluate(b"")
    with pytest.raises(SaslError, match="never asks for a key derivation"):
        client.provide(b"x" * 32)


def test_repr_hides_the_password() -> None:
    client = PlainClient("alice", SECRET)
    assert SECRET not in repr(client)
    assert "alice" in repr(client)
    client.initial_response()
    assert SECRET not in repr(client)


def test_sasl_error_is_a_non_retriable_kafka_error() -> None:
    assert issubclass(SaslError, KafkaError)
    assert not SaslError.retriable
