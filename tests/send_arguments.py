"""Unusual ``send()`` arguments, and what the producer must make of each (issue 16).

:func:`expected` is the specification the tests hold both paths to (the C appender and
the pure-Python staging), written without the producer's code: for one record's
arguments, either the record the broker must store (key, value and headers as bytes) or
the typed errors that may reject it, each with the argument its message must name.
With the default serializers (bytes pass through) and a topic ``t`` of
:data:`PARTITIONS` partitions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from asyncproducer.errors import (
    InvalidRecordTimestampError,
    InvalidTopicError,
    KafkaError,
    PartitionOutOfRangeError,
    SerializationError,
)

PARTITIONS = 2
MAX_TIMESTAMP = 2**63 - 1
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


# --------------------------------------------------------------------------- the values


class BytesRaising(bytes):
    """A bytes subclass whose ``__bytes__`` raises: its content is still its bytes."""

    def __bytes__(self) -> bytes:
        raise RuntimeError("__bytes__ refuses")


class BytesToStr(bytes):
    """A bytes subclass whose ``__bytes__`` returns a str."""

    def __bytes__(self) -> bytes:
        return "not bytes"  # type: ignore[return-value]


class BytesOther(bytes):
    """A bytes subclass whose ``__bytes__`` differs from what it holds."""

    def __bytes__(self) -> bytes:
        return b"something else"


class BytesLyingLen(bytes):
    def __len__(self) -> int:
        return 1


class BytesRaisingLen(bytes):
    def __len__(self) -> int:
        raise RuntimeError("__len__ refuses")


class ByteArraySub(bytearray):
    def __bytes__(self) -> bytes:
        raise RuntimeError("__bytes__ refuses")

    def __len__(self) -> int:
        raise RuntimeError("__len__ refuses")


class StrOverride(str):
    """A str subclass that lies in ``__str__``, ``encode``, ``__eq__`` and ``__hash__``."""

    def __str__(self) -> str:
        return "lies"

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"lies"

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ refuses")


class IntOverride(int):
    """An int subclass whose conversions and comparisons lie or raise."""

    def __int__(self) -> int:
        return -7

    def __index__(self) -> int:
        raise RuntimeError("__index__ refuses")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("__lt__ refuses")

    def __le__(self, other: object) -> bool:
        raise RuntimeError("__le__ refuses")

    def __ge__(self, other: object) -> bool:
        raise RuntimeError("__ge__ refuses")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ refuses")


class ReprRaising:
    """Not a valid value for any argument, and its repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ refuses")


class BoolRaising:
    def __bool__(self) -> bool:
        raise RuntimeError("__bool__ refuses")

    def __len__(self) -> int:
        raise RuntimeError("__len__ refuses")


class IterRaising:
    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("__iter__ refuses")


class HeadersRaisingMidway:
    """Iterable headers that raise after their first pair."""

    def __iter__(self) -> Iterator[Any]:
        yield ("ok", b"1")
        raise RuntimeError("the headers' iterator broke")


class PairRaising(tuple):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("__iter__ refuses")

    def __len__(self) -> int:
        raise RuntimeError("__len__ refuses")


class ListIterLying(list):  # type: ignore[type-arg]
    """A list subclass that iterates over other items than it holds (none)."""

    def __iter__(self) -> Iterator[Any]:
        yield ("iterated", b"1")


class ClassLying:
    """Claims to be bytes through ``__class__`` (isinstance() believes it)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return bytes


class ClassRaising:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("__class__ refuses")


def released() -> memoryview:
    view = memoryview(b"released")
    view.release()
    return view


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Stored:
    """The record the broker must hold: key, value, headers; partition and timestamp
    when given (None: the producer chooses)."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    partition: int | None
    timestamp: int | None


@dataclass(frozen=True)
class Rejected:
    """The errors that may reject the record: (error class, a word its message must
    hold) for each argument that is not acceptable (whichever is checked first)."""

    errors: tuple[tuple[type[KafkaError], str], ...]

    def matches(self, error: BaseException) -> bool:
        return any(isinstance(error, cls) and word in str(error) for cls, word in self.errors)


