"""SaslAuthenticate: one message of the mechanism's exchange, answered by the session.

Refused credentials: SASL_AUTHENTICATION_FAILED with Kafka's message, then the connection
closes. The answer completing an exchange carries the session lifetime (v1+,
``session_lifetime_ms``; 0: the session does not end).
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake.handlers import Request, build, response_class

_ILLEGAL_SASL_STATE = 34


def handle(request: Request) -> Any:
    cls = response_class(request, "SaslAuthenticateResponse")
    session = request.session
    if request.forced_error:  # fail_next: answered, nothing changes
        return _response(cls, request.forced_error, "injected by FakeCluster.fail_next")
    if session is None:
        return _response(cls, _ILLEGAL_SASL_STATE, "SASL is not enabled on this listener")
    answer = session.authenticate(bytes(request.body.auth_bytes))
    if answer is None:
        return None  # closed without an answer
    return _response(
        cls,
        answer.error_code,
        answer.error_message,
        answer.auth_bytes,
        answer.session_lifetime_ms,
    )


def _response(
    cls: type[Any],
    code: int,
    message: str | None,
    auth_bytes: bytes = b"",
    lifetime_ms: int = 0,
) -> Any:
    return build(
        cls,
        error_code=ErrorCode(code),
        error_message=message,
        auth_bytes=auth_bytes,
        session_lifetime=datetime.timedelta(milliseconds=lifetime_ms),
    )
