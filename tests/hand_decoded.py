"""The hand-written response decoders' results, as kio's entities (for comparison).

``asyncproducer.protocol.responses`` decodes four responses into plain classes of its
own; tests compare them with kio's decoding of the same bytes by building the kio entity
those classes stand for: same field names, with error codes as kio's enum where it knows
them, durations and timestamps as kio's ``timedelta`` and ``datetime``, and the all-zero
topic id as None.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import fields
from typing import Any

from kio.schema.errors import ErrorCode
from kio.serial._introspect import EntityField, EntityTupleField, classify_field

from asyncproducer.protocol.versions import ApiKey
from tests.response_frames import response_class

_KNOWN_CODES = {int(code): code for code in ErrorCode}


def as_kio(api: ApiKey, version: int, decoded: Any) -> Any:
    """``decoded`` (a ``responses`` class) as the kio entity of ``api``/``version`` (the
    version it was read in, for an ApiVersions answer read as v0)."""
    if api is ApiKey.API_VERSIONS:
        version = decoded.version
    return _convert(response_class(api, version), decoded)


def _convert(cls: type[Any], plain: Any) -> Any:
    values = {}
    for field in fields(cls):
        kind = classify_field(field)
        kafka_type = field.metadata.get("kafka_type")
        if isinstance(kind, EntityTupleField):
            values[field.name] = tuple(
                _convert(kind.type_, item) for item in getattr(plain, field.name)
            )
        elif isinstance(kind, EntityField):
            values[field.name] = _convert(kind.type_, getattr(plain, field.name))
        elif kafka_type == "timedelta_i32":
            values[field.name] = datetime.timedelta(milliseconds=getattr(plain, f"{field.name}_ms"))
        elif kafka_type == "datetime_i64":
            values[field.name] = _timestamp(getattr(plain, f"{field.name}_ms"))
        elif kafka_type == "uuid":
            raw = getattr(plain, field.name)
            values[field.name] = None if raw == bytes(16) else uuid.UUID(bytes=raw)
        elif kafka_type == "error_code":
            code = getattr(plain, field.name)
            assert type(code) is int
            values[field.name] = _KNOWN_CODES.get(code, code)
        else:
            values[field.name] = getattr(plain, field.name)
    return cls(**values)


def _timestamp(ms: int) -> Any:
    if ms == -1:
        return None
    try:  # as kio converts it
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    except (OverflowError, ValueError, OSError):  # kio refuses it (not so Java, nor we)
        return ms
