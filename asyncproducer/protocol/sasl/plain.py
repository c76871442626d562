"""SASL PLAIN (RFC 4616): the username and password, in one message.

The message is ``authzid NUL authcid NUL passwd`` in UTF-8, with the authorization id left
empty as Kafka's clients do. The password travels in clear: use PLAIN over TLS only. The
server's verdict is the SaslAuthenticate error code, so the client is complete as soon as
it has sent its one message.
"""

from __future__ import annotations

from asyncproducer.protocol.sasl._base import SaslError, SaslMechanism, check_credential


class PlainClient(SaslMechanism):
    """The client side of a PLAIN exchange."""

    def __init__(self, username: str, password: str) -> None:
        # NUL separates the fields: one inside a value would shift them (RFC 4616 forbids it).
        self._username = check_credential(username, "username", "PLAIN")
        self._password = check_credential(password, "password", "PLAIN")
        self._sent = False

    @property
    def name(self) -> str:
        return "PLAIN"

    @property
    def complete(self) -> bool:
        return self._sent

    def initial_response(self) -> bytes:
        if self._sent:
            raise SaslError("SASL PLAIN: initial_response() was already called")
        self._sent = True
        return b"\0" + self._username.encode("utf-8") + b"\0" + self._password.encode("utf-8")

    def evaluate(self, challenge: bytes) -> bytes | None:
        if not self._sent:
            raise SaslError("SASL PLAIN: evaluate() called before initial_response()")
        raise SaslError("SASL PLAIN: evaluate() called after the exchange completed")

    def __repr__(self) -> str:
        return f"PlainClient(username={self._username!r}, complete={self._sent})"
