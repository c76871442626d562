"""ProducerConfig: Java's defaults, validation messages, Java-style keys, Java's cross-key rules."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncproducer import config as config_module
from asyncproducer._config_keys import BOOL_KEYS, INT_MAX, INT_RANGES, LONG_MAX, java_name
from asyncproducer.config import KNOWN_KEYS, ProducerConfig
from asyncproducer.errors import ConfigError
from asyncproducer.protocol.compression import CompressionType

BOOT = "localhost:9092"


def make(**kwargs: Any) -> ProducerConfig:
    return ProducerConfig.from_kwargs(BOOT, **kwargs)


def raises_config_error(*fragments: str) -> Any:
    """pytest.raises(ConfigError) whose message holds every fragment (key, value, allowed)."""
    return pytest.raises(ConfigError, match=".*".join(re.escape(f) for f in fragments))


# --------------------------------------------------------------------------- defaults

# (snake_case key, Java key, Java 4.x default), read off Java's ProducerConfig /
# CommonClientConfigs / CompressionType ConfigDef definitions.
JAVA_DEFAULTS = [
    ("acks", "acks", -1),  # "all"
    ("enable_idempotence", "enable.idempotence", True),
    ("retries", "retries", 2_147_483_647),
    ("max_in_flight_requests_per_connection", "max.in.flight.requests.per.connection", 5),
    ("delivery_timeout_ms", "delivery.timeout.ms", 120_000),
    ("request_timeout_ms", "request.timeout.ms", 30_000),
    ("retry_backoff_ms", "retry.backoff.ms", 100),
    ("retry_backoff_max_ms", "retry.backoff.max.ms", 1_000),
    ("linger_ms", "linger.ms", 5),
    ("batch_size", "batch.size", 16_384),
    ("buffer_memory", "buffer.memory", 33_554_432),
    ("max_block_ms", "max.block.ms", 60_000),
    ("max_request_size", "max.request.size", 1_048_576),
    ("compression_type", "compression.type", CompressionType.NONE),
    ("compression_gzip_level", "compression.gzip.level", -1),
    ("compression_lz4_level", "compression.lz4.level", 9),
    ("compression_zstd_level", "compression.zstd.level", 3),
    ("reconnect_backoff_ms", "reconnect.backoff.ms", 50),
    ("reconnect_backoff_max_ms", "reconnect.backoff.max.ms", 1_000),
    ("socket_connection_setup_timeout_ms", "socket.connection.setup.timeout.ms", 10_000),
    ("socket_connection_setup_timeout_max_ms", "socket.connection.setup.timeout.max.ms", 30_000),
    ("connections_max_idle_ms", "connections.max.idle.ms", 540_000),
    ("send_buffer_bytes", "send.buffer.bytes", 131_072),
    ("receive_buffer_bytes", "receive.buffer.bytes", 32_768),
    ("metadata_max_age_ms", "metadata.max.age.ms", 300_000),
    ("metadata_max_idle_ms", "metadata.max.idle.ms", 300_000),
    ("allow_auto_create_topics", "allow.auto.create.topics", True),  # not a Java producer key
    ("partitioner", "partitioner.class", None),
    ("partitioner_ignore_keys", "partitioner.ignore.keys", False),
    ("partitioner_adaptive_partitioning_enable", "partitioner.adaptive.partitioning.enable", True),
    ("partitioner_availability_timeout_ms", "partitioner.availability.timeout.ms", 0),
    ("key_serializer", "key.serializer", None),
    ("value_serializer", "value.serializer", None),
    ("interceptors", "interceptor.classes", ()),
    ("transactional_id", "transactional.id", None),
    ("transaction_timeout_ms", "transaction.timeout.ms", 60_000),
    ("client_dns_lookup", "client.dns.lookup", "use_all_dns_ips"),
    ("metrics_num_samples", "metrics.num.samples", 2),
    ("metrics_sample_window_ms", "metrics.sample.window.ms", 30_000),
    ("metrics_recording_level", "metrics.recording.level", "INFO"),
    ("metric_reporters", "metric.reporters", ()),  # Java: an empty list
    ("security_protocol", "security.protocol", "PLAINTEXT"),
    ("ssl_context", "ssl.context", None),  # not a Java key: a Python ssl.SSLContext
    ("ssl_truststore_location", "ssl.truststore.location", None),
    ("ssl_truststore_certificates", "ssl.truststore.certificates", None),
    ("ssl_truststore_type", "ssl.truststore.type", "PEM"),  # Java: JKS (not read here)
    ("ssl_keystore_location", "ssl.keystore.location", None),
    ("ssl_keystore_certificate_chain", "ssl.keystore.certificate.chain", None),
    ("ssl_keystore_key", "ssl.keystore.key", None),
    ("ssl_keystore_type", "ssl.keystore.type", "PEM"),  # Java: JKS (not read here)
    ("ssl_key_password", "ssl.key.password", None),
    ("ssl_endpoint_identification_algorithm", "ssl.endpoint.identification.algorithm", "https"),
    ("ssl_enabled_protocols", "ssl.enabled.protocols", ("TLSv1.2", "TLSv1.3")),
    ("ssl_cipher_suites", "ssl.cipher.suites", ()),
    ("sasl_mechanism", "sasl.mechanism", None),  # Java: GSSAPI (not supported here)
    ("sasl_username", "sasl.username", None),  # not Java keys: Java puts these two in
    ("sasl_password", "sasl.password", None),  # sasl.jaas.config
    ("sasl_jaas_config", "sasl.jaas.config", None),
    ("sasl_oauth_token_provider", "sasl.oauth.token.provider", None),  # not a Java key
    ("sasl_oauthbearer_token_endpoint_url", "sasl.oauthbearer.token.endpoint.url", None),
    ("sasl_oauthbearer_client_id", "sasl.oauthbearer.client.id", None),  # Java: JAAS option
    ("sasl_oauthbearer_client_secret", "sasl.oauthbearer.client.secret", None),  # likewise
    ("sasl_oauthbearer_scope", "sasl.oauthbearer.scope", None),  # likewise
    ("sasl_kerberos_service_name", "sasl.kerberos.service.name", "kafka"),  # Java: none
    ("sasl_kerberos_principal", "sasl.kerberos.principal", None),  # librdkafka's keys;
    ("sasl_kerberos_keytab", "sasl.kerberos.keytab", None),  # Java: in sasl.jaas.config
]


@pytest.mark.parametrize(("key", "java_key", "default"), JAVA_DEFAULTS)
def test_defaults_equal_javas(key: str, java_key: str, default: object) -> None:
    config = ProducerConfig(bootstrap_servers=(BOOT,))
    assert getattr(config, key) == default
    assert java_name(key) == java_key


def test_every_key_has_a_default_row() -> None:
    assert {row[0] for row in JAVA_DEFAULTS} | {"bootstrap_servers", "client_id"} == KNOWN_KEYS


def test_default_config_is_idempotent_and_uncompressed() -> None:
    config = make()
    assert config.idempotence_enabled
    assert config.compression_level() is None


# --------------------------------------------------------------------------- client_id


def test_client_id_default_is_producer_n_from_a_process_wide_counter() -> None:
    first, second = make().client_id, make().client_id
    assert re.fullmatch(r"producer-\d+", first)
    assert int(second.split("-")[1]) == int(first.split("-")[1]) + 1


def test_client_id_given_is_kept_even_empty() -> None:
    assert make(client_id="billing").client_id == "billing"
    assert make(client_id="").client_id == ""


def test_client_id_defaults_to_the_transactional_id() -> None:
    assert make(transactional_id="tx-7").client_id == "producer-tx-7"


def test_client_id_must_be_a_str() -> None:
    with raises_config_error("client_id=5", "must be a str"):
        make(client_id=5)


# --------------------------------------------------------------------------- ints


def _allowed(low: int, high: int) -> str:
    return f"must be an int >= {low}" if high == LONG_MAX else f"must be an int in {low}..{high}"


@pytest.mark.parametrize(("key", "bounds"), sorted(INT_RANGES.items()))
def test_int_below_range_names_key_value_and_range(key: str, bounds: tuple[int, int]) -> None:
    low, high = bounds
    with raises_config_error(f"{key}={low - 1}: {_allowed(low, high)}"):
        make(**{key: low - 1})


@pytest.mark.parametrize("key", sorted(k for k, (_, high) in INT_RANGES.items() if high == INT_MAX))
def test_java_int_keys_stop_at_int_max(key: str) -> None:
    low = INT_RANGES[key][0]
    with raises_config_error(f"{key}={INT_MAX + 1}: must be an int in {low}..{INT_MAX}"):
        make(**{key: INT_MAX + 1})


@pytest.mark.parametrize("value", [True, 5.0, "5", None])
def test_int_keys_reject_other_types(value: object) -> None:
    with raises_config_error(
        f"linger_ms={value!r}: must be an int >= 0 (got {type(value).__name__})"
    ):
        make(linger_ms=value)


def test_metadata_max_idle_ms_has_javas_floor_of_5000() -> None:
    assert make(metadata_max_idle_ms=5000).metadata_max_idle_ms == 5000
    with raises_config_error("metadata_max_idle_ms=4999: must be an int >= 5000"):
        make(metadata_max_idle_ms=4999)


@pytest.mark.parametrize(
    "key", ["send_buffer_bytes", "receive_buffer_bytes", "connections_max_idle_ms"]
)
def test_minus_one_means_os_default_or_never(key: str) -> None:
    assert getattr(make(**{key: -1}), key) == -1


# Keys whose value interacts with another key's under Java's rules, and what to give with
# them so that any in-range value is valid on its own.
_COMPANIONS: dict[str, dict[str, Any]] = {
    "delivery_timeout_ms": {"linger_ms": 0, "request_timeout_ms": 0},
    "max_in_flight_requests_per_connection": {"enable_idempotence": False},
}


@given(data=st.data())
def test_any_in_range_int_round_trips(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(INT_RANGES)))
    low, high = INT_RANGES[key]
    value = data.draw(st.integers(low, high))
    config = make(**{key: value}, **_COMPANIONS.get(key, {}))
    assert getattr(config, key) == value


@given(data=st.data())
def test_any_negative_value_for_a_non_negative_key_raises(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(k for k, (low, _) in INT_RANGES.items() if low == 0)))
    value = data.draw(st.integers(max_value=-1))
    with raises_config_error(f"{key}={value}: must be an int"):
        make(**{key: value})


# --------------------------------------------------------------------------- booleans


@pytest.mark.parametrize("key", sorted(BOOL_KEYS))
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_bool_keys_reject_non_bools(key: str, value: object) -> None:
    with raises_config_error(f"{key}={value!r}: must be True or False"):
        make(**{key: value})


# --------------------------------------------------------------------------- acks


@pytest.mark.parametrize(
    ("given_acks", "stored"),
    [
        ("all", -1),
        ("ALL", -1),
        (" all ", -1),
        ("-1", -1),
        (-1, -1),
        (0, 0),
        ("0", 0),
        (1, 1),
        ("1", 1),
    ],
)
def test_acks_normalized_to_int(given_acks: object, stored: int) -> None:
    assert make(acks=given_acks).acks == stored


@pytest.mark.parametrize("value", [2, -2, "2", "none", True, 1.0, None])
def test_acks_rejects_anything_else(value: object) -> None:
    with raises_config_error(f"acks={value!r}: must be 'all' (same as -1), 0 or 1"):
        make(acks=value)


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize(
    ("given_type", "stored"),
    [
        ("gzip", CompressionType.GZIP),
        ("ZSTD", CompressionType.ZSTD),
        (" Lz4 ", CompressionType.LZ4),
        ("snappy", CompressionType.SNAPPY),
        ("none", CompressionType.NONE),
        (CompressionType.ZSTD, CompressionType.ZSTD),
    ],
)
def test_compression_type_accepts_names_and_the_enum(
    given_type: object, stored: CompressionType
) -> None:
    assert make(compression_type=given_type).compression_type is stored


@pytest.mark.parametrize("value", ["brotli", "", 1, None])
def test_compression_type_rejects_unknown_codecs(value: object) -> None:
    with raises_config_error(f"compression_type={value!r}: must be one of 'none', 'gzip'"):
        make(compression_type=value)


@pytest.mark.parametrize(
    ("codec", "key", "level"),
    [
        ("gzip", "compression_gzip_level", 9),
        ("lz4", "compression_lz4_level", 17),
        ("zstd", "compression_zstd_level", -5),
    ],
)
def test_compression_level_is_the_chosen_codecs(codec: str, key: str, level: int) -> None:
    assert make(compression_type=codec, **{key: level}).compression_level() == level


def test_compression_level_defaults_and_codecs_without_levels() -> None:
    assert make(compression_type="gzip").compression_level() == -1
    assert make(compression_type="lz4").compression_level() == 9
    assert make(compression_type="zstd").compression_level() == 3
    assert make(compression_type="snappy", compression_zstd_level=5).compression_level() is None


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("compression_gzip_level", 10, "1..9 or -1"),
        ("compression_gzip_level", 0, "1..9 or -1"),
        ("compression_lz4_level", 18, "1..17"),
        ("compression_zstd_level", 23, "-131072..22"),
    ],
)
def test_compression_levels_validated_whatever_the_codec(
    key: str, value: int, allowed: str
) -> None:
    # As in Java, every level key is checked, not only the chosen codec's.
    with raises_config_error(f"{key}={value}:", allowed):
        make(**{key: value})


def test_compression_level_rejects_non_ints() -> None:
    with raises_config_error("compression_zstd_level='3': must be an int (got str)"):
        make(compression_zstd_level="3")


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("lingr_ms", "linger_ms"),
        ("batchsize", "batch_size"),
        ("ack", "acks"),
        ("enable_idempotency", "enable_idempotence"),
    ],
)
def test_unknown_snake_key_suggests_the_closest(key: str, suggestion: str) -> None:
    with raises_config_error(f"unknown config key {key!r}; did you mean {suggestion}?"):
        make(**{key: 1})


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("linger.msx", "linger.ms"),
        ("batch.sise", "batch.size"),
        ("partitioner.clas", "partitioner.class"),
        ("interceptor.class", "interceptor.classes"),
    ],
)
def test_unknown_java_key_suggests_the_closest(key: str, suggestion: str) -> None:
    with raises_config_error(f"unknown config key {key!r}; did you mean {suggestion}?"):
        ProducerConfig.from_java_properties({"bootstrap.servers": BOOT, key: "1"})


def test_key_in_the_wrong_style_points_at_the_other_constructor() -> None:
    with raises_config_error("'linger.ms'; did you mean linger_ms?", "from_java_properties"):
        make(**{"linger.ms": 5})
    with raises_config_error("'linger_ms'; did you mean linger.ms?", "from_kwargs"):
        ProducerConfig.from_java_properties({"bootstrap.servers": BOOT, "linger_ms": "5"})


def test_unknown_key_without_a_close_match() -> None:
    with pytest.raises(ConfigError, match=r"^unknown config key 'zzzz'$"):
        make(zzzz=1)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("enable.metrics.push", "no equivalent"),
        ("ssl.protocol", "does not support yet"),
        ("sasl.login.class", "does not support yet"),
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "does not support yet"),
        ("sasl.oauthbearer.jwt.retriever.class", "does not support yet"),
        ("sasl.login.callback.handler.class", "asyncproducer.aws.MskIamTokenProvider"),
        ("ssl.truststore.password", "asyncproducer reads PEM"),
    ],
)
def test_known_java_keys_we_do_not_support_say_why(key: str, reason: str) -> None:
    with raises_config_error(f"config key {key!r}", reason):
        ProducerConfig.from_java_properties({"bootstrap.servers": BOOT, key: "x"})
    snake = key.replace(".", "_")
    with raises_config_error(f"config key {snake!r}", reason):
        make(**{snake: "x"})


def test_unknown_key_error_never_shows_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        make(sasl_pasword="hunter2")
    assert "hunter2" not in str(caught.value)


# --------------------------------------------------------------------------- Java properties


def test_from_java_properties_converts_strings_like_a_properties_file() -> None:
    config = ProducerConfig.from_java_properties(
        {
            "bootstrap.servers": " a:1, b:2 ",
            "linger.ms": " 10 ",
            "batch.size": "+32768",
            "acks": "all",
            "enable.idempotence": "TRUE",
            "partitioner.ignore.keys": "true",
            "compression.type": "zstd",
            "compression.zstd.level": "-3",
            "client.id": " billing ",
            "interceptor.classes": "app.A, app.B",
            "key.serializer": "app.KeySerializer",
        }
    )
    assert config.bootstrap_servers == ("a:1", "b:2")
    assert (config.linger_ms, config.batch_size, config.acks) == (10, 32768, -1)
    assert config.enable_idempotence
    assert config.partitioner_ignore_keys
    assert config.compression_level() == -3
    assert config.client_id == "billing"  # Java trims strings
    assert config.interceptors == ("app.A", "app.B")
    assert config.key_serializer == "app.KeySerializer"


def test_from_java_properties_accepts_native_values() -> None:
    config = ProducerConfig.from_java_properties(
        {"bootstrap.servers": [BOOT], "linger.ms": 7, "enable.idempotence": False, "acks": 1}
    )
    assert (config.linger_ms, config.enable_idempotence, config.acks) == (7, False, 1)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("linger.ms", "abc", "linger.ms='abc': must be an int >= 0 (got str)"),
        ("linger.ms", "1_000", "linger.ms='1_000': must be an int >= 0"),
        ("linger.ms", "1.5", "linger.ms='1.5': must be an int >= 0"),
        ("linger.ms", "-1", "linger.ms=-1: must be an int >= 0"),
        ("batch.size", "-1", "batch.size=-1: must be an int in 0..2147483647"),
        ("enable.idempotence", "yes", "enable.idempotence='yes': must be true or false"),
        ("acks", "2", "acks='2': must be 'all' (same as -1), 0 or 1"),
    ],
)
def test_from_java_properties_errors_use_java_names(key: str, value: str, message: str) -> None:
    with raises_config_error(message):
        ProducerConfig.from_java_properties({"bootstrap.servers": BOOT, key: value})


def test_from_java_properties_needs_bootstrap_servers_and_a_mapping() -> None:
    with raises_config_error("bootstrap.servers is required"):
        ProducerConfig.from_java_properties({"linger.ms": "5"})
    with raises_config_error("properties must be a mapping"):
        ProducerConfig.from_java_properties([("bootstrap.servers", BOOT)])  # type: ignore[arg-type]
    with raises_config_error("unknown config key '5'"):
        ProducerConfig.from_java_properties({"bootstrap.servers": BOOT, 5: "x"})  # type: ignore[dict-item]


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("a:1", ("a:1",)),
        ("a:1, b:2,", ("a:1", "b:2")),
        (["a:1", " [::1]:9092 "], ("a:1", "[::1]:9092")),
        (("a:1",), ("a:1",)),
    ],
)
def test_bootstrap_servers_forms(value: object, stored: tuple[str, ...]) -> None:
    assert ProducerConfig.from_kwargs(value).bootstrap_servers == stored  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "bootstrap_servers=''"),
        ([], "bootstrap_servers=[]"),
        (9092, "bootstrap_servers=9092: must be 'host:port'"),
        (b"a:1", "bootstrap_servers=b'a:1': must be 'host:port'"),
        (["a:1", 2], "bootstrap_servers=['a:1', 2]: must be 'host:port'"),
        ("localhost", "'localhost' is not 'host:port'"),
        ("a:99999", "port in 1..65535"),
        ("a:1,A:1", "'A:1' is listed twice"),
    ],
)
def test_bootstrap_servers_rejected(value: object, fragment: str) -> None:
    with raises_config_error(fragment):
        ProducerConfig.from_kwargs(value)  # type: ignore[arg-type]


def test_bootstrap_servers_is_required_in_the_constructor() -> None:
    with raises_config_error("bootstrap_servers is required"):
        ProducerConfig()  # type: ignore[call-arg]


# --------------------------------------------------------------------------- idempotence


@pytest.mark.parametrize("conflict", [{"acks": 1}, {"acks": "0"}, {"retries": 0}])
def test_implicit_idempotence_is_silently_disabled_by_a_conflict(
    conflict: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="asyncproducer.config"):
        config = make(**conflict)
    assert config.enable_idempotence is True  # what was configured (the default)
    assert config.idempotence_enabled is False  # what Java does with it
    assert "idempotence disabled" in caplog.text


@pytest.mark.parametrize(
    ("conflict", "fragment"),
    [({"acks": 1}, "acks=1"), ({"acks": "0"}, "acks=0"), ({"retries": 0}, "retries=0")],
)
def test_explicit_idempotence_with_a_conflict_raises(
    conflict: dict[str, Any], fragment: str
) -> None:
    with raises_config_error(
        "enable_idempotence=True conflicts with", fragment, "needs acks='all' and retries >= 1"
    ):
        make(enable_idempotence=True, **conflict)


def test_explicit_idempotence_conflict_through_java_properties() -> None:
    with raises_config_error("enable.idempotence=True conflicts with acks=1"):
        ProducerConfig.from_java_properties(
            {"bootstrap.servers": BOOT, "enable.idempotence": "true", "acks": "1"}
        )


def test_explicit_idempotence_conflict_through_the_constructor() -> None:
    with raises_config_error("enable_idempotence=True conflicts with acks=1"):
        ProducerConfig(bootstrap_servers=(BOOT,), acks=1, enable_idempotence=True)


@pytest.mark.parametrize("explicit", [{}, {"enable_idempotence": True}, {"acks": 1}])
def test_more_than_five_in_flight_with_idempotence_raises(explicit: dict[str, Any]) -> None:
    # Kafka 4.0 made this an error whether or not idempotence was given explicitly.
    with raises_config_error(
        "max_in_flight_requests_per_connection=6: must be <= 5 while idempotence is on",
        "enable_idempotence=False",
    ):
        make(max_in_flight_requests_per_connection=6, **explicit)


def test_more_than_five_in_flight_without_idempotence() -> None:
    config = make(max_in_flight_requests_per_connection=6, enable_idempotence=False)
    assert config.max_in_flight_requests_per_connection == 6
    assert not config.idempotence_enabled


def test_idempotence_disabled_explicitly() -> None:
    config = make(enable_idempotence=False, acks=1, retries=0)
    assert not config.idempotence_enabled


# --------------------------------------------------------------------------- transactions


def test_transactional_id_needs_idempotence_explicitly_off() -> None:
    with raises_config_error(
        "transactional_id='tx': transactions need idempotence, but enable_idempotence=False"
    ):
        make(transactional_id="tx", enable_idempotence=False)


def test_transactional_id_needs_idempotence_implicitly_off() -> None:
    # Java checks the effective value: an implicit disable also rules transactions out.
    with raises_config_error("transactional_id='tx'", "idempotence is off because of acks=1"):
        make(transactional_id="tx", acks=1)


def test_transactional_producer_with_defaults() -> None:
    config = make(transactional_id="tx", transaction_timeout_ms=30_000)
    assert config.idempotence_enabled
    assert config.transaction_timeout_ms == 30_000


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("", "must be None or a non-empty str"), ("  ", "non-empty"), (7, "got int")],
)
def test_transactional_id_must_be_a_non_empty_str(value: object, fragment: str) -> None:
    with raises_config_error(f"transactional_id={value!r}:", fragment):
        make(transactional_id=value)


# --------------------------------------------------------------------------- delivery timeout


def test_delivery_timeout_given_below_linger_plus_request_timeout_raises() -> None:
    with raises_config_error(
        "delivery_timeout_ms=30000: must be >= linger_ms + request_timeout_ms = 5 + 30000 = 30005"
    ):
        make(delivery_timeout_ms=30_000)


def test_delivery_timeout_default_is_raised_to_the_sum() -> None:
    # Java raises the default (with a warning) instead of failing when it was not given.
    config = make(request_timeout_ms=200_000, linger_ms=100)
    assert config.delivery_timeout_ms == 200_100


def test_delivery_timeout_sum_is_capped_at_int_max() -> None:
    config = make(linger_ms=LONG_MAX, request_timeout_ms=INT_MAX)
    assert config.delivery_timeout_ms == INT_MAX


def test_delivery_timeout_equal_to_the_sum_is_fine() -> None:
    assert make(delivery_timeout_ms=30_005).delivery_timeout_ms == 30_005


def test_delivery_timeout_conflict_through_java_properties_uses_java_names() -> None:
    with raises_config_error("delivery.timeout.ms=10: must be >= linger.ms + request.timeout.ms"):
        ProducerConfig.from_java_properties(
            {"bootstrap.servers": BOOT, "delivery.timeout.ms": "10"}
        )


# --------------------------------------------------------------------------- reconnect backoff


def test_reconnect_backoff_given_alone_disables_exponential_backoff() -> None:
    config = make(reconnect_backoff_ms=2_000)
    assert config.reconnect_backoff_max_ms == 2_000


def test_reconnect_backoff_max_given_is_kept() -> None:
    config = make(reconnect_backoff_ms=200, reconnect_backoff_max_ms=5_000)
    assert (config.reconnect_backoff_ms, config.reconnect_backoff_max_ms) == (200, 5_000)


# --------------------------------------------------------------------------- pluggable parts


class _Partitioner:
    def partition(self, *args: object) -> int:
        return 0


class _Serializer:
    def serialize(self, value: object) -> bytes:
        return b""


class _Interceptor:
    def on_send(self, record: object) -> object:
        return record


class _AckOnlyInterceptor:
    def on_acknowledgement(self, metadata: object, error: object) -> None:
        pass


@pytest.mark.parametrize(
    "value", ["app.partitioners:Mine", _Partitioner, _Partitioner(), lambda *a: 0]
)
def test_partitioner_stored_as_given(value: object) -> None:
    assert make(partitioner=value).partitioner is value


@pytest.mark.parametrize("value", [3, b"x", "", [1], object()])
def test_partitioner_rejects_obviously_wrong_values(value: object) -> None:
    with raises_config_error(f"partitioner={value!r}: must be None", "partition() method"):
        make(partitioner=value)


@pytest.mark.parametrize("key", ["key_serializer", "value_serializer"])
def test_serializers(key: str) -> None:
    for value in (str.encode, _Serializer, _Serializer(), "app.serde:Json", None):
        assert getattr(make(**{key: value}), key) is value
    with raises_config_error(f"{key}=42: must be None", "serialize() method"):
        make(**{key: 42})


def test_interceptors_forms() -> None:
    mine, ack_only = _Interceptor(), _AckOnlyInterceptor()
    assert make(interceptors=[mine, ack_only, _Interceptor, "app.X"]).interceptors == (
        mine,
        ack_only,
        _Interceptor,
        "app.X",
    )
    assert make(interceptors="app.A, app.B").interceptors == ("app.A", "app.B")
    assert make(interceptors=None).interceptors == ()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (_Interceptor(), "must be a list of interceptors (wrap a single one in a list)"),
        (5, "interceptors=5: must be a list"),
        ([1], "interceptors[0]=1: must be an object with at least one of on_send"),
        (["app.A", object()], "interceptors[1]=<object object"),
        (["app.A", "app.A"], "interceptors[1]='app.A': is listed twice"),
        ([""], "interceptors[0]='': must be a non-empty string"),
    ],
)
def test_interceptors_rejected(value: object, fragment: str) -> None:
    with raises_config_error(fragment):
        make(interceptors=value)


# --------------------------------------------------------------------------- the dataclass


def test_frozen_and_slotted() -> None:
    config = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.linger_ms = 10  # type: ignore[misc]
    assert not hasattr(config, "__dict__")


def test_replace_builds_a_checked_config() -> None:
    config = dataclasses.replace(make(client_id="c"), linger_ms=50)
    assert (config.linger_ms, config.client_id) == (50, "c")
    with raises_config_error("linger_ms=-1"):
        dataclasses.replace(config, linger_ms=-1)


def test_equal_configs_compare_and_hash_equal() -> None:
    assert make(client_id="c", linger_ms=1) == make(client_id="c", linger_ms=1)
    assert hash(make(client_id="c")) == hash(make(client_id="c"))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _ConfigWithCredentials(ProducerConfig):
    """Stands in for credential settings a later release adds."""

    oauth_client_secret: str | None = None


def test_repr_hides_fields_named_password_or_secret() -> None:
    config = _ConfigWithCredentials(
        bootstrap_servers=(BOOT,),
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="alice",
        sasl_password="hunter2",
        oauth_client_secret="s3cr3t",
    )
    text = repr(config)
    assert "hunter2" not in text
    assert "s3cr3t" not in text
    assert "sasl_password='***'" in text
    assert "oauth_client_secret='***'" in text
    assert "sasl_username='alice'" in text
    assert "linger_ms=5" in text
    assert "sasl_password=None" in repr(_ConfigWithCredentials(bootstrap_servers=(BOOT,)))


def test_error_messages_hide_credential_values() -> None:
    error = config_module._bad("sasl.jaas.password", "hunter2", "must be a str")
    assert "hunter2" not in str(error)
    assert str(error) == "sasl.jaas.password='***': must be a str"


def test_subclass_without_tracking_infers_given_keys_from_non_defaults() -> None:
    # A subclass's own __init__ is not wrapped: a value different from the default counts
    # as given, so a conflicting acks still disables idempotence implicitly.
    config = _ConfigWithCredentials(bootstrap_servers=(BOOT,), acks=1)
    assert not config.idempotence_enabled
    with raises_config_error("enable_idempotence=False"):
        _ConfigWithCredentials(
            bootstrap_servers=(BOOT,), transactional_id="t", enable_idempotence=False
        )


def test_known_keys_are_the_fields() -> None:
    assert {f.name for f in dataclasses.fields(ProducerConfig)} == KNOWN_KEYS
    assert "linger_ms" in KNOWN_KEYS
    assert "bootstrap_servers" in KNOWN_KEYS


class _Reporter:
    def init(self, metrics: object) -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_dns_lookup": "default"}, "must be 'use_all_dns_ips'.* or 'resolve_canon"),
        ({"metrics_recording_level": "DEBUG"}, "has no DEBUG or TRACE metrics"),
        ({"metrics_recording_level": "info"}, "must be 'INFO'"),
        ({"metrics_num_samples": 0}, "metrics_num_samples"),
        ({"metrics_sample_window_ms": 0}, "metrics_sample_window_ms"),
        ({"metric_reporters": "my.Reporter"}, "names of classes are not supported yet"),
        ({"metric_reporters": [object()]}, r"metric_reporters\[0\]"),
    ],
)
def test_keys_refuse_values_that_would_not_act(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**kwargs)


def test_metric_reporters_take_objects_and_classes() -> None:
    reporter = _Reporter()
    assert make(metric_reporters=[reporter, _Reporter]).metric_reporters == (reporter, _Reporter)


def test_an_availability_timeout_needs_adaptive_partitioning() -> None:
    assert (
        make(partitioner_availability_timeout_ms=1_000).partitioner_availability_timeout_ms == 1_000
    )
    with pytest.raises(
        ConfigError,
        match=r"partitioner_availability_timeout_ms=1000: acts only with adaptive partitioning",
    ):
        make(
            partitioner_availability_timeout_ms=1_000,
            partitioner_adaptive_partitioning_enable=False,
        )
    with pytest.raises(ConfigError, match=r"partitioner\.availability\.timeout\.ms"):
        ProducerConfig.from_java_properties(
            {
                "bootstrap.servers": BOOT,
                "partitioner.availability.timeout.ms": "1000",
                "partitioner.adaptive.partitioning.enable": "false",
            }
        )
