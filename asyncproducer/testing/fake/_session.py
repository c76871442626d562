"""One connection's SASL authentication, as a Kafka broker runs it (sans-I/O).

The server asks :meth:`Session.admit` about every request before handling it; the
SaslHandshake and SaslAuthenticate handlers call :meth:`Session.handshake` and
:meth:`Session.authenticate`. What Kafka's ``SaslServerAuthenticator`` and ``SocketServer``
do, mirrored here:

* before authentication, only ApiVersions (once) and SaslHandshake are read; anything else
  closes the connection without an answer. Between SaslHandshake and the end of the
  exchange only SaslAuthenticate is; anything else is answered with ILLEGAL_SASL_STATE, then
  the connection closes;
* a mechanism that is not enabled: UNSUPPORTED_SASL_MECHANISM with the enabled ones, then
  close. Refused credentials: SASL_AUTHENTICATION_FAILED with a message, then close;
* a session lifetime (``connections.max.reauth.ms``; for OAUTHBEARER capped by the token's
  expiry) goes out in SaslAuthenticate v1+. A request arriving after the session ended
  closes the connection; a SaslHandshake on an authenticated connection with a lifetime
  starts a re-authentication (KIP-368) with the same mechanism and principal, at most once
  a second. Without a lifetime, SaslHandshake and SaslAuthenticate on an authenticated
  connection are answered with ILLEGAL_SASL_STATE and the connection stays.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from asyncproducer.testing.fake._auth import (
    SCRAM_HASHES,
    MechanismServer,
    OAuthBearerServer,
    OAuthBearerValidator,
    PlainServer,
    SaslRefused,
    ScramCredential,
    ScramServer,
)

__all__ = [
    "Admission",
    "Authentication",
    "AuthenticationFailure",
    "SaslAnswer",
    "SaslConfig",
    "Session",
]

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58
MIN_REAUTH_INTERVAL_S = 1.0
"""Kafka's ``KafkaChannel.MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS``: a SaslHandshake sooner
after the previous re-authentication began is answered as an ordinary request
(ILLEGAL_SASL_STATE), which fails the client's renewal."""


class Authentication(NamedTuple):
    """A successful authentication (``mechanism`` ``"SSL"``: a client certificate on an
    SSL listener, ``principal`` its subject, as Kafka names an SSL principal)."""

    broker: int
    mechanism: str
    principal: str
    connection: int
    """The connection's number in this cluster: re-authentications share it."""
    reauthentication: bool
    session_lifetime_ms: int
    at: float


class AuthenticationFailure(NamedTuple):
    """A refused authentication, TLS handshake, or an expired session; ``reason`` says
    why in the fake's words (never a password or a token)."""

    broker: int
    mechanism: str
    user: str | None
    reason: str
    connection: int
    at: float


@dataclass(frozen=True, repr=False)
class SaslConfig:
    """A listener's enabled mechanisms and credentials (SCRAM's derived once, here)."""

    mechanisms: tuple[str, ...]
    users: Mapping[str, str]
    session_lifetime_ms: int
    oauthbearer_validator: OAuthBearerValidator | None
    scram: Mapping[str, Mapping[str, ScramCredential]]

    @classmethod
    def create(
        cls,
        mechanisms: tuple[str, ...],
        users: Mapping[str, str],
        session_lifetime_ms: int,
        oauthbearer_validator: OAuthBearerValidator | None,
    ) -> SaslConfig:
        scram = {
            mechanism: {
                name: ScramCredential.from_password(mechanism, password)
                for name, password in users.items()
            }
            for mechanism in mechanisms
            if mechanism in SCRAM_HASHES
        }
        return cls(mechanisms, users, session_lifetime_ms, oauthbearer_validator, scram)

    def server(self, mechanism: str, wall_clock_ms: Callable[[], int]) -> MechanismServer:
        if mechanism == "PLAIN":
            return PlainServer(self.users)
        if mechanism in SCRAM_HASHES:
            return ScramServer(mechanism, self.scram[mechanism])
        return OAuthBearerServer(self.oauthbearer_validator, wall_clock_ms)

    def __repr__(self) -> str:
        return f"<SaslConfig {','.join(self.mechanisms)} users={','.join(self.users)}>"


class Admission(enum.Enum):
    SERVE = "serve"
    REFUSE = "answer ILLEGAL_SASL_STATE, then close"
    CLOSE = "close without answering"


@dataclass(frozen=True, slots=True)
class SaslAnswer:
    error_code: int
    error_message: str | None
    auth_bytes: bytes
    session_lifetime_ms: int


class _Phase(enum.Enum):
    OPENED = "opened"  # ApiVersions or SaslHandshake
    HANDSHAKE = "after ApiVersions"  # SaslHandshake only
    AUTHENTICATE = "authenticating"  # SaslAuthenticate only
    BAD_MECHANISM = "re-authenticating with another mechanism"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)  # token expiries are epoch times


