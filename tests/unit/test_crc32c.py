"""CRC-32C, a record batch's checksum: the C extension's (``_speedups_crc32c.c``: the
CPU's crc32 instruction where it has one, else tables) and the pure-Python path's
(``asyncproducer.protocol.crc``, the crc32c package at first use), both against the
crc32c package and the standard check value. A wrong checksum is a batch every broker
refuses as corrupt."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import crc32c as package
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncproducer.protocol import crc

speedups: ModuleType | None
try:
    from asyncproducer import _speedups as speedups
except ImportError:
    speedups = None

needs_speedups = pytest.mark.skipif(speedups is None, reason="the extension did not build")

CHECK = (b"123456789", 0xE3069283)  # the CRC catalogue's check value for CRC-32C


def implementations() -> list[object]:
    """Each function under test, by name (the C ones only where the extension is built)."""
    found: list[object] = [pytest.param(crc._crc32c_from_package, id="python-path")]
    for name in ("crc32c", "crc32c_tables"):
        found.append(pytest.param(name, id=f"c-{name}", marks=needs_speedups))
    return found


def function(which: object) -> Callable[..., int]:
    if callable(which):
        return which  # type: ignore[return-value]
    assert speedups is not None
    return getattr(speedups, str(which))  # type: ignore[no-any-return]


@pytest.mark.parametrize("which", implementations())
def test_the_check_value_and_carrying_on(which: object) -> None:
    checksum = function(which)
    data, expected = CHECK
    assert checksum(data) == expected
    assert checksum(b"") == 0
    assert checksum(data[4:], checksum(data[:4])) == expected  # value carries it on


@pytest.mark.parametrize("which", implementations())
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), start=st.integers(0, 7), value=st.integers(0, 2**32 - 1))
def test_any_bytes_at_any_alignment_as_the_package(
    which: object, data: bytes, start: int, value: int
) -> None:
    checksum = function(which)
    buffer = bytearray(b"\0" * start + data)
    with memoryview(buffer)[start:] as view:  # the 8-byte steps meet every misalignment
        assert checksum(view) == package.crc32c(view)
        assert checksum(view, value) == package.crc32c(view, value)
    assert checksum(bytes(data)) == package.crc32c(data)


@needs_speedups
def test_bad_arguments_are_typed_errors() -> None:
    assert speedups is not None
    with pytest.raises(TypeError):
        speedups.crc32c("text")
    with pytest.raises(TypeError):
        speedups.crc32c()
    with pytest.raises(OverflowError):
        speedups.crc32c(b"", 2**32)
    with pytest.raises(OverflowError):
        speedups.crc32c(b"", -1)


def test_the_producer_uses_the_extension_and_leaves_the_package_unimported() -> None:
    """Where the extension is built, producing needs no crc32c package (its import loads
    importlib.metadata, a tenth of a cold start); without it the package is the path."""
    code = (
        "import sys\n"
        "from asyncproducer.protocol import crc, encoding\n"
        "from asyncproducer._native import speedups\n"
        "print(crc.crc32c is (speedups.crc32c if speedups else crc._crc32c_from_package),"
        " 'crc32c' in sys.modules)\n"
    )
    env = dict(os.environ)
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert run.stdout.split() == ["True", "False"]
