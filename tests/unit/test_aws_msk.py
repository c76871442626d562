"""MSK IAM tokens: AWS's real signer (aws-msk-iam-sasl-signer-python) with static test
credentials, which signs locally; only the role path, which would call STS, is stubbed."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as signer
from botocore.credentials import CredentialProvider, Credentials

from asyncproducer import Producer
from asyncproducer._sasl import TokenSource
from asyncproducer.aws import MskIamTokenProvider
from asyncproducer.errors import ConfigError

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class StaticCredentials(CredentialProvider):  # type: ignore[misc]
    METHOD = "static-test"

    def load(self) -> Credentials:
        return Credentials(ACCESS_KEY, SECRET_KEY)


def presigned_url(token: str) -> tuple[str, dict[str, list[str]]]:
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}", parse_qs(parsed.query)


def assert_signed_for(token: Any, region: str) -> None:
    where, query = presigned_url(token.value)
    assert where == f"https://kafka.{region}.amazonaws.com/"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].startswith(f"{ACCESS_KEY}/")
    assert query["X-Amz-Credential"][0].endswith(f"/{region}/kafka-cluster/aws4_request")
    assert query["X-Amz-Expires"] == ["900"]
    assert SECRET_KEY not in token.value
    now_ms = time.time() * 1000
    assert token.start_time_ms is not None
    assert abs(token.start_time_ms - now_ms) < 5_000  # signed just now
    assert token.lifetime_ms - token.start_time_ms == 900_000


def test_a_credentials_provider_signs_a_connect_url_for_the_region() -> None:
    token = MskIamTokenProvider("eu-west-1", credentials_provider=StaticCredentials()).token()
    assert_signed_for(token, "eu-west-1")


def test_the_default_chain_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    assert_signed_for(MskIamTokenProvider("us-east-1").token(), "us-east-1")


def test_a_named_profile_from_the_shared_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[orders]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    assert_signed_for(MskIamTokenProvider("ap-south-1", profile="orders").token(), "ap-south-1")


def test_a_role_is_passed_to_the_signer_with_its_session_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Assuming a role calls STS over the network: the one stubbed signer call.
    calls: list[tuple[Any, ...]] = []

    def assume(*args: Any) -> tuple[str, int]:
        calls.append(args)
        return "c2lnbmVk", 1_900_000_000_000

    monkeypatch.setattr(signer, "generate_auth_token_from_role_arn", assume)
    role = "arn:aws:iam::123456789012:role/producer"
    token = MskIamTokenProvider("us-east-1", role_arn=role, sts_session_name="orders").token()
    assert calls == [("us-east-1", role, "orders")]
    assert (token.value, token.lifetime_ms) == ("c2lnbmVk", 1_900_000_000_000)
    assert token.start_time_ms == 1_900_000_000_000 - 900_000
    MskIamTokenProvider("us-east-1", role_arn=role).token()
    assert calls[-1] == ("us-east-1", role)  # the signer's default session name


@pytest.mark.anyio
async def test_the_producer_asks_for_tokens_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    sign = signer.generate_auth_token_from_credentials_provider

    def signing(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return sign(*args)

    monkeypatch.setattr(signer, "generate_auth_token_from_credentials_provider", signing)
    provider = MskIamTokenProvider("eu-west-1", credentials_provider=StaticCredentials())
    source = TokenSource(provider)
    assert_signed_for(await source.current(), "eu-west-1")
    await source.current()  # reused: 15 minutes is far off
    assert source.fetches == 1
    assert threads
    assert threads[0] is not threading.current_thread()


def test_it_is_a_token_provider_the_config_accepts() -> None:
    provider = MskIamTokenProvider("eu-west-1", credentials_provider=StaticCredentials())
    producer = Producer(
        bootstrap_servers="b-1.example.kafka.eu-west-1.amazonaws.com:9098",
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=provider,
    )
    assert producer.config.sasl_oauth_token_provider is provider


def test_repr_names_the_source_never_credentials() -> None:
    with_provider = MskIamTokenProvider("eu-west-1", credentials_provider=StaticCredentials())
    assert repr(with_provider) == "MskIamTokenProvider('eu-west-1', credentials_provider=...)"
    assert repr(MskIamTokenProvider("eu-west-1", profile="orders")) == (
        "MskIamTokenProvider('eu-west-1', profile='orders')"
    )
    assert "default credentials" in repr(MskIamTokenProvider("eu-west-1"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"region": ""}, "needs the cluster's AWS region"),
        ({"region": "eu-west-1", "profile": "a", "role_arn": "r"}, "profile and role_arn"),
        ({"region": "eu-west-1", "sts_session_name": "s"}, "sts_session_name goes with role_arn"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MskIamTokenProvider(**kwargs)


def test_without_the_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncproducer.aws as aws

    def missing(name: str) -> None:
        raise ImportError(name)

    monkeypatch.setattr(aws.importlib, "import_module", missing)
    with pytest.raises(ConfigError, match=r"pip install 'asyncproducer\[aws\]'"):
        MskIamTokenProvider("eu-west-1")
