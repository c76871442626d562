"""The server side of the SASL mechanisms the fake brokers offer, as sans-I/O state machines.

One object per exchange: :meth:`evaluate` takes each message the client sent (a
SaslAuthenticate request's ``auth_bytes``) and returns the answer, until ``complete``; a
refusal raises :class:`SaslRefused`. Written from the RFCs and Kafka's server classes
(``PlainSaslServer``, ``ScramSaslServer``, ``OAuthBearerSaslServer`` with the unsecured-JWS
validator), independently of the client's ``asyncproducer.protocol.sasl``: a bug shared by
the two sides would otherwise pass every test.

What the client is told on a refusal is what Kafka tells it: the server's own words for a
``SaslAuthenticationException`` (PLAIN's "Invalid username or password"), a generic sentence
for anything else (SCRAM's failures). What the test is told (``str()`` of the exception,
recorded by the fake) says exactly why, and never contains a password or a token.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "SCRAM_HASHES",
    "SCRAM_ITERATIONS",
    "MechanismServer",
    "OAuthBearerServer",
    "OAuthBearerValidator",
    "PlainServer",
    "SaslRefused",
    "ScramCredential",
    "ScramServer",
    "validate_unsecured_jws",
]

SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_ITERATIONS = 4096
"""Kafka's default (``kafka-configs --add-config 'SCRAM-SHA-256=[password=...]'``) and
RFC 7677's minimum."""

OAuthBearerValidator = Callable[[str], str | tuple[str, int] | None]
"""Checks an OAUTHBEARER token: returns the principal name, or ``(principal,
expires_at_ms)`` (the expiry caps the session lifetime, as Kafka caps it by the token's),
or None (or raises) to refuse it."""


class SaslRefused(Exception):
    """The exchange failed. ``str()``: why, for the test; ``public``: the message Kafka
    would send the client, or None for Kafka's generic "invalid credentials" sentence."""

    def __init__(self, reason: str, public: str | None = None) -> None:
        super().__init__(reason)
        self.public = public


class MechanismServer(Protocol):
    @property
    def mechanism(self) -> str: ...

    @property
    def complete(self) -> bool: ...

    @property
    def principal(self) -> str | None:
        """Who authenticated (set once complete)."""

    @property
    def user(self) -> str | None:
        """Who the client claimed to be, as soon as it said (for failure records)."""

    @property
    def credential_expiry_ms(self) -> int | None:
        """When the credential expires (epoch ms), if it does: OAUTHBEARER's token."""

    def evaluate(self, response: bytes) -> bytes: ...


def _text(message: bytes, mechanism: str) -> str:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslRefused(f"{mechanism}: the client's message is not UTF-8") from None


# --------------------------------------------------------------------------- PLAIN


class PlainServer:
    """RFC 4616: ``authzid NUL authcid NUL passwd``, checked against ``users``."""

    mechanism = "PLAIN"
    credential_expiry_ms = None

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.complete = False
        self.principal: str | None = None
        self.user: str | None = None

    def evaluate(self, response: bytes) -> bytes:
        if self.complete:
            raise SaslRefused("PLAIN: a message after the exchange completed")
        tokens = _text(response, "PLAIN").split("\0")
        if len(tokens) != 3:
            raise SaslRefused(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(tokens)}")
        authorization_id, username, password = tokens
        self.user = username or None
        if not username:
            raise SaslRefused("PLAIN: no username", "Authentication failed: username not specified")
        if not password:
            raise SaslRefused("PLAIN: no password", "Authentication failed: password not specified")
        expected = self._users.get(username)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            why = "no such user" if expected is None else "wrong password"
            raise SaslRefused(
                f"PLAIN: {why} for {username!r}",
                "Authentication failed: Invalid username or password",
            )
        if authorization_id and authorization_id != username:
            raise SaslRefused(
                f"PLAIN: authorization id {authorization_id!r} is not the user {username!r}",
                "Authentication failed: Client requested an authorization id that is different "
                "from username",
            )
        self.principal = username
        self.complete = True
        return b""


# --------------------------------------------------------------------------- SCRAM


