"""``_speedups.FutureMaker``: ``future_type(loop=loop)`` made as ``type.__call__`` makes
it, which ``future_factory()`` hands ``send()`` on asyncio's stock event loop.

Asyncio only, and its stock loop: that is the one case FutureMaker serves (uvloop's
``create_future`` and trio's ``TrioFuture`` are used as they are, see
tests/fake/test_untracked_futures.py for the futures ``send()`` makes on each loop).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import weakref
from typing import Any

import pytest

from asyncproducer import _futures
from asyncproducer._native import speedups

if speedups is None:
    pytest.skip(
        "no C extension: asyncproducer._speedups did not build (or ASYNCPRODUCER_NO_SPEEDUPS=1)",
        allow_module_level=True,
    )
FutureMaker = speedups.FutureMaker


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_it_makes_a_new_pending_future_of_the_loop_at_each_call(loop: Any) -> None:
    make = FutureMaker(asyncio.Future, loop)
    first, second = make(), make()
    assert type(first) is asyncio.Future
    assert first is not second
    assert first.get_loop() is loop
    assert second.get_loop() is loop
    assert not first.done()
    first.set_result("ok")  # the one keyword dict it reuses changed nothing
    assert first.result() == "ok"
    assert not second.done()
    assert not make().done()


def test_its_futures_are_awaited_and_completed_as_any(loop: Any) -> None:
    make = FutureMaker(asyncio.Future, loop)

    async def main() -> Any:
        future = make()
        asyncio.get_running_loop().call_soon(future.set_result, 42)
        return await future

    assert loop.run_until_complete(main()) == 42


def test_it_calls_the_type_as_type_call_does(loop: Any) -> None:
    """A subclass's ``__init__`` gets ``loop=`` each time, in a dict of its own."""
    seen: list[dict[str, Any]] = []

    class Recording(asyncio.Future):  # type: ignore[type-arg]
        def __init__(self, **kwargs: Any) -> None:
            seen.append(kwargs)
            kwargs.pop("loop")  # its own copy: the next call still passes loop
            super().__init__(loop=loop)

    make = FutureMaker(Recording, loop)
    assert type(make()) is Recording
    assert type(make()) is Recording
    assert seen == [{}, {}]  # each popped its own


def test_no_init_when_new_returns_another_type(loop: Any) -> None:
    """As type.__call__: __init__ only runs on an instance of the type."""
    initialized: list[Any] = []

    class Odd:
        def __new__(cls, **kwargs: Any) -> Any:
            return "something else"

        def __init__(self, **kwargs: Any) -> None:
            initialized.append(kwargs)

    assert FutureMaker(Odd, loop)() == "something else"
    assert initialized == []


def test_what_init_raises_goes_through(loop: Any) -> None:
    class Refusing(asyncio.Future):  # type: ignore[type-arg]
        def __init__(self, **kwargs: Any) -> None:
            raise RuntimeError("no future today")

    with pytest.raises(RuntimeError, match="no future today"):
        FutureMaker(Refusing, loop)()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((asyncio.Future,), {}), (("not a type", None), {}), ((), {"loop": None})],
)
def test_wrong_constructor_arguments_raise_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        FutureMaker(*args, **kwargs)


def test_a_type_that_cannot_be_instantiated_is_refused_and_leaves_it_as_it_was(
    loop: Any,
) -> None:
    with pytest.raises(TypeError, match="cannot create"):
        FutureMaker(speedups.SendCall, loop)  # no tp_new: made only by send()
    make = FutureMaker(asyncio.Future, loop)
    with pytest.raises(TypeError, match="cannot create"):
        make.__init__(speedups.SendCall, loop)  # type: ignore[misc]
    assert type(make()) is asyncio.Future
    unmade = FutureMaker.__new__(FutureMaker)
    with pytest.raises(TypeError, match="cannot create"):
        unmade.__init__(speedups.SendCall, loop)  # type: ignore[misc]
    with pytest.raises(RuntimeError, match="not initialized"):
        unmade()


def test_it_takes_no_arguments_when_called(loop: Any) -> None:
    make = FutureMaker(asyncio.Future, loop)
    with pytest.raises(TypeError, match="takes no arguments"):
        make(1)
    with pytest.raises(TypeError, match="takes no arguments"):
        make(loop=loop)


def test_one_never_initialized_refuses_to_make(loop: Any) -> None:
    make = FutureMaker.__new__(FutureMaker)
    with pytest.raises(RuntimeError, match="not initialized"):
        make()


def test_in_a_reference_cycle_with_its_loop_it_is_collected() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    loop.make = FutureMaker(asyncio.Future, loop)  # type: ignore[attr-defined]
    gone = weakref.ref(loop)  # the loop holds the maker, the maker holds the loop
    del loop
    gc.collect()
    assert gone() is None


def test_future_factory_hands_it_out_on_the_stock_loop_only(monkeypatch: Any) -> None:
    async def factory() -> Any:
        return _futures.future_factory()

    assert type(asyncio.run(factory())) is FutureMaker
    monkeypatch.setattr(_futures, "speedups", None)  # without the extension: a partial
    assert type(asyncio.run(factory())) is functools.partial
