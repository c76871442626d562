"""Plugins named by text (asyncproducer._plugins): what a name resolves to."""

from __future__ import annotations

import pytest

from asyncproducer._plugins import JAVA_NAMES, named_plugin
from asyncproducer.errors import ConfigError
from asyncproducer.partitioners import DefaultPartitioner


class Outer:
    class Inner:
        pass


def test_objects_and_short_names_are_left_as_they_are() -> None:
    marker = object()
    assert named_plugin(marker, "partitioner") is marker
    assert named_plugin(None, "partitioner") is None
    assert named_plugin("json", "value_serializer") == "json"


def test_both_path_forms_and_nested_names() -> None:
    assert named_plugin("tests.unit.test_plugins:Outer", "x") is Outer
    assert named_plugin("tests.unit.test_plugins.Outer", "x") is Outer
    assert named_plugin(" tests.unit.test_plugins:Outer.Inner ", "x") is Outer.Inner


def test_javas_names_map_to_ours() -> None:
    name = "org.apache.kafka.clients.producer.internals.DefaultPartitioner"
    assert named_plugin(name, "partitioner") is DefaultPartitioner
    assert JAVA_NAMES["org.apache.kafka.common.serialization.StringSerializer"] == "str"


@pytest.mark.parametrize("text", ["tests.unit.test_plugins:", ":Outer"])
def test_a_path_without_both_parts_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"expected 'package\.module:Name'"):
        named_plugin(text, "partitioner")