@dataclass(frozen=True, slots=True, repr=False)
class ScramCredential:
    """What a SCRAM server stores for a user (RFC 5802 section 3): not the password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(
        cls,
        mechanism: str,
        password: str,
        *,
        iterations: int = SCRAM_ITERATIONS,
        salt: bytes | None = None,
    ) -> ScramCredential:
        """The credential Kafka stores for ``password`` (``salt``: random unless given)."""
        name = SCRAM_HASHES[mechanism]
        salt = secrets.token_bytes(32) if salt is None else salt
        # No SASLprep, as Kafka's ScramFormatter: the password's UTF-8 bytes as they are.
        salted = hashlib.pbkdf2_hmac(name, password.encode("utf-8"), salt, iterations)
        client_key = _hmac(name, salted, b"Client Key")
        return cls(
            salt,
            iterations,
            hashlib.new(name, client_key).digest(),
            _hmac(name, salted, b"Server Key"),
        )

    def __repr__(self) -> str:
        return f"ScramCredential(iterations={self.iterations})"


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hash_name).digest()


# Kafka's ScramMessages grammar (ASCII names; "=2C" and "=3D" escape ',' and '=').
_SASLNAME = r"(?:[\x01-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+"
_PRINTABLE = r"[\x21-\x2b\x2d-\x7e]+"
_EXTENSIONS = r"(?:,[A-Za-z]+=[\x01-\x2b\x2d-\x3c\x3e-\x7f]+)*"
_CLIENT_FIRST = re.compile(
    rf"(?P<gs2>n,(?:a=(?P<authzid>{_SASLNAME}))?,)(?P<bare>(?P<mandatory>m=[^,]*,)?"
    rf"n=(?P<name>{_SASLNAME}),r=(?P<nonce>{_PRINTABLE})(?P<extensions>{_EXTENSIONS}))",
    re.DOTALL,
)
_CLIENT_FINAL = re.compile(
    rf"(?P<without_proof>c=(?P<binding>[A-Za-z0-9+/=]+),r=(?P<nonce>{_PRINTABLE})"
    rf"{_EXTENSIONS}),p=(?P<proof>[A-Za-z0-9+/=]+)",
    re.DOTALL,
)


def _unescape(saslname: str) -> str:
    return saslname.replace("=2C", ",").replace("=3D", "=")


class _ScramState(enum.Enum):
    CLIENT_FIRST = "awaiting client-first"
    CLIENT_FINAL = "awaiting client-final"
    COMPLETE = "complete"


class ScramServer:
    """RFC 5802 / 7677, as Kafka's ``ScramSaslServer``: server-first with the user's salt
    and iteration count, then the client's proof checked against the stored key, then
    ``v=`` the server signature. A refusal is never an ``e=`` message: Kafka fails the
    SaslAuthenticate request instead."""

    credential_expiry_ms = None

    def __init__(
        self,
        mechanism: str,
        credentials: Mapping[str, ScramCredential],
        *,
        server_nonce: str | None = None,
    ) -> None:
        """``server_nonce`` replaces the random one: for test vectors only."""
        self.mechanism = mechanism
        self._server_nonce = server_nonce
        self._hash = SCRAM_HASHES[mechanism]
        self._credentials = credentials
        self._state = _ScramState.CLIENT_FIRST
        self.principal: str | None = None
        self.user: str | None = None
        self._credential: ScramCredential | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    @property
    def complete(self) -> bool:
        return self._state is _ScramState.COMPLETE

    def evaluate(self, response: bytes) -> bytes:
        if self._state is _ScramState.CLIENT_FIRST:
            return self._client_first(_text(response, self.mechanism))
        if self._state is _ScramState.CLIENT_FINAL:
            return self._client_final(_text(response, self.mechanism))
        raise SaslRefused(f"{self.mechanism}: a message after the exchange completed")

    def _client_first(self, text: str) -> bytes:
        matched = _CLIENT_FIRST.fullmatch(text)
        if matched is None:
            raise SaslRefused(f"{self.mechanism}: malformed client-first message")
        self.user = name = _unescape(matched["name"])
        if matched["mandatory"]:
            raise SaslRefused(f"{self.mechanism}: a mandatory extension (m=) is not supported")
        extensions = dict(
            part.split("=", 1) for part in matched["extensions"].split(",")[1:] if part
        )
        if extensions.get("tokenauth", "").lower() == "true":
            raise SaslRefused(f"{self.mechanism}: the fake cluster has no delegation tokens")
        credential = self._credentials.get(name)
        if credential is None:
            raise SaslRefused(f"{self.mechanism}: no credential for user {name!r}")
        authorization_id = matched["authzid"]
        if authorization_id and _unescape(authorization_id) != name:
            raise SaslRefused(
                f"{self.mechanism}: authorization id is not the user {name!r}",
                "Authentication failed: Client requested an authorization id that is different "
                "from username",
            )
        self._credential = credential
        self._gs2_header = matched["gs2"]
        self._client_first_bare = matched["bare"]
        server_nonce = self._server_nonce or secrets.token_urlsafe(18)  # no ','
        self._nonce = matched["nonce"] + server_nonce
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self._state = _ScramState.CLIENT_FINAL
        return self._server_first.encode()

    def _client_final(self, text: str) -> bytes:
        credential = self._credential
        matched = _CLIENT_FINAL.fullmatch(text)
        if matched is None or credential is None:
            raise SaslRefused(f"{self.mechanism}: malformed client-final message")
        if _b64(matched["binding"]) != self._gs2_header.encode():
            raise SaslRefused(f"{self.mechanism}: channel binding (c=) is not the GS2 header")
        if matched["nonce"] != self._nonce:
            raise SaslRefused(f"{self.mechanism}: the nonce is not the one of server-first")
        auth_message = (
            f"{self._client_first_bare},{self._server_first},{matched['without_proof']}"
        ).encode()
        client_signature = _hmac(self._hash, credential.stored_key, auth_message)
        proof = _b64(matched["proof"])
        if len(proof) != len(client_signature):
            raise SaslRefused(f"{self.mechanism}: the proof has the wrong length")
        client_key = bytes(p ^ s for p, s in zip(proof, client_signature, strict=True))
        stored_key = hashlib.new(self._hash, client_key).digest()
        if not hmac.compare_digest(stored_key, credential.stored_key):
            raise SaslRefused(f"{self.mechanism}: wrong password for {self.user!r}")
        signature = _hmac(self._hash, credential.server_key, auth_message)
        self.principal = self.user
        self._state = _ScramState.COMPLETE
        return b"v=" + base64.b64encode(signature)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return b""


# --------------------------------------------------------------------------- OAUTHBEARER

_OAUTH_INITIAL = re.compile(
    rf"n,(?:a=(?P<authzid>{_SASLNAME}))?,\x01"
    r"(?P<pairs>(?:[A-Za-z]+=[\x21-\x7e \t\r\n]+\x01)*)\x01",
    re.DOTALL,
)
_AUTH_VALUE = re.compile(r"(?P<scheme>\w+) +(?P<token>[-_.a-zA-Z0-9]+)")
_INVALID_TOKEN = json.dumps({"status": "invalid_token"}, separators=(",", ":"))


class _InvalidToken(Exception):
    pass


class _OAuthState(enum.Enum):
    INITIAL = "awaiting the token"
    ERROR_SENT = "sent an error, awaiting the client's ^A"
    COMPLETE = "complete"


class OAuthBearerServer:
    """RFC 7628 as Kafka's ``OAuthBearerSaslServer``: the client's one message carries
    ``auth=Bearer <token>`` (and extensions, accepted as the unsecured validator does). A
    token refused is answered with the JSON error ``{"status":"invalid_token"}``; the
    client acknowledges with ^A and the SaslAuthenticate request carrying that fails."""

    mechanism = "OAUTHBEARER"

    def __init__(
        self, validator: OAuthBearerValidator | None, wall_clock_ms: Callable[[], int]
    ) -> None:
        self._validator = validator
        self._now_ms = wall_clock_ms
        self._state = _OAuthState.INITIAL
        self._reason = ""
        self.principal: str | None = None
        self.user: str | None = None
        self.credential_expiry_ms: int | None = None

    @property
    def complete(self) -> bool:
        return self._state is _OAuthState.COMPLETE

    def evaluate(self, response: bytes) -> bytes:
        if self._state is _OAuthState.ERROR_SENT:
            if response == b"\x01":
                raise SaslRefused(f"OAUTHBEARER: {self._reason}", _INVALID_TOKEN)
            raise SaslRefused("OAUTHBEARER: the client did not acknowledge the error with ^A")
        if self._state is not _OAuthState.INITIAL:
            raise SaslRefused("OAUTHBEARER: a message after the exchange completed")
        authorization_id, token = self._parse(_text(response, "OAUTHBEARER"))
        try:
            principal, expiry_ms = self._validate(token)
        except _InvalidToken as exc:
            self._reason = str(exc)
            self._state = _OAuthState.ERROR_SENT
            return _INVALID_TOKEN.encode()
        self.user = principal
        if authorization_id and authorization_id != principal:
            raise SaslRefused(
                f"OAUTHBEARER: authorization id {authorization_id!r} is not {principal!r}",
                f"Authentication failed: Client requested an authorization id "
                f"({authorization_id}) that is different from the token's principal name "
                f"({principal})",
            )
        self.principal = principal
        self.credential_expiry_ms = expiry_ms
        self._state = _OAuthState.COMPLETE
        return b""

    @staticmethod
    def _parse(text: str) -> tuple[str, str]:
        matched = _OAUTH_INITIAL.fullmatch(text)
        if matched is None:
            raise SaslRefused("OAUTHBEARER: malformed client initial response")
        pairs = dict(pair.split("=", 1) for pair in matched["pairs"].split("\x01") if pair)
        auth = _AUTH_VALUE.fullmatch(pairs.get("auth", ""))
        if auth is None or auth["scheme"].lower() != "bearer":
            raise SaslRefused("OAUTHBEARER: no 'auth=Bearer <token>' in the client's message")
        return _unescape(matched["authzid"] or ""), auth["token"]

    def _validate(self, token: str) -> tuple[str, int | None]:
        if self._validator is None:
            return validate_unsecured_jws(token, self._now_ms())
        try:
            verdict = self._validator(token)
        except Exception as exc:  # the test's validator refusing, or failing
            raise _InvalidToken(f"the validator raised {type(exc).__name__}: {exc}") from None
        if verdict is None:
            raise _InvalidToken("the validator refused the token")
        if isinstance(verdict, str) and verdict:
            return verdict, None
        if (
            isinstance(verdict, tuple)
            and len(verdict) == 2
            and isinstance(verdict[0], str)
            and verdict[0]
            and isinstance(verdict[1], int)
        ):
            return verdict[0], verdict[1]
        raise _InvalidToken(
            f"the validator returned a {type(verdict).__name__}, not a principal name or "
            "(principal, expires_at_ms)"
        )


def validate_unsecured_jws(token: str, now_ms: int) -> tuple[str, int]:
    """``(principal, expires_at_ms)`` of an unsecured JWS (``alg: none``, no signature)
    with a ``sub`` and an ``exp`` not in the past, as Kafka's default validator
    (``OAuthBearerUnsecuredValidatorCallbackHandler``, no clock skew, no required scope)
    accepts; raises _InvalidToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _InvalidToken("an unsecured JWS has three dot-separated parts")
    if parts[2]:
        raise _InvalidToken("the JWS is signed: the unsecured validator takes alg 'none' only")
    header, claims = _json_part(parts[0], "header"), _json_part(parts[1], "claims")
    if header.get("alg") != "none":
        raise _InvalidToken(f"the JWS header's alg is {header.get('alg')!r}, not 'none'")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _InvalidToken("the token has no 'sub' claim (the principal)")
    expires = _number_claim(claims, "exp")
    if expires is None:
        raise _InvalidToken("the token has no 'exp' claim")
    expires_ms = math.floor(expires * 1000)
    if now_ms > expires_ms:
        raise _InvalidToken(f"the token expired {now_ms - expires_ms} ms ago")
    issued = _number_claim(claims, "iat")
    if issued is not None and issued * 1000 > now_ms:
        raise _InvalidToken("the token's 'iat' is in the future")
    return subject, expires_ms


def _json_part(part: str, what: str) -> dict[str, object]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error):
        raise _InvalidToken(f"the JWS {what} is not base64url-encoded JSON") from None
    if not isinstance(decoded, dict):
        raise _InvalidToken(f"the JWS {what} is not a JSON object")
    return decoded


def _number_claim(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidToken(f"the token's {name!r} claim is not a number")
    return float(value)
