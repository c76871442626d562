from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from asyncproducer._types import ProducerRecord, RecordMetadata
from asyncproducer.interceptors import InterceptorChain, ProducerInterceptor

LOGGER = "asyncproducer.interceptors"
METADATA = RecordMetadata("t", 1, 42, 1_700_000_000_000, 3, 5)


class Tag(ProducerInterceptor):
    """Appends its tag to the value, on a new record (the way interceptors should)."""

    def __init__(self, tag: str, log: list[str] | None = None) -> None:
        self.tag = tag
        self.log = log if log is not None else []
        self.acks: list[tuple[RecordMetadata | None, BaseException | None]] = []
        self.configs: list[Mapping[str, Any]] = []
        self.closed = 0

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        self.log.append(f"{self.tag}:{record.value}")
        return dataclasses.replace(record, value=f"{record.value}+{self.tag}")

    def on_acknowledgement(
        self, metadata: RecordMetadata | None, exception: BaseException | None
    ) -> None:
        self.acks.append((metadata, exception))

    def configure(self, configs: Mapping[str, Any]) -> None:
        self.configs.append(configs)

    def close(self) -> None:
        self.closed += 1


class Broken(ProducerInterceptor):
    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        raise RuntimeError("on_send broke")

    def on_acknowledgement(
        self, metadata: RecordMetadata | None, exception: BaseException | None
    ) -> None:
        raise RuntimeError("ack broke")

    def configure(self, configs: Mapping[str, Any]) -> None:
        raise RuntimeError("configure broke")

    def close(self) -> None:
        raise RuntimeError("close broke")


def test_empty_chain_is_false_and_a_no_op() -> None:
    chain = InterceptorChain([])
    assert not chain
    record = ProducerRecord("t", b"v")
    assert chain.on_send(record) is record
    chain.on_acknowledgement(METADATA, None)
    chain.on_send_error(record, RuntimeError())
    chain.configure({})
    chain.close()


def test_non_empty_chain_is_true() -> None:
    assert InterceptorChain([ProducerInterceptor()])
    assert len(InterceptorChain([Tag("a"), Tag("b")])) == 2


def test_on_send_runs_in_order_each_seeing_the_previous_result() -> None:
    log: list[str] = []
    chain = InterceptorChain([Tag("a", log), Tag("b", log), Tag("c", log)])
    result = chain.on_send(ProducerRecord("t", "v"))
    assert result.value == "v+a+b+c"
    assert log == ["a:v", "b:v+a", "c:v+a+b"]


def test_failing_on_send_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    chain = InterceptorChain([Tag("a", log), Broken(), Tag("c", log)])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = chain.on_send(ProducerRecord("orders", "v"))
    # The interceptor after the broken one got the record as it was before the broken one.
    assert log == ["a:v", "c:v+a"]
    assert result.value == "v+a+c"
    [entry] = caplog.records
    assert entry.name == LOGGER
    assert entry.levelno == logging.WARNING
    assert "Broken" in entry.getMessage()
    assert "'orders'" in entry.getMessage()
    assert entry.exc_info is not None
    assert isinstance(entry.exc_info[1], RuntimeError)


def test_on_send_result_that_is_not_a_record_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class ReturnsNone:
        def on_send(self, record: ProducerRecord) -> None:
            return None

    record = ProducerRecord("t", "v")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert InterceptorChain([ReturnsNone()]).on_send(record) is record
    assert "ReturnsNone returned NoneType" in caplog.text


def test_on_acknowledgement_reaches_everyone_despite_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, last = Tag("a"), Tag("b")
    chain = InterceptorChain([first, Broken(), last])
    error = RuntimeError("delivery failed")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        chain.on_acknowledgement(METADATA, None)
        chain.on_acknowledgement(None, error)
    assert first.acks == last.acks == [(METADATA, None), (None, error)]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert all("Broken" in r.getMessage() for r in caplog.records)


def test_on_send_error_builds_metadata_from_the_record() -> None:
    tag = Tag("a")
    chain = InterceptorChain([tag])
    error = ValueError("too large")
    chain.on_send_error(ProducerRecord("orders", b"v"), error)
    chain.on_send_error(ProducerRecord("orders", b"v", partition=3), error)
    chain.on_send_error(ProducerRecord("orders", b"v"), error, partition=5)
    assert tag.acks == [
        (RecordMetadata("orders", -1, -1, -1, -1, -1), error),
        (RecordMetadata("orders", 3, -1, -1, -1, -1), error),
        (RecordMetadata("orders", 5, -1, -1, -1, -1), error),
    ]


def test_configure_and_close_failures_are_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    first, last = Tag("a"), Tag("b")
    chain = InterceptorChain([first, Broken(), last])
    configs = {"client_id": "me"}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        chain.configure(configs)
        chain.close()
    assert first.configs == last.configs == [configs]
    assert first.closed == last.closed == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR]
    assert "configure" in caplog.records[0].getMessage()
    assert "close" in caplog.records[1].getMessage()


def test_base_exceptions_are_not_swallowed() -> None:
    class Interrupts(ProducerInterceptor):
        def on_send(self, record: ProducerRecord) -> ProducerRecord:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        InterceptorChain([Interrupts()]).on_send(ProducerRecord("t"))


def test_duck_typed_interceptors_with_some_methods() -> None:
    class OnlyAcks:
        def __init__(self) -> None:
            self.acks: list[RecordMetadata | None] = []

        def on_acknowledgement(
            self, metadata: RecordMetadata | None, exception: BaseException | None
        ) -> None:
            self.acks.append(metadata)

    class OnlySend:
        def on_send(self, record: ProducerRecord) -> ProducerRecord:
            return dataclasses.replace(record, key=b"k")

    acks = OnlyAcks()
    chain = InterceptorChain([acks, OnlySend()])
    assert chain.on_send(ProducerRecord("t", b"v")).key == b"k"
    chain.on_acknowledgement(METADATA, None)
    chain.configure({})
    chain.close()
    assert acks.acks == [METADATA]


def test_subclass_hooks_that_are_not_overridden_are_not_called() -> None:
    class AcksOnly(ProducerInterceptor):
        def on_acknowledgement(
            self, metadata: RecordMetadata | None, exception: BaseException | None
        ) -> None:
            pass

    chain = InterceptorChain([AcksOnly()])
    assert chain._on_send == ()
    assert len(chain._on_ack) == 1


def test_hook_set_on_the_instance_is_called() -> None:
    interceptor = ProducerInterceptor()
    interceptor.on_send = lambda record: dataclasses.replace(record, value=b"patched")  # type: ignore[method-assign]
    assert InterceptorChain([interceptor]).on_send(ProducerRecord("t", b"v")).value == b"patched"


@pytest.mark.parametrize("bad", [object(), 3, Tag])
def test_objects_without_hooks_and_classes_are_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="interceptor"):
        InterceptorChain([bad])
