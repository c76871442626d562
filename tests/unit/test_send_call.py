"""``_speedups.SendCall``, what ``appender.send()`` returns, driven step by step as an
event loop drives a coroutine: the shortcut on its first step, or else ``python_send``'s
coroutine, whose steps, ``throw()`` and ``close()`` it forwards as ``await`` does. The
coroutine here is a stand-in that records what reaches it; tests/fake/test_send_call.py
runs the real one inside a producer. A record the shortcut declined only because its
partition has no batch with room goes, staged, to ``python_new_batch`` instead.
"""

from __future__ import annotations

import gc
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import pytest

from asyncproducer import _staging

if _staging.Appender is None:
    pytest.skip("no C extension: no SendCall", allow_module_level=True)

from tests.unit.test_appender import Future, Setup, _at_capacity, _full


class Suspend:
    """An awaitable that yields ``"waiting"`` once and returns what it is sent."""

    def __await__(self) -> Generator[str, Any, Any]:
        received = yield "waiting"
        return received


class PythonSend:
    """Stands in for Producer.send: records its arguments and how it ended."""

    def __init__(self, *, handle: type[BaseException] | None = None) -> None:
        self.log: list[Any] = []
        self.handle = handle

    async def __call__(self, *args: Any) -> Any:
        self.log.append(("called", args))
        try:
            received = await Suspend()
        except BaseException as exc:
            self.log.append(("raised in", type(exc).__name__))
            if self.handle is not None and isinstance(exc, self.handle):
                return "handled"
            raise
        self.log.append(("received", received))
        return "its future"


def appender(python_send: PythonSend, *, open: bool = True) -> Any:
    setup = Setup()
    setup.appender.python_send = python_send
    setup.appender.new_future = Future
    setup.appender.open = open
    return setup.appender


def returned(step: Any) -> Any:
    """What the coroutine returned at this step (its StopIteration's value)."""
    with pytest.raises(StopIteration) as stop:
        step()
    return stop.value.value


def test_a_record_the_shortcut_takes_returns_at_the_first_step() -> None:
    python_send = PythonSend()
    call = appender(python_send).send("t", b"v", timestamp_ms=1000)
    assert call.__await__() is call
    future = returned(lambda: call.send(None))
    assert isinstance(future, Future)
    assert python_send.log == []
    with pytest.raises(RuntimeError, match="cannot reuse already awaited send"):
        call.send(None)


@pytest.mark.parametrize("open", [True, False], ids=["declined", "not-open"])
def test_any_other_record_goes_to_python_send_with_every_argument(open: bool) -> None:
    python_send = PythonSend()
    headers = [("h", b"1")]  # the shortcut declines headers
    call = appender(python_send, open=open).send("t", b"v", None, 2, None, headers)
    assert next(call) == "waiting"
    assert returned(lambda: call.send("resumed")) == "its future"
    assert python_send.log == [
        ("called", ("t", b"v", None, 2, None, headers, None)),
        ("received", "resumed"),
    ]
    with pytest.raises(RuntimeError, match="cannot reuse"):
        next(call)


def test_throw_while_it_waits_goes_into_the_coroutine() -> None:
    python_send = PythonSend()
    call = appender(python_send, open=False).send("t", b"v")
    assert call.send(None) == "waiting"
    with pytest.raises(ValueError, match="thrown in"):
        call.throw(ValueError("thrown in"))
    assert python_send.log[-1] == ("raised in", "ValueError")
    with pytest.raises(RuntimeError, match="cannot reuse"):
        call.send(None)


def test_a_throw_the_coroutine_handles_returns_its_value() -> None:
    python_send = PythonSend(handle=KeyError)
    call = appender(python_send, open=False).send("t", b"v")
    call.send(None)
    assert returned(lambda: call.throw(KeyError)) == "handled"


