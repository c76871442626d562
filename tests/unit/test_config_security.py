"""Security settings: accepted only where they act, checked at construction, never shown.

TLS contexts are built from run-time certificates (asyncproducer.testing.certs), so a bad
file or key password is a ConfigError when the producer is made."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from asyncproducer import Producer
from asyncproducer._tls import client_tls_context
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import ConfigError

BOOT = "localhost:9092"
SECRET = "hunter2-s3cr3t"


def make(**kwargs: object) -> ProducerConfig:
    return ProducerConfig.from_kwargs(BOOT, **kwargs)


def sasl(**kwargs: object) -> ProducerConfig:
    options: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "alice",
        "sasl_password": SECRET,
    }
    options.update(kwargs)
    return make(**options)


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "ssl", "SASL_PLAINTEXT", " sasl_ssl "])
def test_security_protocols_any_case(protocol: str) -> None:
    extra = {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}
    config = make(security_protocol=protocol, **(extra if "SASL" in protocol.upper() else {}))
    assert config.security_protocol == protocol.strip().upper()


def test_an_unknown_security_protocol_lists_the_known() -> None:
    with pytest.raises(ConfigError, match=r"security_protocol='TLS'.*PLAINTEXT, SSL"):
        make(security_protocol="TLS")


@pytest.mark.parametrize(
    ("protocol", "key", "value", "needs"),
    [
        ("PLAINTEXT", "ssl_truststore_location", "/ca.pem", "SSL or SASL_SSL"),
        ("SASL_PLAINTEXT", "ssl_endpoint_identification_algorithm", "", "SSL or SASL_SSL"),
        ("PLAINTEXT", "sasl_mechanism", "PLAIN", "SASL_PLAINTEXT or SASL_SSL"),
        ("SSL", "sasl_username", "alice", "SASL_PLAINTEXT or SASL_SSL"),
    ],
)
def test_a_key_that_would_not_act_is_refused(
    protocol: str, key: str, value: object, needs: str
) -> None:
    extra = {}
    if protocol.startswith("SASL"):
        extra = {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}
    with pytest.raises(ConfigError, match=rf"{key} would not act .* need {needs}"):
        make(security_protocol=protocol, **{**extra, key: value})


def test_a_secret_that_would_not_act_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        make(sasl_password=SECRET)
    assert "sasl_password would not act" in str(raised.value)
    assert SECRET not in str(raised.value)


# --------------------------------------------------------------------------- SASL


def test_sasl_needs_a_mechanism_named() -> None:
    with pytest.raises(ConfigError, match=r"needs sasl_mechanism.*Java defaults to GSSAPI"):
        make(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p")
    with pytest.raises(ConfigError, match=r"must be one of PLAIN, SCRAM-SHA-256"):
        sasl(sasl_mechanism="DIGEST-MD5")


@pytest.mark.parametrize("missing", ["sasl_username", "sasl_password"])
def test_sasl_needs_both_credentials(missing: str) -> None:
    with pytest.raises(ConfigError, match=rf"needs {missing}"):
        sasl(**{missing: None})


def test_mechanism_names_are_normalized() -> None:
    assert sasl(sasl_mechanism="scram-sha-256").sasl_mechanism == "SCRAM-SHA-256"


@pytest.mark.parametrize(
    ("line", "username", "password"),
    [
        (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="alice" password="a \\"quoted\\" secret";',
            "alice",
            'a "quoted" secret',
        ),
        (
            "org.apache.kafka.common.security.scram.ScramLoginModule required\n"
            '  username="bob"\n  password="pw";',
            "bob",
            "pw",
        ),
    ],
)
def test_the_jaas_line_of_the_plain_and_scram_modules_is_read(
    line: str, username: str, password: str
) -> None:
    config = ProducerConfig.from_java_properties(
        {
            "bootstrap.servers": BOOT,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.jaas.config": line,
        }
    )
    assert (config.sasl_username, config.sasl_password) == (username, password)
    assert password not in repr(config)
    assert "sasl_jaas_config='***'" in repr(config)


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ('org.apache.kafka.common.security.plain.PlainLoginModule required username="a" '
         f'password="{SECRET}"', "ending with a semicolon"),
        (f'com.example.Other required username="a" password="{SECRET}";',
         "Plain, Scram, OAuthBearer and Krb5"),
        ("software.amazon.msk.auth.iam.IAMLoginModule required;",
         r"asyncproducer.aws.MskIamTokenProvider\(region\)"),
        ('org.apache.kafka.common.security.plain.PlainLoginModule required username="a";',
         "needs password"),
    ],
)  # fmt: skip
def test_a_bad_jaas_line_is_explained_without_quoting_it(line: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as raised:
        sasl(sasl_username=None, sasl_password=None, sasl_jaas_config=line)
    assert SECRET not in str(raised.value)


def test_jaas_and_username_are_one_or_the_other() -> None:
    line = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="a" password="b";'
    )
    with pytest.raises(ConfigError, match="not both"):
        sasl(sasl_jaas_config=line)


# --------------------------------------------------------------------------- TLS


def test_stores_must_be_pem_and_say_how_to_convert() -> None:
    with pytest.raises(ConfigError, match=r"ssl_truststore_type='JKS'.*keytool -importkeystore"):
        make(security_protocol="SSL", ssl_truststore_type="JKS")
    with pytest.raises(ConfigError, match=r"JKS and PKCS12 stores; asyncproducer reads PEM"):
        ProducerConfig.from_java_properties(
            {"bootstrap.servers": BOOT, "ssl.truststore.password": SECRET}
        )


def test_contradicting_tls_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        make(
            security_protocol="SSL",
            ssl_truststore_location="/a.pem",
            ssl_truststore_certificates="-----BEGIN CERTIFICATE-----",
        )
    with pytest.raises(ConfigError, match="go together"):
        make(security_protocol="SSL", ssl_keystore_certificate_chain="-----BEGIN")
    with pytest.raises(ConfigError, match="no keystore is set"):
        make(security_protocol="SSL", ssl_key_password=SECRET)
    with pytest.raises(ConfigError, match=r"ssl_context is used as given, so ssl_cipher_suites"):
        make(
            security_protocol="SSL",
            ssl_context=ssl.create_default_context(),
            ssl_cipher_suites=["ECDHE-RSA-AES128-GCM-SHA256"],
        )
    with pytest.raises(ConfigError, match=r"must be an ssl\.SSLContext"):
        make(security_protocol="SSL", ssl_context="tls")


def test_protocols_and_ciphers_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"TLSv1.2 and TLSv1.3"):
        make(security_protocol="SSL", ssl_enabled_protocols="TLSv1.1")
    with pytest.raises(ConfigError, match="OpenSSL knows none"):
        make(security_protocol="SSL", ssl_cipher_suites="NOT-A-CIPHER")
    config = make(security_protocol="SSL", ssl_enabled_protocols="TLSv1.3")
    context = client_tls_context(config)
    assert context is not None
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_3


def test_the_default_context_verifies_against_the_system_cas() -> None:
    context = client_tls_context(make(security_protocol="SSL"))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert client_tls_context(make()) is None


def test_a_given_context_is_used_as_given() -> None:
    given = ssl.create_default_context()
    assert client_tls_context(make(security_protocol="SSL", ssl_context=given)) is given


def test_turning_hostname_checks_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asyncproducer.security"):
        context = client_tls_context(
            make(security_protocol="SSL", ssl_endpoint_identification_algorithm="")
        )
    assert context is not None
    assert not context.check_hostname
    assert "hostname verification off" in caplog.text


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ssl_truststore_location \(/nope.pem\).*No such file"):
        Producer(BOOT, security_protocol="SSL", ssl_truststore_location="/nope.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load the client certificate and key"):
        Producer(BOOT, security_protocol="SSL", ssl_keystore_location=str(garbage))


# --------------------------------------------------------------------------- OAUTHBEARER


def oauth(**kwargs: object) -> ProducerConfig:
    options: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": lambda: ("a.b.c", 2**62),
    }
    options.update(kwargs)
    return make(**options)


def test_oauthbearer_needs_a_token_provider_and_nothing_else() -> None:
    assert oauth().sasl_mechanism == "OAUTHBEARER"

    class Provider:
        async def token(self) -> tuple[str, int]:
            return "a.b.c", 2**62

    assert isinstance(
        oauth(sasl_oauth_token_provider=Provider()).sasl_oauth_token_provider, Provider
    )
    with pytest.raises(ConfigError, match="needs sasl_oauth_token_provider"):
        oauth(sasl_oauth_token_provider=None)
    with pytest.raises(ConfigError, match="must be a callable or an object with a token"):
        oauth(sasl_oauth_token_provider="https://issuer/token")
    with pytest.raises(
        ConfigError, match="sasl_password, sasl_username would not act with OAUTHBEARER"
    ):
        oauth(sasl_username="alice", sasl_password=SECRET)
    with pytest.raises(ConfigError, match=r"token_provider would not act .* OAUTHBEARER"):
        sasl(sasl_oauth_token_provider=lambda: ("a.b.c", 2**62))


def test_a_token_provider_is_never_shown() -> None:
    class Provider:
        def __repr__(self) -> str:
            return f"Provider(client_secret={SECRET!r})"

        def token(self) -> tuple[str, int]:
            return "a.b.c", 2**62

    assert SECRET not in repr(oauth(sasl_oauth_token_provider=Provider()))
