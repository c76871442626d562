from __future__ import annotations

import dataclasses
import json

import pytest

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl import OAuthBearerClient, OAuthBearerToken, SaslError

JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
TOKEN = OAuthBearerToken(JWT, lifetime_ms=1_700_000_060_000, principal_name="alice")
ERROR_JSON = json.dumps(
    {"status": "invalid_token", "scope": "kafka", "openid-configuration": "https://idp/.wk"}
).encode()


def test_initial_response_without_extensions() -> None:
    client = OAuthBearerClient(TOKEN)
    assert client.initial_response() == b"n,,\x01auth=Bearer " + JWT.encode() + b"\x01\x01"
    assert client.name == "OAUTHBEARER"
    assert not client.complete


def test_initial_response_with_extensions_in_order() -> None:
    client = OAuthBearerClient(TOKEN, {"logicalCluster": "lkc-1", "traceId": "a b\tc"})
    assert client.initial_response() == (
        b"n,,\x01auth=Bearer "
        + JWT.encode()
        + b"\x01logicalCluster=lkc-1\x01traceId=a b\tc\x01\x01"
    )


def test_an_empty_reply_completes_the_exchange() -> None:
    client = OAuthBearerClient(TOKEN)
    client.initial_response()
    assert client.evaluate(b"") is None
    assert client.complete
    assert client.server_error is None
    with pytest.raises(SaslError, match="out of turn"):
        client.evaluate(b"")


def test_an_error_reply_is_acknowledged_then_reported_without_the_token() -> None:
    client = OAuthBearerClient(TOKEN)
    client.initial_response()
    assert client.evaluate(ERROR_JSON) == b"\x01"
    assert not client.complete
    assert client.server_error is not None
    assert "invalid_token" in client.server_error
    with pytest.raises(SaslError, match="invalid_token") as caught:
        client.evaluate(b"")
    message = str(caught.value)
    assert "scope 'kafka'" in message
    assert "https://idp/.wk" in message
    assert JWT not in message
    assert not client.complete
    with pytest.raises(SaslError, match=r"out of turn \(state: failed\)"):
        client.evaluate(b"")


def test_a_server_echoing_the_token_does_not_get_it_into_the_error() -> None:
    client = OAuthBearerClient(TOKEN)
    client.initial_response()
    client.evaluate(json.dumps({"status": f"bad token {JWT}", "token": JWT}).encode())
    assert client.server_error is not None
    assert JWT not in client.server_error
    assert "<token>" in client.server_error


@pytest.mark.parametrize(
    ("reply", "summary"),
    [
        (b"<html>nope</html>", "non-JSON error response of 17 bytes"),
        (b"\xff\xfe", "non-JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"error": "x"}', "without a status"),
    ],
)
def test_unusual_error_replies(reply: bytes, summary: str) -> None:
    client = OAuthBearerClient(TOKEN)
    client.initial_response()
    assert client.evaluate(reply) == b"\x01"
    assert client.server_error is not None
    assert summary in client.server_error


def test_calls_out_of_turn() -> None:
    client = OAuthBearerClient(TOKEN)
    with pytest.raises(SaslError, match="out of turn"):
        client.evaluate(b"")
    client.initial_response()
    with pytest.raises(SaslError, match="out of turn"):
        client.initial_response()
    with pytest.raises(SaslError, match="never asks for a key derivation"):
        client.provide(b"")


@pytest.mark.parametrize("key", ["auth", "", "trace_id", "trace1", "tråce"])
def test_refuses_bad_extension_keys(key: str) -> None:
    with pytest.raises(ConfigError, match="extension name"):
        OAuthBearerClient(TOKEN, {key: "value"})


@pytest.mark.parametrize("value", ["", "se\x01cret", "sécret", "secret\0"])
def test_refuses_bad_extension_values_without_echoing_them(value: str) -> None:
    with pytest.raises(ConfigError, match="'traceId'") as caught:
        OAuthBearerClient(TOKEN, {"traceId": value})
    assert "cret" not in str(caught.value)


@pytest.mark.parametrize("value", ["", "has space", "tab\t", "a=b", 'quote"', "ünïcode"])
def test_token_value_must_be_a_bearer_token_and_is_not_echoed(value: str) -> None:
    with pytest.raises(ConfigError, match="RFC 6750") as caught:
        OAuthBearerToken(value, lifetime_ms=0)
    if value:
        assert value not in str(caught.value)


def test_token_accepts_rfc6750_characters_and_padding() -> None:
    assert OAuthBearerToken("aZ09-._~+/==", lifetime_ms=0).value == "aZ09-._~+/=="


def test_token_lifetime_must_be_an_int() -> None:
    with pytest.raises(ConfigError, match="lifetime_ms"):
        OAuthBearerToken(JWT, lifetime_ms=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lifetime_ms"):
        OAuthBearerToken(JWT, lifetime_ms=True)


def test_token_carries_what_refresh_scheduling_needs() -> None:
    token = OAuthBearerToken(
        JWT, lifetime_ms=10_000, principal_name="alice", start_time_ms=4_000, scope=frozenset("ab")
    )
    assert token.remaining_ms(now_ms=7_000) == 3_000
    assert token.remaining_ms(now_ms=12_000) == -2_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.lifetime_ms = 0  # type: ignore[misc]


def test_reprs_hide_the_token_and_extension_values() -> None:
    assert JWT not in repr(TOKEN)
    assert "value=<hidden>" in repr(TOKEN)
    assert "alice" in repr(TOKEN)
    assert JWT not in str(TOKEN)
    client = OAuthBearerClient(TOKEN, {"traceId": "extension-secret"})
    before = repr(client)
    client.initial_response()
    for text in (before, repr(client)):
        assert JWT not in text
        assert "extension-secret" not in text
        assert "traceId" in text


def test_refuses_a_str_token() -> None:
    with pytest.raises(ConfigError, match="needs an OAuthBearerToken, not str") as caught:
        OAuthBearerClient(JWT)  # type: ignore[arg-type]
    assert JWT not in str(caught.value)
