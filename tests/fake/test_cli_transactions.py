"""``asyncproducer produce --transactional-id``: input lines in transactions, against the
FakeCluster's transaction coordinator.

The command runs in-process (``run_produce`` on the test's event loop, so on every
backend) where only the producing matters, and as a subprocess (``python -m
asyncproducer``, against the FakeCluster this process serves) where the exit code, the
signal handling or the command line itself is under test. Each test checks the fake's log:
the markers, and what a read_committed consumer reads.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest

from asyncproducer import cli
from asyncproducer._cli_produce import ProduceJob, TransactionFailedError, run_produce
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

INVALID_RECORD = 87  # not retriable: the record fails, its transaction can only abort
HARD_TIMEOUT_S = 30
FAST = {"linger.ms": "0", "retry.backoff.ms": "10", "max.block.ms": "5000"}


def numbered(count: int, start: int = 0) -> bytes:
    return b"".join(b"line %05d\n" % i for i in range(start, start + count))


def values(count: int) -> list[bytes]:
    return [b"line %05d" % i for i in range(count)]


def committed(cluster: FakeCluster, topic: str = "t") -> list[bytes | None]:
    return [r.value for r in cluster.records(topic, 0, isolation="read_committed")]


def marker_kinds(cluster: FakeCluster, topic: str = "t") -> list[str]:
    return [m.kind for m in cluster.markers(topic, 0)]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition()`` (the fake's log fills as the command sends)."""
    with anyio.fail_after(HARD_TIMEOUT_S):
        while not condition():
            await anyio.sleep(0.01)


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    async with FakeCluster(brokers=3) as running:
        running.create_topic("t", 1)
        yield running


# --------------------------------------------------------------------------- in-process


