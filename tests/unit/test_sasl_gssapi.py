"""The GSSAPI state machine, with a stubbed GSS-API context (no KDC, no gssapi package)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from asyncproducer.config import ProducerConfig
from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl import (
    GssapiClient,
    KerberosSettings,
    NeedsComputation,
    SaslCredentials,
    SaslError,
    mechanism_factory,
)
from asyncproducer.protocol.sasl.gssapi import GssStep


class StubContext:
    """Two context rounds (AP-REQ, AP-REP), then wrap/unwrap as a visible envelope."""

    def __init__(self, rounds: int = 2, offer: bytes = b"\x01\x00\x10\x00") -> None:
        self.rounds = rounds
        self.offer = offer
        self.inputs: list[bytes | None] = []
        self.threads: list[threading.Thread] = []

    @property
    def complete(self) -> bool:
        return len(self.inputs) >= self.rounds

    def step(self, token: bytes | None) -> bytes | None:
        self.threads.append(threading.current_thread())
        self.inputs.append(token)
        if token == b"bad":
            raise SaslError("SASL GSSAPI: stub failure")
        return b"ap-req" if token is None else None

    def wrap(self, message: bytes) -> bytes:
        return b"W[" + message + b"]"

    def unwrap(self, message: bytes) -> bytes:
        if not (message.startswith(b"W[") and message.endswith(b"]")):
            raise SaslError("SASL GSSAPI: unwrap failed")
        return message[2:-1]


def client(context: StubContext) -> GssapiClient:
    return GssapiClient(lambda: context, "kafka@broker-1")


def run(step: bytes | NeedsComputation | None, mechanism: GssapiClient) -> bytes | None:
    if isinstance(step, NeedsComputation):
        assert step.cached() is None
        return mechanism.provide(step.compute())
    return step


def test_the_whole_exchange() -> None:
    context = StubContext()
    gss = client(context)
    assert gss.name == "GSSAPI"
    first = gss.initial_response()
    assert isinstance(first, GssStep)
    assert context.inputs == []  # nothing done until the caller runs the step
    assert run(first, gss) == b"ap-req"
    assert not gss.complete
    # AP-REP: the context completes with no token, and the client says so (empty).
    assert run(gss.evaluate(b"ap-rep"), gss) == b""
    assert context.inputs == [None, b"ap-rep"]
    assert not gss.complete
    # The offer: "no security layer" allowed -> layer 1, size 0, no authzid, wrapped.
    assert gss.evaluate(b"W[\x07\x00\x10\x00]") == b"W[\x01\x00\x00\x00]"
    assert gss.complete
    with pytest.raises(SaslError, match="out of turn"):
        gss.evaluate(b"more")


def test_a_context_complete_after_one_step_goes_to_the_security_layer() -> None:
    gss = client(StubContext(rounds=1))
    assert run(gss.initial_response(), gss) == b"ap-req"
    assert gss.evaluate(b"W[\x01\x00\x00\x00]") == b"W[\x01\x00\x00\x00]"
    assert gss.complete


def test_the_context_is_made_in_the_step_and_stepped_there() -> None:
    made: list[threading.Thread] = []
    context = StubContext()

    def factory() -> StubContext:
        made.append(threading.current_thread())
        return context

    gss = GssapiClient(factory, "kafka@broker-1")
    step = gss.initial_response()
    assert made == []
    assert isinstance(step, NeedsComputation)
    worker = threading.Thread(target=lambda: gss.provide(step.compute()))
    worker.start()
    worker.join()
    assert made == [worker]
    assert context.threads == [worker]


@pytest.mark.parametrize(
    ("offer", "match"),
    [
        (b"W[\x06\x00\x10\x00]", "requires a security layer"),
        (b"W[\x01\x00\x10]", "3 bytes, not 4"),
        (b"not wrapped", "unwrap failed"),
    ],
)
def test_bad_security_layer_offers_fail_the_client(offer: bytes, match: str) -> None:
    gss = client(StubContext(rounds=1))
    run(gss.initial_response(), gss)
    with pytest.raises(SaslError, match=match):
        gss.evaluate(offer)
    assert not gss.complete
    with pytest.raises(SaslError, match="out of turn"):  # failed: nothing more
        gss.evaluate(b"W[\x01\x00\x00\x00]")


def test_a_failed_context_step_fails_the_client() -> None:
    gss = client(StubContext(rounds=3))
    run(gss.initial_response(), gss)
    step = gss.evaluate(b"bad")
    assert isinstance(step, GssStep)
    with pytest.raises(SaslError, match="stub failure"):
        step.compute()
    with pytest.raises(SaslError, match="out of turn"):
        gss.provide(b"")


def test_calls_out_of_turn() -> None:
    gss = client(StubContext())
    with pytest.raises(SaslError, match="out of turn"):
        gss.evaluate(b"x")
    with pytest.raises(SaslError, match="out of turn"):
        gss.provide(b"x")
    step = gss.initial_response()
    assert isinstance(step, GssStep)
    with pytest.raises(SaslError, match="out of turn"):
        gss.initial_response()
    with pytest.raises(SaslError, match="out of turn"):
        gss.evaluate(b"x")  # the step has not been provided
    token = step.compute()
    with pytest.raises(SaslError, match="run twice"):
        step.compute()
    gss.provide(token)
    with pytest.raises(SaslError, match="run twice or out of turn"):
        step.compute()


def test_repr_names_the_target_not_tokens() -> None:
    gss = client(StubContext())
    step = gss.initial_response()
    assert "kafka@broker-1" in repr(gss)
    assert "kafka@broker-1" in repr(step)


def test_the_registry_factory_checks_its_credentials() -> None:
    pytest.importorskip("gssapi")
    with pytest.raises(ConfigError, match="does not use: username, password"):
        mechanism_factory("GSSAPI")(SaslCredentials("alice", "pw"))
    with pytest.raises(ConfigError, match="a keytab needs the principal"):
        mechanism_factory("GSSAPI")(
            SaslCredentials(kerberos=KerberosSettings(keytab="/etc/krb5.keytab"))
        )
    gss = mechanism_factory("GSSAPI")(
        SaslCredentials(kerberos=KerberosSettings("kafka", "alice"), server_host="broker-1")
    )
    assert isinstance(gss, GssapiClient)
    assert gss.target == "kafka@broker-1"


def test_other_mechanisms_refuse_kerberos_settings() -> None:
    with pytest.raises(ConfigError, match="does not use: kerberos"):
        mechanism_factory("PLAIN")(SaslCredentials("a", "b", kerberos=KerberosSettings()))


def test_without_the_gssapi_package_the_error_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gssapi", None)  # import gssapi -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'asyncproducer\[gssapi\]'"):
        mechanism_factory("GSSAPI")(SaslCredentials())


# --------------------------------------------------------------------------- configuration


def gssapi_config(**kwargs: object) -> ProducerConfig:
    return ProducerConfig(
        bootstrap_servers=("localhost:9092",),
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="GSSAPI",
        **kwargs,  # type: ignore[arg-type]
    )


def test_config_keytab_and_principal(tmp_path: Path) -> None:
    keytab = tmp_path / "alice.keytab"
    keytab.write_bytes(b"\x05\x02")
    config = gssapi_config(sasl_kerberos_principal="alice", sasl_kerberos_keytab=str(keytab))
    assert config.sasl_kerberos_service_name == "kafka"
    with pytest.raises(ConfigError, match="sasl_kerberos_keytab needs sasl_kerberos_principal"):
        gssapi_config(sasl_kerberos_keytab=str(keytab))
    with pytest.raises(ConfigError, match="no such file"):
        gssapi_config(sasl_kerberos_principal="a", sasl_kerberos_keytab=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="sasl_kerberos_service_name='kafka/x'"):
        gssapi_config(sasl_kerberos_service_name="kafka/x")


def test_config_the_ticket_cache_needs_nothing() -> None:
    assert gssapi_config().sasl_kerberos_principal is None


def test_config_refuses_what_gssapi_would_not_use() -> None:
    with pytest.raises(ConfigError, match="sasl_password, sasl_username would not act"):
        gssapi_config(sasl_username="alice", sasl_password="pw")
    with pytest.raises(ConfigError, match="they are for GSSAPI"):
        ProducerConfig(
            bootstrap_servers=("localhost:9092",),
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="a",
            sasl_password="b",
            sasl_kerberos_principal="alice",
        )
    with pytest.raises(ConfigError, match="need SASL_PLAINTEXT or SASL_SSL"):
        ProducerConfig(bootstrap_servers=("localhost:9092",), sasl_kerberos_principal="alice")


def test_config_from_a_krb5_login_module_line(tmp_path: Path) -> None:
    keytab = tmp_path / "alice.keytab"
    keytab.write_bytes(b"\x05\x02")
    config = ProducerConfig.from_java_properties(
        {
            "bootstrap.servers": "localhost:9092",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "GSSAPI",
            "sasl.jaas.config": (
                "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
                f'storeKey=true keyTab="{keytab}" principal="alice@EXAMPLE.COM" '
                'serviceName="kafka-prod";'
            ),
        }
    )
    assert config.sasl_kerberos_keytab == str(keytab)
    assert config.sasl_kerberos_principal == "alice@EXAMPLE.COM"
    assert config.sasl_kerberos_service_name == "kafka-prod"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ("useKeyTab=true", "useKeyTab=true needs keyTab and principal"),
        ("", "needs useKeyTab=true"),
        ('useTicketCache=true ticketCache="/tmp/cc"', "option.s. ticketCache not supported"),
        ('useTicketCache=true serviceName="other"', "disagree"),
    ],
)
def test_config_krb5_lines_that_cannot_act(options: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gssapi_config(
            sasl_kerberos_service_name="kafka-prod",
            sasl_jaas_config=f"com.sun.security.auth.module.Krb5LoginModule required {options};",
        )


def test_config_a_krb5_line_needs_gssapi() -> None:
    with pytest.raises(ConfigError, match="they are for GSSAPI"):
        ProducerConfig(
            bootstrap_servers=("localhost:9092",),
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_jaas_config=(
                "com.sun.security.auth.module.Krb5LoginModule required useTicketCache=true "
                'principal="alice";'
            ),
        )
