"""FakeCluster's listener security: the protocol, TLS files or context, SASL mechanisms
and users, checked when the cluster is made; and the producer settings that connect to it.

The names are :class:`~asyncproducer.testing.kafka.KafkaCluster`'s (``listener``, ``tls``,
``client_auth``, ``server_certificate``, ``users``, ``sasl_mechanisms``), so a test moves
from one rig to the other by changing the class.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from asyncproducer.testing.fake._auth import OAuthBearerValidator
from asyncproducer.testing.fake._session import SaslConfig

if TYPE_CHECKING:
    # certs needs `cryptography` (the test extra): imported when a TLS cluster starts.
    from asyncproducer.testing.certs import ServerCertificate, TlsFiles

__all__ = [
    "DEFAULT_USERS",
    "LISTENERS",
    "SASL_MECHANISMS",
    "ClientAuth",
    "ListenerSecurity",
    "unsecured_jws",
]

LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
DEFAULT_USERS: Mapping[str, str] = MappingProxyType({"alice": "alice-secret"})
ClientAuth = Literal["none", "requested", "required"]
_CLIENT_AUTH = ("none", "requested", "required")
_SERVER_CERTIFICATES = ("valid", "wrong-name", "expired")


def unsecured_jws(principal: str, lifetime_s: float = 3600.0) -> str:
    """An OAUTHBEARER token Kafka's unsecured validator (and the fake's) accepts:
    ``alg: none``, no signature, ``sub`` = ``principal``, ``exp`` ``lifetime_s`` from now."""

    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    now = time.time()
    claims = {"sub": principal, "iat": int(now), "exp": int(now + lifetime_s)}
    return f"{part({'alg': 'none'})}.{part(claims)}."


def unsecured_token_provider(
    principal: str, lifetime_s: float = 3600.0
) -> Callable[[], Awaitable[tuple[str, int]]]:
    """A ``sasl_oauth_token_provider`` giving a fresh :func:`unsecured_jws` per call."""

    async def provide() -> tuple[str, int]:
        expires_ms = int((time.time() + lifetime_s) * 1000)
        return unsecured_jws(principal, lifetime_s), expires_ms

    return provide


class ListenerSecurity:
    """What FakeCluster's listeners speak; checked at construction (a ValueError names the
    argument), TLS files made at :meth:`start` unless given, removed at :meth:`stop`."""

    def __init__(
        self,
        listener: str,
        *,
        tls: TlsFiles | ssl.SSLContext | None,
        client_auth: ClientAuth,
        server_certificate: ServerCertificate,
        users: Mapping[str, str] | None,
        sasl_mechanisms: Sequence[str],
        session_lifetime_ms: int,
        oauthbearer_validator: OAuthBearerValidator | None,
    ) -> None:
        if listener not in LISTENERS:
            raise ValueError(
                f"unknown listener {listener!r}; the listener types are {', '.join(LISTENERS)}"
            )
        self.listener = listener
        self.client_auth = client_auth
        self.server_certificate = server_certificate
        self._check_tls(tls)
        self._given_tls = tls
        self._files: TlsFiles | None = None if isinstance(tls, ssl.SSLContext) else tls
        self._made_directory: Path | None = None
        sasl_given = (
            users is not None
            or tuple(sasl_mechanisms) != SASL_MECHANISMS
            or session_lifetime_ms != 0
            or oauthbearer_validator is not None
        )
        self.sasl: SaslConfig | None = None
        if self.sasl_enabled:
            self.sasl = _sasl_config(
                tuple(sasl_mechanisms),
                DEFAULT_USERS if users is None else users,
                session_lifetime_ms,
                oauthbearer_validator,
            )
        elif sasl_given:
            raise ValueError(
                "users, sasl_mechanisms, session_lifetime_ms and oauthbearer_validator need a "
                f"SASL listener (SASL_PLAINTEXT or SASL_SSL), not {listener}"
            )

    @property
    def tls_enabled(self) -> bool:
        return self.listener in ("SSL", "SASL_SSL")

    @property
    def sasl_enabled(self) -> bool:
        return self.listener.startswith("SASL_")

    def _check_tls(self, tls: object) -> None:
        if self.client_auth not in _CLIENT_AUTH:
            raise ValueError(f"client_auth={self.client_auth!r}: use {', '.join(_CLIENT_AUTH)}")
        if self.server_certificate not in _SERVER_CERTIFICATES:
            raise ValueError(
                f"server_certificate={self.server_certificate!r}: use "
                f"{', '.join(_SERVER_CERTIFICATES)}"
            )
        custom = self.client_auth != "none" or self.server_certificate != "valid"
        if not self.tls_enabled:
            if tls is not None or custom:
                raise ValueError(
                    "tls, client_auth and server_certificate need a TLS listener (SSL or "
                    f"SASL_SSL), not {self.listener}"
                )
            return
        if isinstance(tls, ssl.SSLContext):
            if custom:
                raise ValueError(
                    "client_auth and server_certificate choose among TLS files; with an "
                    "ssl.SSLContext of your own, set its verify_mode and certificate yourself"
                )
        elif tls is not None and not hasattr(tls, "server_pair"):
            raise TypeError(
                f"tls must be TlsFiles (asyncproducer.testing.certs.make_tls_files), a server "
                f"ssl.SSLContext or None, not {type(tls).__name__}"
            )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ssl.SSLContext | None:
        """The server-side TLS context (None without TLS), making TLS files if needed."""
        if not self.tls_enabled:
            return None
        if isinstance(self._given_tls, ssl.SSLContext):
            return self._given_tls
        if self._files is None:
            from asyncproducer.testing.certs import make_tls_files

            directory = Path(tempfile.mkdtemp(prefix="asyncproducer-fake-tls-"))
            self._made_directory = directory
            self._files = make_tls_files(directory)
        return self._server_context(self._files)

    def stop(self) -> None:
        if self._made_directory is not None:
            shutil.rmtree(self._made_directory, ignore_errors=True)
            self._made_directory = None
            self._files = None

    def _server_context(self, files: TlsFiles) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        chain, key = files.server_pair(self.server_certificate)
        context.load_cert_chain(chain, key, files.key_password)
        if self.client_auth != "none":
            context.load_verify_locations(cafile=files.ca)
            context.verify_mode = (
                ssl.CERT_REQUIRED if self.client_auth == "required" else ssl.CERT_OPTIONAL
            )
        return context

    # ------------------------------------------------------------------ for tests

    @property
    def files(self) -> TlsFiles:
        if not self.tls_enabled:
            raise RuntimeError(f"a {self.listener} FakeCluster has no TLS files")
        if self._files is None:
            if isinstance(self._given_tls, ssl.SSLContext):
                raise RuntimeError(
                    "this FakeCluster serves the ssl.SSLContext it was given: it has no TLS "
                    "files (its CA is yours)"
                )
            raise RuntimeError("the FakeCluster is not running (its TLS files are made then)")
        return self._files

    @property
    def users(self) -> Mapping[str, str]:
        return self.sasl.users if self.sasl is not None else MappingProxyType({})

    def producer_settings(
        self,
        bootstrap_servers: str,
        mechanism: str | None,
        user: str | None,
        client_certificate: bool | None,
    ) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "security_protocol": self.listener,
        }
        if client_certificate is None:
            client_certificate = self.client_auth == "required"
        if self.tls_enabled:
            settings.update(self._tls_settings(client_certificate))
        elif client_certificate:
            raise ValueError(f"client_certificate needs a TLS listener, not {self.listener}")
        if self.sasl is not None:
            settings.update(self._sasl_settings(self.sasl, mechanism, user))
        elif mechanism is not None or user is not None:
            raise ValueError(f"mechanism and user need a SASL listener, not {self.listener}")
        return settings

    def _tls_settings(self, client_certificate: bool) -> dict[str, Any]:
        files = self.files
        settings: dict[str, Any] = {"ssl_truststore_location": str(files.ca)}
        if client_certificate:
            settings["ssl_keystore_certificate_chain"] = files.client_chain.read_text("ascii")
            settings["ssl_keystore_key"] = files.client_key.read_text("ascii")
            if files.key_password is not None:
                settings["ssl_key_password"] = files.key_password
        return settings

    @staticmethod
    def _sasl_settings(sasl: SaslConfig, mechanism: str | None, user: str | None) -> dict[str, Any]:
        mechanism = sasl.mechanisms[0] if mechanism is None else mechanism
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(f"mechanism={mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}")
        if user is None:
            user = next(iter(sasl.users), "alice")  # OAUTHBEARER alone needs no users
        if mechanism == "OAUTHBEARER":
            return {
                "sasl_mechanism": mechanism,
                "sasl_oauth_token_provider": unsecured_token_provider(user),
            }
        if user not in sasl.users:
            raise ValueError(f"no user {user!r}; the users are {', '.join(sasl.users) or 'none'}")
        return {
            "sasl_mechanism": mechanism,
            "sasl_username": user,
            "sasl_password": sasl.users[user],
        }

    def __repr__(self) -> str:
        parts = [self.listener]
        if self.tls_enabled:
            parts.append(f"client_auth={self.client_auth}")
        if self.sasl is not None:
            parts.append(f"mechanisms={','.join(self.sasl.mechanisms)}")
            parts.append(f"users={','.join(self.sasl.users) or '-'}")
        return " ".join(parts)


def _sasl_config(
    mechanisms: tuple[str, ...],
    users: Mapping[str, str],
    session_lifetime_ms: int,
    oauthbearer_validator: OAuthBearerValidator | None,
) -> SaslConfig:
    unknown = [m for m in mechanisms if m not in SASL_MECHANISMS]
    if unknown or not mechanisms or len(set(mechanisms)) != len(mechanisms):
        raise ValueError(
            f"sasl_mechanisms={list(mechanisms)!r}: use some of {', '.join(SASL_MECHANISMS)}, "
            "each once"
        )
    if not users and set(mechanisms) - {"OAUTHBEARER"}:
        raise ValueError("users: PLAIN and SCRAM need at least one user")
    for name, password in users.items():
        if not isinstance(name, str) or not name or not isinstance(password, str) or not password:
            # The password stays out of the message.
            raise ValueError(f"users: user {name!r} needs a non-empty name and password (str)")
    if (
        isinstance(session_lifetime_ms, bool)
        or not isinstance(session_lifetime_ms, int)
        or session_lifetime_ms < 0
    ):
        raise ValueError(
            f"session_lifetime_ms={session_lifetime_ms!r}: use an int >= 0 (0: sessions last)"
        )
    if oauthbearer_validator is not None and not callable(oauthbearer_validator):
        raise ValueError("oauthbearer_validator must be a callable: token -> principal or None")
    return SaslConfig.create(
        mechanisms, MappingProxyType(dict(users)), session_lifetime_ms, oauthbearer_validator
    )
