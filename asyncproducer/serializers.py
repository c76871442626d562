"""Turning keys and values into bytes.

``resolve_serializer`` turns the ``key_serializer`` / ``value_serializer`` setting into one
function, ``serialize(topic, headers, data) -> bytes | None``, that the producer calls for
every record. Accepted settings:

* ``None``: no conversion. ``bytes`` pass through; ``bytearray`` and ``memoryview`` are
  copied to ``bytes`` (the record must not change after ``send()``); ``None`` stays ``None``
  (no key, or a tombstone value); anything else fails. A subclass of any of the three is
  sent as the bytes its buffer holds (see :func:`bytes_content`), whatever its
  ``__bytes__`` or ``__len__`` say.
* ``"bytes"``: the same, named explicitly.
* ``"str"`` / ``"string"``: ``str`` encoded as UTF-8 (Java's ``StringSerializer``).
* ``"json"``: compact JSON (``separators=(",", ":")``), UTF-8; ``None`` stays ``None`` so
  that tombstones stay tombstones rather than becoming ``b"null"``.
* A plain callable ``fn(data) -> bytes | None`` (aiokafka style).
* An object with ``serialize(topic, headers, data) -> bytes | None`` (Java style); a class
  with that method is instantiated without arguments (Java's ``key.serializer`` class).

A user serializer may be asynchronous: a coroutine function ``async def fn(data)``, an
object (or class) whose ``serialize`` is ``async def serialize(topic, headers, data)``, or
an object whose ``__call__`` is a coroutine function. :func:`resolve_awaited_serializer`
recognizes those, once, when the producer is built; ``send()`` awaits them (within
``max_block_ms``; see ``_send_path``). :func:`resolve_serializer` refuses them: its callers
call the result synchronously.

User serializers are called for ``None`` too, as Java and aiokafka do, so they decide what a
tombstone looks like. Every failure, an exception inside or a result that is not bytes,
raises :class:`~asyncproducer.errors.SerializationError` naming the topic, whether it was the
key or the value, the data's type and the serializer, chained from the cause. (An exception
that is not an ``Exception``, such as ``KeyboardInterrupt``, goes through unchanged.)
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from asyncproducer._types import Header
from asyncproducer.errors import SerializationError

__all__ = [
    "AwaitedSerializer",
    "Serializer",
    "bytes_content",
    "resolve_awaited_serializer",
    "resolve_serializer",
]

Serializer: TypeAlias = Callable[[str, Sequence[Header] | None, Any], bytes | None]
"""``serialize(topic, headers, data) -> bytes | None``, as the producer calls it."""

_BYTES_LIKE = (bytes, bytearray, memoryview)

# Built once: json.dumps with non-default arguments builds a new encoder on every call.
# allow_nan=False because NaN and Infinity are not JSON (RFC 8259): other consumers'
# parsers would reject the record, so fail at send() where the cause is visible.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

_ALLOWED = (
    'None (bytes pass-through), "bytes", "str", "string", "json", a callable fn(data) -> bytes, '
    "or an object (or class) with a serialize(topic, headers, data) -> bytes method "
    "(either may be async def)"
)


def _error(role: str, topic: str, data: object, name: str, reason: str) -> SerializationError:
    return SerializationError(
        f"Can't serialize {role} of type {type(data).__qualname__} for topic {topic!r} "
        f"with the {name} serializer: {reason}"
    )


def reason_of(exc: BaseException) -> str:
    """``exc`` in a few words for an error message: its type and text."""
    try:
        text = str(exc)
    except Exception:  # the user's exception may not even print
        text = "(its str() raised)"
    return f"{type(exc).__qualname__}: {text}" if text else type(exc).__qualname__


def is_bytes_like(data: object) -> bool:
    """``data`` is a bytes, bytearray or memoryview, or a subclass: by its type, which
    runs no code of its own (``isinstance`` would consult a ``__class__`` property)."""
    return issubclass(type(data), _BYTES_LIKE)


def bytes_content(data: bytes | bytearray | memoryview) -> bytes:
    """The bytes a bytes-like object's buffer holds, as exactly ``bytes`` (a copy, so that
    later changes to ``data`` cannot reach the broker).

    The buffer, not ``bytes(data)``: for a subclass that calls its ``__bytes__``, which
    may raise, return a str, or differ from what the object holds and what its size was
    measured by (a Java byte array has no such hook: what it holds is what is sent).
    Raises what reading the buffer raises (ValueError for a released memoryview);
    callers wrap it."""
    if type(data) is bytearray or type(data) is memoryview:
        return bytes(data)  # no subclass: no code of the caller's runs
    with memoryview(data) as view:
        return view.tobytes()


def _as_bytes(result: object, role: str, topic: str, data: object, name: str) -> bytes:
    """A user serializer's result that is not exactly ``bytes`` or None: copy a bytes-like
    result (so later changes to it cannot reach the broker), reject anything else."""
    if is_bytes_like(result):
        try:
            return bytes_content(result)  # type: ignore[arg-type]
        except Exception as exc:
            raise _error(role, topic, data, name, f"its result: {reason_of(exc)}") from exc
    if inspect.isawaitable(result):
        # A plain function returning a coroutine (a wrapper of an async serializer, say):
        # close it, so that it does not warn "never awaited" on top of this error.
        if inspect.iscoroutine(result):
            result.close()
        raise _error(
            role,
            topic,
            data,
            name,
            f"it returned {type(result).__qualname__}, an awaitable: for the producer to "
            "await it, make the serializer (or its serialize method) an async def",
        )
    raise _error(
        role,
        topic,
        data,
        name,
        f"it returned {type(result).__qualname__}, expected bytes or None",
    )


# --------------------------------------------------------------------------- built-ins


def _pass_through(role: str, name: str) -> Serializer:
    hint = (
        "it accepts only bytes, bytearray, memoryview or None; set "
        f'{role}_serializer (for example "str", "json" or a callable) to send other types'
    )

    def serialize(topic: str, headers: Sequence[Header] | None, data: Any) -> bytes | None:
        # The hot path of the default configuration: exact bytes or None, two identity tests.
        if data is None or type(data) is bytes:
            return data
        if is_bytes_like(data):
            try:
                return bytes_content(data)
            except Exception as exc:  # a released memoryview, say
                raise _error(role, topic, data, name, reason_of(exc)) from exc
        raise _error(role, topic, data, name, hint)

    return serialize


def _utf8(role: str) -> Serializer:
    def serialize(topic: str, headers: Sequence[Header] | None, data: Any) -> bytes | None:
        if data is None:
            return None
        if not issubclass(type(data), str):
            raise _error(role, topic, data, "str", "expected str or None")
        try:
            # str.encode, not data.encode: a subclass is sent as the text it holds.
            return str.encode(data)
        except UnicodeEncodeError as exc:  # lone surrogates
            raise _error(role, topic, data, "str", reason_of(exc)) from exc

    return serialize


def _json(role: str) -> Serializer:
    encode = _JSON_ENCODER.encode

    def serialize(topic: str, headers: Sequence[Header] | None, data: Any) -> bytes | None:
        if data is None:
            return None
        try:
            return encode(data).encode()
        except Exception as exc:  # TypeError, ValueError (NaN, cycles), RecursionError, ...
            raise _error(role, topic, data, "json", reason_of(exc)) from exc

    return serialize


# --------------------------------------------------------------------------- user-supplied


def _plain_callable(fn: Callable[[Any], object], role: str) -> Serializer:
    name = _name_of(fn)

    def serialize(topic: str, headers: Sequence[Header] | None, data: Any) -> bytes | None:
        try:
            result = fn(data)
        except Exception as exc:
            raise _error(role, topic, data, name, reason_of(exc)) from exc
        if result is None or type(result) is bytes:
            return result
        return _as_bytes(result, role, topic, data, name)

    return serialize


def _java_style(obj: object, role: str) -> Serializer:
    method: Callable[[str, Sequence[Header] | None, Any], object] = obj.serialize  # type: ignore[attr-defined]
    name = type(obj).__qualname__

    def serialize(topic: str, headers: Sequence[Header] | None, data: Any) -> bytes | None:
        try:
            result = method(topic, headers, data)
        except Exception as exc:
            raise _error(role, topic, data, name, reason_of(exc)) from exc
        if result is None or type(result) is bytes:
            return result
        return _as_bytes(result, role, topic, data, name)

    return serialize


# --------------------------------------------------------------------------- awaited


class AwaitedSerializer:
    """An asynchronous key or value serializer, as the send path awaits it: :meth:`start`
    makes the coroutine, :meth:`result` checks what it returned, :meth:`error` names a
    failure (an exception, a cancellation, a timeout) as the synchronous ones do."""

    __slots__ = ("java_style", "method", "name", "role")

    role: str
    """``"key"`` or ``"value"``."""
    name: str
    """The serializer's name for error messages (its type's, or its function's)."""
    method: Callable[..., Awaitable[object]]
    java_style: bool
    """``method(topic, headers, data)``; else ``method(data)``."""

    def __init__(
        self,
        role: str,
        name: str,
        method: Callable[..., Awaitable[object]],
        java_style: bool,
    ) -> None:
        self.role = role
        self.name = name
        self.method = method
        self.java_style = java_style

    def start(self, topic: str, headers: Sequence[Header], data: Any) -> Awaitable[object]:
        """The serializer's coroutine, not started. SerializationError if calling it raises
        (a callable object whose ``__call__`` refuses the arguments, say)."""
        try:
            if self.java_style:
                return self.method(topic, headers, data)
            return self.method(data)
        except Exception as exc:
            raise self.error(topic, data, reason_of(exc)) from exc

    def result(self, topic: str, data: object, result: object) -> bytes | None:
        """What the coroutine returned, as exactly bytes or None; SerializationError
        for anything else (a bytes-like result is copied, as for synchronous ones)."""
        if result is None or type(result) is bytes:
            return result
        return _as_bytes(result, self.role, topic, data, self.name)

    def error(self, topic: str, data: object, reason: str) -> SerializationError:
        return _error(self.role, topic, data, self.name, reason)


