from __future__ import annotations

import pytest

from asyncproducer.errors import ConfigError
from asyncproducer.protocol import sasl
from asyncproducer.protocol.sasl import (
    NeedsDerivation,
    OAuthBearerClient,
    OAuthBearerToken,
    PlainClient,
    SaslCredentials,
    SaslError,
    SaslMechanism,
    SaslStep,
    ScramClient,
    available_mechanisms,
    mechanism_factory,
    register_mechanism,
)

TOKEN = OAuthBearerToken("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", lifetime_ms=1_000)


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sasl, "_registry", dict(sasl._registry))


class _Anonymous(SaslMechanism):
    """A mechanism from outside the package: RFC 4505 ANONYMOUS, one message."""

    def __init__(self) -> None:
        self._sent = False

    @property
    def name(self) -> str:
        return "ANONYMOUS"

    @property
    def complete(self) -> bool:
        return self._sent

    def initial_response(self) -> bytes:
        self._sent = True
        return b"trace"

    def evaluate(self, challenge: bytes) -> SaslStep:
        raise SaslError("no second step")


def test_built_ins_are_registered() -> None:
    assert available_mechanisms() == (
        "GSSAPI",
        "OAUTHBEARER",
        "PLAIN",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
    )


def test_unknown_name_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        mechanism_factory("DIGEST-MD5")
    assert isinstance(caught.value, ValueError)
    assert "'DIGEST-MD5'" in str(caught.value)
    assert "GSSAPI, OAUTHBEARER, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512" in str(caught.value)


def test_unknown_name_hints_at_the_case() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'SCRAM-SHA-512'\?"):
        mechanism_factory("scram-sha-512")


def test_factories_make_fresh_clients() -> None:
    credentials = SaslCredentials(username="alice", password="secret")
    plain = mechanism_factory("PLAIN")(credentials)
    assert isinstance(plain, PlainClient)
    assert plain is not mechanism_factory("PLAIN")(credentials)
    for name in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        scram = mechanism_factory(name)(credentials)
        assert isinstance(scram, ScramClient)
        assert scram.name == name
    oauth = mechanism_factory("OAUTHBEARER")(SaslCredentials(token=TOKEN))
    assert isinstance(oauth, OAuthBearerClient)


def test_scram_factory_passes_extensions() -> None:
    credentials = SaslCredentials("alice", "secret", extensions={"tokenauth": "true"})
    first = mechanism_factory("SCRAM-SHA-256")(credentials).initial_response()
    assert first.endswith(b",tokenauth=true")


def test_oauthbearer_factory_passes_extensions() -> None:
    credentials = SaslCredentials(token=TOKEN, extensions={"logicalCluster": "lkc-1"})
    first = mechanism_factory("OAUTHBEARER")(credentials).initial_response()
    assert first.endswith(b"\x01logicalCluster=lkc-1\x01\x01")


@pytest.mark.parametrize(
    ("name", "credentials", "match"),
    [
        ("PLAIN", SaslCredentials(username="alice"), "needs a username and a password"),
        ("PLAIN", SaslCredentials("alice", "pw", token=TOKEN), "does not use: token"),
        ("PLAIN", SaslCredentials("alice", "pw", extensions={"a": "b"}), "extensions"),
        ("SCRAM-SHA-256", SaslCredentials(password="pw"), "needs a username and a password"),
        ("SCRAM-SHA-512", SaslCredentials("alice", "pw", token=TOKEN), "does not use: token"),
        ("OAUTHBEARER", SaslCredentials(), "needs a token"),
        ("OAUTHBEARER", SaslCredentials("alice", "pw", token=TOKEN), "username, password"),
    ],
)
def test_factories_refuse_missing_and_unused_settings(
    name: str, credentials: SaslCredentials, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        mechanism_factory(name)(credentials)
    assert "'pw'" not in str(caught.value)


def test_credentials_repr_hides_secrets() -> None:
    credentials = SaslCredentials(
        "alice", "hunter2", token=TOKEN, extensions={"traceId": "secret-extension"}
    )
    text = repr(credentials)
    assert "alice" in text
    assert "traceId" in text
    for secret in ("hunter2", TOKEN.value, "secret-extension"):
        assert secret not in text
    assert "password=None" in repr(SaslCredentials("alice"))


def test_register_a_custom_mechanism() -> None:
    register_mechanism("ANONYMOUS", lambda credentials: _Anonymous())
    assert "ANONYMOUS" in available_mechanisms()
    mechanism = mechanism_factory("ANONYMOUS")(SaslCredentials())
    assert mechanism.initial_response() == b"trace"
    assert mechanism.complete
    with pytest.raises(SaslError, match="ANONYMOUS never asks for a key derivation"):
        mechanism.provide(b"")


def test_register_refuses_a_taken_name_unless_replacing() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_mechanism("PLAIN", lambda credentials: _Anonymous())
    register_mechanism("PLAIN", lambda credentials: _Anonymous(), replace=True)
    assert isinstance(mechanism_factory("PLAIN")(SaslCredentials()), _Anonymous)


@pytest.mark.parametrize("name", ["", "plain", "A" * 21, "SCRAM SHA", "PLAIN\n"])
def test_register_refuses_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a SASL mechanism name"):
        register_mechanism(name, lambda credentials: _Anonymous())


def _drive(mechanism: SaslMechanism, replies: list[bytes]) -> list[bytes]:
    """The package docstring's loop, synchronously; returns what the client sent."""
    sent = [mechanism.initial_response()]
    answers = iter(replies)
    while True:
        reply = next(answers)
        if mechanism.complete:
            break
        step = mechanism.evaluate(reply)
        if isinstance(step, NeedsDerivation):
            step = mechanism.provide(step.compute())
        if step is None:
            break
        sent.append(step)
    return sent


def test_the_documented_loop_drives_single_message_mechanisms() -> None:
    plain = mechanism_factory("PLAIN")(SaslCredentials("alice", "pw"))
    assert _drive(plain, [b""]) == [b"\0alice\0pw"]
    oauth = mechanism_factory("OAUTHBEARER")(SaslCredentials(token=TOKEN))
    assert len(_drive(oauth, [b""])) == 1
    assert oauth.complete
