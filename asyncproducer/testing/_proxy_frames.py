"""Kafka framing as the :class:`~asyncproducer.testing.proxy.FaultProxy` follows it: where
frames begin and end in a byte stream (without buffering whole frames), the few header
fields its faults decide by, and a Produce request's acks."""

from __future__ import annotations

import struct
from typing import NamedTuple

SIZE = struct.Struct(">i")
_INT16 = struct.Struct(">h")
REQUEST_HEAD = struct.Struct(">ihhi")
"""A request's first bytes: size, api key, api version, correlation id."""
RESPONSE_HEAD = struct.Struct(">ii")
"""A response's first bytes: size, correlation id."""
# Produce v9+ is flexible: compact strings, and a tagged-field section after the header.
_PRODUCE_FIRST_FLEXIBLE = 9


class Piece(NamedTuple):
    """Bytes of one frame; ``head`` is the frame's header bytes on the piece that completes
    them (the place to decide what to do with the frame), else None; ``last`` is true on
    the piece that ends the frame."""

    data: bytes
    frame: int
    head: bytes | None
    last: bool = False


class FrameSplitter:
    """Cuts a byte stream at Kafka frame boundaries, without buffering whole frames.

    ``feed(data, hold=False)`` passes bytes on at once and attaches the frame's header to
    the piece that completes it; ``hold=True`` keeps the bytes of a frame's header back
    until the header is complete, so the caller can decide about a frame before any of
    it is forwarded.
    """

    def __init__(self, head_size: int) -> None:
        self._head_size = head_size
        self._head = bytearray()  # the current frame's header bytes seen so far
        self._head_sent = 0  # how many of them were already passed on (hold=False)
        self._body_left = 0  # bytes of the current frame after its header
        self.frame = 0  # index of the current frame in the stream

    def _head_target(self) -> int:
        if len(self._head) < SIZE.size:
            return SIZE.size
        size: int = SIZE.unpack_from(self._head)[0]
        # A frame shorter than the header we would like is still a frame.
        return min(self._head_size, SIZE.size + max(size, 0))

    def feed(self, data: bytes, *, hold: bool = False) -> list[Piece]:
        pieces: list[Piece] = []
        pos = 0
        while pos < len(data):
            if self._body_left:
                take = min(self._body_left, len(data) - pos)
                self._body_left -= take
                last = not self._body_left
                pieces.append(Piece(data[pos : pos + take], self.frame, None, last))
                pos += take
                if last:
                    self.frame += 1
                continue
            take = min(self._head_target() - len(self._head), len(data) - pos)
            self._head += data[pos : pos + take]
            pos += take
            if len(self._head) == self._head_target():
                pieces.append(self._complete_head())
            elif not hold and len(self._head) > self._head_sent:
                pieces.append(Piece(bytes(self._head[self._head_sent :]), self.frame, None))
                self._head_sent = len(self._head)
        return pieces

    def heads(self, data: bytes) -> list[bytes]:
        """Follow ``data`` like :meth:`feed`, but return only the headers completed in it
        (no pieces: nothing is copied but header bytes). A splitter is fed by one of the
        two only."""
        heads: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._body_left:
                take = min(self._body_left, end - pos)
                self._body_left -= take
                pos += take
                if not self._body_left:
                    self.frame += 1
                continue
            take = min(self._head_target() - len(self._head), end - pos)
            self._head += data[pos : pos + take]
            pos += take
            if len(self._head) == self._head_target():
                head = self._complete_head().head
                assert head is not None
                heads.append(head)
        return heads

    def _complete_head(self) -> Piece:
        head = bytes(self._head)
        (size,) = SIZE.unpack_from(head)
        self._body_left = SIZE.size + max(size, 0) - len(head)
        piece = Piece(head[self._head_sent :], self.frame, head, not self._body_left)
        self._head.clear()
        self._head_sent = 0
        if not self._body_left:
            self.frame += 1
        return piece


def request_head(head: bytes) -> tuple[int, int, int] | None:
    """(api key, api version, correlation id) of a request header, None if the frame is
    too short."""
    if len(head) < REQUEST_HEAD.size:
        return None
    _, api_key, version, correlation_id = REQUEST_HEAD.unpack(head)
    return api_key, version, correlation_id


def produce_acks(frame: bytes | bytearray, version: int) -> int | None:
    """The acks of a Produce request of ``version`` from the first bytes of its frame (the
    size included); None while they do not reach it (or do not parse)."""
    try:
        (client_id,) = _INT16.unpack_from(frame, REQUEST_HEAD.size)
        pos = REQUEST_HEAD.size + _INT16.size + max(client_id, 0)
        if version >= _PRODUCE_FIRST_FLEXIBLE:
            tags, pos = _read_uvarint(frame, pos)  # request header v2's tagged fields
            for _ in range(tags):
                _, pos = _read_uvarint(frame, pos)
                size, pos = _read_uvarint(frame, pos)
                pos += size
            transactional_id, pos = _read_uvarint(frame, pos)  # compact: length + 1
            pos += max(transactional_id - 1, 0)
        elif version >= 3:
            (transactional_id,) = _INT16.unpack_from(frame, pos)
            pos += _INT16.size + max(transactional_id, 0)
        (acks,) = _INT16.unpack_from(frame, pos)
    except (struct.error, IndexError, ValueError):
        return None
    return int(acks)


def _read_uvarint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """An unsigned varint (at most 5 bytes) at ``data[pos]``: (value, next pos). IndexError
    when ``data`` ends first, ValueError when it is longer."""
    value = 0
    for shift in range(0, 35, 7):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise ValueError("an unsigned varint longer than 5 bytes")


def response_correlation_id(head: bytes) -> int | None:
    if len(head) < RESPONSE_HEAD.size:
        return None
    return int(RESPONSE_HEAD.unpack(head)[1])