def _is_coroutine_function(fn: object) -> bool:
    """``fn`` is ``async def`` (a function, a method, a ``functools.partial`` of one), or
    an object whose ``__call__`` is."""
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # the method itself: async def?
    )


def _async_serialize_method(spec: object) -> Callable[..., Any] | None:
    """The ``serialize`` method of a Java-style object or class, if it is async def."""
    method: object = getattr(spec, "serialize", None)
    if callable(method) and _is_coroutine_function(method):
        return method
    return None


def resolve_awaited_serializer(spec: object, *, is_key: bool) -> AwaitedSerializer | None:
    """The asynchronous serializer ``spec`` is, ready to await; None if it is not one
    (then :func:`resolve_serializer` takes it). Decided once, by the forms the
    synchronous serializers take: a class with ``async def serialize`` (instantiated
    once, without arguments), an object with one, or a coroutine function (or an object
    whose ``__call__`` is one) called as ``fn(data)``. A Java-style object whose
    ``serialize`` is synchronous is synchronous, whatever its ``__call__``."""
    role = "key" if is_key else "value"
    if spec is None or isinstance(spec, str):
        return None
    if isinstance(spec, type):
        if _async_serialize_method(spec) is None:
            return None
        instance = spec()
        return AwaitedSerializer(role, spec.__qualname__, instance.serialize, java_style=True)
    if callable(getattr(spec, "serialize", None)):
        method = _async_serialize_method(spec)
        if method is None:
            return None
        return AwaitedSerializer(role, type(spec).__qualname__, method, java_style=True)
    if callable(spec) and _is_coroutine_function(spec):
        return AwaitedSerializer(role, _name_of(spec), spec, java_style=False)
    return None


