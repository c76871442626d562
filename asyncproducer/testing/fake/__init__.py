"""An in-process multi-broker fake Kafka cluster speaking the real wire protocol.

See :class:`FakeCluster`. The broker side uses only the protocol layer
(:mod:`asyncproducer.protocol`), never the producer's own networking, so a bug in the
client cannot be mirrored by the fake.
"""

from __future__ import annotations

from asyncproducer.testing.fake.cluster import RequestLogEntry, StoredBatch, StoredRecord
from asyncproducer.testing.fake.server import FakeCluster

__all__ = ["FakeCluster", "RequestLogEntry", "StoredBatch", "StoredRecord"]