@pytest.mark.anyio
async def test_2500_lines_in_transactions_of_1000(
    cluster: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "lines"
    source.write_bytes(numbered(2_500))
    fd = os.open(source, os.O_RDONLY)
    try:
        job = ProduceJob("t", fd, None, (), None, transaction_size=1_000)
        properties = {"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": "tx"}
        with anyio.fail_after(HARD_TIMEOUT_S):
            assert await run_produce(job, {**properties, **FAST}) == 0
    finally:
        os.close(fd)

    assert marker_kinds(cluster) == ["commit"] * 3
    # Each marker takes an offset: 1000 records, marker, 1000 records, marker, 500, marker.
    assert [m.offset for m in cluster.markers("t", 0)] == [1_000, 2_001, 2_502]
    assert committed(cluster) == values(2_500)
    assert cluster.transaction_state("tx").state == "CompleteCommit"
    summary = capsys.readouterr().err
    assert "2500 records read, 2500 acknowledged, 0 failed" in summary
    assert "transactions of up to 1000 records: 3 committed (2500 records), 0 aborted" in summary


@pytest.mark.anyio
async def test_a_record_send_refuses_aborts_its_transaction_and_ends_the_command(
    cluster: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without transactions a too-large line is skipped; in one, it would be missing from
    a committed transaction: the transaction is aborted instead, and the command stops."""
    source = tmp_path / "lines"
    source.write_bytes(numbered(150) + b"x" * 5_000 + b"\n" + numbered(100, start=150))
    fd = os.open(source, os.O_RDONLY)
    properties = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "transactional.id": "tx",
        "max.request.size": "1000",
        **FAST,
    }
    try:
        job = ProduceJob("t", fd, None, (), None, transaction_size=100)
        with anyio.fail_after(HARD_TIMEOUT_S), pytest.raises(BaseExceptionGroup) as caught:
            await run_produce(job, properties)
    finally:
        os.close(fd)

    error = cli._leaf(caught.value)  # out of the command's task group, as main() takes it
    assert isinstance(error, TransactionFailedError)
    message = str(error)
    assert "\n" not in message
    assert message.startswith("transaction 2 (input lines 101-151) aborted: RecordTooLargeError")
    assert "(line 151)" in message
    assert "Lines 1-100 are committed (1 transaction)" in message
    assert message.endswith("resume from line 101")
    # Transaction 2 has an abort marker if some of its records were sent before the abort.
    assert marker_kinds(cluster) in (["commit"], ["commit", "abort"])
    assert committed(cluster) == values(100)
    assert len(cluster.records("t", 0)) <= 150  # those written are hidden by the abort
    summary = capsys.readouterr().err
    assert "1 committed (100 records), 1 aborted" in summary
    assert "transaction 2 aborted: input lines 101-151; resume from line 101" in summary


@pytest.mark.anyio
async def test_a_commit_that_times_out_is_reported_in_doubt(
    cluster: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """EndTxn unanswered within max.block.ms: the commit is still under way (it cannot be
    aborted), so the command cannot say whether the lines are visible, and says so."""
    source = tmp_path / "lines"
    source.write_bytes(numbered(5))
    fd = os.open(source, os.O_RDONLY)
    cluster.delay_responses(ApiKey.END_TXN, 1, count=1)
    properties = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "transactional.id": "tx",
        **FAST,
        "max.block.ms": "300",
    }
    try:
        job = ProduceJob("t", fd, None, (), None, transaction_size=1_000)
        with anyio.fail_after(HARD_TIMEOUT_S), pytest.raises(BaseExceptionGroup) as caught:
            await run_produce(job, properties)
    finally:
        os.close(fd)

    error = cli._leaf(caught.value)
    assert isinstance(error, TransactionFailedError)
    assert str(error).startswith(
        "the commit of transaction 1 (input lines 1-5) did not complete: KafkaTimeoutError"
    )
    assert str(error).endswith(
        "Nothing was committed before it; read the topic (read_committed) before sending "
        "lines 1-5 again"
    )
    assert "transaction 1 in doubt: input lines 1-5" in capsys.readouterr().err
    assert committed(cluster) in ([], values(5))  # all or nothing, whichever it is


# --------------------------------------------------------------------------- subprocess


def command(cluster: FakeCluster, backend: str, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "asyncproducer", "produce", "t",
        "--bootstrap-servers", cluster.bootstrap_servers, "--backend", backend,
        *(f"-X{key}={value}" for key, value in FAST.items()),
        *args,
    ]  # fmt: skip


async def read_all(stream: anyio.abc.ByteReceiveStream | None) -> bytes:
    assert stream is not None
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
    return b"".join(chunks)


async def finish(process: anyio.abc.Process, within_s: float) -> str:
    """Wait (at most ``within_s`` seconds) for the command to end; its stderr."""
    with anyio.fail_after(within_s):
        stderr = await read_all(process.stderr)
        await process.wait()
    return stderr.decode(errors="replace")


SUBPROCESS_BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
"""The command as a subprocess runs on the loop the test runs on: asyncio and trio, not
uvloop (the command has no uvloop option; the test's own loop only serves the fake)."""


@pytest.fixture
def cli_backend(anyio_backend_name: str) -> str:
    return anyio_backend_name


ENV = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("anyio_backend", "option"),
    [
        ("asyncio", ["-X", "transactional.id=tx"]),
        ("asyncio", ["-X", "transactional_id=tx"]),
        ("asyncio", ["--transactional-id", "tx"]),
        ("trio", ["--transactional-id", "tx"]),  # the -X forms once: they differ in parsing
    ],
    ids=["x-java", "x-snake", "flag", "flag-trio"],
)
async def test_the_x_option_is_the_flag_and_1000_is_the_default_size(
    cluster: FakeCluster, cli_backend: str, option: list[str]
) -> None:
    done = await anyio.run_process(
        command(cluster, cli_backend, *option), input=numbered(2_500), check=False, env=ENV
    )

    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert "3 committed (2500 records), 0 aborted" in stderr
    assert marker_kinds(cluster) == ["commit"] * 3
    assert committed(cluster) == values(2_500)


@pytest.mark.anyio
@SUBPROCESS_BACKENDS
async def test_a_failed_record_aborts_the_open_transaction_and_fails_the_command(
    cluster: FakeCluster, cli_backend: str
) -> None:
    """Transaction 1 commits; a Produce of transaction 2 is refused (INVALID_RECORD, not
    retriable): transaction 2 is aborted, the command ends at once (without waiting for
    the rest of its input, which never comes) with exit code 1 and the error."""
    process = await anyio.open_process(
        command(cluster, cli_backend, "--transactional-id", "tx", "--transaction-size", "1000"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    async with process:
        assert process.stdin is not None
        await process.stdin.send(numbered(1_500))
        # Transaction 1 is committed, 500 records of transaction 2 are written.
        await wait_until(lambda: len(cluster.records("t", 0)) == 1_500)
        assert marker_kinds(cluster) == ["commit"]
        cluster.fail_next(ApiKey.PRODUCE, INVALID_RECORD)
        await process.stdin.send(numbered(10, start=1_500))  # and stdin stays open
        stderr = await finish(process, HARD_TIMEOUT_S)

    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    error = next(line for line in stderr.splitlines() if "error:" in line)
    # Lines up to 1510: the failure may be seen before the last of the 10 is read.
    prefix = r"asyncproducer produce: error: transaction 2 \(input lines 1001-15(0[1-9]|10)\) "
    assert re.match(prefix + "aborted: InvalidRecordError", error), error
    assert "Lines 1-1000 are committed (1 transaction)" in error
    assert error.endswith("resume from line 1001")
    assert "1 committed (1000 records), 1 aborted" in stderr
    assert marker_kinds(cluster) == ["commit", "abort"]
    assert cluster.transaction_state("tx").state == "CompleteAbort"
    assert committed(cluster) == values(1_000)


@pytest.mark.anyio
@SUBPROCESS_BACKENDS
async def test_ctrl_c_aborts_the_open_transaction(cluster: FakeCluster, cli_backend: str) -> None:
    process = await anyio.open_process(
        command(cluster, cli_backend, "--transactional-id", "tx", "--transaction-size", "1000"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    async with process:
        assert process.stdin is not None
        await process.stdin.send(numbered(1_500))  # and stdin stays open
        await wait_until(lambda: len(cluster.records("t", 0)) == 1_500)
        assert cluster.transaction_state("tx").state == "Ongoing"
        process.send_signal(signal.SIGINT)
        stderr = await finish(process, 5)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    assert "1 committed (1000 records), 1 aborted" in stderr
    assert "transaction 2 aborted: input lines 1001-1500; resume from line 1001" in stderr
    assert marker_kinds(cluster) == ["commit", "abort"]
    assert cluster.transaction_state("tx").state == "CompleteAbort"
    assert committed(cluster) == values(1_000)
    assert cluster.last_stable_offset("t", 0) == 1_502  # nothing left open


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--transaction-size", "10"], "--transaction-size needs a transactional id"),
        (
            ["--transactional-id", "a", "-X", "transactional.id=b"],
            "--transactional-id a conflicts with -X transactional.id=b",
        ),
        (["--transactional-id", ""], "must be None or a non-empty str"),
        (["-X", "transactional.id=a", "--acks", "1"], "transactions need idempotence"),
    ],
    ids=["size-without-id", "conflict", "empty-id", "acks-1"],
)
def test_usage_errors(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["produce", "t", *argv]) == cli.EXIT_USAGE
    stderr = capsys.readouterr().err
    assert expected in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_transaction_size_must_be_a_positive_int(
    size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["produce", "t", "--transactional-id", "tx", "--transaction-size", size])
    assert exited.value.code == cli.EXIT_USAGE
    assert "--transaction-size" in capsys.readouterr().err


def test_the_demo_refuses_a_transactional_id(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--bootstrap-servers", "localhost:1", "-X", "transactional.id=tx"]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert "demo does not produce in transactions" in capsys.readouterr().err


def test_a_transactional_id_from_command_config_takes_the_size(tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("transactional.id=tx\n", encoding="utf-8")
    args = cli.build_parser().parse_args(
        ["produce", "t", "--command-config", str(config), "--transaction-size", "7"]
    )
    properties = cli.producer_properties(args, default_bootstrap="b:9092", client_id="c")
    assert cli._transaction_size(args, properties) == 7
    args = cli.build_parser().parse_args(["produce", "t", "--transactional-id", "tx"])
    properties = cli.producer_properties(args, default_bootstrap="b:9092", client_id="c")
    assert cli._transaction_size(args, properties) == 1_000
