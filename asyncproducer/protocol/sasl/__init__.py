"""SASL client mechanisms as sans-I/O state machines, and the registry that names them.

A mechanism object knows one exchange's rules and nothing about sockets or event loops
(h11's model: decide synchronously, then do the I/O). The connection code sends
SaslHandshake with the mechanism's name, then drives the object with SaslAuthenticate
requests, a new object per authentication::

    mechanism = mechanism_factory(name)(credentials)
    token = mechanism.initial_response()
    while True:
        reply = await authenticate(token)         # SaslAuthenticate; a broker error raises
        if mechanism.complete:
            break                                  # PLAIN: nothing more to verify
        step = mechanism.evaluate(reply)
        if isinstance(step, NeedsComputation):     # SCRAM's PBKDF2, a GSSAPI context step:
            result = step.cached()                 # off the event loop (cached: SCRAM's
            if result is None:                     # re-authentication, no thread hop)
                result = await anyio.to_thread.run_sync(step.compute)
            step = mechanism.provide(result)
        if step is None:
            break                                  # complete, server verified
        token = step

``initial_response()`` may return a NeedsComputation too (GSSAPI's first context step),
resolved the same way.

Built in: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, and GSSAPI (Kerberos) when
the ``gssapi`` package is installed (the ``gssapi`` extra). A violation of a mechanism's
rules raises :class:`SaslError`; credentials a mechanism cannot use raise
:class:`~asyncproducer.errors.ConfigError`. Neither ever carries a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl._base import SaslError, SaslMechanism, SaslStep
from asyncproducer.protocol.sasl._derivation import (
    NeedsComputation,
    NeedsDerivation,
    clear_derivation_cache,
    derive_salted_password,
)
from asyncproducer.protocol.sasl.gssapi import (
    GssapiClient,
    KerberosSettings,
    python_gssapi_context,
    require_gssapi,
)
from asyncproducer.protocol.sasl.oauthbearer import OAuthBearerClient, OAuthBearerToken
from asyncproducer.protocol.sasl.plain import PlainClient
from asyncproducer.protocol.sasl.scram import ScramClient

__all__ = [
    "GssapiClient",
    "KerberosSettings",
    "MechanismFactory",
    "NeedsComputation",
    "NeedsDerivation",
    "OAuthBearerClient",
    "OAuthBearerToken",
    "PlainClient",
    "SaslCredentials",
    "SaslError",
    "SaslMechanism",
    "SaslStep",
    "ScramClient",
    "available_mechanisms",
    "clear_derivation_cache",
    "derive_salted_password",
    "mechanism_factory",
    "register_mechanism",
]


@dataclass(frozen=True, slots=True)
class SaslCredentials:
    """What a mechanism factory gets: each mechanism takes what it needs and refuses the
    rest, so that no setting is silently ignored. The repr hides secrets."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: OAuthBearerToken | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)
    """SASL extensions: OAUTHBEARER's (KIP-342) or SCRAM's (``tokenauth=true``)."""
    kerberos: KerberosSettings | None = None
    """GSSAPI's: the client principal, keytab and the broker's service name."""
    server_host: str | None = None
    """The broker's host as the client connects to it, set per connection (GSSAPI names
    the broker's principal after it); not a setting, so no mechanism refuses it."""

    def __repr__(self) -> str:
        password = None if self.password is None else "<hidden>"
        return (
            f"SaslCredentials(username={self.username!r}, password={password}, "
            f"token={self.token!r}, extensions={list(self.extensions)}, "
            f"kerberos={self.kerberos!r}, server_host={self.server_host!r})"
        )


MechanismFactory = Callable[[SaslCredentials], SaslMechanism]
"""Makes a fresh mechanism client for one authentication."""

_NAME = re.compile(r"[A-Z0-9_-]{1,20}")  # RFC 4422 sasl-mech
_registry: dict[str, MechanismFactory] = {}


def register_mechanism(name: str, factory: MechanismFactory, *, replace: bool = False) -> None:
    """Make ``name`` available to :func:`mechanism_factory`.

    ``name`` is an RFC 4422 mechanism name (1 to 20 of A-Z, 0-9, '-', '_'). Registering a
    taken name raises ValueError unless ``replace`` is true.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a SASL mechanism name (1 to 20 of A-Z, 0-9, '-' and '_')"
        )
    if name in _registry and not replace:
        raise ValueError(f"SASL mechanism {name!r} is already registered (pass replace=True)")
    _registry[name] = factory


def mechanism_factory(name: str) -> MechanismFactory:
    """The factory registered for ``name``; a ConfigError (a ValueError) naming the known
    mechanisms if there is none."""
    factory = _registry.get(name)
    if factory is not None:
        return factory
    hint = ""
    if isinstance(name, str) and name.upper() in _registry:
        hint = f" (did you mean {name.upper()!r}? names are case-sensitive)"
    known = ", ".join(available_mechanisms())
    raise ConfigError(f"unknown SASL mechanism {name!r}{hint}; known mechanisms: {known}")


def available_mechanisms() -> tuple[str, ...]:
    """The registered mechanism names, sorted."""
    return tuple(sorted(_registry))


def _refuse(mechanism: str, credentials: SaslCredentials, *unused: str) -> None:
    given = [name for name in unused if getattr(credentials, name)]
    if given:
        raise ConfigError(f"SASL {mechanism} does not use: {', '.join(given)}")


def _user_password(mechanism: str, credentials: SaslCredentials) -> tuple[str, str]:
    if credentials.username is None or credentials.password is None:
        raise ConfigError(f"SASL {mechanism} needs a username and a password")
    return credentials.username, credentials.password


def _plain(credentials: SaslCredentials) -> SaslMechanism:
    _refuse("PLAIN", credentials, "token", "extensions", "kerberos")
    return PlainClient(*_user_password("PLAIN", credentials))


def _scram(mechanism: str) -> MechanismFactory:
    def factory(credentials: SaslCredentials) -> SaslMechanism:
        _refuse(mechanism, credentials, "token", "kerberos")
        username, password = _user_password(mechanism, credentials)
        return ScramClient(mechanism, username, password, extensions=credentials.extensions)

    return factory


def _oauthbearer(credentials: SaslCredentials) -> SaslMechanism:
    _refuse("OAUTHBEARER", credentials, "username", "password", "kerberos")
    if credentials.token is None:
        raise ConfigError("SASL OAUTHBEARER needs a token (an OAuthBearerToken)")
    return OAuthBearerClient(credentials.token, credentials.extensions)


def _gssapi(credentials: SaslCredentials) -> SaslMechanism:
    _refuse("GSSAPI", credentials, "username", "password", "token", "extensions")
    require_gssapi()
    kerberos = credentials.kerberos or KerberosSettings()
    if kerberos.keytab is not None and kerberos.principal is None:
        raise ConfigError("SASL GSSAPI: a keytab needs the principal to log in as")
    # Until a connection names its broker: the factory is also called to check settings.
    host = credentials.server_host or "localhost"
    return GssapiClient(
        lambda: python_gssapi_context(kerberos, host), f"{kerberos.service_name}@{host}"
    )


register_mechanism("PLAIN", _plain)
register_mechanism("SCRAM-SHA-256", _scram("SCRAM-SHA-256"))
register_mechanism("SCRAM-SHA-512", _scram("SCRAM-SHA-512"))
register_mechanism("OAUTHBEARER", _oauthbearer)
register_mechanism("GSSAPI", _gssapi)
