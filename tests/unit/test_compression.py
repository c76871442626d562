"""The batch codecs: round trips, level validation, and the exact formats Java uses."""

from __future__ import annotations

import gzip
import os
import struct
import sys

import cramjam
import lz4.frame
import pytest
import zstandard

from asyncproducer.errors import CorruptRecordError, UnsupportedCompressionTypeError
from asyncproducer.protocol import compression
from asyncproducer.protocol.compression import (
    CompressionType,
    compress,
    compressed_size_bound,
    decompress,
    validate_level,
)

SAMPLES = {
    "empty": b"",
    "tiny": b"x",
    "text": b"the quick brown fox jumps over the lazy dog " * 3000,
    "random": os.urandom(150_000),
}

LEVELS = [
    (CompressionType.NONE, None),
    (CompressionType.GZIP, None),
    (CompressionType.GZIP, -1),
    (CompressionType.GZIP, 1),
    (CompressionType.GZIP, 9),
    (CompressionType.SNAPPY, None),
    (CompressionType.LZ4, None),
    (CompressionType.LZ4, 1),
    (CompressionType.LZ4, 9),
    (CompressionType.LZ4, 12),
    (CompressionType.LZ4, 17),
    (CompressionType.ZSTD, None),
    (CompressionType.ZSTD, -131072),
    (CompressionType.ZSTD, -5),
    (CompressionType.ZSTD, 3),
    (CompressionType.ZSTD, 19),
]


@pytest.mark.parametrize(("ctype", "level"), LEVELS)
@pytest.mark.parametrize("sample", SAMPLES)
def test_round_trip(ctype: CompressionType, level: int | None, sample: str) -> None:
    data = SAMPLES[sample]
    packed = compress(ctype, data, level)
    assert decompress(ctype, packed) == data
    assert len(packed) <= compressed_size_bound(ctype, len(data))


@pytest.mark.parametrize("ctype", list(CompressionType))
def test_accepts_bytearray_and_memoryview(ctype: CompressionType) -> None:
    data = SAMPLES["text"]
    for view in (bytearray(data), memoryview(data)[5:]):
        assert decompress(ctype, compress(ctype, view)) == bytes(view)
        assert decompress(ctype, memoryview(compress(ctype, view))) == bytes(view)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("none", CompressionType.NONE),
        ("gzip", CompressionType.GZIP),
        ("Snappy", CompressionType.SNAPPY),
        ("LZ4", CompressionType.LZ4),
        ("zstd", CompressionType.ZSTD),
    ],
)
def test_from_name(name: str, expected: CompressionType) -> None:
    assert CompressionType.from_name(name) is expected


def test_from_name_unknown_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match="brotli") as info:
        CompressionType.from_name("brotli")
    for allowed in ("none", "gzip", "snappy", "lz4", "zstd"):
        assert allowed in str(info.value)


def test_ids_are_the_attribute_bits() -> None:
    assert [int(c) for c in CompressionType] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("ctype", "level", "allowed"),
    [
        (CompressionType.GZIP, 0, "1..9"),
        (CompressionType.GZIP, 10, "1..9"),
        (CompressionType.LZ4, 0, "1..17"),
        (CompressionType.LZ4, 18, "1..17"),
        (CompressionType.ZSTD, 23, "-131072..22"),
        (CompressionType.ZSTD, -131073, "-131072..22"),
    ],
)
def test_invalid_level(ctype: CompressionType, level: int, allowed: str) -> None:
    with pytest.raises(ValueError, match=str(level)) as info:
        compress(ctype, b"data", level)
    assert ctype.name.lower() in str(info.value)
    assert allowed in str(info.value)
    with pytest.raises(ValueError, match=allowed):
        validate_level(ctype, level)


@pytest.mark.parametrize("ctype", [CompressionType.NONE, CompressionType.SNAPPY])
def test_codecs_without_levels_reject_one(ctype: CompressionType) -> None:
    with pytest.raises(ValueError, match=f"{ctype.name.lower()} takes no compression level"):
        compress(ctype, b"data", 1)


@pytest.mark.parametrize("bad_id", [5, 7, -1, 99])
def test_unknown_codec_id(bad_id: int) -> None:
    with pytest.raises(UnsupportedCompressionTypeError, match=str(bad_id)):
        compress(bad_id, b"data")
    with pytest.raises(UnsupportedCompressionTypeError, match=str(bad_id)):
        decompress(bad_id, b"data")
    with pytest.raises(UnsupportedCompressionTypeError):
        validate_level(bad_id, None if bad_id != 5 else 1)


# --------------------------------------------------------------------------- formats


def test_gzip_is_a_gzip_container() -> None:
    data = SAMPLES["text"]
    packed = compress(CompressionType.GZIP, data)
    assert packed[:3] == b"\x1f\x8b\x08"  # gzip magic + deflate, not a zlib header
    assert gzip.decompress(packed) == data


