"""The contract every SASL mechanism client implements, and the errors it raises.

Sans-I/O, in the manner of h11: a mechanism object is a state machine that turns the
server's challenges into the client's next message. It never touches a socket, a clock or an
event loop; the connection code does the I/O (SaslHandshake, then SaslAuthenticate requests
carrying these bytes) and asks the mechanism what to send next. Every rule of an exchange
lives in its mechanism's module and is tested without a broker.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TypeAlias

from asyncproducer.errors import AuthenticationError, ConfigError
from asyncproducer.protocol.sasl._derivation import NeedsComputation


class SaslError(AuthenticationError):
    """A SASL exchange broke its mechanism's rules, or the server refused it in-band.

    Raised by a mechanism client (the server's message is malformed, its signature is
    forged, its nonce is not ours, it sent ``e=...``, a method was called out of turn). Not
    retriable with the same credentials. The message never carries a password, token, salted
    password, proof or signature.
    """


def check_credential(value: object, what: str, mechanism: str) -> str:
    """``value`` if it is a non-empty str without NUL; a ConfigError naming ``what`` if not.

    The error never repeats the value: it is (part of) a credential.
    """
    if not isinstance(value, str):
        raise ConfigError(f"SASL {mechanism}: the {what} must be a str, not {type(value).__name__}")
    if not value:
        raise ConfigError(f"SASL {mechanism}: the {what} is empty")
    if "\0" in value:
        raise ConfigError(f"SASL {mechanism}: the {what} contains a NUL character, not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no bytes can carry it
        raise ConfigError(
            f"SASL {mechanism}: the {what} is not valid Unicode text (a lone surrogate)"
        ) from None
    return value


SaslStep: TypeAlias = bytes | NeedsComputation | None
"""What ``evaluate()`` returns: the next message to send; work to run first, off the event
loop (SCRAM's key derivation, a GSSAPI context step), whose result goes to ``provide()``;
or None when the client has nothing more to send and has verified the server."""


class SaslMechanism(ABC):
    """One client side of one SASL exchange; make a new object per authentication.

    The caller's loop (the package docstring shows it): send ``initial_response()``; for
    each server reply, stop if ``complete``, else ``evaluate(reply)`` and send what it
    returns, running a :class:`NeedsComputation` first and giving its result to ``provide()``.
    A :class:`SaslError` about a server message leaves the object failed, so every later
    call raises too; a call out of turn raises and changes nothing.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """The mechanism's registered name, as sent in SaslHandshake ("PLAIN", ...)."""

    @property
    @abstractmethod
    def complete(self) -> bool:
        """True once the client has nothing more to send or verify."""

    @abstractmethod
    def initial_response(self) -> bytes | NeedsComputation:
        """The first SaslAuthenticate ``auth_bytes`` (or, GSSAPI, the work that makes
        them: ``provide()`` takes its result and returns them); callable once."""

    @abstractmethod
    def evaluate(self, challenge: bytes) -> SaslStep:
        """The client's answer to the server's reply ``challenge`` (see :data:`SaslStep`)."""

    def provide(self, result: bytes) -> bytes:
        """The next message, once the work a :class:`NeedsComputation` asked for is done."""
        raise SaslError(
            f"SASL {self.name} never asks for a key derivation (or any computation); "
            "provide() is misused"
        )


_EXTENSION_NAME = re.compile(r"[A-Za-z]+")


def check_extensions(
    extensions: Mapping[str, str],
    mechanism: str,
    *,
    reserved: frozenset[str],
    value_pattern: re.Pattern[str],
    value_rule: str,
) -> dict[str, str]:
    """SASL extensions as a mechanism may send them: names of letters only and not
    ``reserved``; values matching ``value_pattern`` (``value_rule`` says it in words).
    Values may be secrets: an error names the key, never the value."""
    checked: dict[str, str] = {}
    for key, value in extensions.items():
        if not isinstance(key, str) or not _EXTENSION_NAME.fullmatch(key) or key in reserved:
            names = ", ".join(repr(name) for name in sorted(reserved))
            raise ConfigError(
                f"SASL {mechanism}: extension name {key!r} is not allowed: letters only, and "
                f"none of {names}"
            )
        if not isinstance(value, str) or not value_pattern.fullmatch(value):
            raise ConfigError(
                f"SASL {mechanism}: the value of extension {key!r} must be {value_rule}"
            )
        checked[key] = value
    return checked
