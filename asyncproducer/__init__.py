"""asyncproducer: an async-native Apache Kafka producer on AnyIO (asyncio and trio)."""

from __future__ import annotations

from asyncproducer import errors
from asyncproducer._types import Header, RecordMetadata, TopicPartition
from asyncproducer.errors import KafkaError
from asyncproducer.producer import Producer

__version__ = "0.1.0.dev0"

__all__ = [
    "Header",
    "KafkaError",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
    "__version__",
    "errors",
]