class _Bad(Exception):
    def __init__(self, cls: type[KafkaError], word: str) -> None:
        self.cls, self.word = cls, word


def _content(data: object, word: str) -> bytes | None:
    """What a key, value or header value is sent as: None; a bytes, bytearray or
    memoryview (or subclass: by type, never by ``__class__``) as the bytes its buffer
    holds; anything else is refused."""
    if data is None:
        return None
    if issubclass(type(data), (bytes, bytearray, memoryview)):
        try:
            return bytes(memoryview(data))  # type: ignore[arg-type]
        except Exception:
            raise _Bad(SerializationError, word) from None
    raise _Bad(SerializationError, word)


def _text(name: object, word: str) -> str:
    if not issubclass(type(name), str):
        raise _Bad(SerializationError, word)
    text = str.__str__(cast(str, name))
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _Bad(SerializationError, word) from None
    return text


def _headers(headers: object) -> tuple[tuple[str, bytes | None], ...]:
    if headers is None:
        return ()
    if isinstance(headers, (str, bytes, bytearray, memoryview, Mapping)):
        raise _Bad(SerializationError, "headers")
    try:
        items = list(headers)  # type: ignore[call-overload]
    except Exception:
        raise _Bad(SerializationError, "headers") from None
    pairs = []
    for index, item in enumerate(items):
        word = f"headers[{index}]"
        if type(item) not in (tuple, list) or len(item) != 2:
            # Other iterables of two are accepted too; the tests give only these.
            raise _Bad(SerializationError, word)
        name, value = item
        pairs.append((_text(name, word), _content(value, word)))
    return tuple(pairs)


def _int(value: object, count: int, cls: type[KafkaError], word: str) -> int:
    """An int (or subclass, by its value; not bool) in [0, count)."""
    if type(value) is bool or not issubclass(type(value), int):
        raise _Bad(cls, word)
    number = int.__int__(value)  # type: ignore[arg-type]
    if not 0 <= number < count:
        raise _Bad(cls, word)
    return number


def _topic(topic: object) -> None:
    if not issubclass(type(topic), str):
        raise _Bad(InvalidTopicError, "topic")
    name = str.__str__(cast(str, topic))
    if not _LEGAL_TOPIC.fullmatch(name) or name in (".", ".."):
        raise _Bad(InvalidTopicError, "topic")


def expected(
    topic: object,
    value: object,
    key: object,
    partition: object,
    timestamp_ms: object,
    headers: object,
) -> Stored | Rejected:
    """What sending these arguments must give (see the module docstring)."""
    errors: list[tuple[type[KafkaError], str]] = []
    checks: list[tuple[str, Any]] = [
        ("topic", lambda: _topic(topic)),
        ("headers", lambda: _headers(headers)),
        ("key", lambda: _content(key, "key")),
        ("value", lambda: _content(value, "value")),
        (
            "partition",
            lambda: (
                None
                if partition is None
                else _int(partition, PARTITIONS, PartitionOutOfRangeError, "partition")
            ),
        ),
        (
            "timestamp_ms",
            lambda: (
                None
                if timestamp_ms is None
                else _int(
                    timestamp_ms, MAX_TIMESTAMP + 1, InvalidRecordTimestampError, "timestamp_ms"
                )
            ),
        ),
    ]
    results: dict[str, Any] = {}
    for name, check in checks:
        try:
            results[name] = check()
        except _Bad as bad:
            errors.append((bad.cls, bad.word))
    if errors:
        return Rejected(tuple(errors))
    return Stored(
        results["key"],
        results["value"],
        results["headers"],
        results["partition"],
        results["timestamp_ms"],
    )


# --------------------------------------------------------------------------- a catalogue

