"""CRC-32C (Castagnoli), a record batch's checksum: the C extension's where it is built,
else the crc32c package's.

The package is imported at the first checksum, not with the protocol: its import loads
``importlib.metadata``, about a tenth of a producer's cold start, which the extension's
own function spares (``benchmarks/cold_start.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from asyncproducer._native import speedups

Buffer: TypeAlias = bytes | bytearray | memoryview


def _crc32c_from_package(data: Buffer, value: int = 0) -> int:
    from crc32c import crc32c as package  # after the first call, a lookup in sys.modules

    result: int = package(data, value)
    return result


crc32c: Callable[..., int] = speedups.crc32c if speedups is not None else _crc32c_from_package
"""``crc32c(data, value=0)``: the checksum of ``data``, carried on from ``value``."""
