"""Reading a Java ``.properties`` file, as ``java.util.Properties.load`` does, for the
CLI's ``--command-config`` (the client properties file Kafka's console tools take).

Supported: ``key=value``, ``key: value`` and ``key value``; ``#`` and ``!`` comment
lines; a line ending in an odd number of backslashes continues on the next (whose leading
blanks are dropped); the escapes ``\\t \\n \\r \\f \\uXXXX`` and ``\\`` before any other
character. The file is read as UTF-8 (Java 9+ reads properties files so).
"""

from __future__ import annotations

import os
from pathlib import Path

from asyncproducer.errors import ConfigError

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read properties file {str(path)!r}: {reason}") from None
    return parse_properties(text, str(path))


def parse_properties(text: str, source: str = "<properties>") -> dict[str, str]:
    properties: dict[str, str] = {}
    for number, line in _logical_lines(text):
        key, value = _split(line)
        try:
            properties[_unescape(key)] = _unescape(value)
        except ValueError as exc:
            # The value may be a password: name the line, never quote it.
            raise ConfigError(f"{source}, line {number}: {exc}") from None
    return properties


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, the joined line), without comments and blank lines."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip(" \t\f")
        if pending is None:
            if not stripped or stripped[0] in "#!":
                continue
            pending = (number, "")
        start, so_far = pending
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        if trailing % 2:  # an odd count: the last backslash continues the line
            pending = (start, so_far + stripped[:-1])
            continue
        lines.append((start, so_far + stripped))
        pending = None
    if pending is not None:
        lines.append(pending)
    return lines


def _split(line: str) -> tuple[str, str]:
    """The key ends at the first unescaped '=', ':' or blank."""
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if char in "=: \t\f":
            break
        index += 1
    key, rest = line[:index], line[index:]
    # Blanks around one '=' or ':' (or blanks alone) separate key and value.
    rest = rest.lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 == len(text):
            out.append(char)
            index += 1
            continue
        escaped = text[index + 1]
        if escaped == "u":
            digits = text[index + 2 : index + 6]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("malformed \\uXXXX escape")
            out.append(chr(int(digits, 16)))
            index += 6
            continue
        out.append(_ESCAPES.get(escaped, escaped))
        index += 2
    return "".join(out)
