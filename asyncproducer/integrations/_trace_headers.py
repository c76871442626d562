"""W3C trace context in record headers, for :mod:`asyncproducer.integrations.opentelemetry`:
headers as ``(str, bytes)`` pairs as a propagator's carrier, the context a caller's
headers carry already, and the caller's headers with the context added (never changed
in place)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
from opentelemetry.trace import Span, SpanContext

from asyncproducer._types import Header

__all__ = ["custom_context", "extract_context", "headers_with", "inject"]


class _HeadersGetter(Getter[Sequence[Header]]):
    """Reads a propagator's fields from record headers, ``(str, bytes)`` pairs, values
    decoded as UTF-8. Never raises, whatever the caller's headers hold (the producer
    refuses bad headers itself, with its own message)."""

    def get(self, carrier: Sequence[Header], key: str) -> list[str] | None:
        values = []
        for pair in carrier:
            if type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str:
                name, value = pair
                if name == key and isinstance(value, bytes | bytearray):
                    values.append(bytes(value).decode("utf-8", "replace"))
        return values or None

    def keys(self, carrier: Sequence[Header]) -> list[str]:
        return [pair[0] for pair in carrier if type(pair) is tuple and type(pair[0]) is str]


class _HeadersSetter(Setter[list[Header]]):
    def set(self, carrier: list[Header], key: str, value: str) -> None:
        carrier.append((key, value.encode()))


_GETTER = _HeadersGetter()
_SETTER = _HeadersSetter()
_NOT_PAIRS = (str, bytes, bytearray, memoryview, Mapping)


def extract_context(
    headers: Iterable[Header] | None,
    propagator: TextMapPropagator | None = None,
    context: Context | None = None,
) -> Context:
    """The context a record's headers carry (its creation context), for a consumer: the
    parent of its process span, or a link. ``headers`` as consumer clients give them, a
    list of ``(str, bytes)`` pairs (confluent-kafka's ``message.headers()``, aiokafka's
    ``record.headers``). ``propagator`` defaults to the global one."""
    carrier = tuple(headers or ())
    textmap = propagator or propagate.get_global_textmap()
    return textmap.extract(carrier, context=context, getter=_GETTER)


def custom_context(headers: object, propagator: TextMapPropagator) -> SpanContext | None:
    """The span context the caller's own headers carry already, if any (only a list or
    tuple is looked into: another iterable could be read only once)."""
    if not headers or (type(headers) is not list and type(headers) is not tuple):
        return None
    found = propagator.extract(cast(Sequence[Header], headers), Context(), _GETTER)
    span_context = trace.get_current_span(found).get_span_context()
    return span_context if span_context.is_valid else None


def headers_with(headers: Any, context: list[Header]) -> Any:
    """The caller's headers followed by ``context``, in a new object (the caller's list
    is not changed). What the producer refuses as headers anyway (a str, a mapping, not
    iterable) is passed on as it is, so that it is refused with the producer's message."""
    if headers is None:
        return context or None  # None: a record without headers may take the C fast path
    if not context:
        return headers
    kind = type(headers)
    if kind is list or kind is tuple:
        return [*headers, *context]
    if issubclass(kind, _NOT_PAIRS) or not hasattr(headers, "__iter__"):
        return headers
    return itertools.chain(headers, context)  # a generator stays lazy, read once


def inject(span: Span, propagator: TextMapPropagator) -> list[Header]:
    carrier: list[Header] = []
    propagator.inject(carrier, trace.set_span_in_context(span), _SETTER)
    return carrier
