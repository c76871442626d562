"""An in-process multi-broker fake Kafka cluster speaking the real wire protocol.

See :class:`FakeCluster`. The broker side uses only the protocol layer
(:mod:`asyncproducer.protocol`), never the producer's own networking, so a bug in the
client cannot be mirrored by the fake.
"""

from __future__ import annotations

from asyncproducer.testing.fake._quotas import RequestArrival, Throttle
from asyncproducer.testing.fake._security import unsecured_jws, unsecured_token_provider
from asyncproducer.testing.fake._session import Authentication, AuthenticationFailure
from asyncproducer.testing.fake._transactions import TransactionInfo
from asyncproducer.testing.fake._txn_log import StoredMarker
from asyncproducer.testing.fake.cluster import RequestLogEntry, StoredBatch, StoredRecord
from asyncproducer.testing.fake.facade import FakeCluster

__all__ = [
    "Authentication",
    "AuthenticationFailure",
    "FakeCluster",
    "RequestArrival",
    "RequestLogEntry",
    "StoredBatch",
    "StoredMarker",
    "StoredRecord",
    "Throttle",
    "TransactionInfo",
    "unsecured_jws",
    "unsecured_token_provider",
]
