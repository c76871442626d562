"""asyncproducer: an async-native Apache Kafka producer on AnyIO (asyncio and trio)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncproducer import errors
    from asyncproducer._metrics import Metric, MetricsReporter
    from asyncproducer._types import (
        ConsumerGroupMetadata,
        Header,
        Node,
        OffsetAndMetadata,
        PartitionInfo,
        ProducerRecord,
        RecordMetadata,
        RecordTuple,
        TopicPartition,
    )
    from asyncproducer.errors import KafkaError
    from asyncproducer.producer import Producer

__version__ = "0.1.0.dev0"

# Lazy (PEP 562): importing a submodule such as asyncproducer.testing.pytest_plugin, which
# pytest does at startup in every project that installs asyncproducer, imports no more than
# it needs (the protocol's schemas are the bulk of an import).
_EXPORTS = {
    "errors": ("asyncproducer.errors", None),
    "ConsumerGroupMetadata": ("asyncproducer._types", "ConsumerGroupMetadata"),
    "Header": ("asyncproducer._types", "Header"),
    "Node": ("asyncproducer._types", "Node"),
    "OffsetAndMetadata": ("asyncproducer._types", "OffsetAndMetadata"),
    "PartitionInfo": ("asyncproducer._types", "PartitionInfo"),
    "ProducerRecord": ("asyncproducer._types", "ProducerRecord"),
    "RecordMetadata": ("asyncproducer._types", "RecordMetadata"),
    "RecordTuple": ("asyncproducer._types", "RecordTuple"),
    "TopicPartition": ("asyncproducer._types", "TopicPartition"),
    "KafkaError": ("asyncproducer.errors", "KafkaError"),
    "Metric": ("asyncproducer._metrics", "Metric"),
    "MetricsReporter": ("asyncproducer._metrics", "MetricsReporter"),
    "Producer": ("asyncproducer.producer", "Producer"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'asyncproducer' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


__all__ = [
    "ConsumerGroupMetadata",
    "Header",
    "KafkaError",
    "Metric",
    "MetricsReporter",
    "Node",
    "OffsetAndMetadata",
    "PartitionInfo",
    "Producer",
    "ProducerRecord",
    "RecordMetadata",
    "RecordTuple",
    "TopicPartition",
    "__version__",
    "errors",
]
