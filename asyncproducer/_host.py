"""Run a producer's background work in a task of its own, on asyncio or trio.

Why not a task group entered in ``start()`` and left in ``close()``: AnyIO (rightly)
requires a task group to be entered and exited by the same task, with cancel scopes
properly nested. Lifespan-style code breaks that easily (``start()`` inside a
``fail_after``, ``close()`` from a shutdown hook in another task). So the producer's task
group lives in a *host* task spawned here: an asyncio task, or a trio system task (trio
has no detached tasks otherwise). Both are cancelled when their event loop ends, so a
producer that is never closed cannot keep a program alive.

The host function must not raise: a trio system task that raises crashes the run.

Ctrl-C on trio: a system task is protected from KeyboardInterrupt, but the tasks it
starts are not, so a KeyboardInterrupt could surface inside the sender and be lost there.
The root function of every background task is registered with :func:`background_task`;
on trio they are all KI-protected (trio keys protection by code object, so once is
enough), and Ctrl-C reaches the user's own task, as it should.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sniffio

_running: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks
_background_roots: list[Callable[..., Any]] = []
_F = TypeVar("_F", bound=Callable[..., Any])


def background_task(function: _F) -> _F:
    """Mark ``function`` as the root of a producer background task (see above)."""
    _background_roots.append(function)
    return function


def _protect_background_tasks_from_ki() -> None:
    import trio

    for function in _background_roots:
        trio.lowlevel.enable_ki_protection(function)


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

        _protect_background_tasks_from_ki()
        trio.lowlevel.spawn_system_task(host, name=name)
    else:
        raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")
