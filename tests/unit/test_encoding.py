"""The bulk record encoder and the sizes computed without encoding: they must agree with
each other, with a record-by-record reference encoding, and with the decoder."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncproducer._batch import ProducerBatch
from asyncproducer._futures import set_results
from asyncproducer._types import Header
from asyncproducer.protocol._varint import encode_uvarint, encode_varint, zigzag
from asyncproducer.protocol.encoding import encode_headers, encode_records, record_size
from asyncproducer.protocol.records import decode_batches

SETTINGS = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

Record = tuple[int, bytes | None, bytes | None, list[Header]]

records_strategy = st.lists(
    st.tuples(
        st.integers(-(10**6), 10**9),  # timestamp delta: negative and past the lookup table
        st.none() | st.binary(max_size=40),
        st.none() | st.binary(max_size=3_000),  # value lengths past the lookup table too
        st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=10)), max_size=3),
    ),
    min_size=1,
    max_size=30,
)


def reference_record(delta: int, offset: int, key: bytes | None, value: bytes | None,
                     headers: list[Header]) -> bytes:  # fmt: skip
    """One record, field by field, as the protocol guide lays it out."""

    def field(data: bytes | None) -> bytes:
        return encode_varint(-1) if data is None else encode_varint(len(data)) + data

    body = b"\x00" + encode_varint(delta) + encode_varint(offset) + field(key) + field(value)
    body += encode_headers(headers) if headers else b"\x00"
    return encode_varint(len(body)) + body


@given(records_strategy, st.integers(0, 2**40))
@SETTINGS
def test_bulk_encoding_matches_the_reference_and_the_sizes(
    records: list[Record], base: int
) -> None:
    deltas, keys, values, headers = (list(column) for column in zip(*records, strict=True))
    encoded = encode_records(base, [base + d for d in deltas], keys, values, headers)
    expected = [reference_record(*r[:1], i, *r[1:]) for i, r in enumerate(records)]
    assert encoded == b"".join(expected)
    assert [len(e) for e in expected] == [
        record_size(d, i, k, v, h) for i, (d, k, v, h) in enumerate(records)
    ]


@given(records_strategy)
@SETTINGS
def test_a_producer_batch_adds_up_exact_sizes_and_decodes_back(records: list[Record]) -> None:
    batch = ProducerBatch("t", 0, 0, 0, batch_size=1 << 30)
    base = 1_700_000_000_000
    for delta, key, value, headers in records:
        assert batch.try_append(None, (base + delta, key, value, headers))
    size = batch.records_size
    (decoded,) = decode_batches(batch.close())
    assert len(batch.payload or b"") == 61 + size  # the inline sizes are the encoded ones
    first = records[0][0]
    assert [(r.timestamp, r.key, r.value, list(r.headers)) for r in decoded.records] == [
        (base + d, k, v, [(n, hv) for n, hv in h]) for d, k, v, h in records
    ]
    assert decoded.base_timestamp == base + first
    assert decoded.max_timestamp == base + max(d for d, *_ in records)


def test_set_results_skips_a_future_the_user_cancelled() -> None:
    loop = asyncio.new_event_loop()
    try:
        futures = [loop.create_future() for _ in range(4)]
        futures[1].cancel()
        set_results(futures, ["a", "b", "c", "d"])
        assert futures[1].cancelled()
        assert [f.result() for f in (futures[0], futures[2], futures[3])] == ["a", "c", "d"]
    finally:
        loop.close()


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_the_unsigned_varint_is_the_zigzag_ones_core(value: int) -> None:
    assert encode_varint(value) == encode_uvarint(zigzag(value))


def test_unsigned_varint_lengths() -> None:
    assert [len(encode_uvarint(v)) for v in (0, 127, 128, 2**14 - 1, 2**14, 2**21, 2**63)] == [
        1,
        1,
        2,
        2,
        3,
        4,
        10,
    ]
    assert encode_uvarint(300) == b"\xac\x02"
