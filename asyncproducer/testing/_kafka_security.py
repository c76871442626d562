"""The client listener's security for :class:`~asyncproducer.testing.kafka.KafkaCluster`.

Only the CLIENT listener is secured: the nodes replicate over INTERNAL and vote over
CONTROLLER, both PLAINTEXT, and the cluster's own admin probes use INTERNAL too, so no
probe needs TLS or SASL and a misconfigured client listener cannot stall start-up.

Every property is ``listener.name.client.``-prefixed: Kafka applies ``ssl.client.auth`` to a
SASL_SSL listener only in that form, and the other listeners stay untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from asyncproducer.testing.certs import ServerCertificate, TlsFiles

__all__ = [
    "DEFAULT_USERS",
    "LISTENERS",
    "SASL_MECHANISMS",
    "ClientAuth",
    "ClientListener",
    "redact",
]

LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
"""The default mechanisms; GSSAPI is enabled only when asked for (it needs a KDC)."""
KNOWN_SASL_MECHANISMS = (*SASL_MECHANISMS, "GSSAPI")
KERBEROS_SERVICE = "kafka"
"""The broker's Kerberos service name (``sasl.kerberos.service.name``)."""
ClientAuth = Literal["none", "requested", "required"]
CLIENT_AUTH: tuple[ClientAuth, ...] = ("none", "requested", "required")
SERVER_CERTIFICATES = ("valid", "wrong-name", "expired")
DEFAULT_USERS: Mapping[str, str] = MappingProxyType({"alice": "alice-secret"})

_PREFIX = "listener.name.client."
# Users reach three parsers: a JAAS option in double quotes, StorageTool's --add-scram
# list ("[name=...,password=...]", split on "," and "="), and SCRAM's own name escaping.
# Letters, digits and a few marks pass all three unchanged.
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_PASSWORD = re.compile(r"[A-Za-z0-9._~!@#$%^&*()+\-/:?]+")
_JAAS = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
    "GSSAPI": "com.sun.security.auth.module.Krb5LoginModule",
}


