"""The checks ``send()`` makes of its arguments, one by one (issue 16): what each accepts,
as what, and that every refusal is a typed error naming the argument, never something
the caller's object raised (``_staging``, ``serializers``; the same functions serve
MockProducer).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import pytest

from asyncproducer._staging import (
    check_headers,
    check_partition,
    check_timestamp,
    exact_topic,
    safe_repr,
)
from asyncproducer.errors import (
    InvalidRecordTimestampError,
    InvalidTopicError,
    PartitionOutOfRangeError,
    SerializationError,
)
from asyncproducer.serializers import bytes_content, resolve_serializer
from tests.send_arguments import (
    ByteArraySub,
    BytesLyingLen,
    BytesOther,
    BytesRaising,
    BytesToStr,
    ClassLying,
    ClassRaising,
    HeadersRaisingMidway,
    IntOverride,
    PairRaising,
    ReprRaising,
    StrOverride,
    released,
)


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    ONE = 1


class Pair(NamedTuple):
    name: str
    value: bytes | None


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "data",
    [BytesRaising(b"held"), BytesToStr(b"held"), BytesOther(b"held"), BytesLyingLen(b"held")],
    ids=type,
)
@pytest.mark.parametrize("spec", [None, "bytes"])
def test_a_bytes_subclass_is_sent_as_the_bytes_it_holds(data: bytes, spec: str | None) -> None:
    serialize = resolve_serializer(spec, is_key=False)
    out = serialize("t", (), data)
    assert type(out) is bytes
    assert out == b"held"


def test_bytes_content_reads_the_buffer_of_every_bytes_like_type() -> None:
    assert bytes_content(ByteArraySub(b"held")) == b"held"
    assert bytes_content(memoryview(b"h.e.l.d")[::2]) == b"held"
    assert bytes_content(memoryview(bytearray(b"\x01\x00\x00\x00")).cast("i")) == b"\x01\0\0\0"


@pytest.mark.parametrize("is_key", [True, False], ids=["key", "value"])
def test_a_released_memoryview_is_a_serialization_error_naming_key_or_value(
    is_key: bool,
) -> None:
    serialize = resolve_serializer(None, is_key=is_key)
    role = "key" if is_key else "value"
    with pytest.raises(SerializationError, match=rf"^Can't serialize {role} .*released") as info:
        serialize("t", (), released())
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("cls", [ClassLying, ClassRaising])
def test_an_object_lying_through_class_is_refused_typed(cls: type) -> None:
    with pytest.raises(SerializationError, match="value of type Class"):
        resolve_serializer(None, is_key=False)("t", (), cls())


def test_a_user_serializer_returning_an_unreadable_bytes_like_is_refused_typed() -> None:
    serialize = resolve_serializer(lambda data: released(), is_key=False)
    with pytest.raises(SerializationError, match="its result: ValueError"):
        serialize("t", (), "x")
    serialize = resolve_serializer(lambda data: BytesRaising(b"held"), is_key=False)
    assert serialize("t", (), "x") == b"held"


def test_the_str_serializer_encodes_a_str_subclass_by_its_text() -> None:
    assert resolve_serializer("str", is_key=True)("t", (), StrOverride("text")) == b"text"


def test_an_exception_that_cannot_be_printed_is_still_wrapped() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def serializer(data: object) -> bytes:
        raise Unprintable

    with pytest.raises(SerializationError, match=r"Unprintable: \(its str\(\) raised\)"):
        resolve_serializer(serializer, is_key=False)("t", (), 1)


# --------------------------------------------------------------------------- headers


def test_headers_accept_bytes_like_values_str_subclass_names_and_any_pairs() -> None:
    headers: list[Any] = [
        ("a", bytearray(b"1")),
        [Color.RED, memoryview(b"2")],
        Pair("p", BytesRaising(b"3")),
        (StrOverride("s"), None),
    ]
    checked = check_headers("t", headers)
    assert checked == (("a", b"1"), ("red", b"2"), ("p", b"3"), ("s", None))
    assert all(type(name) is str and type(value) in (bytes, type(None)) for name, value in checked)
    assert check_headers("t", (pair for pair in [("g", b"1")])) == (("g", b"1"),)
    assert check_headers("t", []) == ()


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        (5, r"^headers for topic 't' must be .* pairs, got int: reading it raised TypeError"),
        ("ab", r"pairs, got str$"),
        (b"ab", r"pairs, got bytes$"),
        ({"a": b"1"}, r"got dict \(for a mapping, pass list\(headers.items\(\)\)\)"),
        (HeadersRaisingMidway(), r"reading it raised RuntimeError: .* after 1 of them"),
        ([("a", b"1", b"2")], r"^headers\[0\] for topic 't' must be .* pair; got 3 items"),
        ([("a",)], r"^headers\[0\] .* got 1 items"),
        (["ab"], r"^headers\[0\] .* got str 'ab'"),
        ([PairRaising(("a", b"1"))], r"^headers\[0\] .* reading it raised RuntimeError"),
        ([("a", b"1"), (b"b", b"2")], r"^headers\[1\] .* its name is a bytes, not a str"),
        ([("\ud800", b"1")], r"^header '\\ud800' \(headers\[0\]\) .* name is not UTF-8"),
        ([("a", 2)], r"^header 'a' \(headers\[0\]\) .* got \(str, int\)"),
        ([("a", released())], r"^header 'a' \(headers\[0\]\) .* value cannot be read: Value"),
        ([("a", ReprRaising())], r"got \(str, ReprRaising\)"),
    ],
    ids=safe_repr,
)
def test_headers_refused_name_which_and_why(headers: object, match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        check_headers("t", headers)


# --------------------------------------------------------------------------- partition, timestamp


def test_a_partition_is_an_int_or_int_subclass_by_its_value() -> None:
    assert check_partition("t", 1, 2) == 1
    assert check_partition("t", Level.ONE, 2) == 1
    assert type(check_partition("t", Level.ONE, 2)) is int
    assert check_partition("t", IntOverride(1), 2) == 1  # not its __int__ (-7)


@pytest.mark.parametrize(
    ("partition", "match"),
    [
        (2, r"^partition 2 given by the record is not in the range \[0...1\]"),
        (-1, r"^partition -1 "),
        (2**100, r"^partition 1267650600228229401496703205376 "),
        (True, r"^partition given by the record for topic 't' must be an int .* got bool True"),
        (1.0, r"got float 1.0"),
        ("1", r"got str '1'"),
        (ReprRaising(), r"got ReprRaising <a ReprRaising whose repr\(\) raised>"),
        (IntOverride(5), r"^partition 5 given"),
    ],
    ids=safe_repr,
)
def test_a_partition_refused_says_why(partition: object, match: str) -> None:
    with pytest.raises(PartitionOutOfRangeError, match=match):
        check_partition("t", partition, 2)


def test_a_timestamp_is_an_int_or_int_subclass_by_its_value() -> None:
    assert check_timestamp("t", 2**63 - 1) == 2**63 - 1
    assert check_timestamp("t", Level.ONE) == 1
    assert check_timestamp("t", IntOverride(5)) == 5


@pytest.mark.parametrize(
    "timestamp",
    [-1, 2**63, True, 1.5, float("nan"), "5", ReprRaising(), IntOverride(-1)],
    ids=safe_repr,
)
def test_a_timestamp_refused_names_timestamp_ms(timestamp: object) -> None:
    with pytest.raises(InvalidRecordTimestampError, match=r"^timestamp_ms for topic 't'"):
        check_timestamp("t", timestamp)


# --------------------------------------------------------------------------- topic


def test_a_topic_str_subclass_is_the_name_it_holds() -> None:
    assert exact_topic(Color.RED) == "red"
    assert type(exact_topic(Color.RED)) is str
    assert exact_topic(StrOverride("orders")) == "orders"  # not its __str__ ("lies")


@pytest.mark.parametrize(
    ("topic", "match"),
    [
        (5, r"a topic name is a str, got int 5"),
        (ReprRaising, r"got ReprRaising <a ReprRaising whose repr\(\) raised>"),
        (ClassLying, r"got ClassLying"),
        ("t\ud800", r"is not a legal name"),
        (StrOverride("no spaces"), r"'no spaces' is not a legal name"),
    ],
    ids=safe_repr,
)
def test_a_topic_refused_is_an_invalid_topic_error(topic: object, match: str) -> None:
    if isinstance(topic, type):
        topic = topic()  # pytest's parametrize would trip on its __class__
    with pytest.raises(InvalidTopicError, match=match):
        exact_topic(topic)


def test_safe_repr_shortens_and_survives() -> None:
    assert safe_repr(b"x" * 1000) == repr(b"x" * 77)[:77] + "..."
    assert safe_repr(ReprRaising()) == "<a ReprRaising whose repr() raised>"
    assert safe_repr(5) == "5"
