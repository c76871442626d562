"""SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka speaks them.

The exchange, two round trips::

    client-first   n,,n=<user>,r=<client nonce>[,<extension>=<value>]...
    server-first   r=<client nonce + server nonce>,s=<base64 salt>,i=<iterations>
    client-final   c=biws,r=<nonce>,p=<base64 ClientProof>
    server-final   v=<base64 ServerSignature>          (or e=<error>)

Kafka's dialect: the GS2 header is always ``n,,`` (no channel binding, no authzid);
extensions such as ``tokenauth=true`` (delegation tokens) follow the nonce in client-first.

Driving it. ``evaluate(server_first)`` does not derive the key: PBKDF2 costs milliseconds of
CPU at a count the server picks, too long for an event loop. It returns a
:class:`NeedsDerivation`; the caller computes it where it likes and hands the result back::

    client = ScramClient("SCRAM-SHA-512", username, password)
    server_first = await exchange(client.initial_response())
    request = client.evaluate(server_first)                  # a NeedsDerivation
    salted = request.cached()                                # known from an earlier exchange?
    if salted is None:
        salted = await anyio.to_thread.run_sync(request.compute)
    server_final = await exchange(client.provide(salted))    # client-final
    client.evaluate(server_final)                            # None: server verified

States: INITIAL, SENT_CLIENT_FIRST, AWAITING_KEY, SENT_CLIENT_FINAL, then COMPLETE; a server
message that breaks the rules raises :class:`SaslError` and leaves the client FAILED.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl._base import (
    SaslError,
    SaslMechanism,
    check_credential,
    check_extensions,
)
from asyncproducer.protocol.sasl._derivation import NeedsDerivation, digest_size

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
"""Mechanism name -> hashlib name."""

DEFAULT_MIN_ITERATIONS = 4096
"""RFC 7677's floor (and Kafka's): a lower count makes a stolen exchange cheap to crack."""

DEFAULT_MAX_ITERATIONS = 1_000_000
"""A cap on the work a hostile server can make us do (about a second of SHA-512). Kafka itself
stores credentials with at most 16384 iterations."""

_GS2_HEADER = "n,,"
_CHANNEL_BINDING = base64.b64encode(_GS2_HEADER.encode()).decode()  # "biws"
_NONCE_BYTES = 24
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # RFC 5802 "printable": ASCII but ','
_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}")
_ATTRIBUTE = re.compile(r"([A-Za-z])=(.*)", re.DOTALL)
_EXTENSION_VALUE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# Single letters are RFC 5802's own attributes: an extension named so would be misread.
_RESERVED_KEYS = frozenset("aceimnprsv")


class _State(enum.Enum):
    INITIAL = "initial"
    SENT_CLIENT_FIRST = "sent client-first"
    AWAITING_KEY = "awaiting the key derivation"
    SENT_CLIENT_FINAL = "sent client-final"
    COMPLETE = "complete"
    FAILED = "failed"


class _Violation(Exception):
    """A server message broke the rules; ScramClient turns it into a SaslError."""


def _escape_username(username: str) -> str:
    # RFC 5802 saslname: '=' first, or the '=' of "=2C" would be escaped again. No SASLprep:
    # Kafka's ScramFormatter does not apply it, so the broker stores the name unnormalized.
    return username.replace("=", "=3D").replace(",", "=2C")


def _decode(message: bytes, what: str) -> str:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise _Violation(f"the server's {what} message is not UTF-8") from None


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    attributes = []
    for part in message.split(","):
        match = _ATTRIBUTE.fullmatch(part)
        if match is None:
            raise _Violation(f"malformed {what} message: an attribute is not of the form x=value")
        attributes.append((match[1], match[2]))
    for name, value in attributes:
        if name == "e":
            # RFC 5802 server-error values are tokens ("invalid-proof"); show a bounded,
            # printable rendering since the server chose it.
            shown = "".join(c if " " <= c <= "~" else "?" for c in value[:200])
            raise _Violation(f"the server refused authentication: {shown!r}")
    return attributes


def _base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise _Violation(f"the {what} is not valid base64") from None


def _hmac(key: bytes, message: bytes, hash_name: str) -> bytes:
    return hmac.new(key, message, hash_name).digest()


class ScramClient(SaslMechanism):
    """The client side of a SCRAM-SHA-256 or SCRAM-SHA-512 exchange (module docstring).

    ``min_iterations``/``max_iterations`` bound the count the server may demand.
    ``_client_nonce`` replaces the random nonce: for test vectors only.
    """

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        extensions: Mapping[str, str] | None = None,
        min_iterations: int = DEFAULT_MIN_ITERATIONS,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        _client_nonce: str | None = None,
    ) -> None:
        if mechanism not in HASHES:
            known = ", ".join(HASHES)
            raise ConfigError(f"unknown SCRAM mechanism {mechanism!r}; known: {known}")
        if not 1 <= min_iterations <= max_iterations:
            raise ConfigError(
                f"SASL {mechanism}: need 1 <= min_iterations <= max_iterations, got "
                f"{min_iterations} and {max_iterations}"
            )
        self._mechanism = mechanism
        self._hash_name = HASHES[mechanism]
        self._username = check_credential(username, "username", mechanism)
        self._password = check_credential(password, "password", mechanism).encode("utf-8")
        self._extensions = check_extensions(
            extensions or {},
            mechanism,
            reserved=_RESERVED_KEYS,  # SCRAM's own attribute letters
            value_pattern=_EXTENSION_VALUE,
            value_rule="non-empty printable ASCII without ','",
        )
        self._min_iterations = min_iterations
        self._max_iterations = max_iterations
        if _client_nonce is None:
            _client_nonce = secrets.token_urlsafe(_NONCE_BYTES)  # no ',': [A-Za-z0-9_-]
        elif not _PRINTABLE.fullmatch(_client_nonce):
            raise ValueError("a SCRAM nonce must be printable ASCII without ','")
        self._client_nonce = _client_nonce
        self._state = _State.INITIAL
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._server_signature = b""

    @property
    def name(self) -> str:
        return self._mechanism

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    def initial_response(self) -> bytes:
        """The client-first message."""
        if self._state is not _State.INITIAL:
            raise self._out_of_turn("initial_response()")
        extensions = "".join(f",{key}={value}" for key, value in self._extensions.items())
        username = _escape_username(self._username)
        self._client_first_bare = f"n={username},r={self._client_nonce}{extensions}"
        self._state = _State.SENT_CLIENT_FIRST
        return (_GS2_HEADER + self._client_first_bare).encode("utf-8")

    def evaluate(self, challenge: bytes) -> NeedsDerivation | None:
        """server-first -> a NeedsDerivation; server-final -> None once verified."""
        state = self._state
        if state not in (_State.SENT_CLIENT_FIRST, _State.SENT_CLIENT_FINAL):
            raise self._out_of_turn("evaluate()")
        try:
            if state is _State.SENT_CLIENT_FIRST:
                return self._on_server_first(challenge)
            self._on_server_final(challenge)
            return None
        except _Violation as exc:
            self._state = _State.FAILED
            self._server_signature = b""
            raise SaslError(f"SASL {self._mechanism}: {exc}") from None

    def provide(self, salted_password: bytes) -> bytes:
        """The client-final message, from the NeedsDerivation's result."""
        if self._state is not _State.AWAITING_KEY:
            raise self._out_of_turn("provide()")
        size = digest_size(self._hash_name)
        if not isinstance(salted_password, bytes) or len(salted_password) != size:
            raise SaslError(
                f"SASL {self._mechanism}: provide() takes NeedsDerivation.compute()'s result "
                f"({size} bytes)"
            )
        without_proof = f"c={_CHANNEL_BINDING},r={self._nonce}"
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        hash_name = self._hash_name
        client_key = _hmac(salted_password, b"Client Key", hash_name)
        stored_key = hashlib.new(hash_name, client_key).digest()
        client_signature = _hmac(stored_key, auth_message, hash_name)
        proof = bytes(k ^ s for k, s in zip(client_key, client_signature, strict=True))
        server_key = _hmac(salted_password, b"Server Key", hash_name)
        self._server_signature = _hmac(server_key, auth_message, hash_name)
        self._state = _State.SENT_CLIENT_FINAL
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _on_server_first(self, challenge: bytes) -> NeedsDerivation:
        text = _decode(challenge, "server-first")
        attributes = _attributes(text, "server-first")
        names = [name for name, _ in attributes]
        if names[0] == "m":
            raise _Violation("the server requires a mandatory extension (m=), not supported")
        if names[:3] != ["r", "s", "i"]:
            raise _Violation("malformed server-first message: it must start with r=, s=, i=")
        (_, nonce), (_, salt_text), (_, iterations_text) = attributes[:3]
        if not _PRINTABLE.fullmatch(nonce):
            raise _Violation("the server's nonce is not printable ASCII without ','")
        # A nonce that does not extend ours: a replayed or foreign exchange.
        if not nonce.startswith(self._client_nonce) or len(nonce) == len(self._client_nonce):
            raise _Violation("the server's nonce does not extend the client's nonce")
        salt = _base64(salt_text, "salt (s=)")
        if not salt:
            raise _Violation("the salt (s=) is empty")
        if not _ITERATIONS.fullmatch(iterations_text):
            raise _Violation("the iteration count (i=) is not a positive integer")
        iterations = int(iterations_text)
        if iterations < self._min_iterations:
            raise _Violation(
                f"the server asks for {iterations} iterations, below the minimum of "
                f"{self._min_iterations} (min_iterations)"
            )
        if iterations > self._max_iterations:
            raise _Violation(
                f"the server asks for {iterations} iterations, above the maximum of "
                f"{self._max_iterations} (max_iterations)"
            )
        self._server_first = text
        self._nonce = nonce
        self._state = _State.AWAITING_KEY
        return NeedsDerivation(self._hash_name, salt, iterations, self._password)

    def _on_server_final(self, challenge: bytes) -> None:
        attributes = _attributes(_decode(challenge, "server-final"), "server-final")
        name, value = attributes[0]
        if name != "v":
            raise _Violation("malformed server-final message: it must start with v= or e=")
        signature = _base64(value, "server signature (v=)")
        # Constant time: a comparison that stops at the first difference leaks how much of
        # a forged signature was right.
        if not hmac.compare_digest(signature, self._server_signature):
            raise _Violation(
                "the server's signature does not match: the server does not know this "
                "credential, or the exchange was tampered with"
            )
        self._server_signature = b""
        self._state = _State.COMPLETE

    def _out_of_turn(self, call: str) -> SaslError:
        return SaslError(
            f"SASL {self._mechanism}: {call} called out of turn (state: {self._state.value})"
        )

    def __repr__(self) -> str:
        return (
            f"ScramClient(mechanism={self._mechanism!r}, username={self._username!r}, "
            f"state={self._state.value!r})"
        )
