"""OAUTHBEARER token providers: the OAuth 2 client-credentials grant (KIP-768).

``OidcClientCredentials`` asks a token endpoint for an access token with a client id and
secret, as Java's ``OAuthBearerLoginCallbackHandler`` does for
``sasl.oauthbearer.token.endpoint.url``. Give it as ``sasl_oauth_token_provider``, or set
the ``sasl_oauthbearer_*`` keys and the producer makes one. It needs ``httpx`` (the
``oauth`` extra: ``pip install 'asyncproducer[oauth]'``), which runs on asyncio and trio.

The token is not validated here (the broker does that); its lifetime is the endpoint's
``expires_in``, else the JWT's ``exp`` claim.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from asyncproducer.errors import AuthenticationError, ConfigError
from asyncproducer.protocol.sasl import OAuthBearerToken

__all__ = ["OidcClientCredentials"]


class OidcClientCredentials:
    """An async token provider: POSTs ``grant_type=client_credentials`` (HTTP Basic auth
    with the client id and secret, and ``scope`` if given) to ``token_endpoint_url``."""

    def __init__(
        self,
        token_endpoint_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not token_endpoint_url.startswith(("https://", "http://")):
            raise ConfigError(
                f"the token endpoint must be an http(s) URL, got {token_endpoint_url!r}"
            )
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"OidcClientCredentials needs a non-empty {name}")
        self.token_endpoint_url = token_endpoint_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never the secret
        return (
            f"OidcClientCredentials({self.token_endpoint_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r})"
        )

    async def token(self) -> OAuthBearerToken:
        try:
            import httpx
        except ImportError:
            raise ConfigError(
                "OidcClientCredentials needs httpx: pip install 'asyncproducer[oauth]'"
            ) from None
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        where = f"token endpoint {self.token_endpoint_url}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.post(
                    self.token_endpoint_url,
                    data=form,
                    auth=(self.client_id, self._client_secret),
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"{where} unreachable: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise AuthenticationError(
                f"{where} refused client {self.client_id!r}: HTTP {answer.status_code} "
                f"{_error_of(answer.content)}"
            )
        return _token_from(answer.content, where)


def _token_from(body: bytes, where: str) -> OAuthBearerToken:
    try:
        document: Any = json.loads(body)
        access_token = document["access_token"]
    except (ValueError, KeyError, TypeError):
        raise AuthenticationError(f"{where} answered without an access_token") from None
    if not isinstance(access_token, str):
        raise AuthenticationError(f"{where} answered with a non-string access_token")
    now_ms = int(time.time() * 1000)
    expires_in = document.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        lifetime_ms = now_ms + int(expires_in * 1000)
    else:
        lifetime_ms = _jwt_expiry_ms(access_token, where)
    return OAuthBearerToken(access_token, lifetime_ms, start_time_ms=now_ms)


def _jwt_expiry_ms(token: str, where: str) -> int:
    """The ``exp`` claim of a JWT, read without checking its signature (the broker does)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["exp"] * 1000)
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        raise AuthenticationError(
            f"{where} gave no expires_in and a token without a readable exp claim"
        ) from None


def _error_of(body: bytes) -> str:
    """The OAuth error code and description (RFC 6749 5.2), never the whole body."""
    try:
        document = json.loads(body)
        error = str(document.get("error", ""))[:100]
        description = str(document.get("error_description", ""))[:200]
    except (ValueError, AttributeError):
        return f"({len(body)} bytes, not JSON)"
    return f"{error}: {description}".strip(": ")
