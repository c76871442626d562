"""The producer's config keys: names in both styles, types, ranges, and unknown-key hints.

Kept apart from :mod:`asyncproducer.config` so the table can be read (and checked against
Java's ``ProducerConfig``) on its own. Ranges are those of Java's ``ConfigDef``; the upper
bound of each int is its Java type's (``INT`` or ``LONG``), because Java could not hold a
larger value and several of them go on the wire as int32.
"""

from __future__ import annotations

import difflib
from typing import Final

from asyncproducer.protocol.compression import CompressionType

INT_MAX: Final = 2**31 - 1
LONG_MAX: Final = 2**63 - 1

# key -> (minimum, maximum). Comments mark where Java's ConfigDef has no validator and we
# require a sane lower bound anyway (a negative timeout means nothing to this client).
INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    "batch_size": (0, INT_MAX),
    "buffer_memory": (0, LONG_MAX),
    "retries": (0, INT_MAX),
    "linger_ms": (0, LONG_MAX),
    "delivery_timeout_ms": (0, INT_MAX),
    "request_timeout_ms": (0, INT_MAX),
    "max_block_ms": (0, LONG_MAX),
    "max_request_size": (0, INT_MAX),
    "max_in_flight_requests_per_connection": (1, INT_MAX),
    "retry_backoff_ms": (0, LONG_MAX),
    "retry_backoff_max_ms": (0, LONG_MAX),
    "reconnect_backoff_ms": (0, LONG_MAX),
    "reconnect_backoff_max_ms": (0, LONG_MAX),
    "socket_connection_setup_timeout_ms": (0, LONG_MAX),  # Java: no validator
    "socket_connection_setup_timeout_max_ms": (0, LONG_MAX),  # Java: no validator
    # Java: no validator; a negative value turns idle-connection closing off (Selector).
    "connections_max_idle_ms": (-1, LONG_MAX),
    # -1 means "leave the OS default" (CommonClientConfigs.SEND/RECEIVE_BUFFER_LOWER_BOUND).
    "send_buffer_bytes": (-1, INT_MAX),
    "receive_buffer_bytes": (-1, INT_MAX),
    "metadata_max_age_ms": (0, LONG_MAX),
    "metadata_max_idle_ms": (5000, LONG_MAX),
    "partitioner_availability_timeout_ms": (0, LONG_MAX),
    "transaction_timeout_ms": (0, INT_MAX),  # Java: no validator; the broker caps it
    "metrics_num_samples": (1, INT_MAX),
    # Java allows 0; here a window must have a length (rates divide by it).
    "metrics_sample_window_ms": (1, LONG_MAX),
}

BOOL_KEYS: Final = frozenset(
    {
        "enable_idempotence",
        "partitioner_ignore_keys",
        "partitioner_adaptive_partitioning_enable",
        "allow_auto_create_topics",
    }
)

# Each codec's level key; Java validates all three whatever compression_type is.
LEVEL_KEYS: Final[dict[str, CompressionType]] = {
    "compression_gzip_level": CompressionType.GZIP,
    "compression_lz4_level": CompressionType.LZ4,
    "compression_zstd_level": CompressionType.ZSTD,
}
LEVEL_KEY_BY_CODEC: Final = {codec: key for key, codec in LEVEL_KEYS.items()}

# Keys whose Java name is not the snake_case name with dots. allow_auto_create_topics has
# no producer key in Java (its producer always lets the broker create topics); the name
# is the consumer's.
_JAVA_NAME_EXCEPTIONS: Final = {
    "partitioner": "partitioner.class",
    "interceptors": "interceptor.classes",
}


def java_name(key: str) -> str:
    """``linger_ms`` -> ``linger.ms``; ``partitioner`` -> ``partitioner.class``."""
    return _JAVA_NAME_EXCEPTIONS.get(key, key.replace("_", "."))


# Java producer keys this client rejects with a reason instead of "unknown key", so that a
# user porting a .properties file learns why the line has to go.
_JVM_ONLY: Final = frozenset(
    {
        "config.providers",
        "enable.metrics.push",
        "security.providers",
    }
)
_NOT_YET: Final = frozenset(
    {
        "metadata.recovery.strategy",
        "metadata.recovery.rebootstrap.trigger.ms",
        "transaction.two.phase.commit.enable",
        # Security keys not implemented yet (the implemented ones are fields).
        "ssl.protocol",
        "ssl.provider",
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.secure.random.implementation",
        "ssl.engine.factory.class",
        "sasl.login.class",
        "sasl.oauthbearer.jwks.endpoint.url",
        "sasl.oauthbearer.expected.audience",
        "sasl.oauthbearer.expected.issuer",
        "sasl.oauthbearer.scope.claim.name",
        "sasl.oauthbearer.sub.claim.name",
        "sasl.oauthbearer.header.urlencode",
        "sasl.oauthbearer.assertion.algorithm",
    }
)
# Java's other sasl.oauthbearer.* keys (JWKS, claim names, ...): this client reads the
# token endpoint ones (fields) and validates nothing itself (the broker does).
_NOT_YET_PREFIXES: Final = ("sasl.login.", "sasl.kerberos.", "sasl.oauthbearer.")
# Java plugs token sources in as classes; here they are Python objects.
_CALLBACK_HANDLER_KEYS: Final = frozenset(
    {"sasl.client.callback.handler.class", "sasl.login.callback.handler.class"}
)
_PEM_ONLY_KEYS: Final = frozenset({"ssl.truststore.password", "ssl.keystore.password"})


def unsupported_reason(java_key: str) -> str | None:
    """Why a known Java producer key is not accepted here, or None if it is not one."""
    if java_key in _JVM_ONLY:
        return "is a Java-client setting with no equivalent in asyncproducer; remove it"
    if java_key in _PEM_ONLY_KEYS:
        return (
            "is for JKS and PKCS12 stores; asyncproducer reads PEM (ssl.truststore.location, "
            "ssl.keystore.location, ssl.key.password): see docs/security.md to convert"
        )
    if java_key in _CALLBACK_HANDLER_KEYS:
        return (
            "names a Java class; give a Python token provider as sasl_oauth_token_provider "
            "instead (for AWS MSK IAM's IAMOAuthBearerLoginCallbackHandler: "
            "asyncproducer.aws.MskIamTokenProvider; see docs/security.md)"
        )
    if java_key in _NOT_YET or java_key.startswith(_NOT_YET_PREFIXES):
        return "is a Java producer setting this version of asyncproducer does not support yet"
    return None


def unknown_key_message(key: str, known: frozenset[str], *, java_style: bool) -> str:
    """The error for a key that is not in ``known``, with the closest known key suggested."""
    as_java = key if java_style else key.replace("_", ".")
    reason = unsupported_reason(as_java)
    if reason is not None:
        return f"config key {key!r} {reason}"
    candidates = sorted(java_name(k) for k in known) if java_style else sorted(known)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    if not java_style and "." in key:
        hint += " (Java-style dotted keys go to ProducerConfig.from_java_properties)"
    elif java_style and "_" in key and "." not in key:
        hint += " (snake_case keys go to ProducerConfig.from_kwargs)"
    return f"unknown config key {key!r}{hint}"
