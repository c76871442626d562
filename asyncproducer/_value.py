"""``Value``: the base of the package's small internal value classes.

Plain classes with ``__slots__`` and a hand-written ``__init__``; this base gives them
equality, hash and repr over their fields, and :meth:`Value.replace`. Not dataclasses:
a frozen dataclass costs ~0.3 ms to define, because its methods are generated as source
and compiled when its module is imported, and the classes on a producer's import path
added up to ~7 ms of a cold start (docs/benchmarks.md, "Cold start"). The public types
(``ProducerRecord``, ``RecordMetadata``, ``ProducerConfig``, ...) stay dataclasses:
users may ``dataclasses.replace`` them.

Immutability is by convention: nothing assigns to a value's fields after ``__init__``
(those used as dict keys, ``BrokerAddress`` say, must not change).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self


class Value:
    """Subclasses set ``__slots__`` (sorted), and ``_fields``: the fields that make a
    value's identity (equality, hash, repr, :meth:`replace`), in ``__init__``'s order;
    every slot, sorted, if not set."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_fields" not in cls.__dict__:
            cls._fields = tuple(cls.__dict__.get("__slots__", ()))

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Value)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (as ``dataclasses.replace``)."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)
