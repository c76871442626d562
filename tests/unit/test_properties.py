"""The Java .properties reader behind the CLI's --command-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncproducer._properties import parse_properties, read_properties
from asyncproducer.errors import ConfigError


def test_the_forms_java_reads() -> None:
    text = "\n".join(
        [
            "# a comment",
            "! another",
            "",
            "bootstrap.servers=broker:9093",
            "security.protocol : SASL_SSL",
            "sasl.mechanism SCRAM-SHA-512",
            "   linger.ms=   5",
            "empty=",
            "key\\ with\\ blanks=v",
            "escaped=a\\tb\\u00e9\\=\\\\",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \\",
            '    required username="alice" \\',
            '    password="p=w:x";',
        ]
    )
    assert parse_properties(text) == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "linger.ms": "5",
        "empty": "",
        "key with blanks": "v",
        "escaped": "a\tb\u00e9=\\",
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule "
            'required username="alice" password="p=w:x";'
        ),
    }


def test_an_even_number_of_backslashes_does_not_continue() -> None:
    assert parse_properties("a=x\\\\\nb=y") == {"a": "x\\", "b": "y"}


def test_a_bad_escape_names_the_line_not_the_value() -> None:
    with pytest.raises(ConfigError, match=r"client\.properties, line 2: malformed") as raised:
        parse_properties("a=1\nsasl.password=s3cret\\u12", "client.properties")
    assert "s3cret" not in str(raised.value)


def test_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text("acks=all\n", encoding="utf-8")
    assert read_properties(path) == {"acks": "all"}
    with pytest.raises(ConfigError, match=r"cannot read properties file .*No such file"):
        read_properties(tmp_path / "missing.properties")