class Session:
    """The authentication state of one connection; ``config`` None: no SASL."""

    def __init__(
        self,
        config: SaslConfig | None,
        broker: int,
        connection: int,
        authentications: list[Authentication],
        failures: list[AuthenticationFailure],
        *,
        clock: Callable[[], float],
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._config = config
        self._broker = broker
        self._connection = connection
        self._authentications = authentications
        self._failures = failures
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._phase = _Phase.OPENED
        self._server: MechanismServer | None = None
        self._mechanism = ""
        self._principal: str | None = None
        self._expires_at: float | None = None
        self._reauthenticating = False
        self._reauth_started: float | None = None
        self._bad_mechanism = ""
        self.close_after_response: bool = False
        """Set when the answer being made is the last: the server closes after sending it."""

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return self._config.mechanisms if self._config is not None else ()

    def admit(self, api_key: int) -> Admission:
        """What to do with a request of ``api_key`` arriving now."""
        phase = self._phase
        if self._config is None:
            return Admission.SERVE
        if phase is _Phase.OPENED:
            if api_key == API_VERSIONS:
                self._phase = _Phase.HANDSHAKE  # Kafka reads one ApiVersions
                return Admission.SERVE
            return Admission.SERVE if api_key == SASL_HANDSHAKE else Admission.CLOSE
        if phase is _Phase.HANDSHAKE:
            return Admission.SERVE if api_key == SASL_HANDSHAKE else Admission.CLOSE
        if phase is _Phase.AUTHENTICATE:
            return Admission.SERVE if api_key == SASL_AUTHENTICATE else Admission.REFUSE
        if phase is _Phase.AUTHENTICATED:
            return self._admit_authenticated(api_key)
        return Admission.CLOSE

    def _admit_authenticated(self, api_key: int) -> Admission:
        now = self._clock()
        expires_at = self._expires_at
        started = self._reauth_started
        if (
            api_key == SASL_HANDSHAKE
            and expires_at is not None
            and (started is None or now - started >= MIN_REAUTH_INTERVAL_S)
        ):
            self._reauth_started = now
            self._reauthenticating = True
            self._phase = _Phase.HANDSHAKE
            return Admission.SERVE
        if expires_at is not None and now > expires_at:
            late_ms = round((now - expires_at) * 1000)
            self._fail(self._mechanism, self._principal, f"the session expired {late_ms} ms ago")
            return Admission.CLOSE
        return Admission.SERVE

    def handshake(self, mechanism: str) -> tuple[int, tuple[str, ...]]:
        """SaslHandshake: ``(error code, enabled mechanisms)``."""
        config = self._config
        if config is None or self._phase is _Phase.AUTHENTICATED:
            return ILLEGAL_SASL_STATE, ()  # Kafka's KafkaApis answers so
        if mechanism not in config.mechanisms:
            enabled = ", ".join(config.mechanisms)
            self._fail(mechanism, None, f"mechanism {mechanism} is not enabled ({enabled} are)")
            return UNSUPPORTED_SASL_MECHANISM, config.mechanisms
        if self._reauthenticating and mechanism != self._mechanism:
            # Kafka accepts the handshake and fails the SaslAuthenticate after it.
            self._bad_mechanism = (
                f"SASL mechanism '{mechanism}' requested by client is not supported for "
                f"re-authentication of mechanism '{self._mechanism}'"
            )
            self._phase = _Phase.BAD_MECHANISM
            return 0, config.mechanisms
        self._mechanism = mechanism
        self._server = config.server(mechanism, self._wall_clock_ms)
        self._phase = _Phase.AUTHENTICATE
        return 0, config.mechanisms

    def authenticate(self, auth_bytes: bytes) -> SaslAnswer | None:
        """SaslAuthenticate: the answer, or None to close without one."""
        if self._phase is _Phase.BAD_MECHANISM:
            self._fail(self._mechanism, self._principal, self._bad_mechanism)
            return None  # Kafka closes without an answer
        server = self._server
        if self._config is None or server is None or self._phase is not _Phase.AUTHENTICATE:
            return SaslAnswer(
                ILLEGAL_SASL_STATE,
                "SaslAuthenticate request received after successful authentication",
                b"",
                0,
            )
        try:
            challenge = server.evaluate(auth_bytes)
            if server.complete and self._reauthenticating and server.principal != self._principal:
                raise SaslRefused(
                    f"re-authenticating as {server.principal!r}, not {self._principal!r}",
                    f"Cannot change principals during re-authentication from User."
                    f"{self._principal}: User.{server.principal}",
                )
        except SaslRefused as exc:
            what = "re-authentication" if self._reauthenticating else "authentication"
            message = exc.public or (
                f"Authentication failed during {what} due to invalid credentials with SASL "
                f"mechanism {server.mechanism}"
            )
            self._fail(server.mechanism, server.user, str(exc))
            return SaslAnswer(SASL_AUTHENTICATION_FAILED, message, b"", 0)
        if not server.complete:
            return SaslAnswer(0, None, challenge, 0)
        return SaslAnswer(0, None, challenge, self._complete(server))

    def _complete(self, server: MechanismServer) -> int:
        """Authenticated: start the session; its lifetime in ms (0: no end)."""
        config = self._config
        configured = config.session_lifetime_ms if config is not None else 0
        lifetime = configured
        expiry = server.credential_expiry_ms
        if configured and expiry is not None:
            lifetime = max(0, min(configured, expiry - self._wall_clock_ms()))
        now = self._clock()
        self._expires_at = now + lifetime / 1000 if configured else None
        self._principal = principal = server.principal or ""
        self._authentications.append(
            Authentication(
                self._broker,
                server.mechanism,
                principal,
                self._connection,
                self._reauthenticating,
                lifetime,
                now,
            )
        )
        self._phase = _Phase.AUTHENTICATED
        self._server = None
        self._reauthenticating = False
        return lifetime

    def _fail(self, mechanism: str, user: str | None, reason: str) -> None:
        self._failures.append(
            AuthenticationFailure(
                self._broker, mechanism, user, reason, self._connection, self._clock()
            )
        )
        self._phase = _Phase.FAILED
        self.close_after_response = True
