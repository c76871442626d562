"""Property: whatever ``send()`` and ``send_batch()`` are given, each record is either
acknowledged and stored byte-exact, or rejected with a typed ``KafkaError`` naming the
argument; and the producer keeps working (issue 16).

Hypothesis draws records from ``tests/send_arguments.py``'s catalogue of unusual values
mixed with ordinary ones, and :func:`~tests.send_arguments.expected` says what each must
give. Each example sends its records through ``send()`` and again through
``send_batch()``, then reads the fake cluster's log back; a last record must still be
acknowledged, and every byte of ``buffer_memory`` must be free again. On asyncio and
trio, through the C appender and the Python staging, and without the C extension (a
subprocess, fewer examples).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncproducer import Producer, RecordMetadata, _staging
from asyncproducer.errors import KafkaError
from asyncproducer.testing.fake import FakeCluster
from tests.pure_python import run_without_speedups
from tests.send_arguments import (
    MAX_TIMESTAMP,
    PARTITIONS,
    UNUSUAL,
    UNUSUAL_HEADERS,
    UNUSUAL_INTS,
    UNUSUAL_TOPICS,
    BytesOther,
    Rejected,
    Stored,
    expected,
)

pytestmark = pytest.mark.anyio

EXAMPLES = int(os.environ.get("SEND_PROPERTY_EXAMPLES", "100"))


class Factory:
    """Makes an argument afresh for each use (a generator of headers is used up once
    sent), and shows what it makes in Hypothesis' falsifying examples."""

    def __init__(self, name: str, make: Callable[[], Any]) -> None:
        self.name, self.make = name, make

    def __call__(self) -> Any:
        return self.make()

    def __repr__(self) -> str:
        return self.name


def constant(value: Any) -> Factory:
    return Factory(repr(value), lambda: value)


def from_catalogue(catalogue: dict[str, Callable[[], Any]]) -> st.SearchStrategy[Factory]:
    return st.sampled_from([Factory(f"<{name}>", make) for name, make in catalogue.items()])


_data = st.binary(max_size=40)
data_values: st.SearchStrategy[Factory] = st.one_of(
    st.none().map(constant),
    _data.map(constant),
    _data.map(lambda b: Factory(f"bytearray({b!r})", lambda: bytearray(b))),
    _data.map(lambda b: Factory(f"memoryview({b!r})", lambda: memoryview(b))),
    _data.map(lambda b: Factory(f"BytesOther({b!r})", lambda: BytesOther(b))),
    from_catalogue(UNUSUAL),
)
header_lists: st.SearchStrategy[Factory] = st.lists(
    st.tuples(
        st.text(max_size=8),  # lone surrogates included
        st.one_of(st.none(), _data, _data.map(bytearray)),
    ),
    max_size=3,
).map(lambda pairs: Factory(repr(pairs), lambda: [(name, value) for name, value in pairs]))
headers_values = st.one_of(st.none().map(constant), header_lists, from_catalogue(UNUSUAL_HEADERS))
partitions = st.one_of(
    st.none().map(constant),
    st.integers(-1, PARTITIONS).map(constant),
    from_catalogue(UNUSUAL_INTS),
)
timestamps = st.one_of(
    st.none().map(constant),
    st.integers(0, MAX_TIMESTAMP).map(constant),
    st.integers(-3, 3).map(constant),
    from_catalogue(UNUSUAL_INTS),
)
topics = st.one_of(st.just(constant("t")), from_catalogue(UNUSUAL_TOPICS))
records = st.lists(
    st.tuples(topics, data_values, data_values, partitions, timestamps, headers_values),
    min_size=1,
    max_size=8,
)


def make(record: tuple[Factory, ...]) -> tuple[Any, ...]:
    """Fresh arguments (some values are used up once sent: a generator of headers)."""
    return tuple(factory() for factory in record)


def check(spec: Stored | Rejected, got: Any, stored: dict[Any, Any]) -> None:
    """One record's outcome (its metadata, or the error) against its specification."""
    if isinstance(spec, Rejected):
        assert isinstance(got, KafkaError), f"expected {spec}, got {got!r}"
        assert spec.matches(got), f"expected {spec}, got {type(got).__name__}: {got}"
        return
    assert isinstance(got, RecordMetadata), f"expected {spec}, got {got!r}"
    key, value, headers, timestamp = stored[(got.partition, got.offset)]
    assert (key, value, headers) == (spec.key, spec.value, spec.headers)
    assert got.serialized_key_size == (-1 if key is None else len(key))
    assert got.serialized_value_size == (-1 if value is None else len(value))
    if spec.timestamp is not None:
        assert timestamp == got.timestamp == spec.timestamp
    if spec.partition is not None:
        assert got.partition == spec.partition


async def send_and_read_back(drawn: list[tuple[Factory, ...]]) -> None:
    """Every drawn record through send(), then all of them through send_batch()."""
    specs = [expected(*make(record)) for record in drawn]
    sent: list[Any] = []
    with anyio.fail_after(20):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", PARTITIONS)
            async with Producer(
                cluster.bootstrap_servers, linger_ms=2, max_block_ms=3000
            ) as producer:
                await producer.partitions_for("t")
                for record in drawn:
                    try:
                        sent.append(await producer.send(*make(record)))
                    except KafkaError as exc:
                        sent.append(exc)
                batched = await producer.send_batch([make(record) for record in drawn])
                await producer.flush()
                alive = await producer.send_and_wait("t", b"alive")
                assert isinstance(alive, RecordMetadata)
                await producer.flush()
                assert producer.metrics()["buffer-available-bytes"] == producer.config.buffer_memory
            stored = {
                (p, r.offset): (r.key, r.value, r.headers, r.timestamp)
                for p in range(PARTITIONS)
                for r in cluster.records("t", p)
            }
    singles = [outcome if isinstance(outcome, KafkaError) else outcome.result() for outcome in sent]
    for spec, single, batch in zip(specs, singles, batched, strict=True):
        check(spec, single, stored)
        check(spec, batch, stored)
    accepted = sum(isinstance(spec, Stored) for spec in specs)
    assert len(stored) == 2 * accepted + 1  # nothing else, nothing twice


@pytest.mark.parametrize("path", ["c-appender", "python-staging"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=records)
async def test_every_record_is_stored_exactly_or_rejected_typed(
    path: str, drawn: list[tuple[Factory, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "python-staging":
        monkeypatch.setattr(_staging, "Appender", None)
    elif _staging.Appender is None:
        pytest.skip("asyncproducer._speedups did not build")
    await send_and_read_back(drawn)


def test_the_property_without_the_c_extension() -> None:
    run_without_speedups(
        """
        import os
        import sys

        import pytest

        os.environ["SEND_PROPERTY_EXAMPLES"] = "50"
        stdout, sys.stdout = sys.stdout, sys.stderr  # pytest's report goes to stderr
        code = pytest.main(
            ["-q", "-p", "no:cacheprovider", "-k", "python-staging",
             "tests/fake/test_send_properties.py"],
        )
        sys.stdout = stdout
        print("ok" if code == 0 else f"pytest exited {code}")
        """
    )
