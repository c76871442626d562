"""Outgoing frames, handed to the socket in chunks of bounded size.

A Produce request can be several MiB (``max_request_size``), made of record batches of
up to ``batch_size`` each. Written whole, one call copies all of it: joined into one
frame, then, on Python 3.11's asyncio, whatever the socket did not take at once copied
again into the transport's buffer, in freshly mapped memory (page faults included). On a
loop shared with a web service that was the longest step the producer took: ~10 ms for
a 4 MiB request (``benchmarks/loop_lag.py``, 100 KiB values).

So a frame stays a list of parts (the record batches are not copied into it), and the
transports take it out ``CHUNK`` bytes at a time: small consecutive parts (headers, small
frames) joined into one write, a large part sliced without copying (``memoryview``).
Each write is then at most ``CHUNK`` bytes of copying, however large the request, and
the transports write the next chunk once the socket took the last (asyncio: below the
transport's high-water mark; AnyIO streams: after ``send()``).

Pure logic, no I/O: ``tests/unit/test_write_queue.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, TypeAlias

Chunk: TypeAlias = bytes | memoryview
Written = Callable[[], None]
"""Called once the last byte of its frame is taken out of the queue."""

CHUNK: Final = 256 * 1024
"""The most bytes one write hands over: ~0.1 ms of copying, well under the 1 ms a
loop-lag p99 may take, and twice the default ``send_buffer_bytes`` (Java's 128 KiB,
which Linux doubles), so that one write can fill the socket's buffer."""


class WriteQueue:
    """Frames in order, taken out as chunks of at most ``limit`` bytes."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        # (part, the frame's callback if this is its last part)
        self._parts: deque[tuple[Chunk, Written | None]] = deque()

    def __bool__(self) -> bool:
        return bool(self._parts)

    def push(self, parts: Iterable[Chunk], written: Written | None = None) -> None:
        """Queue one frame (its parts in order); ``written`` comes back from :meth:`take`
        with its last byte."""
        queued: list[tuple[Chunk, Written | None]] = [(part, None) for part in parts if part]
        if not queued:  # an empty frame is taken at once: nothing to wait for
            queued.append((b"", None))
        queued[-1] = (queued[-1][0], written)
        self._parts.extend(queued)

    def take(self, limit: int = CHUNK) -> tuple[Chunk, list[Written]]:
        """The next chunk (at most ``limit`` bytes, and never empty while bytes are
        queued), and the callbacks of the frames it completes."""
        pieces: list[Chunk] = []
        done: list[Written] = []
        room = limit
        parts = self._parts
        while parts and room > 0:
            part, written = parts[0]
            if len(part) > room:  # sliced: the rest stays at the front
                view = part if isinstance(part, memoryview) else memoryview(part)
                pieces.append(view[:room])
                parts[0] = (view[room:], written)
                room = 0
                break
            parts.popleft()
            pieces.append(part)
            room -= len(part)
            if written is not None:
                done.append(written)
        chunk = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return chunk, done

    def clear(self) -> None:
        """Drop everything queued (the stream is gone); no callback is called."""
        self._parts.clear()