def test_close_while_it_waits_closes_the_coroutine() -> None:
    python_send = PythonSend()
    call = appender(python_send, open=False).send("t", b"v")
    call.send(None)
    assert call.close() is None
    assert python_send.log[-1] == ("raised in", "GeneratorExit")
    with pytest.raises(RuntimeError, match="cannot reuse"):
        call.send(None)


@pytest.mark.parametrize(
    ("args", "raised"),
    [
        ((ValueError("an instance"),), ValueError),
        ((ValueError,), ValueError),
        ((ValueError, "a value"), ValueError),
        ((ValueError, ValueError("an instance and its class")), ValueError),
        (("not an exception",), TypeError),
        ((ValueError("an instance"), "and a value"), TypeError),
    ],
)
def test_throw_before_the_first_step_raises_here_and_ends_it(
    args: tuple[Any, ...], raised: type[BaseException]
) -> None:
    python_send = PythonSend()
    call = appender(python_send).send("t", b"v")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(raised):
            call.throw(*args)
    assert python_send.log == []
    if raised is ValueError:
        with pytest.raises(RuntimeError, match="cannot reuse"):
            call.send(None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            del call  # ended: no "never awaited" warning
            gc.collect()
    else:  # wrong arguments change nothing, as for a coroutine
        assert returned(lambda: call.send(None)) is not None


def test_a_value_sent_to_its_first_step_is_refused() -> None:
    call = appender(PythonSend()).send("t", b"v")
    with pytest.raises(TypeError, match="non-None value to a just-started send"):
        call.send("too early")
    call.close()


def test_in_a_reference_cycle_it_is_collected() -> None:
    class Holder:
        collected = False

        def __del__(self) -> None:
            Holder.collected = True

    holder: Any = Holder()
    call = appender(PythonSend()).send("t", holder)
    holder.call = call
    del holder, call
    with pytest.warns(RuntimeWarning, match="never awaited"):
        gc.collect()
    assert Holder.collected


class Recorder:
    """An iterator with a coroutine's methods, recording what throw() receives."""

    def __init__(self) -> None:
        self.thrown: list[tuple[Any, ...]] = []

    def __next__(self) -> str:
        return "waiting"

    def send(self, value: Any) -> str:
        return "waiting"

    def throw(self, *args: Any) -> Any:
        self.thrown.append(args)
        raise args[0]

    def close(self) -> None:
        pass


def test_throw_in_three_arguments_reaches_the_coroutine_as_one_exception() -> None:
    """The three-argument form, which CPython's own ``await`` passes on, is deprecated
    since Python 3.12: the coroutine gets the exception alone."""
    recorder = Recorder()
    call = appender(lambda *args: recorder, open=False).send("t", b"v")  # type: ignore[arg-type]
    assert call.send(None) == "waiting"
    with pytest.raises(ValueError, match="three") as raised:
        call.throw(ValueError, ValueError("three"), None)
    assert recorder.thrown == [(raised.value,)]


def test_it_cannot_be_made_but_by_send() -> None:
    call = appender(PythonSend()).send("t", b"v")
    with pytest.raises(TypeError):
        type(call)()
    call.close()


# ----------------------------------------------------------------------- python_new_batch


def _no_queue(setup: Setup) -> None:
    del setup.queues["t", 1]


def _empty_queue(setup: Setup) -> None:
    setup.queues["t", 1] = deque()


def staging(change: Callable[[Setup], None], python_send: Any, new_batch: Any) -> Setup:
    """Sticky partition 1 in want of a batch (``change``), both coroutines set."""
    setup = Setup()
    change(setup)
    setup.appender.python_send = python_send
    setup.appender.python_new_batch = new_batch
    setup.appender.new_future = Future
    setup.appender.open = True
    return setup


WANTING = [_full, _at_capacity, _no_queue, _empty_queue]


@pytest.mark.parametrize("change", WANTING, ids=lambda change: change.__name__)
def test_a_record_only_in_want_of_a_batch_goes_to_python_new_batch_staged(
    change: Callable[[Setup], None],
) -> None:
    python_send, new_batch = PythonSend(), PythonSend()
    setup = staging(change, python_send, new_batch)
    before = setup.state()
    call = setup.appender.send("t", b"v", timestamp_ms=1000, on_delivery=print)
    assert call.send(None) == "waiting"
    assert setup.state() == before  # nothing appended: that is the coroutine's to do
    assert returned(lambda: call.send("resumed")) == "its future"
    ((called, args), received) = new_batch.log
    # (topic, partition, chosen, key, value, record, on_delivery, future): the future is
    # the one the shortcut made, handed over.
    record = (1000, None, b"v", ())
    assert (called, args[:7]) == ("called", ("t", 1, True, None, b"v", record, print))
    assert type(args[7]) is Future
    assert received == ("received", "resumed")
    assert python_send.log == []


def test_python_new_batch_gets_the_given_partition_and_the_clock_s_timestamp() -> None:
    new_batch = PythonSend()
    setup = staging(_full, PythonSend(), new_batch)
    before = int(time.time() * 1000)
    call = setup.appender.send("t", b"v", b"k", 1)
    call.send(None)
    after = int(time.time() * 1000)
    (_, args) = new_batch.log[0]
    topic, partition, chosen, key, value, (stamp, key_bytes, value_bytes, headers) = args[:6]
    assert (topic, partition, chosen, key, value) == ("t", 1, False, b"k", b"v")
    assert (key_bytes, value_bytes, headers) == (b"k", b"v", ())
    assert before <= stamp <= after
    assert args[6] is None  # no on_delivery
    call.close()


@pytest.mark.parametrize("change", WANTING, ids=lambda change: change.__name__)
@pytest.mark.parametrize("timestamp", [-1, 2**63, 2**70])
def test_a_timestamp_the_python_path_refuses_goes_to_python_send(
    change: Callable[[Setup], None], timestamp: int
) -> None:
    """Not handed over staged: python_new_batch does not check it again."""
    python_send, new_batch = PythonSend(), PythonSend()
    setup = staging(change, python_send, new_batch)
    call = setup.appender.send("t", b"v", timestamp_ms=timestamp)
    call.send(None)
    assert python_send.log == [("called", ("t", b"v", None, None, timestamp, None, None))]
    assert new_batch.log == []
    call.close()


def test_any_other_decline_still_goes_to_python_send() -> None:
    python_send, new_batch = PythonSend(), PythonSend()
    setup = staging(_full, python_send, new_batch)
    call = setup.appender.send("t", b"v", headers=[("h", b"1")])  # needs Python: headers
    call.send(None)
    assert [entry[0] for entry in python_send.log] == ["called"]
    assert new_batch.log == []
    call.close()


def test_without_python_new_batch_a_full_batch_s_record_goes_to_python_send() -> None:
    python_send = PythonSend()
    setup = staging(_full, python_send, None)
    call = setup.appender.send("t", b"v", timestamp_ms=1000)
    call.send(None)
    assert python_send.log == [("called", ("t", b"v", None, None, 1000, None, None))]
    call.close()


def test_no_reference_leaks_on_the_way_to_python_new_batch() -> None:
    async def new_batch(*args: Any) -> Any:
        return args[-1]

    setup = staging(_full, PythonSend(), new_batch)
    topic, key, value, on_delivery = "t", b"k", b"value", print

    def sent(*args: Any) -> Any:
        call = setup.appender.send(*args)
        return returned(lambda: call.send(None))

    sent(topic, value, key, 1)  # the appender keeps its last queue key: the topic
    objects = (topic, key, value, on_delivery, new_batch)
    gc.collect()  # no other garbage lets go of the topic str meanwhile
    refs = [sys.getrefcount(o) for o in objects]
    for _ in range(2000):
        assert type(sent(topic, value, key, 1, None, None, on_delivery)) is Future
        assert type(sent(topic, value, None, None, 5, None, on_delivery)) is Future
    gc.collect()
    assert [sys.getrefcount(o) for o in objects] == refs
