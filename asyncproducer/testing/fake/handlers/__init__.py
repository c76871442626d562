"""One module per API key; each exposes ``handle(request: Request) -> response | None``.

This package's ``__init__`` only holds what every handler shares; the dispatch table
(API key -> handler, and the version ranges advertised in ApiVersions) is in
:mod:`asyncproducer.testing.fake.server`, so handler modules never import each other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from kio.index import load_payload_module
from kio.static.constants import EntityType

from asyncproducer.testing.fake._session import Session
from asyncproducer.testing.fake.cluster import ClusterState


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request and where it arrived."""

    cluster: ClusterState
    broker: int
    api_key: int
    version: int
    body: Any
    # Non-zero when a test armed fail_next for this request: the handler answers with it
    # (and applies nothing) in whatever place its response has for an error code.
    forced_error: int = 0
    session: Session | None = None
    """The connection's authentication state (SaslHandshake and SaslAuthenticate use it)."""


@functools.cache
def response_module(api_key: int, version: int) -> ModuleType:
    return load_payload_module(api_key, version, EntityType.response)


def build(cls: type[Any], **values: Any) -> Any:
    """Instantiate a kio entity with only the fields its version has.

    Response fields come and go between versions; handlers pass everything they know and
    the version's class decides what is on the wire. Fields not given keep kio's default.
    """
    names = _field_names(cls)
    return cls(**{name: value for name, value in values.items() if name in names})


# A dict, not functools.cache: kio's frozen dataclass types do not type-check as Hashable.
_field_names_by_class: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    names = _field_names_by_class.get(cls)
    if names is None:
        names = _field_names_by_class[cls] = frozenset(f.name for f in fields(cls))
    return names


def response_class(request: Request, name: str) -> type[Any]:
    cls: type[Any] = getattr(response_module(request.api_key, request.version), name)
    return cls


_NOT_COORDINATOR = 16
_INVALID_PRODUCER_EPOCH = 47
_PRODUCER_FENCED = 90


def not_coordinator(request: Request, key: str, key_type: int) -> int:
    """NOT_COORDINATOR unless this broker coordinates ``key`` (a transactional id, key
    type 1, or a group, key type 0), else 0."""
    owner = request.cluster.placement.coordinator_of(key, key_type)
    return 0 if owner == request.broker else _NOT_COORDINATOR


def fenced_for_version(code: int, version: int, first_with_producer_fenced: int) -> int:
    """KIP-588 added PRODUCER_FENCED; requests older than ``first_with_producer_fenced``
    get INVALID_PRODUCER_EPOCH instead, as Kafka's KafkaApis converts it."""
    if code == _PRODUCER_FENCED and version < first_with_producer_fenced:
        return _INVALID_PRODUCER_EPOCH
    return code
