"""The configuration reference page, rendered from the code.

Every key of :class:`~asyncproducer.config.ProducerConfig` with its Java name
(:func:`~asyncproducer._config_keys.java_name`), default (the dataclass field's), unit and
meaning (:data:`~asyncproducer._config_docs.KEY_DOCS`) and the values it accepts (the
checks' own tables: ``INT_RANGES``, ``BOOL_KEYS``, the codecs' level ranges, the security
choices, and the values refused as not supported yet). The documentation site's build
writes it as ``configuration.md`` (``docs/hooks/config_reference.py``);
``tests/unit/test_config_reference.py`` checks it against the dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from asyncproducer._config_docs import KEY_DOCS, SECTIONS
from asyncproducer._config_keys import (
    BOOL_KEYS,
    INT_MAX,
    INT_RANGES,
    LEVEL_KEYS,
    LONG_MAX,
    java_name,
)
from asyncproducer._config_security import SASL_MECHANISMS, SECURITY_PROTOCOLS, TLS_PROTOCOLS
from asyncproducer.config import _DNS_LOOKUPS, ProducerConfig
from asyncproducer.protocol.compression import LEVEL_RANGES, CompressionType

__all__ = ["allowed_text", "default_text", "render"]

COMPUTED_DEFAULTS = {
    "client_id": "`'producer-1'`, `'producer-2'`, ... (or `'producer-<transactional_id>'`)",
}
"""Keys whose default is computed at construction, shown as text instead of the field's."""

_LIMITS = {INT_MAX: "2147483647 (2³¹ - 1)", LONG_MAX: "9223372036854775807 (2⁶³ - 1)"}


def _fields() -> dict[str, dataclasses.Field[object]]:
    return {field.name: field for field in dataclasses.fields(ProducerConfig)}


def _literal(value: object) -> str:
    """A default as the Python literal to pass back (``ProducerConfig(key=<this>)``)."""
    if isinstance(value, CompressionType):
        return repr(value.name.lower())
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return _LIMITS.get(value, str(value)).split(" ")[0]
    return repr(value)


def _human(value: object, unit: str) -> str:
    """``120000`` ms as " (2 min)", ``33554432`` bytes as " (32 MiB)"; else ""."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return ""
    if value in _LIMITS:
        return " (" + _LIMITS[value].split(" ", 1)[1].strip("()") + ")"
    if unit == "ms" and value >= 1000:
        for size, name in ((3_600_000, "h"), (60_000, "min"), (1000, "s")):
            if value % size == 0:
                return f" ({value // size} {name})"
    if unit == "bytes" and value >= 1024:
        for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value % size == 0:
                return f" ({value // size} {name})"
    return ""


def default_text(key: str) -> str:
    """The default of ``key`` as the reference shows it: a Python literal in backticks
    (which, passed back as the key's value, gives the dataclass default), "required", or
    the computed default of :data:`COMPUTED_DEFAULTS`."""
    if key in COMPUTED_DEFAULTS:
        return COMPUTED_DEFAULTS[key]
    field = _fields()[key]
    if field.default is dataclasses.MISSING:
        return "required"
    value = field.default
    shown = "'all'" if key == "acks" and value == -1 else _literal(value)
    return f"`{shown}`{_human(value, KEY_DOCS[key].unit)}"


def _int_range(low: int, high: int) -> str:
    if high == LONG_MAX:
        return f"an int ≥ {low}"
    return f"an int from {low} to {_LIMITS.get(high, str(high))}"


def _choices(values: tuple[str, ...] | list[str]) -> str:
    quoted = [f"`{value!r}`" for value in values]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


def allowed_text(key: str) -> str:
    """What ``key`` accepts, from the checks' own tables (or the key's ``KeyDoc.allowed``
    where no table says it). Raises ValueError for a key neither describes."""
    doc = KEY_DOCS[key]
    if doc.allowed:
        return doc.allowed
    if key in LEVEL_KEYS:
        low, high = LEVEL_RANGES[LEVEL_KEYS[key]]
        text = _int_range(low, high)
        default = _fields()[key].default
        if isinstance(default, int) and not low <= default <= high:
            text = f"`{default}` (the codec's default) or {text}"
        return text
    if key in INT_RANGES:
        return _int_range(*INT_RANGES[key])
    if key in BOOL_KEYS:
        return "`True` or `False` (`true` or `false` in Java properties)"
    if key == "acks":
        return "`'all'` (the same as `-1`), `0` or `1`, as an int or a string"
    if key == "compression_type":
        names = [codec.name.lower() for codec in CompressionType]
        return f"{_choices(names)} (any case), or a `CompressionType`"
    if key == "security_protocol":
        return f"{_choices(SECURITY_PROTOCOLS)} (any case)"
    if key == "sasl_mechanism":
        return f"`None` (only without SASL), {_choices(SASL_MECHANISMS)}"
    if key == "client_dns_lookup":
        return _choices(_DNS_LOOKUPS)
    if key == "ssl_enabled_protocols":
        return f"a list of {_choices(list(TLS_PROTOCOLS))} (or a comma-separated string)"
    raise ValueError(f"no allowed values known for config key {key!r}: give KeyDoc.allowed")


def _lines() -> Iterator[str]:
    yield "# Configuration reference"
    yield ""
    yield (
        "<!-- Generated by docs/hooks/config_reference.py from asyncproducer/config.py, "
        "_config_keys.py and _config_docs.py: edit those, not this page. -->"
    )
    yield ""
    yield (
        "Every setting of the producer, from the code. Pass them to `Producer(...)` (or "
        "`ProducerConfig.from_kwargs`) in snake_case, `linger_ms=5`; or by their Java name, "
        'in `Producer.from_config({"linger.ms": "5"})`, '
        "`ProducerConfig.from_java_properties` and `Producer.from_properties` (a Java "
        "`.properties` file), where values may be strings as in such a file. Units and "
        "defaults are the Java producer's (Apache Kafka 4.x) unless the key says otherwise."
    )
    yield ""
    yield (
        "Everything is checked when the producer is built: a bad value raises `ConfigError` "
        "naming the key, the value and what is allowed, and a setting that would not act "
        "(a value not supported yet, a TLS key without TLS) is refused rather than ignored. "
        "Some rules depend on which keys were given, as in Java (idempotence, the delivery "
        "timeout, the reconnect backoff, `client_id`): `ProducerConfig`'s "
        "[API reference](reference/config.md) lists them."
    )
    fields = _fields()
    for section in SECTIONS:
        keys = [key for key in fields if KEY_DOCS[key].section == section]
        yield ""
        yield f"## {section}"
        yield ""
        yield "| Key | Java name | Default | Unit |"
        yield "|---|---|---|---|"
        for key in keys:
            unit = KEY_DOCS[key].unit or ""
            yield f"| [`{key}`](#{key}) | `{java_name(key)}` | {default_text(key)} | {unit} |"
        for key in keys:
            yield from _key_lines(key)


def _key_lines(key: str) -> Iterator[str]:
    doc = KEY_DOCS[key]
    java = f"`{java_name(key)}`"
    if doc.java:
        java += f" ({doc.java})"
    yield ""
    yield f"### `{key}` {{ #{key} }}"
    yield ""
    yield doc.meaning
    yield ""
    yield f"- Java name: {java}"
    yield f"- Default: {default_text(key)}"
    if doc.unit:
        yield f"- Unit: {doc.unit}"
    yield f"- Allowed: {allowed_text(key)}"


def render() -> str:
    """The whole page, as Markdown."""
    return "\n".join(_lines()) + "\n"
