"""What each config key means, for the configuration reference (docs: configuration.md).

:mod:`asyncproducer.config` holds the keys, their types, defaults and checks;
:mod:`asyncproducer._config_keys` their Java names and ranges. This table adds what the
code cannot say by itself: the section a key belongs to, its unit, and its meaning for
this client (where it differs from Java's, the meaning says so). The reference page is
rendered from all three by :mod:`asyncproducer._config_reference`, and
``tests/unit/test_config_reference.py`` fails when a key of ``ProducerConfig`` is missing
here, or one here is not a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["KEY_DOCS", "SECTIONS", "KeyDoc"]

CLIENT: Final = "Client"
DELIVERY: Final = "Delivery guarantees"
BATCHING: Final = "Batching and memory"
CONNECTIONS: Final = "Connections and metadata"
PLUGGABLE: Final = "Pluggable parts"
METRICS: Final = "Metrics"
TRANSACTIONS: Final = "Transactions"
SECURITY: Final = "Security"

SECTIONS: Final = (
    CLIENT,
    DELIVERY,
    BATCHING,
    CONNECTIONS,
    PLUGGABLE,
    METRICS,
    TRANSACTIONS,
    SECURITY,
)
"""The sections of the reference, in order: those of the ``ProducerConfig`` dataclass."""


@dataclass(frozen=True, slots=True)
class KeyDoc:
    """One key's documentation.

    ``unit`` is ``"ms"``, ``"bytes"``, ``"records"`` ... or empty. ``allowed`` describes
    the values accepted when the code's tables (int ranges, booleans, codecs, choices) do
    not: the reference derives it from them otherwise. ``java`` notes how the key relates
    to Java's when it is not simply the same setting under the dotted name.
    """

    section: str
    meaning: str
    unit: str = ""
    allowed: str = ""
    java: str = ""


_SECRET = " A secret: it never appears in a repr, a log line or an error message."

KEY_DOCS: Final[dict[str, KeyDoc]] = {
    # ------------------------------------------------------------------ client
    "bootstrap_servers": KeyDoc(
        CLIENT,
        "The brokers to ask for the cluster's metadata first, as `host:port`: one is "
        "enough, several guard against one being down. After the first answer the producer "
        "talks to the brokers the cluster names.",
        allowed="a `'host:port'` string (comma-separated for several) or a list "
        "of them; IPv6 as `[::1]:9092`; each broker listed once",
    ),
    "client_id": KeyDoc(
        CLIENT,
        "The name sent with every request: brokers log it, and quotas and ACLs can name "
        "it. When not given it is `producer-<transactional_id>` for a transactional "
        "producer, else `producer-1`, `producer-2`, ... from a counter for the process, as "
        "in Java.",
        allowed="a str",
    ),
    # ------------------------------------------------------------------ delivery
    "acks": KeyDoc(
        DELIVERY,
        "How many replicas must have written a record before the broker acknowledges it: "
        "`0` none (the record is complete once sent, its offset -1), `1` the leader, "
        "`'all'` (stored as -1) every in-sync replica. Idempotence and transactions need "
        "`'all'`.",
    ),
    "enable_idempotence": KeyDoc(
        DELIVERY,
        "A producer id and per-partition sequence numbers, so that a retried batch is never "
        "written twice and a partition's records stay in order. It needs `acks='all'` and "
        "`retries` >= 1: set explicitly, a conflict raises; left to the default, a conflict "
        "turns idempotence off, as in Java.",
    ),
    "retries": KeyDoc(
        DELIVERY,
        "How many times a batch that failed with a retriable error is sent again. Leave it "
        "at the maximum and bound retrying with `delivery_timeout_ms` instead; `0` turns "
        "idempotence off (or raises if idempotence was asked for).",
        unit="retries",
    ),
    "max_in_flight_requests_per_connection": KeyDoc(
        DELIVERY,
        "Produce requests sent to one broker and not yet answered. With idempotence at most "
        "5 (the broker tracks the last 5 batches of a producer) and order is kept; without "
        "it, only 1 keeps a partition's records in order across retries.",
        unit="requests",
    ),
    "delivery_timeout_ms": KeyDoc(
        DELIVERY,
        "The longest a record may take, from `send()` returning to its success or failure, "
        "retries included; then its future fails with `KafkaTimeoutError`. It must be at "
        "least `linger_ms + request_timeout_ms`: given smaller it raises, left to the "
        "default it is raised to that sum.",
        unit="ms",
    ),
    "request_timeout_ms": KeyDoc(
        DELIVERY,
        "How long the producer waits for the answer to a request before it counts the "
        "request as failed (and retries it, within `delivery_timeout_ms`).",
        unit="ms",
    ),
    "retry_backoff_ms": KeyDoc(
        DELIVERY,
        "The wait before the first retry of a failed request; it doubles with each "
        "failure in a row, with 20 % jitter, up to `retry_backoff_max_ms`.",
        unit="ms",
    ),
    "retry_backoff_max_ms": KeyDoc(
        DELIVERY,
        "The most the retry backoff grows to. At or below `retry_backoff_ms` the backoff is "
        "constant, without jitter, as in Java.",
        unit="ms",
    ),
    # ------------------------------------------------------------------ batching
    "linger_ms": KeyDoc(
        BATCHING,
        "How long a partition's batch waits for more records before it is sent, unless it "
        "fills up first: a little latency bought for fewer, larger requests.",
        unit="ms",
    ),
    "batch_size": KeyDoc(
        BATCHING,
        "The size a partition's batch is sent at. A batch never exceeds it unless a single "
        "record is larger; each new batch reserves this much of `buffer_memory`. `0` "
        "sends each record in a batch of its own.",
        unit="bytes",
    ),
    "buffer_memory": KeyDoc(
        BATCHING,
        "The memory for records waiting to be sent or acknowledged: their batches, plus "
        "320 bytes a record for its bookkeeping. When it is used up, `send()` waits for "
        "room, at most `max_block_ms`, then raises `BufferExhaustedError`.",
        unit="bytes",
    ),
    "max_block_ms": KeyDoc(
        BATCHING,
        "The most `send()` waits, for the topic's metadata and for buffer memory together; "
        "it also bounds each transactional call (`init_transactions()`, commit, abort) and "
        "an asynchronous serializer.",
        unit="ms",
    ),
    "max_request_size": KeyDoc(
        BATCHING,
        "The largest record `send()` accepts (a larger one raises `RecordTooLargeError`), "
        "and the most batch bytes one Produce request carries to a broker.",
        unit="bytes",
    ),
    "compression_type": KeyDoc(
        BATCHING,
        "The codec each batch is compressed with by the producer. `'snappy'` needs the "
        "`snappy` extra (cramjam).",
    ),
    "compression_gzip_level": KeyDoc(
        BATCHING,
        "gzip's level when `compression_type='gzip'`; `-1` is zlib's default (6).",
    ),
    "compression_lz4_level": KeyDoc(
        BATCHING,
        "lz4's level when `compression_type='lz4'`.",
    ),
    "compression_zstd_level": KeyDoc(
        BATCHING,
        "zstd's level when `compression_type='zstd'`; negative levels are zstd's fast ones.",
    ),
    # ------------------------------------------------------------------ connections
    "reconnect_backoff_ms": KeyDoc(
        CONNECTIONS,
        "The wait before connecting again to a broker whose connection failed; it doubles "
        "with each failure in a row, with 20 % jitter, up to `reconnect_backoff_max_ms`. "
        "Given without `reconnect_backoff_max_ms`, the backoff is constant, as in Java.",
        unit="ms",
    ),
    "reconnect_backoff_max_ms": KeyDoc(
        CONNECTIONS,
        "The most the reconnect backoff grows to.",
        unit="ms",
    ),
    "socket_connection_setup_timeout_ms": KeyDoc(
        CONNECTIONS,
        "How long opening a connection to a broker (TCP connect and TLS handshake) may take "
        "before the attempt fails; it doubles after each failed attempt in a row, with 20 % "
        "jitter, up to `socket_connection_setup_timeout_max_ms`.",
        unit="ms",
    ),
    "socket_connection_setup_timeout_max_ms": KeyDoc(
        CONNECTIONS,
        "The most the connection setup timeout grows to.",
        unit="ms",
    ),
    "connections_max_idle_ms": KeyDoc(
        CONNECTIONS,
        "A connection with nothing sent or awaited for this long is closed, and opened "
        "again when needed. A negative value keeps idle connections open.",
        unit="ms",
    ),
    "send_buffer_bytes": KeyDoc(
        CONNECTIONS,
        "The socket's send buffer (`SO_SNDBUF`), set on each connection; `-1` leaves the "
        "operating system's default.",
        unit="bytes",
    ),
    "receive_buffer_bytes": KeyDoc(
        CONNECTIONS,
        "The socket's receive buffer (`SO_RCVBUF`), set on each connection; `-1` leaves the "
        "operating system's default.",
        unit="bytes",
    ),
    "metadata_max_age_ms": KeyDoc(
        CONNECTIONS,
        "The cluster metadata (brokers, partitions, leaders) is refreshed at least this "
        "often, even when no error says it is stale.",
        unit="ms",
    ),
    "metadata_max_idle_ms": KeyDoc(
        CONNECTIONS,
        "A topic not sent to for this long, with no records outstanding, leaves the "
        "metadata requests until it is sent to again.",
        unit="ms",
    ),
    "allow_auto_create_topics": KeyDoc(
        CONNECTIONS,
        "Whether the producer's metadata requests let the broker create a topic that does "
        "not exist (if the broker's `auto.create.topics.enable` allows it too).",
        java="not a Java producer key (Java's producer always allows it); the consumer's name",
    ),
    "client_dns_lookup": KeyDoc(
        CONNECTIONS,
        "How broker names are resolved. `'use_all_dns_ips'`: every address a name resolves "
        "to is tried in turn until one connects. `'resolve_canonical_bootstrap_servers_only'`"
        ": before the first metadata request, each bootstrap name is replaced by the "
        "canonical names of its addresses (what Kerberos needs behind an alias).",
    ),
    # ------------------------------------------------------------------ pluggable parts
    "partitioner": KeyDoc(
        PLUGGABLE,
        "Chooses the partition of a record sent without `partition=`. `None`: murmur2 of "
        "the key as Java does, and the sticky partition for keyless records. Else "
        "`DefaultPartitioner`, `RoundRobinPartitioner`, `UniformStickyPartitioner` or your "
        "own object with `partition(...)`.",
        allowed="`None`, a partitioner object or class, a callable, or a string naming one "
        "(an import path, or one of the Java client's partitioner class names)",
        java="`partitioner.class`",
    ),
    "partitioner_ignore_keys": KeyDoc(
        PLUGGABLE,
        "Partition keyed records as keyless ones (the sticky partition) instead of by "
        "their key's hash.",
    ),
    "partitioner_adaptive_partitioning_enable": KeyDoc(
        PLUGGABLE,
        "The default partitioner's adaptive partitioning (KIP-794): a keyless record's "
        "next sticky partition is drawn weighted by how short its queue of batches is, "
        "so slower brokers get fewer; `False`: uniformly. Either way the sticky "
        "partition changes after `batch_size` bytes. No effect with another partitioner.",
    ),
    "partitioner_availability_timeout_ms": KeyDoc(
        PLUGGABLE,
        "With adaptive partitioning: a broker that had batches ready but could not take "
        "a request for this long gets no new keyless records until it takes one; `0`: "
        "off. Refused with adaptive partitioning off or another partitioner.",
        unit="ms",
    ),
    "key_serializer": KeyDoc(
        PLUGGABLE,
        "Turns a record's key into bytes. `None` sends bytes-like keys as they are; "
        "`'str'`, `'json'`, a serializer object, a callable (synchronous or asynchronous) "
        "or an import path.",
        allowed="`None`, a serializer object or class, a callable, or a string naming one",
    ),
    "value_serializer": KeyDoc(
        PLUGGABLE,
        "Turns a record's value into bytes, as `key_serializer` does for keys.",
        allowed="`None`, a serializer object or class, a callable, or a string naming one",
    ),
    "interceptors": KeyDoc(
        PLUGGABLE,
        "Objects called on each `send()` (`on_send`, which may replace the record) and on "
        "each acknowledgement or failure (`on_acknowledgement`). One that raises is logged "
        "and skipped, as in Java.",
        allowed="a list of interceptor objects, classes or import paths (or a "
        "comma-separated string of paths); each class or path once",
        java="`interceptor.classes`",
    ),
    # ------------------------------------------------------------------ metrics
    "metrics_num_samples": KeyDoc(
        METRICS,
        "How many sample windows the rates and averages of `producer.metrics()` are computed over.",
        unit="windows",
    ),
    "metrics_sample_window_ms": KeyDoc(
        METRICS,
        "The length of one metrics sample window. Java allows `0`; here a window must have "
        "a length (rates divide by it).",
        unit="ms",
    ),
    "metrics_recording_level": KeyDoc(
        METRICS,
        "Which metrics are recorded. asyncproducer has no DEBUG or TRACE metrics (Java's "
        "per-broker ones) yet, so a finer level, which would change nothing, is refused.",
        allowed="only `'INFO'`",
    ),
    "metric_reporters": KeyDoc(
        METRICS,
        "Objects told of every metric as it is added and removed: `init(metrics)`, "
        "`metric_change(metric)`, `metric_removal(metric)`, `close()` (Java's "
        "`MetricsReporter`).",
        allowed="a list of reporter objects or classes (names of classes are not supported yet)",
        java="`metric.reporters`, which takes class names in Java",
    ),
    # ------------------------------------------------------------------ transactions
    "transactional_id": KeyDoc(
        TRANSACTIONS,
        "Makes the producer transactional: `begin_transaction()`, `commit_transaction()`, "
        "`abort_transaction()`, and a newer producer with the same id fences this one. It "
        "needs idempotence.",
        allowed="`None` or a non-empty str",
    ),
    "transaction_timeout_ms": KeyDoc(
        TRANSACTIONS,
        "How long a transaction may stay open before the coordinator aborts it; the broker "
        "refuses a value above its `transaction.max.timeout.ms`.",
        unit="ms",
    ),
    # ------------------------------------------------------------------ security
    "security_protocol": KeyDoc(
        SECURITY,
        "How connections are secured: TLS (`SSL`), SASL authentication (`SASL_PLAINTEXT`), "
        "both (`SASL_SSL`) or neither. `ssl_*` keys act only with `SSL` or `SASL_SSL`, "
        "`sasl_*` keys only with `SASL_*`: given otherwise they are refused.",
    ),
    "ssl_context": KeyDoc(
        SECURITY,
        "An `ssl.SSLContext` of your own, used as given; then no other `ssl_*` key may be set.",
        allowed="`None` or an `ssl.SSLContext`",
        java="none: a Python object",
    ),
    "ssl_truststore_location": KeyDoc(
        SECURITY,
        "A PEM file of the CA certificates to trust. Neither this nor "
        "`ssl_truststore_certificates`: the system's CAs.",
        allowed="`None` or a path",
    ),
    "ssl_truststore_certificates": KeyDoc(
        SECURITY,
        "The CA certificates to trust, as PEM text (instead of `ssl_truststore_location`).",
        allowed="`None` or PEM text",
    ),
    "ssl_truststore_type": KeyDoc(
        SECURITY,
        "The truststore's format. Only PEM is read: convert a JKS or PKCS12 store with "
        "`keytool` and `openssl`.",
        allowed="only `'PEM'` (any case)",
    ),
    "ssl_keystore_location": KeyDoc(
        SECURITY,
        "A PEM file holding the client's certificate chain and private key, for mutual TLS.",
        allowed="`None` or a path",
    ),
    "ssl_keystore_certificate_chain": KeyDoc(
        SECURITY,
        "The client's certificate chain as PEM text; goes with `ssl_keystore_key` (instead "
        "of `ssl_keystore_location`).",
        allowed="`None` or PEM text",
    ),
    "ssl_keystore_key": KeyDoc(
        SECURITY,
        "The client's private key as PEM text; goes with `ssl_keystore_certificate_chain`."
        + _SECRET,
        allowed="`None` or PEM text",
    ),
    "ssl_keystore_type": KeyDoc(
        SECURITY,
        "The keystore's format. Only PEM is read.",
        allowed="only `'PEM'` (any case)",
    ),
    "ssl_key_password": KeyDoc(
        SECURITY,
        "Decrypts the keystore's private key, if it is encrypted." + _SECRET,
        allowed="`None` or a str",
    ),
    "ssl_endpoint_identification_algorithm": KeyDoc(
        SECURITY,
        "`'https'`: the broker's certificate must name the host connected to. `''` turns "
        "the hostname check off (and logs a warning).",
        allowed="`'https'` or `''`",
    ),
    "ssl_enabled_protocols": KeyDoc(
        SECURITY,
        "The TLS versions offered. Older versions are insecure, and Kafka 4.x does not offer them.",
    ),
    "ssl_cipher_suites": KeyDoc(
        SECURITY,
        "The cipher suites allowed for TLS 1.2, by OpenSSL's names; empty: OpenSSL's "
        "defaults. TLS 1.3's suites are not configurable.",
        allowed="a list of OpenSSL cipher names (or a comma-separated string)",
    ),
    "sasl_mechanism": KeyDoc(
        SECURITY,
        "The SASL mechanism, needed with `SASL_PLAINTEXT` and `SASL_SSL`. Java defaults to "
        "GSSAPI; here it is named, not assumed. GSSAPI needs the `gssapi` extra.",
        java="`sasl.mechanism` (Java's default, `GSSAPI`, is not assumed)",
    ),
    "sasl_username": KeyDoc(
        SECURITY,
        "The user for PLAIN and SCRAM.",
        allowed="`None` or a str",
        java="none: Java gives it in `sasl.jaas.config`",
    ),
    "sasl_password": KeyDoc(
        SECURITY,
        "The password for PLAIN and SCRAM." + _SECRET,
        allowed="`None` or a str",
        java="none: Java gives it in `sasl.jaas.config`",
    ),
    "sasl_jaas_config": KeyDoc(
        SECURITY,
        "Java's JAAS line, instead of the keys above: the `PlainLoginModule`, "
        "`ScramLoginModule`, `OAuthBearerLoginModule` (client credentials) and "
        "`Krb5LoginModule` lines are read." + _SECRET,
        allowed="`None` or a JAAS line ending with `;`",
    ),
    "sasl_oauth_token_provider": KeyDoc(
        SECURITY,
        "OAUTHBEARER's tokens: a callable, or an object with a `token()` method, "
        "synchronous or asynchronous, returning an `OAuthBearerToken` or a "
        "`(token, expires_at_ms)` pair; for AWS MSK IAM, `asyncproducer.aws."
        "MskIamTokenProvider`.",
        allowed="`None`, a callable, or an object with a `token()` method",
        java="none: Java plugs a callback handler class in",
    ),
    "sasl_oauthbearer_token_endpoint_url": KeyDoc(
        SECURITY,
        "An OAuth 2 token endpoint (KIP-768): OAUTHBEARER's tokens are fetched from it "
        "with the client credentials below (needs the `oauth` extra).",
        allowed="`None` or a URL",
    ),
    "sasl_oauthbearer_client_id": KeyDoc(
        SECURITY,
        "The OAuth 2 client id sent to `sasl_oauthbearer_token_endpoint_url`.",
        allowed="`None` or a str",
        java="`clientId` in `sasl.jaas.config`'s `OAuthBearerLoginModule` line",
    ),
    "sasl_oauthbearer_client_secret": KeyDoc(
        SECURITY,
        "The OAuth 2 client secret sent to `sasl_oauthbearer_token_endpoint_url`." + _SECRET,
        allowed="`None` or a str",
        java="`clientSecret` in `sasl.jaas.config`'s `OAuthBearerLoginModule` line",
    ),
    "sasl_oauthbearer_scope": KeyDoc(
        SECURITY,
        "The scope asked of the token endpoint; `None`: none.",
        allowed="`None` or a str",
        java="`scope` in `sasl.jaas.config`'s `OAuthBearerLoginModule` line",
    ),
    "sasl_kerberos_service_name": KeyDoc(
        SECURITY,
        "GSSAPI: the first part of the brokers' Kerberos principals (`kafka` for "
        "`kafka/<broker host>@REALM`).",
        allowed="a str without `@`, `/` or spaces",
        java="`sasl.kerberos.service.name` (Java has no default)",
    ),
    "sasl_kerberos_principal": KeyDoc(
        SECURITY,
        "GSSAPI: the principal to log in as, from `sasl_kerberos_keytab`. Neither: the "
        "ticket cache (`kinit`, `$KRB5CCNAME`).",
        allowed="`None` or a str",
        java="librdkafka's name; Java: `principal` in `sasl.jaas.config`'s `Krb5LoginModule` line",
    ),
    "sasl_kerberos_keytab": KeyDoc(
        SECURITY,
        "GSSAPI: the keytab file to log in from; needs `sasl_kerberos_principal`.",
        allowed="`None` or the path of an existing file",
        java="librdkafka's name; Java: `keyTab` in `sasl.jaas.config`'s `Krb5LoginModule` line",
    ),
}
