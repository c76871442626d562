"""OAUTHBEARER tokens from the user's provider: sync or async, fetched once, refreshed after
80 % of their lifetime, failures typed without the token."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from asyncproducer._sasl import TokenSource
from asyncproducer.errors import AuthenticationError
from asyncproducer.protocol.sasl import OAuthBearerToken

pytestmark = pytest.mark.anyio

TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_sync_provider_runs_in_a_worker_thread_and_is_asked_once() -> None:
    threads: list[str] = []

    def provider() -> tuple[str, int]:
        threads.append(threading.current_thread().name)
        return TOKEN, now_ms() + 3_600_000

    source = TokenSource(provider)
    async with anyio.create_task_group() as group:  # connections opening together
        for _ in range(5):
            group.start_soon(source.current)
    token = await source.current()
    assert token.value == TOKEN
    assert source.fetches == 1
    assert threads != [threading.current_thread().name]


async def test_async_providers_and_objects_with_a_token_method() -> None:
    async def provider() -> OAuthBearerToken:
        await anyio.lowlevel.checkpoint()
        return OAuthBearerToken(TOKEN, now_ms() + 60_000, principal_name="alice")

    class Provider:
        async def token(self) -> tuple[str, int]:
            return TOKEN, now_ms() + 60_000

    assert (await TokenSource(provider).current()).principal_name == "alice"
    assert (await TokenSource(Provider()).current()).value == TOKEN


async def test_a_token_is_fetched_again_after_80_percent_of_its_lifetime() -> None:
    lifetime_ms = 500

    def provider() -> tuple[str, int]:
        return TOKEN, now_ms() + lifetime_ms

    source = TokenSource(provider)
    await source.current()
    await source.current()
    assert source.fetches == 1
    await anyio.sleep(lifetime_ms * 0.85 / 1000)
    await source.current()
    assert source.fetches == 2


@pytest.mark.parametrize(
    ("produced", "match"),
    [
        ("just-a-string", "must return an OAuthBearerToken or a"),
        ((TOKEN, "soon"), "must return an OAuthBearerToken or a"),
        ((TOKEN, 1_000), "returned a token that expired at 1000"),
    ],
)
async def test_what_a_provider_must_return(produced: object, match: str) -> None:
    with pytest.raises(AuthenticationError, match=match) as raised:
        await TokenSource(lambda: produced).current()
    assert TOKEN not in str(raised.value)


async def test_a_failing_provider_is_an_authentication_error_chained() -> None:
    def provider() -> tuple[str, int]:
        raise ConnectionError("token endpoint unreachable")

    with pytest.raises(AuthenticationError, match="provider failed: ConnectionError") as raised:
        await TokenSource(provider).current()
    assert isinstance(raised.value.__cause__, ConnectionError)
