"""Compression codecs for record batches, byte-compatible with the Java producer.

Each codec writes what Apache Kafka's Java client writes, so that Java, librdkafka and the
Python clients can read it, and reads what any of them write:

* **gzip** - a gzip container (RFC 1952), not a bare zlib stream. Levels 1-9; the default
  is Java's ``Deflater.DEFAULT_COMPRESSION`` (-1), which zlib maps to level 6.
* **snappy** - xerial snappy framing, as ``org.xerial.snappy.SnappyOutputStream`` writes
  it: a 16-byte header (magic, version 1, compatible version 1), then blocks of 32 KiB of
  input, each a big-endian int32 length and a raw snappy block. Reading also accepts a
  single raw snappy block, as xerial's ``SnappyInputStream`` does (some clients write it).
  Needs the optional ``cramjam`` package.
* **lz4** - an LZ4 frame with independent blocks of at most 64 KiB, no content size, no
  checksums, like Java's ``Lz4BlockOutputStream`` (its reader rejects linked blocks).
  Levels 1-17 (KIP-390); the default, 9, uses LZ4's fast compressor as Java does, and
  other levels LZ4HC.
* **zstd** - standard zstd frames. Levels -131072..22 (KIP-390), default 3. Reading
  streams through frames, so frames without a content size (zstd-jni's) decode too.

Compressor objects are cached per thread and level: zstd contexts are expensive to set up
and must not be shared between threads. Each codec's package is imported when it is first
used (zlib excepted: the standard library's): a producer that never compresses, or uses
one codec, does not pay for loading the others at start-up.
"""

from __future__ import annotations

import enum
import threading
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias

from asyncproducer.errors import CorruptRecordError, UnsupportedCompressionTypeError

if TYPE_CHECKING:
    import zstandard

Buffer: TypeAlias = bytes | bytearray | memoryview


