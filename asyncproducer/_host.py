"""Run a producer's background work in a task of its own, on asyncio or trio.

Why not a task group entered in ``start()`` and left in ``close()``: AnyIO (rightly)
requires a task group to be entered and exited by the same task, with cancel scopes
properly nested. Lifespan-style code breaks that easily (``start()`` inside a
``fail_after``, ``close()`` from a shutdown hook in another task). So the producer's task
group lives in a *host* task spawned here: an asyncio task, or a trio system task (trio
has no detached tasks otherwise). Both are cancelled when their event loop ends, so a
producer that is never closed cannot keep a program alive.

The host function must not raise: a trio system task that raises crashes the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import sniffio

_running: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks


def spawn_host(host: Callable[[], Awaitable[None]], name: str) -> None:
    library = sniffio.current_async_library()
    if library == "asyncio":

        async def run() -> None:
            await host()

        task = asyncio.get_running_loop().create_task(run(), name=name)
        _running.add(task)
        task.add_done_callback(_running.discard)
    elif library == "trio":
        import trio

        trio.lowlevel.spawn_system_task(host, name=name)
    else:
        raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")
