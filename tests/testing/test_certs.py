"""certs.make_tls_files: each file is what it claims, checked by parsing it and by real TLS
handshakes (Python's ssl, in memory) that succeed or fail for the expected reason."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from asyncproducer.testing.certs import TlsFiles, make_tls_files

PASSWORD = "key-pw-123"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls-enc"), key_password=PASSWORD)


def certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str) -> None:
    """A TLS handshake between two contexts over memory BIOs: no socket, no thread."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side, out, peer_in in (
            ("client", client_side, c_out, s_in),
            ("server", server_side, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            # TLS 1.3: the server checks a client certificate after its own handshake ends;
            # a read on the server side surfaces its verdict.
            with contextlib.suppress(ssl.SSLWantReadError):
                server_side.read()
            return
    raise AssertionError("the handshake did not finish")


def server_context(
    tls: TlsFiles, which: str = "valid", *, require_client: bool = False
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain, key = tls.server_pair(which)  # type: ignore[arg-type]
    context.load_cert_chain(chain, key, tls.key_password)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(tls.ca)
    return context


# --------------------------------------------------------------------------- the files


def test_every_file_is_there_and_keys_are_private(tls: TlsFiles) -> None:
    for path in (tls.ca, tls.server_chain, tls.client_chain, tls.other_ca):
        assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    for key in (tls.ca_key, tls.server_key, tls.client_key, tls.wrong_name_key, tls.expired_key):
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, plain
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert {p.name for p in tls.directory.iterdir()} == {
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
        "wrong-name.pem",
        "wrong-name.key",
        "expired.pem",
        "expired.key",
        "other-ca.pem",
    }


def test_chains_are_leaf_then_ca_and_signed_by_it(tls: TlsFiles) -> None:
    (ca,) = certificates(tls.ca)
    (other_ca,) = certificates(tls.other_ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for chain in (tls.server_chain, tls.client_chain, tls.wrong_name_chain, tls.expired_chain):
        leaf, issuer = certificates(chain)
        assert issuer == ca
        leaf.verify_directly_issued_by(ca)
        with pytest.raises(ValueError, match="does not match"):
            leaf.verify_directly_issued_by(other_ca)
    assert other_ca.subject != ca.subject


def test_names_and_dates(tls: TlsFiles) -> None:
    now = datetime.datetime.now(datetime.UTC)
    server = certificates(tls.server_chain)[0]
    assert names(server) == {"127.0.0.1", "localhost"}
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert server.not_valid_before_utc < now < server.not_valid_after_utc
    assert names(certificates(tls.wrong_name_chain)[0]) == {"wrong.example"}
    expired = certificates(tls.expired_chain)[0]
    assert names(expired) == {"127.0.0.1", "localhost"}
    assert expired.not_valid_after_utc < now - datetime.timedelta(hours=12)
    client = certificates(tls.client_chain)[0]
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_other_hosts(tmp_path: Path) -> None:
    made = make_tls_files(tmp_path, hosts=["broker.test", "::1"])
    assert names(certificates(made.server_chain)[0]) == {"broker.test", "::1"}
    with pytest.raises(ValueError, match="at least one host"):
        make_tls_files(tmp_path, hosts=[])


def test_encrypted_keys_need_the_password(encrypted: TlsFiles) -> None:
    for key in (encrypted.server_key, encrypted.client_key, encrypted.ca_key):
        data = key.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        load_pem_private_key(data, PASSWORD.encode())
        with pytest.raises(TypeError, match="encrypted"):
            load_pem_private_key(data, None)
        # A wrong password decrypts to garbage: OpenSSL says so when the padding check
        # fails, and, once in about 256 tries, the padding passes and the garbage does
        # not parse as a key.
        with pytest.raises(ValueError, match=r"Incorrect password|Could not deserialize"):
            load_pem_private_key(data, b"wrong")


def test_encrypted_keys_use_the_pbe_java_reads(encrypted: TlsFiles) -> None:
    """pbeWithSHAAnd3-KeyTripleDES-CBC: Kafka on Java 17 cannot decrypt PBES2 PEM keys."""
    body = "".join(encrypted.server_key.read_text().splitlines()[1:-1])
    assert bytes.fromhex("06 0a 2a864886f70d010c0103") in base64.b64decode(body)


def test_repr_shows_paths_and_no_password(encrypted: TlsFiles) -> None:
    text = repr(encrypted)
    assert PASSWORD not in text
    assert str(encrypted.directory) in text
    assert "server_chain='server.pem'" in text
    assert "keys encrypted" in text


def test_server_pair_names(tls: TlsFiles) -> None:
    assert tls.server_pair() == (tls.server_chain, tls.server_key)
    assert tls.server_pair("expired") == (tls.expired_chain, tls.expired_key)
    with pytest.raises(ValueError, match="unknown server certificate 'self-signed'"):
        tls.server_pair("self-signed")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- handshakes


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_server_certificate_is_accepted_for_both_names(tls: TlsFiles, host: str) -> None:
    handshake(tls.client_ssl_context(), server_context(tls), host)


def test_mutual_tls_with_the_client_certificate(encrypted: TlsFiles) -> None:
    server = server_context(encrypted, require_client=True)
    handshake(encrypted.client_ssl_context(client_certificate=True), server, "127.0.0.1")
    with pytest.raises(ssl.SSLError, match=r"PEER_DID_NOT_RETURN|CERTIFICATE_REQUIRED"):
        handshake(encrypted.client_ssl_context(), server, "127.0.0.1")


@pytest.mark.parametrize(
    ("which", "trust", "reason"),
    [
        ("expired", "ca", "certificate has expired"),
        ("wrong-name", "ca", "mismatch, certificate is not valid for '127.0.0.1'"),
        # The server sends its CA too, which the client does not trust.
        ("valid", "other_ca", "self-signed certificate in certificate chain"),
    ],
)
def test_clients_refuse_the_bad_certificates(
    tls: TlsFiles, which: str, trust: str, reason: str
) -> None:
    client = ssl.create_default_context(cafile=str(getattr(tls, trust)))
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        handshake(client, server_context(tls, which), "127.0.0.1")