class CompressionType(enum.IntEnum):
    """A record batch codec; the value is the id in bits 0-2 of the batch attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_name(cls, name: str) -> CompressionType:
        """The codec for a ``compression_type`` config value ("none", "gzip", ...)."""
        try:
            return cls[name.strip().upper()]
        except (KeyError, AttributeError):
            allowed = ", ".join(repr(member.name.lower()) for member in cls)
            raise ValueError(
                f"unknown compression type {name!r}: allowed values are {allowed}"
            ) from None


# Inclusive level ranges from KIP-390 / Java's CompressionType; codecs absent here take
# no level at all.
LEVEL_RANGES: dict[CompressionType, tuple[int, int]] = {
    CompressionType.GZIP: (1, 9),
    CompressionType.LZ4: (1, 17),
    CompressionType.ZSTD: (-131072, 22),
}
# Java accepts -1 for gzip: Deflater.DEFAULT_COMPRESSION.
_GZIP_DEFAULT = -1
_LZ4_DEFAULT = 9
_ZSTD_DEFAULT = 3

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + (1).to_bytes(4, "big") + (1).to_bytes(4, "big")
_XERIAL_BLOCK_SIZE = 32 * 1024
_LZ4_BLOCK_SIZE = 64 * 1024


def _unknown(ctype: object) -> UnsupportedCompressionTypeError:
    known = ", ".join(f"{m.value} ({m.name.lower()})" for m in CompressionType)
    return UnsupportedCompressionTypeError(f"compression type id {ctype!r} is not one of {known}")


def _as_type(ctype: int) -> CompressionType:
    try:
        return CompressionType(ctype)
    except ValueError:
        raise _unknown(ctype) from None


def validate_level(ctype: int, level: int | None) -> None:
    """Raise ValueError unless ``level`` is valid for the codec (None always is).

    Raises UnsupportedCompressionTypeError for an unknown codec id.
    """
    codec = _as_type(ctype)
    if level is None:
        return
    bounds = LEVEL_RANGES.get(codec)
    name = codec.name.lower()
    if bounds is None:
        raise ValueError(f"{name} takes no compression level, got {level}")
    low, high = bounds
    if codec is CompressionType.GZIP and level == _GZIP_DEFAULT:
        return
    if not low <= level <= high:
        extra = " or -1 (default)" if codec is CompressionType.GZIP else ""
        raise ValueError(
            f"invalid {name} compression level {level}: allowed range is {low}..{high}{extra}"
        )


# --------------------------------------------------------------------------- snappy

_cramjam_module: ModuleType | None = None


def _cramjam() -> ModuleType:
    # Imported on first use: snappy is an optional extra, the other codecs are not.
    global _cramjam_module
    if _cramjam_module is None:
        try:
            import cramjam
        except ImportError:
            raise UnsupportedCompressionTypeError(
                "snappy compression needs the cramjam package: pip install asyncproducer[snappy]"
            ) from None
        _cramjam_module = cramjam
    return _cramjam_module


def _snappy_compress(data: Buffer, level: int | None) -> bytes:
    snappy = _cramjam().snappy
    view = memoryview(data)
    out = bytearray(_XERIAL_HEADER)
    for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
        block = snappy.compress_raw(view[start : start + _XERIAL_BLOCK_SIZE])
        out += len(block).to_bytes(4, "big")
        out += block
    return bytes(out)


def _snappy_decompress(data: Buffer) -> bytes:
    cramjam = _cramjam()
    view = memoryview(data)
    try:
        if len(view) < len(_XERIAL_HEADER) or view[:8] != _XERIAL_MAGIC:
            return bytes(cramjam.snappy.decompress_raw(view))
        return _xerial_blocks(cramjam, view)
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(f"malformed snappy data: {exc}") from None


def _xerial_blocks(cramjam: ModuleType, view: memoryview) -> bytes:
    out = bytearray()
    pos = len(_XERIAL_HEADER)
    end = len(view)
    while pos < end:
        if end - pos < 4:
            raise CorruptRecordError(f"xerial snappy block header at byte {pos} is truncated")
        size = int.from_bytes(view[pos : pos + 4], "big")
        pos += 4
        if size > end - pos:
            raise CorruptRecordError(
                f"xerial snappy block at byte {pos} claims {size} bytes, {end - pos} remain"
            )
        out += cramjam.snappy.decompress_raw(view[pos : pos + size])
        pos += size
    return bytes(out)


# --------------------------------------------------------------------------- gzip


def _gzip_compress(data: Buffer, level: int | None) -> bytes:
    # wbits=31 selects the gzip container; the one-shot call avoids a compressobj.
    return zlib.compress(data, _GZIP_DEFAULT if level is None else level, wbits=31)


def _gzip_decompress(data: Buffer) -> bytes:
    out = bytearray()
    rest: Buffer = data
    try:
        # Java's GZIPInputStream reads concatenated members and ignores bytes after the
        # last one that do not start a new member; do the same.
        while True:
            inflater = zlib.decompressobj(31)
            out += inflater.decompress(rest)
            if not inflater.eof:
                raise CorruptRecordError("gzip data is truncated")
            rest = inflater.unused_data
            if rest[:2] != b"\x1f\x8b":
                return bytes(out)
    except zlib.error as exc:
        raise CorruptRecordError(f"malformed gzip data: {exc}") from None


# --------------------------------------------------------------------------- lz4


def _lz4_compress(data: Buffer, level: int | None) -> bytes:
    import lz4.frame as lz4_frame  # imported once, then a lookup in sys.modules

    if level is None or level == _LZ4_DEFAULT:
        lz4_level = 0  # LZ4's fast (non-HC) compressor, like Java at its default level
    else:
        lz4_level = min(level, lz4_frame.COMPRESSIONLEVEL_MAX)
    compressed: bytes = lz4_frame.compress(
        data,
        compression_level=lz4_level,
        block_size=lz4_frame.BLOCKSIZE_MAX64KB,
        block_linked=False,
        content_checksum=False,
        store_size=False,
    )
    return compressed


def _lz4_decompress(data: Buffer) -> bytes:
    import lz4.frame as lz4_frame

    try:
        out: bytes = lz4_frame.decompress(data)
    except RuntimeError as exc:
        raise CorruptRecordError(f"malformed lz4 frame: {exc}") from None
    return out


# --------------------------------------------------------------------------- zstd

_local = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "zstd", None)
    if cache is None:
        cache = _local.zstd = {}
    compressor = cache.get(level)
    if compressor is None:
        import zstandard

        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "unzstd", None)
    if decompressor is None:
        import zstandard

        decompressor = _local.unzstd = zstandard.ZstdDecompressor()
    return decompressor


def _zstd_compress(data: Buffer, level: int | None) -> bytes:
    return _zstd_compressor(_ZSTD_DEFAULT if level is None else level).compress(data)


def _zstd_decompress(data: Buffer) -> bytes:
    import zstandard

    decompressor = _zstd_decompressor()
    out = bytearray()
    rest: Buffer = data
    try:
        # One decompressobj per frame: with read_across_frames the object cannot tell a
        # complete stream from a truncated one, and a frame without a content size needs
        # the streaming API anyway.
        while rest:
            frame = decompressor.decompressobj()
            out += frame.decompress(rest)
            if not frame.eof:
                raise CorruptRecordError("zstd data is truncated")
            rest = frame.unused_data
    except zstandard.ZstdError as exc:
        raise CorruptRecordError(f"malformed zstd data: {exc}") from None
    return bytes(out)


# --------------------------------------------------------------------------- dispatch

_COMPRESS: dict[int, Callable[[Buffer, int | None], bytes]] = {
    CompressionType.NONE: lambda data, level: bytes(data),
    CompressionType.GZIP: _gzip_compress,
    CompressionType.SNAPPY: _snappy_compress,
    CompressionType.LZ4: _lz4_compress,
    CompressionType.ZSTD: _zstd_compress,
}
_DECOMPRESS: dict[int, Callable[[Buffer], bytes]] = {
    CompressionType.NONE: bytes,
    CompressionType.GZIP: _gzip_decompress,
    CompressionType.SNAPPY: _snappy_decompress,
    CompressionType.LZ4: _lz4_decompress,
    CompressionType.ZSTD: _zstd_decompress,
}


def compress(ctype: int, data: Buffer, level: int | None = None) -> bytes:
    """Compress ``data`` with the codec ``ctype`` (a CompressionType or its id).

    Raises ValueError for a level the codec does not accept and
    UnsupportedCompressionTypeError for an unknown codec id (or snappy without cramjam).
    """
    codec = _COMPRESS.get(ctype)
    if codec is None:
        raise _unknown(ctype)
    validate_level(ctype, level)
    return codec(data, level)


def decompress(ctype: int, data: Buffer) -> bytes:
    """Decompress ``data`` written with the codec ``ctype``.

    Raises CorruptRecordError when the data is not valid for the codec.
    """
    codec = _DECOMPRESS.get(ctype)
    if codec is None:
        raise _unknown(ctype)
    return codec(data)


def compressed_size_bound(ctype: int, size: int) -> int:
    """The most bytes ``compress(ctype, data)`` can return for ``size`` input bytes.

    These are the codecs' documented worst cases (incompressible input), plus framing,
    with a little slack where the exact figure depends on the library version.
    """
    if ctype == CompressionType.NONE:
        return size
    if ctype == CompressionType.GZIP:
        # zlib's deflateBound for default windowBits/memLevel is
        # n + n/4096 + n/16384 + n/2^25 + 7 plus an 18-byte gzip wrapper; n/1024 + 64
        # covers it, and zlib-ng's slightly different bound, with room to spare.
        return size + (size >> 10) + 64
    if ctype == CompressionType.SNAPPY:
        blocks = -(-size // _XERIAL_BLOCK_SIZE)
        # snappy's MaxCompressedLength per block is 32 + n + n/6; each block also has a
        # 4-byte length, and the stream a 16-byte header.
        return 16 + size + size // 6 + blocks * (32 + 4 + 1)
    if ctype == CompressionType.LZ4:
        blocks = -(-size // _LZ4_BLOCK_SIZE)
        # LZ4F stores a block raw when it does not shrink, so each block costs at most a
        # 4-byte size more than its input; 7-byte header and 4-byte end mark.
        return size + 4 * blocks + 7 + 4 + 8
    if ctype == CompressionType.ZSTD:
        # ZSTD_COMPRESSBOUND, which includes the frame header, plus slack.
        small = ((128 << 10) - size) >> 11 if size < (128 << 10) else 0
        return size + (size >> 8) + small + 32
    raise _unknown(ctype)
