"""``buffer_memory`` accounting with fair FIFO waiting (Java's ``BufferPool``).

Every open batch holds a reservation of ``max(batch_size, its first record)`` bytes, plus
the overhead of its records as Python objects (``_batch.RECORD_OVERHEAD`` each, for as
many records as fit at its first record's size, more if later ones are smaller), from
the moment it is created until its records are acknowledged or failed. ``send()`` needing
a new batch when the pool is exhausted waits, in arrival order, for at most the time left
of ``max_block_ms``; a release grants waiters from the front of the queue only while they
fit, so one release never wakes more senders than it can serve (no thundering herd), and
a large request at the front is not starved by small ones behind it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from asyncproducer._futures import Parking, parking
from asyncproducer.errors import BufferExhaustedError


class _Waiter:
    """A ``send()`` queued for memory. ``granted`` is the outcome; ``wake`` (a Parking
    token) only wakes it: a waiter whose time ran out may still be granted before its
    task runs, and then it has its memory and goes on."""

    __slots__ = ("granted", "size", "wake")

    def __init__(self, size: int, wake: Any) -> None:
        self.size = size
        self.wake = wake
        self.granted = False


class BufferPool:
    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.available = total_bytes
        self.wait_time_ns = 0
        """How long send() calls have waited for memory in all (``bufferpool-wait-time-total``)."""
        self._waiters: deque[_Waiter] = deque()
        # The running loop's, made at the first wait (a pool is built outside one): an
        # event under a cancel scope was ~2.7 KiB per waiting send() on asyncio, which at
        # 10,000 tasks waiting is above buffer_memory (docs/scale.md).
        self._parking: Parking | None = None

    @property
    def waiting(self) -> int:
        """Senders queued for memory."""
        return len(self._waiters)

    def try_reserve(self, size: int) -> bool:
        """Reserve at once if nobody is queued ahead and it fits."""
        if not self._waiters and size <= self.available:
            self.available -= size
            return True
        return False

    async def reserve(self, size: int, timeout_s: float) -> None:
        """Reserve ``size`` bytes, waiting in FIFO order for up to ``timeout_s``."""
        if self.try_reserve(size):
            return
        if self._parking is None:
            self._parking = parking()
        waiter = _Waiter(size, self._parking.new())
        self._waiters.append(waiter)
        started = time.perf_counter_ns()
        try:
            await self._parking.wait(waiter.wake, max(timeout_s, 0))
        except BaseException:  # cancelled: hand back whatever we hold
            self._withdraw(waiter)
            raise
        finally:
            self.wait_time_ns += time.perf_counter_ns() - started
        if not waiter.granted:
            self._withdraw(waiter)
            raise BufferExhaustedError(
                f"no {size} bytes of buffer_memory={self.total} became free within "
                f"max_block_ms={timeout_s * 1000:.0f} ({self.available} free, "
                f"{len(self._waiters)} other sends waiting): the broker is slower than the "
                "sends, or unreachable"
            )

    def _withdraw(self, waiter: _Waiter) -> None:
        if waiter.granted:
            self.release(waiter.size)
        else:
            self._waiters.remove(waiter)
            self._grant()  # it may have been the one blocking the queue

    def release(self, size: int) -> None:
        self.available += size
        self._grant()

    def _grant(self) -> None:
        waiters, parking = self._waiters, self._parking
        if parking is None:  # nobody ever waited
            return
        while waiters and waiters[0].size <= self.available:
            waiter = waiters.popleft()
            self.available -= waiter.size
            waiter.granted = True
            parking.wake(waiter.wake)
