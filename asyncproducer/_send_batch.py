"""``send_batch()``'s records as ``send()``'s arguments, and ``send_batch()`` through
``send()`` (the interceptor path, and MockProducer's).

A record is a ``ProducerRecord`` or a plain tuple of ``send()``'s first 2 to 6
arguments. Whatever a record or the iterable of records raises, every record taken
before it gets its result: a caller that retries must know which records went.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from asyncproducer._staging import safe_repr
from asyncproducer._types import ProducerRecord, RecordMetadata, RecordTuple
from asyncproducer.errors import InvalidProducerRecordError, KafkaError, SendBatchAbortedError
from asyncproducer.serializers import reason_of

_NONES = [(None,) * (6 - n) for n in range(7)]
"""By a record tuple's length, what pads it to send()'s six arguments."""


def aborted_message(taken: int, cause: BaseException) -> str:
    """SendBatchAbortedError's message: what was raised, and where the results are."""
    return (
        f"records: send_batch() stopped after {taken} of them, when {reason_of(cause)} "
        f"was raised; .results has those {taken} records' results (each a RecordMetadata "
        "or the KafkaError it failed with; the call waited for them), and no later "
        "record was read"
    )


def send_arguments(record: ProducerRecord | RecordTuple) -> tuple[Any, ...]:
    """``send()``'s six arguments for a ``send_batch()`` record: a ProducerRecord's
    fields, or a RecordTuple padded with None; InvalidProducerRecordError otherwise."""
    if type(record) is tuple and 2 <= len(record) <= 6:
        return record + _NONES[len(record)]
    if issubclass(type(record), ProducerRecord):
        fields = cast(ProducerRecord, record)
        try:
            return (
                fields.topic,
                fields.value,
                fields.key,
                fields.partition,
                fields.timestamp_ms,
                fields.headers,
            )
        except Exception as exc:  # a field left unset, or a subclass's property
            raise InvalidProducerRecordError(
                f"send_batch() could not read the fields of a {type(record).__qualname__}: "
                f"{reason_of(exc)}"
            ) from exc
    shape = f"tuple of {len(record)}" if type(record) is tuple else type(record).__name__
    raise InvalidProducerRecordError(
        f"send_batch() takes ProducerRecords, or tuples of send()'s first 2 to 6 arguments "
        f"(topic, value, key, partition, timestamp_ms, headers); got a {shape}: "
        f"{safe_repr(record)}"
    )


async def send_each(
    send: Callable[..., Awaitable[Any]], records: Iterable[ProducerRecord | RecordTuple]
) -> list[RecordMetadata | KafkaError]:
    """``send_batch()`` through ``send()``, one future per record: with interceptors
    (they see each record), and in MockProducer. Each result as send_batch() gives it,
    and SendBatchAbortedError as it raises it."""
    slots: list[Any] = []
    try:
        for record in records:
            try:
                slots.append(await send(*send_arguments(record)))
            except KafkaError as exc:
                slots.append(exc)
    except Exception as exc:
        results = await _outcomes(slots)
        raise SendBatchAbortedError(aborted_message(len(results), exc), results) from exc
    return await _outcomes(slots)


async def _outcomes(slots: list[Any]) -> list[RecordMetadata | KafkaError]:
    """Each slot's error, or what its future gives: the metadata, or the error."""
    results: list[RecordMetadata | KafkaError] = []
    for slot in slots:
        if isinstance(slot, KafkaError):
            results.append(slot)
            continue
        try:
            results.append(await slot)
        except KafkaError as exc:
            results.append(exc)
    return results
