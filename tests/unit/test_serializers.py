from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncproducer._types import Header
from asyncproducer.errors import SerializationError
from asyncproducer.serializers import resolve_serializer

HEADERS: list[Header] = [("trace", b"abc")]


# --------------------------------------------------------------------------- pass-through


@pytest.mark.parametrize("spec", [None, "bytes", "BYTES"])
def test_pass_through_keeps_bytes_and_none(spec: object) -> None:
    serialize = resolve_serializer(spec, is_key=False)
    payload = b"payload"
    assert serialize("t", None, payload) is payload  # no copy on the hot path
    assert serialize("t", HEADERS, None) is None


@pytest.mark.parametrize("spec", [None, "bytes"])
def test_pass_through_copies_bytes_like(spec: object) -> None:
    serialize = resolve_serializer(spec, is_key=True)
    buffer = bytearray(b"abc")
    result = serialize("t", None, buffer)
    assert type(result) is bytes
    assert result == b"abc"
    buffer[0] = ord("x")
    assert result == b"abc"  # later changes to the caller's buffer do not reach the record
    assert serialize("t", None, memoryview(b"xyz")) == b"xyz"


def test_pass_through_rejects_other_types_with_a_useful_message() -> None:
    serialize = resolve_serializer(None, is_key=False)
    with pytest.raises(SerializationError) as info:
        serialize("orders", None, "text")
    message = str(info.value)
    assert message.startswith(
        "Can't serialize value of type str for topic 'orders' with the default serializer:"
    )
    assert "value_serializer" in message


def test_pass_through_names_key_for_keys() -> None:
    with pytest.raises(SerializationError, match=r"^Can't serialize key of type int"):
        resolve_serializer(None, is_key=True)("t", None, 42)


# --------------------------------------------------------------------------- str


@pytest.mark.parametrize("spec", ["str", "string", "String"])
@given(text=st.text())
def test_str_encodes_utf8(spec: str, text: str) -> None:
    assert resolve_serializer(spec, is_key=True)("t", None, text) == text.encode("utf-8")


def test_str_keeps_none_and_rejects_non_str() -> None:
    serialize = resolve_serializer("str", is_key=False)
    assert serialize("t", None, None) is None
    with pytest.raises(SerializationError, match=r"value of type bytes .* str serializer"):
        serialize("t", None, b"raw")


def test_str_unencodable_text_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="UnicodeEncodeError") as info:
        resolve_serializer("str", is_key=True)("t", None, "\ud800")
    assert isinstance(info.value.__cause__, UnicodeEncodeError)


# --------------------------------------------------------------------------- json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values.filter(lambda v: v is not None))
def test_json_is_compact_and_round_trips(value: Any) -> None:
    encoded = resolve_serializer("json", is_key=False)("t", None, value)
    assert encoded is not None
    assert encoded == json.dumps(value, separators=(",", ":")).encode("utf-8")
    assert json.loads(encoded) == value


def test_json_compact_form() -> None:
    serialize = resolve_serializer("json", is_key=False)
    assert serialize("t", None, {"a": [1, 2], "é": "ü"}) == b'{"a":[1,2],"\\u00e9":"\\u00fc"}'


def test_json_none_stays_a_tombstone() -> None:
    assert resolve_serializer("json", is_key=False)("t", None, None) is None


def test_json_failure_message_names_topic_role_type_and_serializer() -> None:
    serialize = resolve_serializer("json", is_key=False)
    with pytest.raises(SerializationError) as info:
        serialize("orders", None, {"amount": Decimal("1.5")})
    assert str(info.value).startswith(
        "Can't serialize value of type dict for topic 'orders' with the json serializer: "
        "TypeError: Object of type Decimal is not JSON serializable"
    )
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(
        SerializationError,
        match=r"^Can't serialize value of type Decimal for topic 'orders' with the json serializer",
    ):
        serialize("orders", None, Decimal("1.5"))


