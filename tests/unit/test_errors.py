from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from asyncproducer import errors
from asyncproducer._error_codes import ERROR_CODES


def test_the_error_code_table_is_kafkas_as_kio_has_it() -> None:
    # Both come from Kafka's Errors.java; kio's enum is the independent copy.
    kio_codes = {int(c): (c.name.upper(), c.retriable) for c in ErrorCode if c != ErrorCode.none}
    assert kio_codes == ERROR_CODES


def test_every_kafka_error_code_maps_to_a_named_class() -> None:
    for code in ErrorCode:
        if code == ErrorCode.none:
            continue
        error = errors.error_for_code(int(code), "ctx")
        assert isinstance(error, errors.BrokerResponseError)
        assert type(error).code == int(code)
        assert type(error).name == code.name.upper()
        assert f"code {int(code)}" in str(error)
        assert "ctx" in str(error)


@pytest.mark.parametrize(
    ("code", "cls", "retriable", "refresh_metadata"),
    [
        (3, errors.UnknownTopicOrPartitionError, True, True),
        (6, errors.NotLeaderOrFollowerError, True, True),
        (5, errors.LeaderNotAvailableError, True, True),
        (19, errors.NotEnoughReplicasError, True, False),
        (10, errors.RecordTooLargeError, False, False),
        (45, errors.OutOfOrderSequenceNumberError, False, False),
        (46, errors.DuplicateSequenceNumberError, False, False),
        (90, errors.ProducerFencedError, False, False),
        (29, errors.TopicAuthorizationFailedError, False, False),
    ],
)
def test_producer_errors_have_classes_and_flags(
    code: int, cls: type, retriable: bool, refresh_metadata: bool
) -> None:
    error = errors.error_for_code(code)
    assert type(error) is cls
    assert error.retriable is retriable
    assert isinstance(error, errors.InvalidMetadataError) is refresh_metadata


def test_unknown_code_is_reported_with_its_number() -> None:
    error = errors.error_for_code(31_000)
    assert isinstance(error, errors.UnknownBrokerError)
    assert error.unknown_code == 31_000
    assert str(error).startswith("[error code 31000, unknown to this client]")


def test_client_errors_hierarchy() -> None:
    assert issubclass(errors.RequestTimeoutError, errors.KafkaTimeoutError)
    assert issubclass(errors.ConnectionSetupTimeoutError, errors.KafkaConnectionError)
    assert issubclass(errors.ConnectionSetupTimeoutError, errors.KafkaTimeoutError)
    assert issubclass(errors.BufferExhaustedError, errors.KafkaTimeoutError)
    assert issubclass(errors.ProducerClosedError, errors.ProducerStateError)
    assert issubclass(errors.ConfigError, ValueError)
    assert errors.KafkaConnectionError.retriable
    assert not errors.SerializationError.retriable
    assert set(errors.__all__) >= {"KafkaError", "NotLeaderOrFollowerError", "error_for_code"}


@pytest.mark.parametrize(
    "error",
    [
        errors.KafkaConnectionError("broker down"),
        errors.error_for_code(6, "topic t"),
        errors.UnknownBrokerError(31_000, "ctx"),
    ],
)
def test_fresh_copy_is_equal_but_separate(error: errors.KafkaError) -> None:
    try:
        raise error
    except errors.KafkaError:
        pass
    twin = errors.fresh_copy(error)
    assert twin is not error
    assert type(twin) is type(error)
    assert str(twin) == str(error)
    assert twin.__dict__ == error.__dict__
    assert twin.__traceback__ is None


def test_fresh_copy_keeps_the_cause() -> None:
    """A delivery timeout's cause is the broker error it gave up after; every record's
    copy of the timeout must still name it."""
    cause = errors.error_for_code(19, "orders-0")
    timeout = errors.KafkaTimeoutError("expiring 3 record(s)")
    timeout.__cause__ = cause
    timeout.add_note("a note")
    twin = errors.fresh_copy(timeout)
    assert twin.__cause__ is cause
    assert twin.__suppress_context__ is True  # set by assigning __cause__, as `raise from`
    assert twin.__notes__ == ["a note"]
