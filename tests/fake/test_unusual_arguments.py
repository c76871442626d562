"""Unusual ``send()`` arguments, one at a time, on every path (issue 16, defect 4).

Each argument of ``tests/send_arguments.py``'s catalogue is either stored exactly as its
specification says (the bytes a bytes-like object holds, never its ``__bytes__``) or
rejected with a typed ``KafkaError`` that names the argument; never a raw exception. The
same on the C path (the appender in charge of ``send()``), on the Python staging (the
appender off) and without the C extension at all (a subprocess).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from asyncproducer import Producer, RecordMetadata, _staging
from asyncproducer.errors import KafkaError
from asyncproducer.testing.fake import FakeCluster
from tests.pure_python import run_without_speedups
from tests.send_arguments import PARTITIONS, Rejected, Stored, arguments, cases, expected

pytestmark = pytest.mark.anyio


async def check_every_unusual_argument() -> list[str]:
    """Send every case of the catalogue through one producer; what went wrong, if
    anything (an empty list: every outcome is the specified one)."""
    problems: list[str] = []
    outcomes: list[tuple[str, Stored | Rejected, Any]] = []
    async with FakeCluster() as cluster:
        cluster.create_topic("t", PARTITIONS)
        async with Producer(cluster.bootstrap_servers, linger_ms=50, max_block_ms=3000) as producer:
            await producer.send_and_wait("t", b"metadata known")
            for case, make in cases():
                spec = expected(*arguments(make()))
                try:
                    with anyio.fail_after(5):
                        outcomes.append((case, spec, await producer.send(*arguments(make()))))
                except KafkaError as exc:
                    outcomes.append((case, spec, exc))
                except Exception as exc:  # a raw exception: the defect
                    problems.append(f"{case}: raw {type(exc).__name__}: {exc}")
            await producer.flush()
            after = await producer.send_and_wait("t", b"after")
        stored = {
            (p, r.offset): (r.key, r.value, r.headers, r.timestamp)
            for p in range(PARTITIONS)
            for r in cluster.records("t", p)
        }
    for case, spec, got in outcomes:
        if isinstance(got, KafkaError) or isinstance(spec, Rejected):
            if not (isinstance(spec, Rejected) and spec.matches(got)):
                problems.append(f"{case}: expected {spec}, got {type(got).__name__}: {got}")
            continue
        metadata = got.result()
        if not isinstance(metadata, RecordMetadata):
            problems.append(f"{case}: not acknowledged: {metadata!r}")
            continue
        key, value, headers, timestamp = stored[(metadata.partition, metadata.offset)]
        if (key, value, headers) != (spec.key, spec.value, spec.headers):
            problems.append(f"{case}: stored {(key, value, headers)}, expected {spec}")
        if spec.timestamp is not None and timestamp != spec.timestamp:
            problems.append(f"{case}: stored timestamp {timestamp}, expected {spec.timestamp}")
        if spec.partition is not None and metadata.partition != spec.partition:
            problems.append(f"{case}: partition {metadata.partition}, expected {spec}")
    if not isinstance(after, RecordMetadata):
        problems.append("the producer did not acknowledge a record after them")
    return problems


@pytest.mark.parametrize("appender", [True, False], ids=["c-appender", "python-staging"])
async def test_every_unusual_argument_is_stored_exactly_or_rejected_typed(
    appender: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not appender:
        monkeypatch.setattr(_staging, "Appender", None)
    elif _staging.Appender is None:
        pytest.skip("asyncproducer._speedups did not build")
    problems = await check_every_unusual_argument()
    assert problems == []


def test_every_unusual_argument_without_the_c_extension() -> None:
    run_without_speedups(
        """
        import anyio
        from asyncproducer import _staging
        from tests.fake.test_unusual_arguments import check_every_unusual_argument

        assert _staging.Appender is None
        for backend in ("asyncio", "trio"):
            problems = anyio.run(check_every_unusual_argument, backend=backend)
            assert problems == [], "\\n".join(problems)
        print("ok")
        """
    )