@pytest.mark.parametrize("value", [float("nan"), [float("inf")]])
def test_json_rejects_nan_and_infinity(value: object) -> None:
    with pytest.raises(SerializationError, match="json serializer"):
        resolve_serializer("json", is_key=True)("t", None, value)


def test_json_cycle_is_a_serialization_error() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(SerializationError, match="Circular reference"):
        resolve_serializer("json", is_key=False)("t", None, cyclic)


# --------------------------------------------------------------------------- user callables


def encode_order(data: Any) -> bytes:
    return f"order:{data}".encode()


def test_plain_callable_aiokafka_style() -> None:
    serialize = resolve_serializer(encode_order, is_key=False)
    assert serialize("t", HEADERS, 7) == b"order:7"
    # Called for None too (as aiokafka and Java do): the user decides what a tombstone is.
    assert serialize("t", None, None) == b"order:None"


def test_plain_callable_may_return_none_or_bytes_like() -> None:
    assert resolve_serializer(lambda data: None, is_key=True)("t", None, "x") is None
    result = resolve_serializer(lambda data: bytearray(b"ab"), is_key=True)("t", None, "x")
    assert type(result) is bytes
    assert result == b"ab"


def test_plain_callable_exception_is_wrapped_and_chained() -> None:
    def broken(data: Any) -> bytes:
        raise ValueError("no good")

    with pytest.raises(SerializationError) as info:
        resolve_serializer(broken, is_key=True)("events", None, 3.5)
    assert str(info.value) == (
        "Can't serialize key of type float for topic 'events' with the "
        "test_plain_callable_exception_is_wrapped_and_chained.<locals>.broken serializer: "
        "ValueError: no good"
    )
    assert isinstance(info.value.__cause__, ValueError)


def test_plain_callable_returning_str_is_rejected() -> None:
    serialize = resolve_serializer(lambda data: str(data), is_key=False)
    with pytest.raises(SerializationError, match="it returned str, expected bytes or None"):
        serialize("t", None, 1)


class JavaStyle:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Sequence[Header] | None, Any]] = []

    def serialize(self, topic: str, headers: Sequence[Header] | None, data: Any) -> bytes | None:
        self.calls.append((topic, headers, data))
        return None if data is None else repr(data).encode()


def test_java_style_object_gets_topic_and_headers() -> None:
    serializer = JavaStyle()
    serialize = resolve_serializer(serializer, is_key=False)
    assert serialize("t", HEADERS, [1]) == b"[1]"
    assert serialize("u", None, None) is None
    assert serializer.calls == [("t", HEADERS, [1]), ("u", None, None)]


def test_java_style_class_is_instantiated() -> None:
    assert resolve_serializer(JavaStyle, is_key=True)("t", None, 5) == b"5"


def test_java_style_object_preferred_over_call() -> None:
    class Both(JavaStyle):
        def __call__(self, data: Any) -> bytes:
            return b"called"

    assert resolve_serializer(Both(), is_key=False)("t", None, 5) == b"5"


def test_java_style_failures_name_the_class() -> None:
    class Bad:
        def serialize(self, topic: str, headers: Sequence[Header] | None, data: Any) -> object:
            return 12

    with pytest.raises(SerializationError, match=r"with the .*Bad serializer: it returned int"):
        resolve_serializer(Bad(), is_key=False)("t", None, "x")


def test_serialization_error_does_not_swallow_base_exceptions() -> None:
    def interrupted(data: Any) -> bytes:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resolve_serializer(interrupted, is_key=False)("t", None, 1)


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize("spec", ["avro", 3, object(), int, b"json"])
def test_unknown_specs_raise_type_error_naming_what_is_allowed(spec: object) -> None:
    with pytest.raises(TypeError, match=r'"json", a callable fn\(data\) -> bytes'):
        resolve_serializer(spec, is_key=False)


def test_type_error_names_key_or_value() -> None:
    with pytest.raises(TypeError, match=r"^key_serializer 'avro'"):
        resolve_serializer("avro", is_key=True)
    with pytest.raises(TypeError, match=r"^value_serializer must be"):
        resolve_serializer(3, is_key=False)
