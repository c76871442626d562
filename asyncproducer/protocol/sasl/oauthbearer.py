"""SASL OAUTHBEARER (RFC 7628) as Kafka speaks it (KIP-255, KIP-342), and the token type.

The client sends one message: ``n,,`` ^A ``auth=Bearer <token>`` ^A, then any SASL
extensions as ``key=value`` ^A, then a closing ^A (^A is the byte 0x01). The server answers
with an empty message if it accepts the token. If not, it answers with a JSON error
(``{"status": "invalid_token", ...}``); RFC 7628 has the client acknowledge with a lone ^A,
after which the server fails the SaslAuthenticate request. The client keeps the JSON's
status in ``server_error`` so the caller can report it with the broker's error.

Getting and refreshing tokens is the caller's business; :class:`OAuthBearerToken` carries
what it needs to schedule a refresh.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl._base import SaslError, SaslMechanism, check_extensions

_SEPARATOR = "\x01"
# RFC 6750 b64token; Kafka's broker accepts a subset ([-_.a-zA-Z0-9]+, what JWTs use).
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 7628 value: *(VCHAR / SP / HTAB / CR / LF). Kafka's broker parses "+", not "*", so
# an empty value is refused here rather than by the broker's parser.
_VALUE = re.compile(r"[\x21-\x7e \t\r\n]+")


@dataclass(frozen=True, slots=True)
class OAuthBearerToken:
    """An OAuth 2 bearer token and when it expires (Java's ``OAuthBearerToken``).

    ``lifetime_ms`` is the expiry time in milliseconds since the epoch, as in Java; the
    repr never shows ``value``.
    """

    value: str = field(repr=False)
    lifetime_ms: int
    principal_name: str | None = None
    start_time_ms: int | None = None
    scope: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Never echo the value: it is the credential.
        if not isinstance(self.value, str) or not _TOKEN.fullmatch(self.value):
            raise ConfigError(
                "OAuthBearerToken.value is not an RFC 6750 bearer token (letters, digits and "
                "-._~+/, then optional '=' padding)"
            )
        if isinstance(self.lifetime_ms, bool) or not isinstance(self.lifetime_ms, int):
            raise ConfigError("OAuthBearerToken.lifetime_ms must be an int (epoch milliseconds)")

    def remaining_ms(self, now_ms: int) -> int:
        """Milliseconds until expiry at ``now_ms`` (negative once expired)."""
        return self.lifetime_ms - now_ms

    def __repr__(self) -> str:
        return (
            f"OAuthBearerToken(value=<hidden>, lifetime_ms={self.lifetime_ms}, "
            f"principal_name={self.principal_name!r}, start_time_ms={self.start_time_ms}, "
            f"scope={sorted(self.scope)})"
        )


def _summarize_error(challenge: bytes, token: str) -> str:
    """The server's JSON status, scope and openid-configuration: never the raw text, which a
    buggy server could have filled with our token."""
    try:
        document = json.loads(challenge.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError, JSONDecodeError
        return f"a non-JSON error response of {len(challenge)} bytes"
    if not isinstance(document, dict):
        return "a JSON error response that is not an object"
    parts = [
        f"{name} {str(document[name])[:200]!r}"
        for name in ("status", "scope", "openid-configuration")
        if name in document
    ]
    summary = ", ".join(parts) if parts else "a JSON error response without a status"
    return summary.replace(token, "<token>")


class _State(enum.Enum):
    INITIAL = "initial"
    SENT_TOKEN = "sent the token"
    SENT_ERROR_ACK = "acknowledged the server's error"
    COMPLETE = "complete"
    FAILED = "failed"


class OAuthBearerClient(SaslMechanism):
    """The client side of an OAUTHBEARER exchange, for one token."""

    def __init__(
        self, token: OAuthBearerToken, extensions: Mapping[str, str] | None = None
    ) -> None:
        if not isinstance(token, OAuthBearerToken):
            raise ConfigError(
                f"SASL OAUTHBEARER needs an OAuthBearerToken, not {type(token).__name__}"
            )
        self._token = token
        self._extensions = check_extensions(
            extensions or {},
            "OAUTHBEARER",
            reserved=frozenset({"auth"}),  # the token's own key
            value_pattern=_VALUE,
            value_rule="non-empty printable ASCII (spaces, tabs and line breaks allowed)",
        )
        self._state = _State.INITIAL
        self._server_error: str | None = None

    @property
    def name(self) -> str:
        return "OAUTHBEARER"

    @property
    def complete(self) -> bool:
        return self._state is _State.COMPLETE

    @property
    def server_error(self) -> str | None:
        """The status of the JSON error the server answered with, if it refused the token."""
        return self._server_error

    def initial_response(self) -> bytes:
        if self._state is not _State.INITIAL:
            raise self._out_of_turn("initial_response()")
        pairs = [f"auth=Bearer {self._token.value}"]
        pairs.extend(f"{key}={value}" for key, value in self._extensions.items())
        self._state = _State.SENT_TOKEN
        body = "".join(pair + _SEPARATOR for pair in pairs)
        return f"n,,{_SEPARATOR}{body}{_SEPARATOR}".encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        if self._state is _State.SENT_TOKEN:
            if not challenge:
                self._state = _State.COMPLETE
                return None
            self._server_error = _summarize_error(challenge, self._token.value)
            self._state = _State.SENT_ERROR_ACK
            return _SEPARATOR.encode()
        if self._state is _State.SENT_ERROR_ACK:
            # The server should have failed the request that carried our ^A instead.
            self._state = _State.FAILED
            raise SaslError(f"SASL OAUTHBEARER: the server refused the token: {self._server_error}")
        raise self._out_of_turn("evaluate()")

    def _out_of_turn(self, call: str) -> SaslError:
        return SaslError(
            f"SASL OAUTHBEARER: {call} called out of turn (state: {self._state.value})"
        )

    def __repr__(self) -> str:
        return (
            f"OAuthBearerClient(token={self._token!r}, extensions={list(self._extensions)}, "
            f"state={self._state.value!r})"
        )
