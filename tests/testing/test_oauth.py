"""OidcClientCredentials (KIP-768) against a local token endpoint."""

from __future__ import annotations

import time

import pytest

from asyncproducer.config import ProducerConfig
from asyncproducer.errors import AuthenticationError
from asyncproducer.oauth import OidcClientCredentials
from tests.testing.token_endpoint import token_endpoint, unsecured_jws

pytestmark = pytest.mark.anyio

CLIENT, SECRET = "producer-app", "s3cret-client-Secret"


async def test_a_token_and_its_lifetime_from_expires_in() -> None:
    token = unsecured_jws("alice", 600)
    with token_endpoint(
        CLIENT, SECRET, lambda form: (200, {"access_token": token, "expires_in": 300})
    ) as endpoint:
        provider = OidcClientCredentials(endpoint["url"], CLIENT, SECRET, scope="kafka")  # type: ignore[arg-type]
        got = await provider.token()
    assert got.value == token
    assert abs(got.lifetime_ms - (time.time() + 300) * 1000) < 5_000
    assert endpoint["requests"] == [{"grant_type": "client_credentials", "scope": "kafka"}]
    assert SECRET not in repr(provider)


async def test_without_expires_in_the_jwt_exp_claim_counts() -> None:
    token = unsecured_jws("alice", 600)
    with token_endpoint(CLIENT, SECRET, lambda form: (200, {"access_token": token})) as endpoint:
        got = await OidcClientCredentials(endpoint["url"], CLIENT, SECRET).token()  # type: ignore[arg-type]
    assert abs(got.lifetime_ms - (time.time() + 600) * 1000) < 5_000


async def test_refusals_are_authentication_errors_without_the_secret() -> None:
    with token_endpoint(CLIENT, SECRET, lambda form: (200, {})) as endpoint:
        with pytest.raises(
            AuthenticationError, match="HTTP 401 invalid_client: bad secret"
        ) as raised:
            await OidcClientCredentials(endpoint["url"], CLIENT, "wrong").token()  # type: ignore[arg-type]
        assert "wrong" not in str(raised.value)
        with pytest.raises(AuthenticationError, match="without an access_token"):
            await OidcClientCredentials(endpoint["url"], CLIENT, SECRET).token()  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="unreachable: ConnectError"):
        await OidcClientCredentials("http://127.0.0.1:9/token", CLIENT, SECRET).token()


def test_the_config_keys_make_the_provider_and_java_s_jaas_line_too() -> None:
    config = ProducerConfig.from_java_properties(
        {
            "bootstrap.servers": "broker:9093",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.token.endpoint.url": "https://issuer.example/token",
            "sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                f'clientId="{CLIENT}" clientSecret="{SECRET}" scope="kafka";'
            ),
        }
    )
    provider = config.sasl_oauth_token_provider
    assert isinstance(provider, OidcClientCredentials)
    assert (provider.client_id, provider.scope) == (CLIENT, "kafka")
    assert SECRET not in repr(config)
