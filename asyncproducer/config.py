"""Producer configuration: every setting, with Java's names (in snake_case), units and defaults.

Build one with :meth:`ProducerConfig.from_kwargs` (``linger_ms=5``), with
:meth:`ProducerConfig.from_java_properties` (``{"linger.ms": "5"}``, as in a Java
``.properties`` file) or directly (``ProducerConfig(bootstrap_servers="host:9092")``).
Everything is checked at construction: a bad value raises :class:`ConfigError` naming the
key, the value and what is allowed.

Defaults are those of the Java producer in Apache Kafka 4.x. Two keys differ in name from
Java's: ``partitioner`` (``partitioner.class``) and ``interceptors``
(``interceptor.classes``); they take Python objects, classes or names, which the
partitioner, serializer and interceptor modules resolve.
``allow_auto_create_topics`` has no Java producer key (Java's producer always lets the
broker create a topic on a metadata request); it borrows the consumer's name.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import MISSING, dataclass, fields
from typing import Any

from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer._config_keys import (
    BOOL_KEYS,
    INT_MAX,
    INT_RANGES,
    LEVEL_KEY_BY_CODEC,
    LEVEL_KEYS,
    LONG_MAX,
    java_name,
    unknown_key_message,
)
from asyncproducer._config_security import check_security, is_secret
from asyncproducer.errors import ConfigError
from asyncproducer.protocol.compression import CompressionType, validate_level

__all__ = ["KNOWN_KEYS", "ProducerConfig"]

logger: logging.Logger = logging.getLogger("asyncproducer.config")

# Java's MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE: the broker keeps sequence
# state for the last 5 batches of each producer (ProducerStateEntry.NUM_BATCHES_TO_RETAIN).
_MAX_IN_FLIGHT_FOR_IDEMPOTENCE = 5
_JAVA_INT = re.compile(r"[+-]?[0-9]+")

# Construction context, read by __post_init__ (the dataclass __init__ cannot pass it):
# which keys the caller gave (Java's rules depend on it), and whether errors should name
# keys in Java's dotted style.
_GIVEN: ContextVar[frozenset[str] | None] = ContextVar("_GIVEN", default=None)
_JAVA_STYLE: ContextVar[bool] = ContextVar("_JAVA_STYLE", default=False)

# Java's PRODUCER_CLIENT_ID_SEQUENCE: process-wide, starting at 1.
_client_id_sequence = itertools.count(1)
_client_id_lock = threading.Lock()


def _next_client_id_number() -> int:
    with _client_id_lock:
        return next(_client_id_sequence)


def _shown(key: str, value: object) -> str:
    """``repr(value)``, unless the key holds a credential: those never reach a message."""
    if value is not None and is_secret(key):
        return "'***'"
    return repr(value)


def _bad(label: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"{label}={_shown(label, value)}: {allowed}")


# --------------------------------------------------------------------------- checks


def _check_int(label: str, value: object, low: int, high: int) -> int:
    allowed = f"must be an int >= {low}" if high == LONG_MAX else f"must be an int in {low}..{high}"
    # bool is an int subclass, and a float would silently truncate: reject both.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(label, value, f"{allowed} (got {type(value).__name__})")
    if not low <= value <= high:
        raise _bad(label, value, allowed)
    return value


def _check_bool(label: str, value: object) -> bool:
    if not isinstance(value, bool):
        # A dotted label means Java-style input, where booleans are written true/false.
        allowed = "true or false" if "." in label else "True or False"
        raise _bad(label, value, f"must be {allowed} (got {type(value).__name__})")
    return value


def _check_level(label: str, value: object, codec: CompressionType) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(label, value, f"must be an int (got {type(value).__name__})")
    try:
        validate_level(codec, value)
    except ValueError as exc:
        raise _bad(label, value, str(exc)) from None
    return value


def _check_acks(label: str, value: object) -> int:
    # Java accepts the strings "all", "-1", "0", "1"; ints are the Python-native spelling.
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return -1
        if text in ("-1", "0", "1"):
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value in (-1, 0, 1):
        return value
    raise _bad(label, value, "must be 'all' (same as -1), 0 or 1 (int or string)")


def _check_compression(label: str, value: object) -> CompressionType:
    if isinstance(value, CompressionType):
        return value
    if isinstance(value, str):
        try:
            return CompressionType.from_name(value)
        except ValueError:
            pass
    names = ", ".join(repr(c.name.lower()) for c in CompressionType)
    raise _bad(label, value, f"must be one of {names} (any case) or a CompressionType")


def _check_bootstrap(label: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = list(value)
    else:
        items = []
    if not items or not all(isinstance(item, str) for item in items):
        raise _bad(label, value, "must be 'host:port' (comma-separated for several) or a list")
    entries = tuple(str(item).strip() for item in items if str(item).strip())
    if not entries:
        raise _bad(label, value, "give at least one 'host:port' (comma-separated, or a list)")
    addresses = parse_bootstrap_servers(entries)
    seen: set[tuple[str, int]] = set()
    for entry, address in zip(entries, addresses, strict=True):
        where = (address.host.lower(), address.port)
        if where in seen:
            # Java's ValidList.anyNonDuplicateValues rejects duplicates too.
            raise _bad(label, value, f"{entry!r} is listed twice; list each broker once")
        seen.add(where)
    return entries


def _check_text(label: str, value: object, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "None or a non-empty str" if optional else "a str"
        raise _bad(label, value, f"must be {kind} (got {type(value).__name__})")
    if optional and not value.strip():
        # Java's ConfigDef.NonEmptyString for transactional.id.
        raise _bad(label, value, "must be None or a non-empty str")
    return value


# Values that are never a plugin, even though some have a method of the right name
# (bytes.partition, for one).
_NOT_PLUGINS = (bytes, bytearray, memoryview, int, float, complex)


# The hooks asyncproducer.interceptors looks for; an interceptor needs at least one.
_INTERCEPTOR_HOOKS = ("on_send", "on_acknowledgement", "close", "configure")


def _is_plugin(value: object, methods: tuple[str, ...], *, allow_callable: bool = True) -> bool:
    if isinstance(value, _NOT_PLUGINS):
        return False
    return (
        isinstance(value, type)
        or (allow_callable and callable(value))
        or any(callable(getattr(value, method, None)) for method in methods)
    )


def _check_plugin(label: str, value: object, method: str, default: str) -> object | None:
    """Store partitioners and serializers as given; a later module resolves them.

    Only what can never work is rejected here: the resolver decides what a string names
    and whether a class or callable fits.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip():
            return value.strip()
    elif _is_plugin(value, (method,)):
        return value
    raise _bad(
        label,
        value,
        f"must be None ({default}), an object or class with a {method}() method, "
        "a callable, or a non-empty string naming one",
    )


