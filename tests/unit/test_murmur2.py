"""The C extension's murmur2 (``asyncproducer/_speedups_murmur2.c``), alone: Java's
``Utils.murmur2`` bit for bit (the vectors of Kafka's own unit test), and the same as the
pure-Python reference ``asyncproducer.partitioners._murmur2_u32`` and kafka-python's on
random inputs. It is the key hash of the C appender and of ``partition_for_key``: a
difference would send keyed records to other partitions than Java's producer does.

``tests/unit/test_partitioners.py`` tests the Python one against the same vectors.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources.read_text, deprecated on
    # Python 3.11; the suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from asyncproducer.partitioners import _murmur2_u32
from tests.unit.test_partitioners import JAVA_MURMUR2  # Java's UtilsTest.testMurmur2

speedups: ModuleType | None
try:
    from asyncproducer import _speedups as speedups
except ImportError:
    speedups = None

pytestmark = pytest.mark.skipif(speedups is None, reason="asyncproducer._speedups did not build")


@pytest.mark.parametrize(("data", "expected"), JAVA_MURMUR2)
def test_c_murmur2_matches_java(data: bytes, expected: int) -> None:
    assert speedups is not None
    assert speedups.murmur2(data) == expected & 0xFFFFFFFF


@given(st.binary(max_size=100))
@settings(max_examples=300)
def test_c_murmur2_matches_the_python_one(data: bytes) -> None:
    assert speedups is not None
    result = speedups.murmur2(data)
    assert result == _murmur2_u32(data) == kafka_python_murmur2(data)
    assert 0 <= result <= 0xFFFFFFFF


def test_c_murmur2_every_tail_length_and_type() -> None:
    assert speedups is not None
    for n in range(17):  # every length mod 4, bytes with the high bit set
        data = bytes(range(0xF0, 0xF0 + n))
        assert speedups.murmur2(data) == _murmur2_u32(data)

    class Subclass(bytes):
        pass

    assert speedups.murmur2(Subclass(b"foobar")) == -790332482 & 0xFFFFFFFF
    for bad in ["foobar", bytearray(b"foobar"), memoryview(b"foobar"), None, 5]:
        with pytest.raises(TypeError, match="murmur2"):
            speedups.murmur2(bad)
