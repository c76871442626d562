"""The record encoder in C (``_speedups.c``); ``asyncproducer.protocol.encoding`` falls
back to Python where it did not build."""

from collections.abc import Sequence

from asyncproducer.protocol.encoding import Pending

def encode_pending(
    base_timestamp: int, pending: Sequence[Pending], /
) -> tuple[bytes, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The records of a batch encoded back to back (offset deltas 0, 1, ...), and its
    records' timestamps, key sizes and value sizes."""
