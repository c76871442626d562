"""TLS certificates made at run time, for brokers and clients under test.

    tls = make_tls_files(tmp_path)        # a CA, and certificates it signed, as PEM files
    context = tls.client_ssl_context(client_certificate=True)   # trusts tls.ca; mTLS
    KafkaCluster(listener="SSL", tls=tls)  # or let the cluster make its own: cluster.tls

What :func:`make_tls_files` writes into its directory:

* ``ca.pem`` / ``ca.key``: the CA every other certificate here chains to (except
  ``other-ca.pem``);
* ``server.pem`` / ``server.key``: a server certificate, then the CA (the chain a server
  presents), for ``127.0.0.1`` (an IP SAN) and ``localhost`` (a DNS SAN);
* ``client.pem`` / ``client.key``: a client certificate (CN ``client``), for mutual TLS;
* ``wrong-name.pem`` / ``wrong-name.key``: a valid server certificate for
  ``wrong.example`` only, so a client that checks host names refuses it;
* ``expired.pem`` / ``expired.key``: a server certificate for the right names whose
  validity ended a day ago;
* ``other-ca.pem``: an unrelated CA (its key is thrown away): a client that trusts only it
  refuses every server certificate above ("unknown CA").

Keys are EC P-256 (generated in microseconds, where RSA-2048 takes ~50 ms each) in
PKCS#8 PEM, the form Kafka's PEM keystore reads; unencrypted, or encrypted with
``key_password`` (PKCS#8 ``BEGIN ENCRYPTED PRIVATE KEY``, which Kafka reads with
``ssl.key.password`` and OpenSSL clients with their key password setting).

Encrypted keys use PKCS#12's ``pbeWithSHAAnd3-KeyTripleDES-CBC``, not the PBES2/AES that
``cryptography`` writes: Kafka decrypts PEM keys with ``SecretKeyFactory.getInstance(<the
key's algorithm name>)``, and Java 17 names PBES2 just "PBES2", for which there is no
factory (the broker exits: "PBES2 SecretKeyFactory not available"). Java, OpenSSL and
``cryptography`` all read the 3DES form. Weak, and fine for keys that live as long as a
test run.

Built on ``cryptography`` directly rather than ``trustme`` (a convenience layer over the
same library): every field here is set explicitly, validity dates in the past and a key
encryption a JVM can read included, without depending on which options a trustme release
exposes, and the project needs one dependency instead of two. It comes with the ``test``
extra (``pip install asyncproducer[test]``).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import math
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_HOSTS", "ServerCertificate", "TlsFiles", "make_tls_files"]

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")
"""The names the server certificates are for: every broker a test starts is on loopback."""

ServerCertificate = Literal["valid", "wrong-name", "expired"]
"""Which server certificate a TLS listener serves (see :meth:`TlsFiles.server_pair`)."""

WRONG_NAME = "wrong.example"
_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, repr=False)
class TlsFiles:
    """Where :func:`make_tls_files` wrote each PEM file. ``*_chain`` files hold the
    certificate, then the CA's; ``*_key`` files the private key (PKCS#8)."""

    directory: Path
    ca: Path
    ca_key: Path
    server_chain: Path
    server_key: Path
    client_chain: Path
    client_key: Path
    wrong_name_chain: Path
    wrong_name_key: Path
    expired_chain: Path
    expired_key: Path
    other_ca: Path
    key_password: str | None = field(default=None, compare=False)
    """The password every key file is encrypted with; ``None``: the keys are plain."""

    def __repr__(self) -> str:
        # Paths only: the key password is a credential, and never shown.
        paths = ", ".join(
            f"{f.name}={getattr(self, f.name).name!r}"
            for f in fields(self)
            if f.name not in ("directory", "key_password")
        )
        encrypted = ", keys encrypted" if self.key_password is not None else ""
        return f"TlsFiles({str(self.directory)!r}: {paths}{encrypted})"

    def server_pair(self, which: ServerCertificate = "valid") -> tuple[Path, Path]:
        """``(chain, key)`` of the ``valid``, ``wrong-name`` or ``expired`` server
        certificate."""
        pairs = {
            "valid": (self.server_chain, self.server_key),
            "wrong-name": (self.wrong_name_chain, self.wrong_name_key),
            "expired": (self.expired_chain, self.expired_key),
        }
        try:
            return pairs[which]
        except KeyError:
            raise ValueError(
                f"unknown server certificate {which!r}; use one of {', '.join(pairs)}"
            ) from None

    def client_ssl_context(self, *, client_certificate: bool = False) -> ssl.SSLContext:
        """A client context that trusts :attr:`ca` and checks host names; with
        ``client_certificate``, it presents the client certificate (mutual TLS)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        if client_certificate:
            context.load_cert_chain(self.client_chain, self.client_key, self.key_password)
        return context


def make_tls_files(
    directory: Path | str,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    key_password: str | None = None,
    valid_days: int = 7,
) -> TlsFiles:
    """Make a CA and the certificates above in ``directory`` (created if missing).

    ``hosts`` are the server certificates' names (IP addresses become IP SANs, the rest DNS
    SANs); ``key_password`` encrypts every key file; ``valid_days`` is how long the CA and
    the valid certificates last (from an hour ago, to allow for clock skew).
    """
    if not hosts:
        raise ValueError("make_tls_files: hosts must name at least one host")
    if key_password == "":
        raise ValueError("make_tls_files: key_password must not be empty (use None)")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(hours=1), now + valid_days * _DAY)
    # The CA's validity starts before the expired certificate's, so the only fault of that
    # certificate is its own dates.
    ca_valid = (now - 30 * _DAY, valid[1])

    ca_key, ca_cert = _ca("asyncproducer test CA", ca_valid)
    _, other_ca_cert = _ca("asyncproducer unrelated CA", ca_valid)
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH

    def issue(
        name: str,
        common_name: str,
        names: Sequence[str],
        validity: _Validity,
        usage: x509.ObjectIdentifier,
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(ca_key, ca_cert, key, common_name, names, validity, usage)
        _write(root / f"{name}.pem", _pem(cert) + _pem(ca_cert))
        _write(root / f"{name}.key", _key_pem(key, key_password), private=True)

    issue("server", hosts[0], hosts, valid, server_auth)
    issue("client", "client", (), valid, client_auth)
    issue("wrong-name", WRONG_NAME, (WRONG_NAME,), valid, server_auth)
    issue("expired", hosts[0], hosts, (now - 10 * _DAY, now - _DAY), server_auth)
    _write(root / "ca.pem", _pem(ca_cert))
    _write(root / "ca.key", _key_pem(ca_key, key_password), private=True)
    _write(root / "other-ca.pem", _pem(other_ca_cert))

    def pair(name: str) -> tuple[Path, Path]:
        return root / f"{name}.pem", root / f"{name}.key"

    return TlsFiles(
        root,
        *pair("ca"),
        *pair("server"),
        *pair("client"),
        *pair("wrong-name"),
        *pair("expired"),
        root / "other-ca.pem",
        key_password=key_password,
    )


_Validity = tuple[datetime.datetime, datetime.datetime]


def _ca(
    common_name: str, validity: _Validity
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    cert = (
        _builder(name, name, public, validity)
        # Python 3.13's default context (VERIFY_X509_STRICT) wants a critical
        # basicConstraints and a key identifier on a CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    names: Sequence[str],
    validity: _Validity,
    usage: x509.ObjectIdentifier,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    builder = (
        _builder(subject, ca_cert.subject, public, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    validity: _Validity,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    # A CA signs certificates; an EC leaf signs the TLS handshake (digital_signature).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: str | None) -> bytes:
    plain = key.private_bytes(
        serialization.Encoding.PEM if password is None else serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if password is None:
        return plain
    body = base64.encodebytes(_pkcs12_pbe_encrypt(plain, password)).decode("ascii")
    return (
        f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}-----END ENCRYPTED PRIVATE KEY-----\n"
    ).encode("ascii")


# --------------------------------------------------------------------------- PKCS#12 PBE
# EncryptedPrivateKeyInfo with pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292, appendices B and
# C): the encryption Java 17 decrypts (see the module docstring); cryptography writes only
# PBES2 for PKCS#8, so the few lines are here.

_PBE_SHA1_3DES = bytes.fromhex("2a864886f70d010c0103")  # OID 1.2.840.113549.1.12.1.3
_PBE_ITERATIONS = 2048


def _pkcs12_pbe_encrypt(pkcs8_der: bytes, password: str) -> bytes:
    salt = os.urandom(8)
    key = _pkcs12_kdf(password, salt, purpose=1, size=24)
    iv = _pkcs12_kdf(password, salt, purpose=2, size=8)
    padder = padding.PKCS7(64).padder()
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    data = encryptor.update(padder.update(pkcs8_der) + padder.finalize()) + encryptor.finalize()
    parameters = _der(0x30, _der(0x04, salt) + _der(0x02, _PBE_ITERATIONS.to_bytes(2, "big")))
    algorithm = _der(0x30, _der(0x06, _PBE_SHA1_3DES) + parameters)
    return _der(0x30, algorithm + _der(0x04, data))


def _pkcs12_kdf(password: str, salt: bytes, *, purpose: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1 (purpose 1: key, 2: IV)."""
    v = 64  # SHA-1's block size

    def fill(data: bytes) -> bytes:  # repeated to a multiple of v bytes
        length = v * math.ceil(len(data) / v)
        return (data * math.ceil(length / len(data)))[:length] if data else b""

    # The password as a NUL-terminated BMPString.
    i = bytearray(fill(salt) + fill(password.encode("utf-16-be") + b"\0\0"))
    out = b""
    while len(out) < size:
        a = bytes([purpose]) * v + bytes(i)
        for _ in range(_PBE_ITERATIONS):
            a = hashlib.sha1(a).digest()
        out += a
        b = int.from_bytes(fill(a), "big") + 1
        for j in range(0, len(i), v):
            block = (int.from_bytes(i[j : j + v], "big") + b) % (1 << (8 * v))
            i[j : j + v] = block.to_bytes(v, "big")
    return out[:size]


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # Keys are readable by their owner only, as OpenSSL-based clients expect of key files.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(path, flags, 0o600 if private else 0o644), "wb") as out:
        out.write(data)
    if private:
        path.chmod(0o600)  # an existing file keeps its mode through O_CREAT
