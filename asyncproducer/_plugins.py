"""Plugins named by text, as a Java client ``.properties`` file names them.

``partitioner.class``, ``key.serializer``, ``value.serializer`` and ``interceptor.classes``
take Java class names there. Here such text is a dotted path to a Python object,
``"mypkg.partitioning:RegionPartitioner"`` or ``"mypkg.partitioning.RegionPartitioner"``,
or one of the Java client's own class names, mapped to this package's equivalent (its
serializers and partitioners). Short names (``"str"``, ``"json"``) are left to the
serializers' own table.
"""

from __future__ import annotations

import importlib
from typing import Final

from asyncproducer.errors import ConfigError
from asyncproducer.partitioners import (
    DefaultPartitioner,
    RoundRobinPartitioner,
    UniformStickyPartitioner,
)

_SERIALIZATION = "org.apache.kafka.common.serialization."
_PRODUCER = "org.apache.kafka.clients.producer."
JAVA_NAMES: Final[dict[str, object]] = {
    _SERIALIZATION + "StringSerializer": "str",  # UTF-8, as Java's default encoding
    _SERIALIZATION + "ByteArraySerializer": "bytes",
    _SERIALIZATION + "BytesSerializer": "bytes",
    _SERIALIZATION + "ByteBufferSerializer": "bytes",
    _PRODUCER + "internals.DefaultPartitioner": DefaultPartitioner,
    _PRODUCER + "UniformStickyPartitioner": UniformStickyPartitioner,
    _PRODUCER + "RoundRobinPartitioner": RoundRobinPartitioner,
}
"""The Java client's classes that have an equivalent here."""


def named_plugin(spec: object, setting: str) -> object:
    """``spec`` itself, unless it is text naming a plugin: then the object it names (a
    Java built-in name's equivalent, or what a dotted path imports). ConfigError, naming
    ``setting``, for a name that cannot be imported or a Java class with no equivalent."""
    if not isinstance(spec, str):
        return spec
    text = spec.strip()
    if text in JAVA_NAMES:
        return JAVA_NAMES[text]
    if text.startswith(("org.apache.kafka.", "io.confluent.")):
        raise ConfigError(
            f"{setting}={text!r} is a Java class with no equivalent here; give a Python "
            "object, class or dotted path 'package.module:Name' instead"
        )
    if ":" not in text and "." not in text:
        return spec  # a short name ("str", "json"): the serializers know them
    return _imported(text, setting)


def configured_serializer(spec: object, configs: dict[str, object], *, is_key: bool) -> object:
    """A serializer class made an instance, configured as Java configures the serializers
    it instantiates (``configure(configs, is_key)``, if it has the method); anything else
    as it is."""
    if not isinstance(spec, type) or not callable(getattr(spec, "serialize", None)):
        return spec
    instance: object = spec()
    configure = getattr(instance, "configure", None)
    if callable(configure):
        configure(configs, is_key)
    return instance


def _imported(path: str, setting: str) -> object:
    module_name, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise ConfigError(f"{setting}={path!r}: expected 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{setting}={path!r}: cannot import {module_name!r}: {exc}") from None
    try:
        value: object = module
        for part in name.split("."):  # a nested class: "module:Outer.Inner"
            value = getattr(value, part)
    except AttributeError:
        raise ConfigError(f"{setting}={path!r}: {module_name!r} has no {name!r}") from None
    return value