def test_gzip_default_level_is_zlibs_default() -> None:
    # Java's default is Deflater.DEFAULT_COMPRESSION, i.e. zlib level 6.
    data = SAMPLES["text"]
    assert compress(CompressionType.GZIP, data) == compress(CompressionType.GZIP, data, 6)


def test_gzip_reads_concatenated_members() -> None:
    packed = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decompress(CompressionType.GZIP, packed) == b"first second"


def _xerial_blocks(packed: bytes) -> list[bytes]:
    magic, version, compat = struct.unpack(">8sii", packed[:16])
    assert (magic, version, compat) == (b"\x82SNAPPY\x00", 1, 1)
    blocks, pos = [], 16
    while pos < len(packed):
        (size,) = struct.unpack(">i", packed[pos : pos + 4])
        blocks.append(packed[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert pos == len(packed)
    return blocks


def test_snappy_writes_xerial_framing_with_32k_blocks() -> None:
    data = SAMPLES["text"]
    blocks = _xerial_blocks(compress(CompressionType.SNAPPY, data))
    raw = [bytes(cramjam.snappy.decompress_raw(block)) for block in blocks]
    assert b"".join(raw) == data
    assert [len(chunk) for chunk in raw[:-1]] == [32 * 1024] * (len(raw) - 1)


def test_snappy_reads_raw_and_xerial() -> None:
    data = SAMPLES["text"]
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert decompress(CompressionType.SNAPPY, raw) == data
    framed = compress(CompressionType.SNAPPY, data)
    assert framed != raw
    assert decompress(CompressionType.SNAPPY, framed) == data


def test_snappy_without_cramjam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cramjam", None)  # makes `import cramjam` fail
    monkeypatch.setattr(compression, "_cramjam_module", None)
    with pytest.raises(
        UnsupportedCompressionTypeError, match=r"pip install asyncproducer\[snappy\]"
    ):
        compress(CompressionType.SNAPPY, b"data")
    with pytest.raises(UnsupportedCompressionTypeError, match="cramjam"):
        decompress(CompressionType.SNAPPY, b"data")
    # The other codecs do not need it.
    assert decompress(CompressionType.LZ4, compress(CompressionType.LZ4, b"data")) == b"data"


def test_lz4_frame_is_what_java_writes() -> None:
    packed = compress(CompressionType.LZ4, SAMPLES["random"][:100_000])
    assert packed[:4] == b"\x04\x22\x4d\x18"  # frame magic 0x184D2204, little-endian
    flg, bd = packed[4], packed[5]
    assert flg >> 6 == 0b01  # version 1
    assert flg & 0x20  # block independence: Java's reader rejects linked blocks
    assert not flg & 0x10  # no block checksum
    assert not flg & 0x08  # no content size
    assert not flg & 0x04  # no content checksum
    assert bd == 0x40  # 64 KiB maximum block size
    assert packed[-4:] == b"\x00\x00\x00\x00"  # end mark, no content checksum after it


@pytest.mark.parametrize("level", [None, 1, 9, 17])
def test_lz4_every_level_keeps_blocks_independent(level: int | None) -> None:
    packed = compress(CompressionType.LZ4, SAMPLES["text"], level)
    assert packed[4] & 0x20
    assert lz4.frame.decompress(packed) == SAMPLES["text"]


def test_zstd_reads_frames_without_content_size_and_several_frames() -> None:
    writer = zstandard.ZstdCompressor(write_content_size=False)
    one, two = SAMPLES["text"], b"second frame"
    packed = writer.compress(one) + writer.compress(two)
    assert decompress(CompressionType.ZSTD, packed) == one + two


def test_zstd_streaming_writer_output_decodes() -> None:
    # zstd-jni (Java) streams, so its frames carry no content size.
    stream = zstandard.ZstdCompressor(level=3).compressobj()
    data = SAMPLES["text"]
    packed = stream.compress(data[:5000]) + stream.compress(data[5000:]) + stream.flush()
    assert zstandard.get_frame_parameters(packed).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert decompress(CompressionType.ZSTD, packed) == data


@pytest.mark.parametrize(
    "ctype",
    [CompressionType.GZIP, CompressionType.SNAPPY, CompressionType.LZ4, CompressionType.ZSTD],
)
def test_truncated_or_garbage_input_is_corrupt(ctype: CompressionType) -> None:
    packed = compress(ctype, SAMPLES["text"])
    with pytest.raises(CorruptRecordError):
        decompress(ctype, packed[: len(packed) // 2])
    with pytest.raises(CorruptRecordError):
        decompress(ctype, b"\xff" * 40)


def test_size_bound_is_monotonic_and_covers_input() -> None:
    for ctype in CompressionType:
        previous = -1
        for size in (0, 1, 100, 32767, 32768, 32769, 65536, 65537, 1 << 20):
            bound = compressed_size_bound(ctype, size)
            assert bound >= size
            assert bound >= previous
            previous = bound
