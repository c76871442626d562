"""SASL authentication of a fresh connection: SaslHandshake, then SaslAuthenticate rounds
driven by a sans-I/O mechanism (``protocol.sasl``).

It runs as the connection's handshake (``ConnectionSettings.handshake``), after version
negotiation and before the connection carries anything else, within the request timeout
of each round. Every failure is an :class:`AuthenticationError` naming the broker and the
mechanism (and the user, never the password); SCRAM's key derivation runs in a worker
thread, once per password and salt.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from asyncproducer.errors import (
    AuthenticationError,
    UnsupportedSaslMechanismError,
    error_for_code,
)
from asyncproducer.protocol.messages import sasl_authenticate_request, sasl_handshake_request
from asyncproducer.protocol.sasl import (
    NeedsDerivation,
    SaslCredentials,
    SaslError,
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
    password: SaslCredentials' does)."""

    mechanism: str
    credentials: SaslCredentials

    @classmethod
    def from_config(cls, config: Any) -> SaslSettings | None:
        """From a ProducerConfig; None unless its security protocol is SASL_*."""
        if not config.security_protocol.startswith("SASL_"):
            return None
        credentials = SaslCredentials(username=config.sasl_username, password=config.sasl_password)
        mechanism_factory(config.sasl_mechanism)(credentials)  # refuses what it cannot use
        return cls(config.sasl_mechanism, credentials)

    def handshake(self) -> Handshake:
        return functools.partial(authenticate, self)


async def authenticate(settings: SaslSettings, connection: BrokerConnection) -> None:
    """Authenticate ``connection`` with ``settings``; raise AuthenticationError if not."""
    name, address = settings.mechanism, connection.address
    versions = connection.versions
    if not versions.supports(ApiKey.SASL_HANDSHAKE):
        raise AuthenticationError(
            f"broker {address} does not offer SaslHandshake v1 (Kafka 1.0 and later do); "
            "cannot authenticate with SASL"
        )
    response: Any = await connection.send(
        sasl_handshake_request(versions.version_for(ApiKey.SASL_HANDSHAKE), name)
    )
    code = int(response.error_code)
    if code == _UNSUPPORTED_SASL_MECHANISM:
        enabled = ", ".join(response.mechanisms or ()) or "none"
        raise UnsupportedSaslMechanismError(
            f"broker {address} does not enable SASL mechanism {name}; it enables: {enabled}"
        )
    if code:
        raise error_for_code(code, f"SaslHandshake for {name} with broker {address}")
    try:
        await _exchange(settings, connection)
    except SaslError as exc:
        raise AuthenticationError(f"SASL {name} with broker {address} failed: {exc}") from None
    logger.debug("authenticated to broker %s with %s", address, name)


async def _exchange(settings: SaslSettings, connection: BrokerConnection) -> None:
    """The SaslAuthenticate rounds, until the mechanism is complete (and verified)."""
    mechanism = mechanism_factory(settings.mechanism)(settings.credentials)
    version = connection.versions.version_for(ApiKey.SASL_AUTHENTICATE)
    token = mechanism.initial_response()
    while True:
        answer: Any = await connection.send(sasl_authenticate_request(version, token))
        code = int(answer.error_code)
        if code:
            user = settings.credentials.username
            who = f" as user {user!r}" if user else ""
            detail = answer.error_message or "no reason given"
            raise error_for_code(
                code,
                f"broker {connection.address} refused SASL {settings.mechanism}{who}: {detail}",
            )
        if mechanism.complete:
            return
        step = mechanism.evaluate(bytes(answer.auth_bytes))
        if isinstance(step, NeedsDerivation):
            salted = step.cached()
            if salted is None:  # PBKDF2: thousands of HMACs, not on the event loop
                salted = await anyio.to_thread.run_sync(step.compute)
            step = mechanism.provide(salted)
        if step is None:
            return
        token = step
