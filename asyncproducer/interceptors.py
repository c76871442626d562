"""Producer interceptors: user hooks that see every record before it is serialized and
every acknowledgement (Java's ``ProducerInterceptor`` and ``ProducerInterceptors``).

An interceptor is an object with any of ``on_send``, ``on_acknowledgement``, ``close`` and
``configure``; subclassing :class:`ProducerInterceptor` gives no-op defaults for the rest.
As in Java, an interceptor cannot break the producer: whatever it raises is logged on the
``asyncproducer.interceptors`` logger and the producer carries on.

``on_send`` receives the record that the previous interceptor returned; it may return a
different :class:`ProducerRecord` (``dataclasses.replace(record, ...)``) to send instead.
Return a new record rather than changing the one received: Java's records are immutable, so
"an interceptor that raises is skipped and the next one sees the record as it was" holds
there; here it holds only if the failing interceptor did not modify the record in place
(the chain does not copy records, to keep ``send()`` free of per-record allocations).

``on_acknowledgement`` runs in the producer's event loop when a record's delivery succeeds
or fails; it must be quick and must not block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from asyncproducer._types import ProducerRecord, RecordMetadata

__all__ = ["InterceptorChain", "ProducerInterceptor"]

logger: logging.Logger = logging.getLogger("asyncproducer.interceptors")

_HOOKS = ("on_send", "on_acknowledgement", "close", "configure")


class ProducerInterceptor:
    """Base class for interceptors, with no-op defaults; override what you need.

    Subclassing is optional: any object with some of these methods works.
    """

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        """Called in ``send()`` before serialization and partitioning; return the record to
        send (this one, or a new one)."""
        return record

    def on_acknowledgement(
        self, metadata: RecordMetadata | None, exception: BaseException | None
    ) -> None:
        """Called once per record when it is acknowledged (``exception`` is None) or fails.

        On failure ``metadata`` carries the topic and, if known, the partition (else -1);
        its offset, timestamp and sizes are -1 (as Java's ``InterceptorCallback``): for a
        record refused in ``send()`` and for one that failed after it was enqueued alike.
        """

    def close(self) -> None:
        """Called once when the producer closes."""

    def configure(self, configs: Mapping[str, Any]) -> None:
        """Called once with the producer's configuration before the first record."""


def _bound_hook(interceptor: object, hook: str) -> Callable[..., object] | None:
    """The interceptor's ``hook`` method, or None when it has none or only inherits the
    base class's no-op (so the chain does not pay a call per record for nothing)."""
    method: object = getattr(interceptor, hook, None)
    if not callable(method):
        return None
    if getattr(method, "__func__", None) is getattr(ProducerInterceptor, hook):
        return None
    return method


def _hooks(
    interceptors: Sequence[object], hook: str
) -> tuple[tuple[str, Callable[..., object]], ...]:
    found: list[tuple[str, Callable[..., object]]] = []
    for interceptor in interceptors:
        method = _bound_hook(interceptor, hook)
        if method is not None:
            found.append((type(interceptor).__qualname__, method))
    return tuple(found)


def _check(interceptor: object) -> None:
    if isinstance(interceptor, type):
        raise TypeError(
            f"interceptor {interceptor.__qualname__} is a class; pass an instance of it"
        )
    if not any(callable(getattr(interceptor, hook, None)) for hook in _HOOKS):
        raise TypeError(
            f"interceptor {interceptor!r} has none of the methods {', '.join(_HOOKS)}; "
            "subclass asyncproducer.interceptors.ProducerInterceptor or add some of them"
        )


class InterceptorChain:
    """The producer's interceptors, called in order, each failure logged and contained.

    Methods are looked up once here, so a record costs one call per interceptor that
    actually overrides the hook, and nothing when the chain is empty (``bool(chain)`` is
    False, and the producer skips it).
    """

    __slots__ = ("_close", "_configure", "_interceptors", "_on_ack", "_on_send")

    def __init__(self, interceptors: Sequence[ProducerInterceptor | object]) -> None:
        for interceptor in interceptors:
            _check(interceptor)
        self._interceptors = tuple(interceptors)
        self._on_send = _hooks(self._interceptors, "on_send")
        self._on_ack = _hooks(self._interceptors, "on_acknowledgement")
        self._close = _hooks(self._interceptors, "close")
        self._configure = _hooks(self._interceptors, "configure")

    def __bool__(self) -> bool:
        return bool(self._interceptors)

    def __len__(self) -> int:
        return len(self._interceptors)

    def __repr__(self) -> str:
        names = ", ".join(type(i).__qualname__ for i in self._interceptors)
        return f"InterceptorChain([{names}])"

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        """Pass ``record`` through every ``on_send`` in order and return the final record.

        One that raises, or returns something other than a ``ProducerRecord``, is logged and
        skipped: the next interceptor gets the record the failing one was given.
        """
        for name, method in self._on_send:
            try:
                result = method(record)
            except Exception:
                logger.warning(
                    "Interceptor %s raised in on_send for a record to topic %r; "
                    "skipping it and passing the record on unchanged",
                    name,
                    record.topic,
                    exc_info=True,
                )
                continue
            if isinstance(result, ProducerRecord):
                record = result
            else:
                logger.warning(
                    "Interceptor %s returned %s from on_send instead of a ProducerRecord; "
                    "ignoring it and passing the record on unchanged",
                    name,
                    type(result).__qualname__,
                )
        return record

    def on_acknowledgement(
        self, metadata: RecordMetadata | None, exception: BaseException | None
    ) -> None:
        """Tell every interceptor that a record was acknowledged or failed."""
        for name, method in self._on_ack:
            try:
                method(metadata, exception)
            except Exception:
                logger.warning(
                    "Interceptor %s raised in on_acknowledgement; ignored", name, exc_info=True
                )

    def on_send_error(
        self, record: ProducerRecord, exception: BaseException, *, partition: int | None = None
    ) -> None:
        """A record failed before it reached a batch (serialization, size check, buffer
        wait, ...): acknowledge it as failed with metadata built from the record, as Java's
        ``onSendError`` does. ``partition`` is the one chosen, if partitioning happened;
        else the record's own, else -1."""
        if not self._on_ack:
            return
        if partition is None:
            partition = -1 if record.partition is None else record.partition
        self.on_acknowledgement(RecordMetadata(record.topic, partition, -1, -1, -1, -1), exception)

    def configure(self, configs: Mapping[str, Any]) -> None:
        """Pass the producer's configuration to every interceptor."""
        for name, method in self._configure:
            try:
                method(configs)
            except Exception:
                logger.warning("Interceptor %s raised in configure; ignored", name, exc_info=True)

    def close(self) -> None:
        """Close every interceptor, each even if an earlier one fails."""
        for name, method in self._close:
            try:
                method()
            except Exception:
                logger.error("Interceptor %s raised in close; ignored", name, exc_info=True)
