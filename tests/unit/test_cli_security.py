"""The CLI's security options: flags, the password's sources, --command-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncproducer import cli
from asyncproducer.cli import PASSWORD_ENV, UsageError, build_parser, producer_properties


def properties(*argv: str) -> dict[str, str]:
    args = build_parser().parse_args(["produce", "topic", *argv])
    return producer_properties(args, default_bootstrap="localhost:9092", client_id="cli")


def test_flags_become_java_keys_and_the_password_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    got = properties(
        "--security-protocol", "sasl_ssl",
        "--sasl-mechanism", "scram-sha-512",
        "--sasl-username", "alice",
    )  # fmt: skip
    assert got["security.protocol"] == "SASL_SSL"
    assert got["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (got["sasl.username"], got["sasl.password"]) == ("alice", "from-env")


def test_without_a_terminal_or_the_variable_the_password_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False)
    with pytest.raises(UsageError, match=f"set {PASSWORD_ENV}"):
        properties("--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "PLAIN",
                   "--sasl-username", "alice")  # fmt: skip


def test_on_a_terminal_the_password_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: asked.append(prompt) or "typed")
    got = properties("--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "PLAIN",
                     "--sasl-username", "bob")  # fmt: skip
    assert got["sasl.password"] == "typed"
    assert asked == ["SASL password for bob: "]


def test_command_config_is_read_and_overridden_by_x_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
        '    username="alice" password="pw";\n'
        "linger.ms=50\n",
        encoding="utf-8",
    )
    got = properties("--command-config", str(path), "-X", "linger.ms=7", "--acks", "1")
    assert got["sasl.jaas.config"].endswith('username="alice" password="pw";')
    assert (got["linger.ms"], got["acks"]) == ("7", "1")


def test_a_flag_conflicting_with_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text("security.protocol=SSL\n", encoding="utf-8")
    with pytest.raises(UsageError, match="--security-protocol SASL_SSL conflicts"):
        properties("--command-config", str(path), "--security-protocol", "SASL_SSL")
