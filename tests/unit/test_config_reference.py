"""The configuration reference (configuration.md on the site) against the code it documents.

The page is rendered from ProducerConfig and asyncproducer._config_docs.KEY_DOCS by
asyncproducer._config_reference; these tests read the rendered Markdown back, so a key
added without documentation, a default shown wrong or a Java name that the config does
not accept fails here, without building the site.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re

import pytest

from asyncproducer._config_docs import KEY_DOCS, SECTIONS
from asyncproducer._config_reference import COMPUTED_DEFAULTS, allowed_text, render
from asyncproducer.config import _KEY_BY_JAVA_NAME, ProducerConfig
from asyncproducer.errors import ConfigError

BOOTSTRAP = "localhost:9092"
FIELDS = {field.name: field for field in dataclasses.fields(ProducerConfig)}
# A summary table row: | [`key`](#key) | `java.name` | default | unit |
ROW = re.compile(r"^\| \[`(\w+)`\]\(#\1\) \| `([\w.]+)` \| ([^|]+?) \| ([^|]*?) \|$", re.M)
CODE = re.compile(r"`([^`]+)`")


@functools.cache
def page() -> str:
    # Rendered on first use, so that a key missing from KEY_DOCS fails the first test
    # with a clear message rather than the module's import.
    return render()


@functools.cache
def rows() -> dict[str, tuple[str, str, str]]:
    """key -> (Java name, default, unit), from the page's summary tables."""
    return {key: (java, default, unit) for key, java, default, unit in ROW.findall(page())}


def test_every_config_key_is_documented_and_every_documented_key_exists() -> None:
    assert set(KEY_DOCS) - set(FIELDS) == set(), "KEY_DOCS documents keys ProducerConfig lacks"
    assert set(FIELDS) - set(KEY_DOCS) == set(), "ProducerConfig keys missing from KEY_DOCS"


def test_every_key_has_a_section_and_a_meaning() -> None:
    for key, doc in KEY_DOCS.items():
        assert doc.section in SECTIONS, key
        assert doc.meaning.strip().endswith("."), key
        assert allowed_text(key), key


def test_the_page_lists_every_key_once_with_its_own_section() -> None:
    assert set(rows()) == set(FIELDS)
    for key in FIELDS:
        assert page().count(f"\n### `{key}` {{ #{key} }}\n") == 1, key
    headings = re.findall(r"^## (.+)$", page(), re.M)
    assert headings == list(SECTIONS)
    for key, doc in KEY_DOCS.items():
        section = page().split(f"\n## {doc.section}\n", 1)[1].split("\n## ", 1)[0]
        assert f"### `{key}` " in section, key


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_the_default_shown_is_the_dataclass_default(key: str) -> None:
    """The default's literal, given back as the key's value, is the field's default."""
    shown = rows()[key][1]
    field = FIELDS[key]
    assert f"- Default: {shown}\n" in page()  # the key's details say the same
    if field.default is dataclasses.MISSING:
        assert shown == "required"
        with pytest.raises(ConfigError, match=key):
            ProducerConfig(**{})
        return
    if key in COMPUTED_DEFAULTS:
        assert shown == COMPUTED_DEFAULTS[key]
        assert ProducerConfig.from_kwargs(BOOTSTRAP).client_id.startswith("producer-")
        return
    config = ProducerConfig.from_kwargs(BOOTSTRAP, **{key: _shown_default(key)})
    assert getattr(config, key) == field.default


def _shown_default(key: str) -> object:
    """The Python literal the page shows as the key's default."""
    shown = rows()[key][1]
    literal = CODE.match(shown)
    assert literal is not None, f"{key}: default {shown!r} is not a code literal"
    return ast.literal_eval(literal[1])


def test_only_client_id_has_a_computed_default() -> None:
    assert set(COMPUTED_DEFAULTS) == {"client_id"}


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_the_java_name_shown_round_trips(key: str) -> None:
    """The Java name on the page is accepted by from_java_properties, for this key."""
    java = rows()[key][0]
    assert _KEY_BY_JAVA_NAME[java] == key
    field = FIELDS[key]
    if field.default is dataclasses.MISSING:
        config = ProducerConfig.from_java_properties({java: BOOTSTRAP})
        assert config.bootstrap_servers == (BOOTSTRAP,)
        return
    # The default as the page shows it, written as a .properties file would have it.
    value = _shown_default(key) if key not in COMPUTED_DEFAULTS else ""
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, int):
        value = str(value)
    config = ProducerConfig.from_java_properties({"bootstrap.servers": BOOTSTRAP, java: value})
    assert getattr(config, key) == field.default


def test_units_are_shown_for_the_keys_that_have_them() -> None:
    for key, doc in KEY_DOCS.items():
        assert rows()[key][2] == doc.unit, key
        if key.endswith("_ms"):
            assert doc.unit == "ms", key
        if key.endswith("_bytes") or key in ("batch_size", "buffer_memory", "max_request_size"):
            assert doc.unit == "bytes", key
