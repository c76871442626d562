"""AWS MSK IAM authentication: OAUTHBEARER tokens signed with AWS credentials.

Amazon MSK's IAM access control takes, as an OAUTHBEARER token, a SigV4-presigned
``kafka-cluster:Connect`` URL. AWS's own ``aws-msk-iam-sasl-signer-python`` makes it (the
``aws`` extra: ``pip install 'asyncproducer[aws]'``); :class:`MskIamTokenProvider` wraps
it as a ``sasl_oauth_token_provider``::

    Producer(
        bootstrap_servers="b-1.mycluster.abc123.c2.kafka.eu-west-1.amazonaws.com:9098",
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=MskIamTokenProvider("eu-west-1"),
    )

The signer's calls block (botocore may read files, or call STS to assume a role), so the
producer runs them in a worker thread, like every synchronous token provider. A token
lives 15 minutes; the producer asks for a new one after 80 % of that, and connections
re-authenticate before their session ends (KIP-368). Certificate checking stays on: MSK's
brokers have publicly trusted certificates, so the system CAs verify them.
"""

from __future__ import annotations

import importlib
from typing import Any

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl import OAuthBearerToken

__all__ = ["MskIamTokenProvider"]

_SIGNER_MODULE = "aws_msk_iam_sasl_signer.MSKAuthTokenProvider"


class MskIamTokenProvider:
    """A synchronous token provider for MSK IAM, on AWS's signer.

    Credentials come from one of (at most one may be given):

    - nothing: botocore's default chain (environment, shared files, container or
      instance role), as ``generate_auth_token``;
    - ``profile``: a named profile from the shared AWS files;
    - ``role_arn``: a role assumed through STS (``sts_session_name`` names the session);
    - ``credentials_provider``: a ``botocore.credentials.CredentialProvider`` of yours.
    """

    def __init__(
        self,
        region: str,
        *,
        profile: str | None = None,
        role_arn: str | None = None,
        sts_session_name: str | None = None,
        credentials_provider: Any = None,
    ) -> None:
        if not isinstance(region, str) or not region:
            raise ConfigError(
                "MskIamTokenProvider needs the cluster's AWS region, e.g. 'us-east-1'"
            )
        sources = [
            name
            for name, value in (
                ("profile", profile),
                ("role_arn", role_arn),
                ("credentials_provider", credentials_provider),
            )
            if value is not None
        ]
        if len(sources) > 1:
            raise ConfigError(
                f"MskIamTokenProvider takes one source of credentials, got {' and '.join(sources)}"
            )
        if sts_session_name is not None and role_arn is None:
            raise ConfigError("MskIamTokenProvider: sts_session_name goes with role_arn")
        self.region = region
        self.profile = profile
        self.role_arn = role_arn
        self.sts_session_name = sts_session_name
        self._credentials_provider = credentials_provider
        self._signer = _load_signer()  # fail at construction, not at the first connection

    def __repr__(self) -> str:
        source = (
            f"profile={self.profile!r}"
            if self.profile is not None
            else f"role_arn={self.role_arn!r}"
            if self.role_arn is not None
            else "credentials_provider=..."
            if self._credentials_provider is not None
            else "default credentials"
        )
        return f"MskIamTokenProvider({self.region!r}, {source})"

    def token(self) -> OAuthBearerToken:
        """A freshly signed token (blocking: the producer calls it in a worker thread)."""
        signer, region = self._signer, self.region
        if self.profile is not None:
            value, expires_ms = signer.generate_auth_token_from_profile(region, self.profile)
        elif self.role_arn is not None:
            extra = () if self.sts_session_name is None else (self.sts_session_name,)
            value, expires_ms = signer.generate_auth_token_from_role_arn(
                region, self.role_arn, *extra
            )
        elif self._credentials_provider is not None:
            value, expires_ms = signer.generate_auth_token_from_credentials_provider(
                region, self._credentials_provider
            )
        else:
            value, expires_ms = signer.generate_auth_token(region)
        # The signer's expiry is its signing time + the presigned URL's lifetime.
        lifetime_s = signer.DEFAULT_TOKEN_EXPIRY_SECONDS
        return OAuthBearerToken(
            value, int(expires_ms), start_time_ms=int(expires_ms) - lifetime_s * 1000
        )


def _load_signer() -> Any:
    try:
        return importlib.import_module(_SIGNER_MODULE)
    except ImportError:
        raise ConfigError(
            "MskIamTokenProvider needs AWS's signer, aws-msk-iam-sasl-signer-python: "
            "pip install 'asyncproducer[aws]'"
        ) from None
