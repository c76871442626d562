"""SASL authentication of a fresh connection: SaslHandshake, then SaslAuthenticate rounds
driven by a sans-I/O mechanism (``protocol.sasl``).

It runs as the connection's handshake (``ConnectionSettings.handshake``), after version
negotiation and before the connection carries anything else, within the request timeout
of each round. Every failure is an :class:`AuthenticationError` naming the broker and the
mechanism (and the user, never the password); slow steps run in a worker thread: SCRAM's
key derivation (once per password and salt), GSSAPI's context steps (they may wait on the
Kerberos KDC).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from asyncproducer.errors import (
    AuthenticationError,
    KafkaConnectionError,
    UnsupportedSaslMechanismError,
    error_for_code,
)
from asyncproducer.protocol.messages import sasl_authenticate_request, sasl_handshake_request
from asyncproducer.protocol.sasl import (
    KerberosSettings,
    NeedsComputation,
    OAuthBearerToken,
    SaslCredentials,
    SaslError,
    SaslMechanism,
    SaslStep,
    mechanism_factory,
)
from asyncproducer.protocol.versions import ApiKey

if TYPE_CHECKING:
    from asyncproducer._connection import BrokerConnection, Handshake

logger = logging.getLogger("asyncproducer.security")

_UNSUPPORTED_SASL_MECHANISM = 33


@dataclass(frozen=True, slots=True)
class SaslSettings:
    """The mechanism and credentials every connection authenticates with (repr hides the
    password: SaslCredentials' does); OAUTHBEARER's credential is the current token of
    ``tokens``."""

    mechanism: str
    credentials: SaslCredentials
    tokens: TokenSource | None = None

    @classmethod
    def from_config(cls, config: Any) -> SaslSettings | None:
        """From a ProducerConfig; None unless its security protocol is SASL_*."""
        if not config.security_protocol.startswith("SASL_"):
            return None
        if config.sasl_mechanism == "OAUTHBEARER":
            return cls(
                "OAUTHBEARER", SaslCredentials(), TokenSource(config.sasl_oauth_token_provider)
            )
        if config.sasl_mechanism == "GSSAPI":
            kerberos = KerberosSettings(
                config.sasl_kerberos_service_name,
                config.sasl_kerberos_principal,
                config.sasl_kerberos_keytab,
            )
            mechanism_factory("GSSAPI")(SaslCredentials(kerberos=kerberos))  # gssapi there?
            return cls("GSSAPI", SaslCredentials(kerberos=kerberos))
        credentials = SaslCredentials(username=config.sasl_username, password=config.sasl_password)
        mechanism_factory(config.sasl_mechanism)(credentials)  # refuses what it cannot use
        return cls(config.sasl_mechanism, credentials)

    def handshake(self) -> Handshake:
        return functools.partial(authenticate, self)

    async def current_credentials(self) -> SaslCredentials:
        if self.tokens is None:
            return self.credentials
        return dataclasses.replace(self.credentials, token=await self.tokens.current())


REFRESH_AT = 0.8
"""Of a token's lifetime, the part after which a new one is fetched (Java's
``sasl.login.refresh.window.factor``): connections opened later get a fresh token."""


class TokenSource:
    """OAUTHBEARER tokens from the user's provider, fetched when needed and reused until
    ``REFRESH_AT`` of their lifetime has passed.

    The provider is a callable, or an object with a ``token()`` method; sync (run in a
    worker thread: it may do blocking HTTP) or async. It returns an
    :class:`OAuthBearerToken`, or a ``(token, expires_at_ms)`` pair. Its failures are
    AuthenticationErrors naming it, never the token.
    """

    def __init__(self, provider: object) -> None:
        # The config checked that it is one or the other.
        method = provider if callable(provider) else getattr(provider, "token", None)
        if not callable(method):
            raise TypeError(f"not a token provider: {type(provider).__name__}")
        self._call: Callable[[], object] = method
        self._token: OAuthBearerToken | None = None
        self._fetched_at_ms = 0
        self._lock: anyio.Lock | None = None  # made on first use, in the producer's loop
        self.fetches = 0

    async def current(self) -> OAuthBearerToken:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one fetch for the connections opening together
            token = self._token
            if token is None or _now_ms() >= self._refresh_at_ms(token):
                token = self._token = await self._fetch()
            return token

    def _refresh_at_ms(self, token: OAuthBearerToken) -> float:
        start = token.start_time_ms if token.start_time_ms is not None else self._fetched_at_ms
        return start + REFRESH_AT * (token.lifetime_ms - start)

    async def _fetch(self) -> OAuthBearerToken:
        try:
            if inspect.iscoroutinefunction(self._call):
                produced = await self._call()
            else:
                produced = await anyio.to_thread.run_sync(self._call)
                if inspect.isawaitable(produced):  # a sync callable returning a coroutine
                    produced = await produced
        except Exception as exc:
            raise AuthenticationError(
                f"sasl_oauth_token_provider failed: {type(exc).__name__}: {exc}"
            ) from exc
        token = _as_token(produced)
        self.fetches += 1
        self._fetched_at_ms = _now_ms()
        if token.lifetime_ms <= self._fetched_at_ms:
            raise AuthenticationError(
                f"sasl_oauth_token_provider returned a token that expired at "
                f"{token.lifetime_ms} (epoch ms), {self._fetched_at_ms - token.lifetime_ms} ms ago"
            )
        logger.debug("OAUTHBEARER token fetched, valid for %d ms", token.lifetime_ms - _now_ms())
        return token


def _as_token(produced: object) -> OAuthBearerToken:
    if isinstance(produced, OAuthBearerToken):
        return produced
    if (
        isinstance(produced, tuple)
        and len(produced) == 2
        and isinstance(produced[0], str)
        and isinstance(produced[1], int)
    ):
        return OAuthBearerToken(produced[0], produced[1])
    raise AuthenticationError(
        "sasl_oauth_token_provider must return an OAuthBearerToken or a "
        f"(token, expires_at_ms) pair, not {type(produced).__name__}"
    )


def _now_ms() -> int:
    return int(time.time() * 1000)  # token expiries are wall-clock epoch times


async def authenticate(settings: SaslSettings, connection: BrokerConnection) -> float | None:
    """Authenticate ``connection`` with ``settings``; raise AuthenticationError if not.

    Returns the session's lifetime in ms, as the broker set it (``connections.max.reauth.ms``,
    capped by a token's expiry): the connection authenticates again before it ends
    (KIP-368). Its requests are urgent: they pass the requests held meanwhile."""
    name, address = settings.mechanism, connection.address
    versions = connection.versions
    if not versions.supports(ApiKey.SASL_HANDSHAKE):
        raise AuthenticationError(
            f"broker {address} does not offer SaslHandshake v1 (Kafka 1.0 and later do); "
            "cannot authenticate with SASL"
        )
    try:
        response: Any = await connection.send(
            sasl_handshake_request(versions.version_for(ApiKey.SASL_HANDSHAKE), name), urgent=True
        )
    except KafkaConnectionError as exc:
        if type(exc) is not KafkaConnectionError:  # a timeout, TLS: already specific
            raise
        # Some brokers (Tansu) close the connection rather than answer
        # UNSUPPORTED_SASL_MECHANISM; still a connection error (retriable), but say where.
        raise KafkaConnectionError(
            f"{exc} in answer to SaslHandshake for {name}: it may not enable {name}"
        ) from exc
    code = int(response.error_code)
    if code == _UNSUPPORTED_SASL_MECHANISM:
        enabled = ", ".join(response.mechanisms or ()) or "none"
        raise UnsupportedSaslMechanismError(
            f"broker {address} does not enable SASL mechanism {name}; it enables: {enabled}"
        )
    if code:
        raise error_for_code(code, f"SaslHandshake for {name} with broker {address}")
    try:
        lifetime_ms = await _exchange(settings, connection)
    except SaslError as exc:
        raise AuthenticationError(f"SASL {name} with broker {address} failed: {exc}") from None
    logger.debug("authenticated to broker %s with %s", address, name)
    return lifetime_ms


async def _exchange(settings: SaslSettings, connection: BrokerConnection) -> float:
    """The SaslAuthenticate rounds, until the mechanism is complete (and verified);
    returns the session lifetime the last answer gave (v1+; 0: none)."""
    credentials = dataclasses.replace(
        await settings.current_credentials(), server_host=connection.address.host
    )
    mechanism = mechanism_factory(settings.mechanism)(credentials)
    version = connection.versions.version_for(ApiKey.SASL_AUTHENTICATE)
    token = await _resolve(mechanism, mechanism.initial_response())
    if token is None:
        raise SaslError(f"SASL {settings.mechanism}: the mechanism made no initial response")
    while True:
        answer: Any = await connection.send(sasl_authenticate_request(version, token), urgent=True)
        code = int(answer.error_code)
        if code:
            user = settings.credentials.username
            kerberos = settings.credentials.kerberos
            if user is None and kerberos is not None:
                user = kerberos.principal
            who = f" as user {user!r}" if user else ""
            detail = answer.error_message or "no reason given"
            raise error_for_code(
                code,
                f"broker {connection.address} refused SASL {settings.mechanism}{who}: {detail}",
            )
        lifetime = getattr(answer, "session_lifetime", None)  # a timedelta, from v1
        lifetime_ms = lifetime.total_seconds() * 1000 if lifetime is not None else 0.0
        if mechanism.complete:
            return lifetime_ms
        step = await _resolve(mechanism, mechanism.evaluate(bytes(answer.auth_bytes)))
        if step is None:
            return lifetime_ms
        token = step


async def _resolve(mechanism: SaslMechanism, step: SaslStep) -> bytes | None:
    """``step``, with the work it asks for done first in a worker thread: SCRAM's PBKDF2
    (thousands of HMACs; cached: no thread hop) or a GSSAPI context step (it may wait on
    the KDC). Never on the event loop."""
    if not isinstance(step, NeedsComputation):
        return step
    result = step.cached()
    if result is None:
        # Abandoned on cancel: a KDC that does not answer must not hold up close().
        result = await anyio.to_thread.run_sync(step.compute, abandon_on_cancel=True)
    return mechanism.provide(result)