def _name_of(fn: object) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else type(fn).__qualname__


# --------------------------------------------------------------------------- resolution

_BUILT_IN: dict[str, Callable[[str], Serializer]] = {
    "bytes": lambda role: _pass_through(role, "bytes"),
    "str": _utf8,
    "string": _utf8,
    "json": _json,
}


def passes_bytes_through(spec: object) -> bool:
    """Whether the serializer setting ``spec`` sends bytes and None as they are (the
    default): then the producer skips the call for those, as the serializer would."""
    return spec is None or (isinstance(spec, str) and spec.lower() == "bytes")


def resolve_serializer(spec: object, *, is_key: bool) -> Serializer:
    """The ``serialize(topic, headers, data)`` function for a serializer setting (see the
    module docstring for what ``spec`` may be). Raises ``TypeError`` for anything else."""
    role = "key" if is_key else "value"
    if spec is None:
        return _pass_through(role, "default")
    if not isinstance(spec, str) and _is_awaited(spec):
        raise TypeError(
            f"{role}_serializer {_name_of(spec)} is asynchronous (async def): Producer awaits "
            "it (resolve_awaited_serializer); here a synchronous serializer is needed"
        )
    if isinstance(spec, str):
        factory = _BUILT_IN.get(spec.lower())
        if factory is None:
            raise TypeError(f"{role}_serializer {spec!r} is not a known name; expected {_ALLOWED}")
        return factory(role)
    if isinstance(spec, type):
        # A class is callable, but calling it per record would build instances, not bytes:
        # only a Java-style serializer class makes sense here, and it is instantiated once.
        if callable(getattr(spec, "serialize", None)):
            return _java_style(spec(), role)
        raise TypeError(
            f"{role}_serializer class {spec.__qualname__} has no serialize(topic, headers, data) "
            f"method; expected {_ALLOWED}"
        )
    if callable(getattr(spec, "serialize", None)):
        return _java_style(spec, role)
    if callable(spec):
        return _plain_callable(spec, role)
    raise TypeError(
        f"{role}_serializer must be {_ALLOWED}; got {spec!r} ({type(spec).__qualname__})"
    )


def _is_awaited(spec: object) -> bool:
    """``spec`` is one of the asynchronous forms :func:`resolve_awaited_serializer` takes
    (without instantiating a class)."""
    if isinstance(spec, type) or callable(getattr(spec, "serialize", None)):
        return _async_serialize_method(spec) is not None
    return callable(spec) and _is_coroutine_function(spec)