def _check_interceptors(label: str, value: object) -> tuple[object, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # Java's LIST type: a comma-separated string.
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, Sequence) or isinstance(value, bytes | bytearray):
        raise _bad(label, value, "must be a list of interceptors (wrap a single one in a list)")
    items = tuple(value)
    seen: list[object] = []
    for index, item in enumerate(items):
        item_label = f"{label}[{index}]"
        if isinstance(item, str):
            if not item.strip():
                raise _bad(item_label, item, "must be a non-empty string naming an interceptor")
        elif not _is_plugin(item, _INTERCEPTOR_HOOKS, allow_callable=False):
            raise _bad(
                item_label,
                item,
                f"must be an object with at least one of {', '.join(_INTERCEPTOR_HOOKS)}(), "
                "a class, or a string naming one",
            )
        if isinstance(item, str | type):
            if item in seen:
                # Java's ValidList.anyNonDuplicateValues.
                raise _bad(item_label, item, "is listed twice; list each interceptor once")
            seen.append(item)
    return items


# Java's MetricsReporter methods, in snake_case (asyncproducer._metrics.MetricsReporter).
_REPORTER_HOOKS = ("init", "metric_change", "metric_removal", "close")


def _check_reporters(label: str, value: object) -> tuple[object, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _bad(
            label,
            value,
            "must be a list of reporter objects (or classes) with init(metrics), "
            "metric_change(metric), metric_removal(metric) and close(); names of classes "
            "are not supported yet",
        )
    items = tuple(value)
    for index, item in enumerate(items):
        if not _is_plugin(item, _REPORTER_HOOKS, allow_callable=False):
            raise _bad(
                f"{label}[{index}]",
                item,
                f"must be an object or class with {', '.join(_REPORTER_HOOKS)}()",
            )
    return items


def _check_availability_timeout(config: ProducerConfig, label: Callable[[str], str]) -> None:
    """The availability timeout is a part of adaptive partitioning: without it, it would
    do nothing (Java ignores it then)."""
    timeout = config.partitioner_availability_timeout_ms
    if timeout and not config.partitioner_adaptive_partitioning_enable:
        raise _bad(
            label("partitioner_availability_timeout_ms"),
            timeout,
            f"acts only with adaptive partitioning, and "
            f"{label('partitioner_adaptive_partitioning_enable')} is False; set it to 0, "
            "or turn adaptive partitioning on",
        )


_DNS_LOOKUPS = ("use_all_dns_ips", "resolve_canonical_bootstrap_servers_only")


def _check_dns_lookup(label: str, value: object) -> None:
    if value not in _DNS_LOOKUPS:
        raise _bad(
            label,
            value,
            "must be 'use_all_dns_ips' (every address of a name is tried) or "
            "'resolve_canonical_bootstrap_servers_only' (bootstrap names replaced by the "
            "canonical names of their addresses)",
        )


def _check_recording_level(label: str, value: object) -> None:
    if value == "INFO":
        return
    if value in ("DEBUG", "TRACE"):
        raise _bad(
            label,
            value,
            "must be 'INFO': asyncproducer has no DEBUG or TRACE metrics (Java's per-broker "
            "ones) yet, so a finer level would change nothing",
        )
    raise _bad(label, value, "must be 'INFO' (Java's levels: INFO, DEBUG, TRACE)")


# --------------------------------------------------------------------------- the config


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerConfig:
    """Every producer setting; Java's names in snake_case, Java's units (ms, bytes) and defaults.

    Values are stored normalized: ``bootstrap_servers`` as a tuple of ``"host:port"``
    strings, ``acks`` as an int (-1 for "all"), ``compression_type`` as a
    :class:`CompressionType`, ``interceptors`` as a tuple. ``partitioner``,
    ``key_serializer``, ``value_serializer`` and the interceptors are kept as given
    (objects, classes or import paths); another module resolves them.

    **Rules that depend on which keys were given** (Java tells "set by the user" from
    "default" with ``AbstractConfig.originals()``; so does this class, for all three ways
    of building it):

    * *Idempotence* (Java ``ProducerConfig.postProcessAndValidateIdempotenceConfigs``).
      It needs ``acks`` = all and ``retries`` >= 1. If ``enable_idempotence=True`` is
      given explicitly, a conflict with either raises. If it is not given, a conflict
      silently turns idempotence off (Kafka >= 3.2), and :attr:`idempotence_enabled`
      is False while the field keeps the default, True. In both cases
      ``max_in_flight_requests_per_connection`` > 5 with idempotence on raises: Kafka
      3.x turned idempotence off with a warning, Kafka 4.0 made it an error.
    * *Transactions*: a ``transactional_id`` needs idempotence; if it is off (explicitly,
      or by the rule above), construction raises (same Java method).
    * *Delivery timeout* (Java ``KafkaProducer.configureDeliveryTimeout``):
      ``delivery_timeout_ms`` must be >= ``linger_ms + request_timeout_ms``. If it was
      given, a smaller value raises; if not, the default is raised to that sum.
    * *Reconnect backoff* (Java ``CommonClientConfigs.postProcessReconnectBackoffConfigs``):
      ``reconnect_backoff_ms`` given without ``reconnect_backoff_max_ms`` sets the
      maximum to the same value, which turns exponential reconnect backoff off.
    * *client_id* (Java ``ProducerConfig.maybeOverrideClientId``): if not given, it is
      ``"producer-<transactional_id>"``, or ``"producer-N"`` from a process-wide counter.

    ``dataclasses.replace`` passes every field, so it counts every key as given: a config
    whose idempotence was turned off implicitly then raises. Build a new config from
    keyword arguments instead.
    """

    bootstrap_servers: tuple[str, ...]
    client_id: str = ""  # replaced by "producer-N" unless given (see above)

    # Delivery guarantees.
    acks: int = -1
    enable_idempotence: bool = True
    retries: int = INT_MAX
    max_in_flight_requests_per_connection: int = 5
    delivery_timeout_ms: int = 120_000
    request_timeout_ms: int = 30_000
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1_000

    # Batching and memory.
    linger_ms: int = 5
    batch_size: int = 16_384
    buffer_memory: int = 33_554_432
    max_block_ms: int = 60_000
    max_request_size: int = 1_048_576
    compression_type: CompressionType = CompressionType.NONE
    compression_gzip_level: int = -1  # Deflater.DEFAULT_COMPRESSION: zlib's default, 6
    compression_lz4_level: int = 9
    compression_zstd_level: int = 3

    # Connections and metadata.
    reconnect_backoff_ms: int = 50
    reconnect_backoff_max_ms: int = 1_000
    socket_connection_setup_timeout_ms: int = 10_000
    socket_connection_setup_timeout_max_ms: int = 30_000
    connections_max_idle_ms: int = 540_000
    send_buffer_bytes: int = 131_072
    receive_buffer_bytes: int = 32_768
    metadata_max_age_ms: int = 300_000
    metadata_max_idle_ms: int = 300_000
    allow_auto_create_topics: bool = True
    # Java's default, and what every connect does here (asyncio's and AnyIO's): each
    # address a name resolves to is tried in turn until one connects.
    client_dns_lookup: str = "use_all_dns_ips"

    # Pluggable parts, stored as given.
    partitioner: object | None = None
    partitioner_ignore_keys: bool = False
    # The default partitioner's KIP-794 switch (_sticky_switch), as Java's built-in one.
    partitioner_adaptive_partitioning_enable: bool = True
    partitioner_availability_timeout_ms: int = 0
    key_serializer: object | None = None
    value_serializer: object | None = None
    interceptors: tuple[object, ...] = ()

    # Metrics (docs/observability.md): Java's sampled windows, and reporters told of them.
    metrics_num_samples: int = 2
    metrics_sample_window_ms: int = 30_000
    metrics_recording_level: str = "INFO"
    metric_reporters: tuple[object, ...] = ()

    # Transactions.
    transactional_id: str | None = None
    transaction_timeout_ms: int = 60_000

    # Security (docs/security.md). TLS keys act only with SSL / SASL_SSL, SASL keys only
    # with SASL_*: given otherwise they are refused, not ignored (_config_security).
    security_protocol: str = "PLAINTEXT"
    ssl_context: object | None = None  # an ssl.SSLContext, used as given
    ssl_truststore_location: str | None = None  # PEM file of CA certificates
    ssl_truststore_certificates: str | None = None  # PEM text; neither: the system CAs
    ssl_truststore_type: str = "PEM"
    ssl_keystore_location: str | None = None  # PEM file: certificate chain and key
    ssl_keystore_certificate_chain: str | None = None  # PEM text
    ssl_keystore_key: str | None = None  # PEM text
    ssl_keystore_type: str = "PEM"
    ssl_key_password: str | None = None
    ssl_endpoint_identification_algorithm: str = "https"  # "": no hostname check
    ssl_enabled_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ssl_cipher_suites: tuple[str, ...] = ()  # OpenSSL's defaults
    sasl_mechanism: str | None = None  # Java's default is GSSAPI; here it must be named
    sasl_username: str | None = None
    sasl_password: str | None = None
    sasl_jaas_config: str | None = None  # Java's way to give the two above
    sasl_oauth_token_provider: object | None = None  # OAUTHBEARER: tokens, sync or async
    # KIP-768: OAUTHBEARER tokens from an OAuth 2 token endpoint (asyncproducer.oauth).
    sasl_oauthbearer_token_endpoint_url: str | None = None
    sasl_oauthbearer_client_id: str | None = None
    sasl_oauthbearer_client_secret: str | None = None
    sasl_oauthbearer_scope: str | None = None
    # GSSAPI (Kerberos; the gssapi extra). Principal and keytab are librdkafka's keys;
    # Java gives them in sasl.jaas.config's Krb5LoginModule line. Neither: the ticket cache.
    sasl_kerberos_service_name: str = "kafka"  # Java: no default (and fails without one)
    sasl_kerberos_principal: str | None = None
    sasl_kerberos_keytab: str | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_kwargs(cls, bootstrap_servers: str | Sequence[str], **kwargs: Any) -> ProducerConfig:
        """``ProducerConfig.from_kwargs("host:9092", linger_ms=10, acks=1)``."""
        return cls(bootstrap_servers=bootstrap_servers, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_java_properties(cls, properties: Mapping[str, Any]) -> ProducerConfig:
        """Java-style keys: ``{"bootstrap.servers": ..., "linger.ms": 5, "acks": "all"}``.

        Values may be strings as in a ``.properties`` file (``"5"``, ``"true"``); they are
        trimmed and converted as Java's ``ConfigDef`` does. Errors name the Java keys.
        """
        if not isinstance(properties, Mapping):
            raise ConfigError(
                f"properties must be a mapping of Java-style keys, got {type(properties).__name__}"
            )
        kwargs: dict[str, Any] = {}
        for raw_key, raw_value in properties.items():
            java_key = raw_key.strip() if isinstance(raw_key, str) else raw_key
            key = _KEY_BY_JAVA_NAME.get(java_key) if isinstance(java_key, str) else None
            if key is None:
                raise ConfigError(unknown_key_message(str(raw_key), KNOWN_KEYS, java_style=True))
            kwargs[key] = _from_property(key, raw_value)
        if "bootstrap_servers" not in kwargs:
            raise ConfigError("bootstrap.servers is required: give at least one 'host:port'")
        token = _JAVA_STYLE.set(True)
        try:
            return cls(**kwargs)
        finally:
            _JAVA_STYLE.reset(token)

    def __post_init__(self) -> None:
        given = _GIVEN.get()
        if given is None:
            # Built without the tracking __init__ (a subclass): a value equal to the
            # default cannot be told from no value, so count only the ones that differ.
            given = self._keys_differing_from_default()
        label: Callable[[str], str] = java_name if _JAVA_STYLE.get() else str
        self._normalize(label)
        self._apply_java_rules(given, label)

    def _keys_differing_from_default(self) -> frozenset[str]:
        return frozenset(
            f.name
            for f in fields(self)
            if f.default is MISSING or getattr(self, f.name) != f.default
        )

    def _normalize(self, label: Callable[[str], str]) -> None:
        put = functools.partial(object.__setattr__, self)
        put(
            "bootstrap_servers",
            _check_bootstrap(label("bootstrap_servers"), self.bootstrap_servers),
        )
        for key, (low, high) in INT_RANGES.items():
            _check_int(label(key), getattr(self, key), low, high)
        for key in BOOL_KEYS:
            _check_bool(label(key), getattr(self, key))
        for key, codec in LEVEL_KEYS.items():
            _check_level(label(key), getattr(self, key), codec)
        put("acks", _check_acks(label("acks"), self.acks))
        put(
            "compression_type", _check_compression(label("compression_type"), self.compression_type)
        )
        _check_text(label("client_id"), self.client_id, optional=False)
        _check_text(label("transactional_id"), self.transactional_id, optional=True)
        put(
            "partitioner",
            _check_plugin(
                label("partitioner"), self.partitioner, "partition", "the default partitioner"
            ),
        )
        for key in ("key_serializer", "value_serializer"):
            put(key, _check_plugin(label(key), getattr(self, key), "serialize", "bytes as given"))
        put("interceptors", _check_interceptors(label("interceptors"), self.interceptors))
        put(
            "metric_reporters",
            _check_reporters(label("metric_reporters"), self.metric_reporters),
        )
        _check_recording_level(label("metrics_recording_level"), self.metrics_recording_level)
        _check_availability_timeout(self, label)
        _check_dns_lookup(label("client_dns_lookup"), self.client_dns_lookup)

    def _apply_java_rules(self, given: frozenset[str], label: Callable[[str], str]) -> None:
        check_security(self, given, label)
        self._apply_producer_rules(given, label)

    def _apply_producer_rules(self, given: frozenset[str], label: Callable[[str], str]) -> None:
        put = functools.partial(object.__setattr__, self)
        if "reconnect_backoff_ms" in given and "reconnect_backoff_max_ms" not in given:
            put("reconnect_backoff_max_ms", self.reconnect_backoff_ms)
        self._check_delivery_timeout(given, label)
        self._check_idempotence(given, label)
        if "client_id" not in given:
            suffix = self.transactional_id
            put(
                "client_id",
                f"producer-{suffix if suffix is not None else _next_client_id_number()}",
            )

    def _check_delivery_timeout(self, given: frozenset[str], label: Callable[[str], str]) -> None:
        # Java adds in int arithmetic, capped at Integer.MAX_VALUE.
        linger, request = self.linger_ms, self.request_timeout_ms
        floor = min(min(linger, INT_MAX) + request, INT_MAX)
        if self.delivery_timeout_ms >= floor:
            return
        if "delivery_timeout_ms" in given:
            raise _bad(
                label("delivery_timeout_ms"),
                self.delivery_timeout_ms,
                f"must be >= {label('linger_ms')} + {label('request_timeout_ms')} "
                f"= {linger} + {request} = {floor}; raise it or lower those",
            )
        logger.warning(
            "%s raised from its default %d to %s + %s = %d",
            label("delivery_timeout_ms"),
            self.delivery_timeout_ms,
            label("linger_ms"),
            label("request_timeout_ms"),
            floor,
        )
        object.__setattr__(self, "delivery_timeout_ms", floor)

    def _check_idempotence(self, given: frozenset[str], label: Callable[[str], str]) -> None:
        enable = label("enable_idempotence")
        if self.enable_idempotence:
            conflicts = self._idempotence_conflicts(label)
            if conflicts and "enable_idempotence" in given:
                raise ConfigError(
                    f"{enable}=True conflicts with {' and '.join(conflicts)}: the idempotent "
                    f"producer needs {label('acks')}='all' and {label('retries')} >= 1; "
                    f"change those, or set {enable}=False"
                )
            in_flight = self.max_in_flight_requests_per_connection
            if in_flight > _MAX_IN_FLIGHT_FOR_IDEMPOTENCE:
                raise _bad(
                    label("max_in_flight_requests_per_connection"),
                    in_flight,
                    f"must be <= {_MAX_IN_FLIGHT_FOR_IDEMPOTENCE} while idempotence is on "
                    f"(the broker tracks only the last 5 batches per producer); "
                    f"lower it, or set {enable}=False",
                )
            if conflicts:
                logger.info("idempotence disabled because %s", " and ".join(conflicts))
        if self.transactional_id is not None and not self.idempotence_enabled:
            why = (
                f"{enable}=False"
                if not self.enable_idempotence
                else (
                    "idempotence is off because of "
                    + " and ".join(self._idempotence_conflicts(label))
                )
            )
            raise _bad(
                label("transactional_id"),
                self.transactional_id,
                f"transactions need idempotence, but {why}; "
                f"use {label('acks')}='all', {label('retries')} >= 1 and {enable}=True",
            )

    def _idempotence_conflicts(self, label: Callable[[str], str]) -> list[str]:
        conflicts = []
        if self.acks != -1:
            conflicts.append(f"{label('acks')}={self.acks}")
        if self.retries == 0:
            conflicts.append(f"{label('retries')}=0")
        return conflicts

    # ------------------------------------------------------------------ derived values

    @property
    def idempotence_enabled(self) -> bool:
        """Whether the producer is idempotent, after Java's rules (see the class docstring).

        Construction already rejected the combinations Java rejects, so what is left to
        check is the silent disabling.
        """
        return self.enable_idempotence and self.acks == -1 and self.retries > 0

    def configs(self) -> dict[str, Any]:
        """Every key and its value: what pluggable parts' ``configure(configs)`` receives,
        as Java passes its config map (values as given, not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def compression_level(self) -> int | None:
        """The level configured for ``compression_type``; None for codecs without levels."""
        key = LEVEL_KEY_BY_CODEC.get(self.compression_type)
        return None if key is None else int(getattr(self, key))

    def __repr__(self) -> str:
        # Defined here so @dataclass keeps it: credentials never appear in a repr.
        shown = (
            f"{f.name}={_shown(f.name, getattr(self, f.name))}" for f in fields(self) if f.repr
        )
        return f"{type(self).__qualname__}({', '.join(shown)})"

    def __init_subclass__(cls) -> None:
        # A subclass's @dataclass would generate a plain __repr__ unless the class already
        # has one. (No super() call: zero-argument super() breaks in slots dataclasses,
        # and object.__init_subclass__ does nothing.)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = ProducerConfig.__repr__  # type: ignore[method-assign]


KNOWN_KEYS: frozenset[str] = frozenset(f.name for f in fields(ProducerConfig))
_KEY_BY_JAVA_NAME: dict[str, str] = {java_name(key): key for key in KNOWN_KEYS}


def _from_property(key: str, value: object) -> object:
    """Convert a ``.properties`` string as Java's ``ConfigDef.parseType`` would.

    A string that does not parse is passed on unchanged, so that validation reports it with
    the full "what is allowed" message.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if key in INT_RANGES or key in LEVEL_KEYS:
        # Not int(): it would also take "1_000" and non-ASCII digits, which Java rejects.
        return int(text) if _JAVA_INT.fullmatch(text) else value
    if key in BOOL_KEYS:
        return {"true": True, "false": False}.get(text.lower(), value)
    return text


def _tracking_given_keys(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap the dataclass ``__init__`` so that ``__post_init__`` knows which keys were given.

    It also turns unknown or missing keys into ConfigError (the generated ``__init__``
    would raise a bare TypeError).
    """

    @functools.wraps(init)
    def __init__(self: ProducerConfig, **kwargs: Any) -> None:
        for key in kwargs:
            if key not in KNOWN_KEYS:
                raise ConfigError(unknown_key_message(key, KNOWN_KEYS, java_style=False))
        if "bootstrap_servers" not in kwargs:
            raise ConfigError("bootstrap_servers is required: give at least one 'host:port'")
        token = _GIVEN.set(frozenset(kwargs))
        try:
            init(self, **kwargs)
        finally:
            _GIVEN.reset(token)

    return __init__


ProducerConfig.__init__ = _tracking_given_keys(ProducerConfig.__init__)  # type: ignore[method-assign]