UNUSUAL: dict[str, Any] = {
    "bytes __bytes__ raises": lambda: BytesRaising(b"held"),
    "bytes __bytes__ gives str": lambda: BytesToStr(b"held"),
    "bytes __bytes__ differs": lambda: BytesOther(b"held"),
    "bytes __len__ lies": lambda: BytesLyingLen(b"held"),
    "bytes __len__ raises": lambda: BytesRaisingLen(b"held"),
    "bytearray subclass": lambda: ByteArraySub(b"held"),
    "released memoryview": released,
    "strided memoryview": lambda: memoryview(b"h.e.l.d")[::2],
    "int32 memoryview": lambda: memoryview(bytearray(b"held")).cast("i"),
    "empty bytes": lambda: b"",
    "str": lambda: "text",
    "str override": lambda: StrOverride("text"),
    "int": lambda: 7,
    "float nan": lambda: math.nan,
    "repr raises": ReprRaising,
    "bool raises": BoolRaising,
    "__class__ lies": ClassLying,
    "__class__ raises": ClassRaising,
}
"""Values to try as a key, a value or a header value (a factory each: some are
single-use, such as a released memoryview)."""

UNUSUAL_HEADERS: dict[str, Any] = {
    "lone surrogate name": lambda: [("\ud800", b"v")],
    "str subclass name": lambda: [(StrOverride("name"), b"v")],
    "bytes name": lambda: [(b"name", b"v")],
    "triple": lambda: [("name", b"v", b"extra")],
    "single": lambda: [("name",)],
    "a str item": lambda: ["ab"],
    "pair raising": lambda: [PairRaising(("name", b"v"))],
    "not iterable": lambda: 5,
    "iter raises": IterRaising,
    "raises midway": HeadersRaisingMidway,
    "bool raises": BoolRaising,
    "a dict": lambda: {"name": b"v"},
    "a str": lambda: "name",
    "bytes": lambda: b"name",
    "empty list": list,
    "empty list subclass iterating": ListIterLying,
    "a generator": lambda: (pair for pair in [("g", b"1"), ("h", None)]),
    "bytearray value": lambda: [("name", bytearray(b"v"))],
    "memoryview value": lambda: [("name", memoryview(b"v"))],
    "released memoryview value": lambda: [("name", released())],
    "bytes __bytes__ raises value": lambda: [("name", BytesRaising(b"v"))],
    "bytes __bytes__ gives str value": lambda: [("name", BytesToStr(b"v"))],
    "second of three bad": lambda: [("a", b"1"), ("b", 2), ("c", b"3")],
}

UNUSUAL_INTS: dict[str, Any] = {
    "huge": lambda: 2**100,
    "negative": lambda: -1,
    "int64 max": lambda: MAX_TIMESTAMP,
    "int64 max + 1": lambda: MAX_TIMESTAMP + 1,
    "True": lambda: True,
    "False": lambda: False,
    "int subclass lying": lambda: IntOverride(1),
    "float": lambda: 1.0,
    "nan": lambda: math.nan,
    "inf": lambda: math.inf,
    "str": lambda: "1",
    "repr raises": ReprRaising,
}
"""Values to try as a partition or a timestamp."""

UNUSUAL_TOPICS: dict[str, Any] = {
    "str override": lambda: StrOverride("t"),
    "int": lambda: 5,
    "lone surrogate": lambda: "t\ud800",
    "repr raises": ReprRaising,
    "__class__ lies": ClassLying,
}


def cases() -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """One unusual argument at a time: (case id, factory of send()'s keyword arguments)."""
    for name, make in UNUSUAL.items():
        yield f"value: {name}", partial(_as, "value", make)
        yield f"key: {name}", partial(_as, "key", make)
    for name, make in UNUSUAL_HEADERS.items():
        yield f"headers: {name}", partial(_as, "headers", make)
    for name, make in UNUSUAL_INTS.items():
        yield f"partition: {name}", partial(_as, "partition", make)
        yield f"timestamp_ms: {name}", partial(_as, "timestamp_ms", make)
    for name, make in UNUSUAL_TOPICS.items():
        yield f"topic: {name}", partial(_as, "topic", make)


def _as(argument: str, make: Callable[[], Any]) -> dict[str, Any]:
    """send()'s keyword arguments with a fresh ``make()`` as ``argument`` (value b"v")."""
    return {"value": b"v", argument: make()}


def arguments(kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """send()'s first six arguments from keyword arguments (topic ``t`` by default)."""
    return (
        kwargs.get("topic", "t"),
        kwargs.get("value"),
        kwargs.get("key"),
        kwargs.get("partition"),
        kwargs.get("timestamp_ms"),
        kwargs.get("headers"),
    )
