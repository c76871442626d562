"""No configuration key is accepted and ignored: each key of the table is read by the
producer's code, or feeds a derived value that is, or accepts only the one value whose
behaviour this client has (every other value refused, saying why).

"Read" is checked in the source: an attribute access ``<...config...>.<key>`` in a module
of the package other than the config modules themselves. A key added to the table and
used nowhere fails :func:`test_every_key_is_read_derived_or_refused`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from asyncproducer.config import KNOWN_KEYS, ProducerConfig
from asyncproducer.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "asyncproducer"
CONFIG_MODULES = {"config.py", "_config_keys.py"}

DERIVED = {
    "compression_gzip_level": "compression_level",
    "compression_lz4_level": "compression_level",
    "compression_zstd_level": "compression_level",
    "enable_idempotence": "idempotence_enabled",
}
"""Keys read through a derived value of the config, which the producer reads."""

ONE_VALUE_ACCEPTED: dict[str, tuple[object, object]] = {
    # key: (the value accepted, the default; another value, refused)
    "ssl_truststore_type": ("PEM", "JKS"),
    "ssl_keystore_type": ("PEM", "PKCS12"),
    "metrics_recording_level": ("INFO", "DEBUG"),
}
"""Keys whose other values would ask for behaviour this client does not have yet."""


def config_reads() -> set[str]:
    """Every ``<something with config in it>.<name>`` the package's code reads."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name in CONFIG_MODULES or "testing" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and "config" in ast.unparse(node.value):
                names.add(node.attr)
    return names


READS = config_reads()


def test_every_key_is_read_derived_or_refused() -> None:
    accounted = (KNOWN_KEYS & READS) | set(DERIVED) | set(ONE_VALUE_ACCEPTED)
    assert KNOWN_KEYS - accounted == set(), "accepted, and acted on nowhere"


def test_the_lists_name_only_keys_the_code_does_not_read_directly() -> None:
    # A key that is read after all belongs in neither list: keep them honest.
    assert (set(DERIVED) | set(ONE_VALUE_ACCEPTED)) & READS == set()


@pytest.mark.parametrize("key", sorted(DERIVED))
def test_a_derived_value_is_read_and_follows_its_key(key: str) -> None:
    assert DERIVED[key] in READS
    if key == "enable_idempotence":
        assert not ProducerConfig(
            bootstrap_servers=("h:1",), enable_idempotence=False
        ).idempotence_enabled
        return
    codec = key.removeprefix("compression_").removesuffix("_level")
    config = ProducerConfig(bootstrap_servers=("h:1",), compression_type=codec, **{key: 1})
    assert config.compression_level() == 1


@pytest.mark.parametrize("key", sorted(ONE_VALUE_ACCEPTED))
def test_only_the_value_this_client_acts_on_is_accepted(key: str) -> None:
    accepted, refused = ONE_VALUE_ACCEPTED[key]
    assert getattr(ProducerConfig(bootstrap_servers=("h:1",)), key) == accepted
    with pytest.raises(ConfigError, match=key):
        ProducerConfig(bootstrap_servers=("h:1",), **{key: refused})