@dataclass(frozen=True, repr=False)
class ClientListener:
    """What the caller asked of the CLIENT listener, checked; ``repr`` shows no password."""

    protocol: str = "PLAINTEXT"
    client_auth: ClientAuth = "none"
    server_certificate: ServerCertificate = "valid"
    sasl_mechanisms: tuple[str, ...] = SASL_MECHANISMS
    users: Mapping[str, str] = field(default_factory=lambda: DEFAULT_USERS)
    kerberos_keytab: Path | None = None
    """GSSAPI: the keytab of the broker's principal, :attr:`kerberos_principal`."""
    kerberos_principal: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in LISTENERS:
            raise ValueError(
                f"unknown Kafka listener {self.protocol!r}; the listener types are "
                f"{', '.join(LISTENERS)}"
            )
        if self.client_auth not in CLIENT_AUTH:
            raise ValueError(f"client_auth={self.client_auth!r}: use {', '.join(CLIENT_AUTH)}")
        if self.server_certificate not in SERVER_CERTIFICATES:
            raise ValueError(
                f"server_certificate={self.server_certificate!r}: use "
                f"{', '.join(SERVER_CERTIFICATES)}"
            )
        if not self.tls and (self.client_auth != "none" or self.server_certificate != "valid"):
            raise ValueError(
                f"client_auth and server_certificate need a TLS listener (SSL or SASL_SSL), "
                f"not {self.protocol}"
            )
        if self.sasl:
            self._check_sasl()
        elif self.kerberos_principal is not None:
            raise ValueError(f"kerberos needs a SASL listener with GSSAPI, not {self.protocol}")
        object.__setattr__(self, "users", MappingProxyType(dict(self.users)))

    def _check_sasl(self) -> None:
        unknown = [m for m in self.sasl_mechanisms if m not in KNOWN_SASL_MECHANISMS]
        if unknown or not self.sasl_mechanisms:
            raise ValueError(
                f"sasl_mechanisms={list(self.sasl_mechanisms)!r}: use some of "
                f"{', '.join(KNOWN_SASL_MECHANISMS)}"
            )
        if ("GSSAPI" in self.sasl_mechanisms) != (self.kerberos_principal is not None):
            raise ValueError("GSSAPI needs a Kerberos realm (kerberos=), and only GSSAPI does")
        if not self.users and set(self.sasl_mechanisms) - {"OAUTHBEARER", "GSSAPI"}:
            raise ValueError("users: PLAIN and SCRAM need at least one user")
        for name, password in self.users.items():
            if not _NAME.fullmatch(name):
                raise ValueError(f"user name {name!r}: use letters, digits, '.', '_', '-'")
            if not _PASSWORD.fullmatch(password):
                # The password itself stays out of the message (it may end up in a CI log).
                raise ValueError(
                    f"the password of user {name!r} has characters Kafka's JAAS or "
                    "--add-scram parsing would change: use letters, digits and ._~!@#$%^&*()+-/:?"
                )

    def __repr__(self) -> str:
        users = ", ".join(self.users) if self.sasl else "-"
        return (
            f"<ClientListener {self.protocol} client_auth={self.client_auth} "
            f"server_certificate={self.server_certificate} "
            f"mechanisms={','.join(self.sasl_mechanisms) if self.sasl else '-'} users={users}>"
        )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def properties(self, tls_files: TlsFiles | None) -> dict[str, str]:
        """The broker properties of the CLIENT listener (none for PLAINTEXT)."""
        properties: dict[str, str] = {}
        if self.tls:
            if tls_files is None:
                raise ValueError(f"a {self.protocol} listener needs its TLS files")
            properties.update(self._tls_properties(tls_files))
        if self.sasl:
            properties.update(self._sasl_properties())
        return properties

    def _tls_properties(self, tls_files: TlsFiles) -> dict[str, str]:
        chain, key = tls_files.server_pair(self.server_certificate)
        properties = {
            # PEM inline rather than a keystore file: nothing to convert, and Kafka reads
            # PKCS#8 keys, plain or (with ssl.key.password) encrypted.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": chain.read_text(encoding="ascii"),
            "ssl.keystore.key": key.read_text(encoding="ascii"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.certificates": tls_files.ca.read_text(encoding="ascii"),
            "ssl.client.auth": self.client_auth,
        }
        if tls_files.key_password is not None:
            properties["ssl.key.password"] = tls_files.key_password
        return {_PREFIX + key: value for key, value in properties.items()}

    def _sasl_properties(self) -> dict[str, str]:
        properties = {"sasl.enabled.mechanisms": ",".join(self.sasl_mechanisms)}
        for mechanism in self.sasl_mechanisms:
            options = ""
            if mechanism == "PLAIN":
                # PlainLoginModule's server side checks user_<name>="<password>" options.
                options = "".join(f' user_{n}="{p}"' for n, p in self.users.items())
            elif mechanism == "OAUTHBEARER":
                # With no server callback handler configured, Kafka validates tokens with
                # its unsecured-JWS handler (alg "none", any "sub" with an "exp"); the
                # broker's own login needs a token too, so it makes an unsecured one.
                options = ' unsecuredLoginStringClaim_sub="broker"'
            elif mechanism == "GSSAPI":
                if self.kerberos_keytab is None:
                    raise ValueError("a GSSAPI listener needs the broker's keytab")
                # The broker logs in from its keytab; clients must ask for a ticket to
                # kafka/<the host they connect to>, which is the principal's host part.
                options = (
                    f' useKeyTab=true storeKey=true keyTab="{self.kerberos_keytab}"'
                    f' principal="{self.kerberos_principal}"'
                )
                properties["sasl.kerberos.service.name"] = KERBEROS_SERVICE
            jaas = f"{_JAAS[mechanism]} required{options};"
            properties[f"{mechanism.lower()}.sasl.jaas.config"] = jaas
        return {_PREFIX + key: value for key, value in properties.items()}

    def format_arguments(self) -> list[str]:
        """``StorageTool format`` flags that create the SCRAM users (stored in the
        cluster's metadata, so every node is formatted with the same ones)."""
        return [
            argument
            for mechanism in self.sasl_mechanisms
            if self.sasl and mechanism.startswith("SCRAM-")
            for name, password in self.users.items()
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]

    def passwords(self) -> list[str]:
        """Every secret that must not appear in an exception message."""
        return list(self.users.values()) if self.sasl else []


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
