"""SASL GSSAPI (Kerberos V5, RFC 4752) as Kafka speaks it, over the ``gssapi`` package.

The exchange, each message one SaslAuthenticate round::

    client  GSS token: AP-REQ, a service ticket for <service>/<broker host>
    server  GSS token: AP-REP (mutual authentication)     ... until the context is established
    client  the last context token (empty if the last step made none)
    server  wrap(offered security layers: 1 byte | max message size: 3 bytes)
    client  wrap(0x01, "no security layer" | max size 0: 3 bytes | authzid: empty)

Kafka's broker offers "no security layer" (the connection is plain TCP or TLS underneath),
and its verdict is SaslAuthenticate's error code, so the client is complete once it has
sent the last message. The empty authorization id means "the authenticated principal", as
in Java's client.

Driving it. A GSS-API context step may block: the first asks the KDC for a service ticket
(and, logging in from a keytab, for a ticket-granting ticket first), over the network. So
neither ``initial_response()`` nor ``evaluate()`` steps the context: they return a
:class:`GssStep` (a :class:`NeedsComputation`) for the caller to run in a worker thread,
and ``provide()`` takes its result, the token, and returns the message to send. Wrapping
and unwrapping the last two messages is local cryptography, done in ``evaluate()``.

The context sits behind :class:`GssContext`, so these rules are tested without a KDC;
:func:`python_gssapi_context` makes the real one (python-gssapi over MIT Kerberos), in the
first step's thread, since acquiring credentials reads a keytab or a credential cache.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl._base import SaslError, SaslMechanism
from asyncproducer.protocol.sasl._derivation import NeedsComputation

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "GssContext",
    "GssStep",
    "GssapiClient",
    "KerberosSettings",
    "python_gssapi_context",
    "require_gssapi",
]

DEFAULT_SERVICE_NAME = "kafka"
"""Java's ``sasl.kerberos.service.name`` has no default; Kafka's documentation and every
broker setup use "kafka"."""

_NO_SECURITY_LAYER = 0x01  # RFC 4752 section 3.3: the bit for "no security layer"
_INSTALL_HINT = (
    "SASL GSSAPI needs the gssapi package and MIT Kerberos: pip install "
    "'asyncproducer[gssapi]' (building it needs libkrb5-dev, or your system's equivalent)"
)


@dataclass(frozen=True, slots=True)
class KerberosSettings:
    """Who to log in as and which service to ask for.

    ``principal`` and ``keytab`` together: log in from the keytab (into a credential cache
    in memory, shared by this process's connections). Neither: the ticket already in the
    default credential cache (``kinit``; ``$KRB5CCNAME``), with ``principal`` choosing
    among a collection's caches when given alone.
    """

    service_name: str = DEFAULT_SERVICE_NAME
    principal: str | None = None
    keytab: str | None = None


class GssContext(Protocol):
    """What :class:`GssapiClient` needs of a GSS-API initiator context; raise
    :class:`SaslError` for a GSS-API failure."""

    @property
    def complete(self) -> bool:
        """True once the security context is established."""

    def step(self, token: bytes | None) -> bytes | None:
        """The next context token (None or b"": none) from the server's ``token``."""

    def wrap(self, message: bytes) -> bytes:
        """``message`` integrity-protected, not encrypted."""

    def unwrap(self, message: bytes) -> bytes:
        """The payload of a wrapped ``message``, its protection checked."""


class _State(enum.Enum):
    INITIAL = "initial"
    STEPPING = "awaiting a context step"
    NEGOTIATING = "sent a context token"
    SECURITY_LAYER = "awaiting the security layer offer"
    COMPLETE = "complete"
    FAILED = "failed"


class GssStep(NeedsComputation):
    """One GSS-API context step, to run in a worker thread (it may wait on the KDC);
    ``compute()`` returns the token for the client's ``provide()``."""

    __slots__ = ("_client", "_token")

    def __init__(self, client: GssapiClient, token: bytes | None) -> None:
        self._client = client
        self._token = token

    def compute(self) -> bytes:
        return self._client._step_context(self, self._token)

    def __repr__(self) -> str:
        return f"<GssStep for {self._client.target}>"


class GssapiClient(SaslMechanism):
    """The client side of a GSSAPI exchange (module docstring).

    ``context_factory`` makes the GSS-API context, in the first step's thread; ``target``
    names the service principal it asks for (``service@host``), for messages.
    """

    def __init__(self, context_factory: Callable[[], GssContext], target: str) -> None:
        self._factory = context_factory
        self.target = target
        self._context: GssContext | None = None
        self._state = _State.INITIAL
        self._pending: GssStep | None = None

    @property
    def name(self) -> str:
        return "GSSAPI"

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    def initial_response(self) -> GssStep:
        """The first context step (its token is the first message)."""
        if self._state is not _State.INITIAL:
            raise self._out_of_turn("initial_response()")
        return self._next_step(None)

    def evaluate(self, challenge: bytes) -> GssStep | bytes:
        """A server context token -> the next step; the security layer offer -> the last
        message."""
        if self._state is _State.NEGOTIATING:
            return self._next_step(challenge)
        if self._state is _State.SECURITY_LAYER:
            return self._choose_security_layer(challenge)
        raise self._out_of_turn("evaluate()")

    def provide(self, result: bytes) -> bytes:
        """The message to send, from a :class:`GssStep`'s result."""
        # A step must have run (and so left no pending one) for its token to be given.
        pending, context = self._pending, self._context
        if self._state is not _State.STEPPING or pending is not None or context is None:
            raise self._out_of_turn("provide()")
        if not isinstance(result, bytes):
            raise SaslError("SASL GSSAPI: provide() takes GssStep.compute()'s result (bytes)")
        # Established: the server answers the last token with its security layer offer.
        established = context.complete
        self._state = _State.SECURITY_LAYER if established else _State.NEGOTIATING
        return result

    def _next_step(self, token: bytes | None) -> GssStep:
        self._state = _State.STEPPING
        self._pending = GssStep(self, token)
        return self._pending

    def _step_context(self, step: GssStep, token: bytes | None) -> bytes:
        """GssStep.compute(): runs in a worker thread, one step at a time."""
        if step is not self._pending or self._state is not _State.STEPPING:
            raise SaslError("SASL GSSAPI: a GssStep was run twice or out of turn")
        self._pending = None
        try:
            if self._context is None:
                self._context = self._factory()
            output = self._context.step(token)
        except SaslError:
            self._state = _State.FAILED
            raise
        return output or b""

    def _choose_security_layer(self, challenge: bytes) -> bytes:
        context = self._context
        if context is None:  # unreachable: SECURITY_LAYER follows a step
            raise self._out_of_turn("evaluate()")
        try:
            offer = context.unwrap(challenge)
            if len(offer) != 4:
                raise SaslError(
                    f"SASL GSSAPI: the server's security layer offer is {len(offer)} bytes, "
                    "not 4 (RFC 4752)"
                )
            if not offer[0] & _NO_SECURITY_LAYER:
                raise SaslError(
                    f"SASL GSSAPI: the server requires a security layer (offer "
                    f"{offer[0]:#04x}); only 'no security layer' is supported, as in Kafka"
                )
            # No layer, max message size 0 (none is used), empty authorization id.
            reply = context.wrap(bytes((_NO_SECURITY_LAYER, 0, 0, 0)))
        except SaslError:
            self._state = _State.FAILED
            raise
        self._state = _State.COMPLETE
        return reply

    def _out_of_turn(self, call: str) -> SaslError:
        return SaslError(f"SASL GSSAPI: {call} called out of turn (state: {self._state.value})")

    def __repr__(self) -> str:
        return f"GssapiClient(target={self.target!r}, state={self._state.value!r})"


# --------------------------------------------------------------------------- python-gssapi


def require_gssapi() -> None:
    """A ConfigError saying how to install it, unless ``gssapi`` imports."""
    try:
        import gssapi  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{_INSTALL_HINT} ({exc})") from None


def python_gssapi_context(settings: KerberosSettings, host: str) -> GssContext:
    """A GSS-API initiator context for ``settings.service_name@host`` (Kerberos'
    host-based service name: ``kafka/<host>@<the host's realm>``), with mutual
    authentication. Blocks while it reads credentials: call it from a worker thread."""
    try:
        import gssapi
        from gssapi.raw.misc import GSSError
    except ImportError as exc:
        raise SaslError(f"{_INSTALL_HINT} ({exc})") from None
    target = f"{settings.service_name}@{host}"
    try:
        credentials = _credentials(gssapi, settings)
        context = gssapi.SecurityContext(
            name=gssapi.Name(target, gssapi.NameType.hostbased_service),
            creds=credentials,
            usage="initiate",
            flags=(gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.integrity),
        )
    except GSSError as exc:
        raise _failure(settings, target, exc) from None
    return _PythonGssapiContext(context, settings, target, GSSError)


def _credentials(gssapi: Any, settings: KerberosSettings) -> Any:
    if settings.principal is None:
        return None  # the default credential cache's principal
    name = gssapi.Name(settings.principal, gssapi.NameType.kerberos_principal)
    if settings.keytab is None:
        return gssapi.Credentials(name=name, usage="initiate")
    # MIT's credential store: log in from the keytab into a MEMORY cache of this process
    # (never the user's own), named by principal and keytab so that connections share
    # the tickets; MIT renews them from the keytab when they expire.
    key = hashlib.sha256(f"{settings.principal}\0{settings.keytab}".encode()).hexdigest()[:16]
    store = {"client_keytab": settings.keytab, "ccache": f"MEMORY:asyncproducer-{key}"}
    return gssapi.Credentials(name=name, usage="initiate", store=store)


def _failure(settings: KerberosSettings, target: str, exc: BaseException) -> SaslError:
    who = settings.principal or "the default credential cache's principal"
    source = f" from keytab {settings.keytab}" if settings.keytab else ""
    detail = " ".join(str(exc).split())
    return SaslError(f"SASL GSSAPI as {who}{source} for service {target}: {detail}")


class _PythonGssapiContext:
    """python-gssapi's SecurityContext as a :class:`GssContext`."""

    def __init__(
        self,
        context: Any,
        settings: KerberosSettings,
        target: str,
        error: type[BaseException],
    ) -> None:
        self._context = context
        self._settings = settings
        self._target = target
        self._error = error

    @property
    def complete(self) -> bool:
        return bool(self._context.complete)

    def step(self, token: bytes | None) -> bytes | None:
        try:
            output: bytes | None = self._context.step(token)
        except self._error as exc:
            raise _failure(self._settings, self._target, exc) from None
        return output

    def wrap(self, message: bytes) -> bytes:
        try:
            return bytes(self._context.wrap(message, False).message)
        except self._error as exc:
            raise _failure(self._settings, self._target, exc) from None

    def unwrap(self, message: bytes) -> bytes:
        try:
            return bytes(self._context.unwrap(message).message)
        except self._error as exc:
            raise _failure(self._settings, self._target, exc) from None
