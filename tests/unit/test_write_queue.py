"""WriteQueue: frames out in chunks of bounded size, in order, each frame's callback with
its last byte."""

from __future__ import annotations

from asyncproducer._write_queue import CHUNK, WriteQueue


def drain(queue: WriteQueue, limit: int) -> list[bytes]:
    chunks: list[bytes] = []
    while queue:
        chunk, _ = queue.take(limit)
        assert 0 < len(chunk) <= limit
        chunks.append(bytes(chunk))
    return chunks


def test_small_frames_coalesce_into_one_chunk() -> None:
    queue = WriteQueue()
    queue.push([b"ab", b"cd"])
    queue.push([b"ef"])
    chunk, done = queue.take(100)
    assert chunk == b"abcdef"
    assert done == []
    assert not queue


def test_a_large_part_is_sliced_without_copying() -> None:
    big = bytes(range(256)) * 40  # 10,240 bytes
    queue = WriteQueue()
    queue.push([b"head", big])
    first, _ = queue.take(1000)
    assert first == b"head" + big[:996]
    second, _ = queue.take(1000)
    assert isinstance(second, memoryview)  # a slice of the part itself
    assert second.obj is big
    assert bytes(second) == big[996:1996]
    rest = b"".join(bytes(queue.take(1000)[0]) for _ in range(9))
    assert b"head" + big == first + bytes(second) + rest
    assert not queue


def test_callbacks_come_with_the_last_byte_of_their_frame_in_order() -> None:
    queue = WriteQueue()
    calls: list[str] = []
    queue.push([b"x" * 5], lambda: calls.append("a"))
    queue.push([b"y" * 3, b"z" * 4], lambda: calls.append("b"))
    queue.push([b"w"])  # no callback
    queue.push([b"v" * 2], lambda: calls.append("c"))
    taken = []
    while queue:
        chunk, done = queue.take(4)
        taken.append((bytes(chunk), len(done)))
        for written in done:
            written()
    assert taken == [(b"xxxx", 0), (b"xyyy", 1), (b"zzzz", 1), (b"wvv", 1)]
    assert calls == ["a", "b", "c"]


def test_an_empty_frame_still_calls_back() -> None:
    queue = WriteQueue()
    calls: list[int] = []
    queue.push([b"", b""], lambda: calls.append(1))
    assert queue
    chunk, done = queue.take()
    assert chunk == b""
    for written in done:
        written()
    assert calls == [1]
    assert not queue


def test_every_byte_in_order_across_chunk_boundaries() -> None:
    frames = [[bytes([i]) * size for size in (1, 7, CHUNK, 3)] for i in range(3)]
    queue = WriteQueue()
    for parts in frames:
        queue.push(parts)
    chunks = drain(queue, CHUNK)
    assert b"".join(chunks) == b"".join(b"".join(parts) for parts in frames)
    assert all(len(chunk) == CHUNK for chunk in chunks[:-1])


def test_clear_drops_everything_without_calling_back() -> None:
    queue = WriteQueue()
    calls: list[int] = []
    queue.push([b"abc"], lambda: calls.append(1))
    queue.clear()
    assert not queue
    assert calls == []
