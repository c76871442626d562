"""SaslHandshake: the client names its mechanism; the connection's session decides.

Unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled ones, then the connection
closes (Kafka's ``SaslServerAuthenticator``). On a connection already authenticated, the
handshake begins a re-authentication (KIP-368) if the session has a lifetime; otherwise
it is answered with ILLEGAL_SASL_STATE, as Kafka's ``KafkaApis`` does. A listener without
SASL answers ILLEGAL_SASL_STATE too.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake.handlers import Request, build, response_class

_ILLEGAL_SASL_STATE = 34


def handle(request: Request) -> Any:
    cls = response_class(request, "SaslHandshakeResponse")
    session = request.session
    if request.forced_error:  # fail_next: answered, nothing changes
        code, mechanisms = request.forced_error, session.mechanisms if session else ()
    elif session is None:
        code, mechanisms = _ILLEGAL_SASL_STATE, ()
    else:
        code, mechanisms = session.handshake(str(request.body.mechanism))
    return build(cls, error_code=ErrorCode(code), mechanisms=tuple(mechanisms))
