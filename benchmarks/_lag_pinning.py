"""``loop_lag --pin-loop CPU``: the event loop's thread alone on one core, the rest of the
run on the others (Linux only).

On a shared machine the loop's thread waits for a core while the broker, the producer's
compression threads and the request probe's sender run: lag that is the machine's, not
the loop's. Pinned, what is left is what the loop itself does. The placement:

1. :meth:`LoopPinning.keep_off` first, before the broker starts: the calling thread
   moves to the other CPUs, so that what it starts next (the embedded broker's process)
   inherits them; and every thread that ``threading`` starts from then on moves itself
   there as it starts (``threading.setprofile``: a hook that runs once in the new
   thread, then removes itself). That covers the compression threads (AnyIO's worker
   threads) and asyncio's executor, which the loop's thread starts and which would
   otherwise inherit its core.
2. :meth:`LoopPinning.take_for_the_loop`: the calling thread, which will run the event
   loops, to ``CPU`` alone.
3. :meth:`LoopPinning.place` for the child processes the loop's thread starts (the
   request probe's sender), just after they start, before they are measured.

Threads started outside ``threading`` (a C library's own, libuv's resolver pool under
uvloop) inherit their creator's CPUs and are not moved; neither is a broker given with
``--bootstrap-servers`` (its placement is its owner's).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Collection
from types import FrameType
from typing import Any


def other_cpus(loop_cpu: int, allowed: Collection[int]) -> frozenset[int]:
    """The CPUs left for everything but the loop's thread; ValueError naming what is wrong
    if ``loop_cpu`` is not one this process may run on, or is the only one."""
    if loop_cpu not in allowed:
        raise ValueError(
            f"CPU {loop_cpu} is not one this process may run on (allowed: {sorted(allowed)})"
        )
    others = frozenset(allowed) - {loop_cpu}
    if not others:
        raise ValueError(f"CPU {loop_cpu} is the only one this process may run on: nothing is left")
    return others


class LoopPinning:
    """The loop's thread on ``loop_cpu``, everything else on ``others`` (module docstring)."""

    def __init__(self, loop_cpu: int, others: Collection[int]) -> None:
        self.loop_cpu = loop_cpu
        self.others = frozenset(others)

    @classmethod
    def for_cpu(cls, loop_cpu: int) -> LoopPinning:
        """For this process's CPUs; ValueError if that leaves nothing (``other_cpus``) or
        the platform cannot pin (no ``os.sched_setaffinity``: not Linux)."""
        if not hasattr(os, "sched_setaffinity"):
            raise ValueError("pinning needs os.sched_setaffinity (Linux)")
        return cls(loop_cpu, other_cpus(loop_cpu, os.sched_getaffinity(0)))

    def keep_off(self) -> None:
        """The calling thread, and every thread ``threading`` starts from now, on
        ``others``."""
        os.sched_setaffinity(0, self.others)
        threading.setprofile(self._move_new_thread)

    def take_for_the_loop(self) -> None:
        """The calling thread (the one that will run the loops) on ``loop_cpu`` alone."""
        os.sched_setaffinity(0, {self.loop_cpu})

    def place(self, pid: int) -> None:
        """A child process (its main thread) on ``others``."""
        os.sched_setaffinity(pid, self.others)

    def describe(self, *, embedded_broker: bool) -> str:
        rest = "the other threads, the broker" if embedded_broker else "the other threads"
        others = ", ".join(map(str, sorted(self.others)))
        return (
            f"the loop's thread pinned to CPU {self.loop_cpu}; {rest} and the probe's "
            f"sender to CPU {others}"
        )

    def _move_new_thread(self, frame: FrameType, event: str, arg: Any) -> None:
        # The new thread's first profile event, before its run() goes on: move it, and
        # stop profiling it (this hook would otherwise run on every call it makes).
        sys.setprofile(None)
        os.sched_setaffinity(0, self.others)
