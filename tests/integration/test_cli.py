"""The ``asyncproducer`` command line, run as a subprocess against a real broker.

What ``produce`` sends is read back with confluent-kafka (a client we did not write).
The pure pieces of the command (line splitting, the line reader, the in-flight window)
are tested in-process at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from asyncproducer import _cli_produce
from asyncproducer._cli_produce import InFlightWindow, LineReader, split_line
from tests.integration.independent import consume, create_topic

CLI = [sys.executable, "-m", "asyncproducer"]
HARD_TIMEOUT_S = 40


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        timeout=HARD_TIMEOUT_S,
        env=env,
        check=False,
    )


def test_produce_from_stdin_with_keys_and_headers(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    create_topic(kafka_bootstrap_servers, topic_name, 3)
    lines = [
        b"k1:v1",
        b"k2:value:with:colons",
        b"no separator here",
        b"k3:",
        b"",  # an empty line is an empty record, as in Java's console producer
        b":empty key",
        b"\xff\xfe:\x00binary\xc3",  # bytes, never decoded
        b"k1:v1 again",
    ]
    stdin = b"\n".join(lines[:-1]) + b"\r\n" + lines[-1]  # CRLF, and no final newline

    done = run_cli(
        "produce",
        topic_name,
        "--bootstrap-servers",
        kafka_bootstrap_servers,
        "--key-separator",
        ":",
        "--header",
        "trace=abc",
        "--header",
        "eq=a=b",
        "-X",
        "linger.ms=10",
        stdin=stdin,
    )

    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert "8 records read, 8 acknowledged, 0 failed" in stderr
    assert "Traceback" not in stderr
    consumed = consume(kafka_bootstrap_servers, topic_name, [0, 1, 2], len(lines))
    expected: list[tuple[bytes | None, bytes | None]] = [split_line(line, b":") for line in lines]
    headers = (("trace", b"abc"), ("eq", b"a=b"))
    # Exactly: a line without the separator has no key (None), ":x" has an empty key.
    assert sorted(((r.key, r.value) for r in consumed), key=repr) == sorted(expected, key=repr)
    assert all(r.headers == headers for r in consumed)
    # Keyless and keyed records alike: within a partition, input order is kept.
    for partition in (0, 1, 2):
        positions = [expected.index((r.key, r.value)) for r in consumed if r.partition == partition]
        assert positions == sorted(positions)


def test_produce_20000_lines_from_a_file(
    kafka_bootstrap_servers: str, topic_name: str, tmp_path: Path
) -> None:
    create_topic(kafka_bootstrap_servers, topic_name, 3)
    source = tmp_path / "lines.txt"
    source.write_bytes(b"".join(b"line %05d\n" % i for i in range(20_000)))

    done = run_cli(
        "produce",
        topic_name,
        str(source),
        "--bootstrap-servers",
        kafka_bootstrap_servers,
        "--compression",
        "lz4",
        "--acks",
        "all",
    )

    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert "20000 records read, 20000 acknowledged, 0 failed" in stderr
    consumed = consume(kafka_bootstrap_servers, topic_name, [0, 1, 2], 20_000)
    assert sorted(r.value or b"" for r in consumed) == [b"line %05d" % i for i in range(20_000)]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("lingr.ms=5", "did you mean linger.ms"),
        ("lingr_ms=5", "did you mean linger_ms"),
        ("linger.ms=soon", "linger.ms='soon': must be an int"),
        ("linger.ms", "-X expects KEY=VALUE"),
    ],
)
def test_bad_config_is_a_usage_error_without_traceback(option: str, expected: str) -> None:
    done = run_cli("produce", "some-topic", "-X", option)

    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert expected in stderr
    assert "Traceback" not in stderr


def test_a_flag_and_a_conflicting_x_option_are_refused() -> None:
    done = run_cli("produce", "some-topic", "--linger-ms", "1", "-X", "linger.ms=5")

    assert done.returncode == 2
    assert "--linger-ms 1 conflicts with -X linger.ms=5" in done.stderr.decode()


def test_a_missing_input_file_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("produce", "some-topic", str(tmp_path / "missing.txt"))

    assert done.returncode == 2
    assert "cannot read" in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()


@pytest.mark.parametrize(
    ("extra", "count"),
    [
        (["--backend", "asyncio"], 20_000),
        (["--backend", "trio"], 20_000),
        (["--acks", "0", "--compression", "zstd"], 3_000),  # verified by content
    ],
    ids=["asyncio", "trio", "acks0-zstd"],
)
def test_demo_starts_tansu_and_verifies_every_record(extra: list[str], count: int) -> None:
    args = ["demo", "--count", str(count), *extra]

    done = run_cli(*args)

    stdout = done.stdout.decode()
    assert done.returncode == 0, stdout + done.stderr.decode()
    assert "started Tansu" in stdout
    assert f"verified {count}/{count} records" in stdout
    assert "records/s" in stdout
    assert "ack latency: p50" in stdout


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sigint_closes_the_producer_and_prints_the_summary(
    kafka_bootstrap_servers: str, topic_name: str, backend: str
) -> None:
    create_topic(kafka_bootstrap_servers, topic_name, 1)
    args = ["produce", topic_name, "--bootstrap-servers", kafka_bootstrap_servers]
    with subprocess.Popen(
        [*CLI, *args, "--backend", backend], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            assert process.stdin is not None
            process.stdin.write(b"one\ntwo\n")
            process.stdin.flush()  # and keep stdin open: the reader waits for more
            consume(kafka_bootstrap_servers, topic_name, [0], 2)  # both were sent
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=HARD_TIMEOUT_S)
        finally:
            process.kill()
    assert process.returncode == 130
    assert b"2 records read, 2 acknowledged, 0 failed" in stderr
    assert b"interrupted" in stderr
    assert b"Traceback" not in stderr


# --------------------------------------------------------------------------- in-process


@pytest.mark.parametrize(
    ("line", "separator", "expected"),
    [
        (b"k:v", b":", (b"k", b"v")),
        (b"k:v:w", b":", (b"k", b"v:w")),  # the first separator only
        (b"no-sep", b":", (None, b"no-sep")),  # no separator: no key, whole line
        (b":v", b":", (b"", b"v")),  # empty key is a key
        (b"k:", b":", (b"k", b"")),
        (b"k::v", b"::", (b"k", b"v")),  # multi-byte separators
        (b"k:v", None, (None, b"k:v")),  # no --key-separator
        (b"", b":", (None, b"")),
    ],
)
def test_split_line(
    line: bytes, separator: bytes | None, expected: tuple[bytes | None, bytes]
) -> None:
    assert split_line(line, separator) == expected


@pytest.mark.anyio
async def test_line_reader_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cli_produce, "CHUNK_SIZE", 3)  # lines straddle every chunk
    source = tmp_path / "in"
    source.write_bytes(b"first\r\nsecond\n\nfourth\rx\nlast")
    fd = os.open(source, os.O_RDONLY)
    try:
        reader = LineReader(fd)
        lines: list[bytes] = []
        while (chunk := await reader.next_lines()) is not None:
            lines.extend(chunk)
    finally:
        os.close(fd)
    assert lines == [b"first", b"second", b"", b"fourth\rx", b"last"]


@pytest.mark.anyio
async def test_in_flight_window_wakes_every_waiting_task() -> None:
    window = InFlightWindow(4)
    entered = 0

    async def enter() -> None:
        nonlocal entered
        await window.enter()
        entered += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for _ in range(6):
                tasks.start_soon(enter)
            while entered < 4:
                await anyio.sleep(0.01)
            assert window.count == 4
            for _ in range(4):
                window.leave()
        assert entered == 6
        for _ in range(2):
            window.leave()
        await window.wait_empty()


def test_progress_line_only_on_a_terminal(kafka_bootstrap_servers: str, tmp_path: Path) -> None:
    import pty

    create_topic(kafka_bootstrap_servers, "progress", 1)
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"".join(b"%d\n" % i for i in range(300_000)))
    command = [
        sys.executable, "-m", "asyncproducer", "produce", "progress", str(lines),
        "--bootstrap-servers", kafka_bootstrap_servers,
    ]  # fmt: skip
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal)
        os.close(terminal)
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    assert b"acked" in seen
    assert b"records/s\r" in seen
    assert b"300000 acknowledged" in seen
    piped = run_cli(
        "produce", "progress", str(lines), "--bootstrap-servers", kafka_bootstrap_servers
    )
    assert b"\r" not in piped.stderr  # no progress line when stderr is not a terminal
    assert b"300000 acknowledged" in piped.stderr
