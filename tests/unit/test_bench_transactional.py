"""The peer benchmark's ``transactional`` scenario (benchmarks/): the scenario, each
client's settings, the loops (against stand-in clients), which client is skipped where,
and the read_committed read-back check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from benchmarks import _bench_client as client_process
from benchmarks import _bench_clients as clients
from benchmarks import _bench_drive as drive
from benchmarks import _bench_verify as verify
from benchmarks._bench_run import Plan
from benchmarks._bench_scenarios import BASE, SCENARIOS, TRANSACTIONAL, Payloads, RunSpec

SCENARIO = SCENARIOS[TRANSACTIONAL]


def spec(records: int = 2_500, topic: str = "bench-transactional-x-1") -> RunSpec:
    return RunSpec(SCENARIO, "127.0.0.1:9092", topic, records, 60.0)


class Recorder:
    """A stand-in client: records every begin, send and commit (or abort), in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def send(self, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        self.events.append(("send", value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def flush(self) -> None:
        self.events.append("flush")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self.events.append("begin")
        try:
            yield
        except BaseException:
            self.events.append("abort")
            raise
        self.events.append("commit")

    def client(self) -> drive.AsyncClient:
        return drive.AsyncClient(self.send, self.flush, self.transaction)

    def transactions(self) -> list[int]:
        """The number of records sent in each committed transaction."""
        sizes: list[int] = []
        for event in self.events:
            if event == "begin":
                sizes.append(0)
            elif isinstance(event, tuple):
                sizes[-1] += 1
        assert self.events.count("commit") == len(sizes)
        return sizes


def test_the_scenario_is_the_base_in_transactions_of_1000() -> None:
    base = SCENARIOS[BASE]
    assert SCENARIO.transaction_size == 1_000
    assert SCENARIO.is_transactional
    # Transactions need acks=all and idempotence, in every client.
    assert (SCENARIO.acks, SCENARIO.idempotence) == ("all", True)
    assert (SCENARIO.value_size, SCENARIO.keyed, SCENARIO.partitions, SCENARIO.tasks) == (
        base.value_size,
        base.keyed,
        base.partitions,
        base.tasks,
    )
    assert not any(s.is_transactional for s in SCENARIOS.values() if s is not SCENARIO)


def test_each_run_has_its_own_transactional_id() -> None:
    one, other = spec(topic="bench-transactional-a-1"), spec(topic="bench-transactional-b-1")
    assert one.transactional_id != other.transactional_id
    assert RunSpec.from_json(one.to_json()) == one


def test_transactions_split_the_records_in_order() -> None:
    assert drive.transactions(2_500, 1_000) == [
        range(0, 1000),
        range(1000, 2000),
        range(2000, 2500),
    ]
    assert drive.transactions(0, 1_000) == []


def test_every_client_gets_the_transactional_id_only_in_the_scenario() -> None:
    run = spec()
    assert clients.asyncproducer_transactions(run) == {"transactional_id": run.transactional_id}
    assert clients.confluent_config(run)["transactional.id"] == run.transactional_id
    assert clients.asyncproducer_config(SCENARIO)["acks"] == "all"
    base = RunSpec(SCENARIOS[BASE], "127.0.0.1:9092", "t", 10, 60.0)
    assert clients.asyncproducer_transactions(base) == {}
    assert "transactional.id" not in clients.confluent_config(base)


def test_aiokafka_is_skipped_on_tansu_only() -> None:
    reason = clients.unavailable(clients.AIOKAFKA, SCENARIO, on_tansu=True)
    assert reason is not None
    assert "Tansu" in reason
    assert "InitProducerId" in reason
    assert clients.unavailable(clients.AIOKAFKA, SCENARIO, on_tansu=False) is None
    assert clients.unavailable(clients.ASYNCPRODUCER, SCENARIO, on_tansu=True) is None
    # The idempotent scenario's skip is as it was.
    assert clients.unavailable(clients.AIOKAFKA, SCENARIOS["idempotent"]) is not None


def test_the_plan_says_where_it_runs() -> None:
    plan = Plan([SCENARIO], [clients.AIOKAFKA], 1, 10, 5000, 5.0, 60.0, "x:1", on_tansu=False)
    assert plan.skip_reason(clients.AIOKAFKA, SCENARIO) is None
    on_tansu = Plan([SCENARIO], [clients.AIOKAFKA], 1, 10, 5000, 5.0, 60.0, "x:1")
    assert on_tansu.skip_reason(clients.AIOKAFKA, SCENARIO) is not None


def test_send_path_begins_sends_and_commits_each_transaction() -> None:
    peer, tally = Recorder(), drive.Tally(2_500)
    asyncio.run(drive.throughput_transactional(peer.client(), spec(), Payloads(100, False), tally))
    assert peer.transactions() == [1000, 1000, 500]
    assert "flush" not in peer.events  # the commit sends what is left
    assert (tally.acked, tally.failed) == (2_500, 0)


def test_a_failed_record_fails_the_transaction_and_the_run() -> None:
    peer, tally = Recorder(), drive.Tally(1_000)

    async def failing_send(value: bytes, key: bytes | None) -> asyncio.Future[None]:
        raise RuntimeError("record too large")

    broken = drive.AsyncClient(failing_send, peer.flush, peer.transaction)
    with pytest.raises(RuntimeError, match="record too large"):
        asyncio.run(
            drive.throughput_transactional(broken, spec(1_000), Payloads(100, False), tally)
        )
    assert peer.events == ["begin", "abort"]


def test_send_batch_path_sends_one_batch_per_transaction() -> None:
    peer, tally, calls = Recorder(), drive.Tally(2_500), []

    async def send_batch(records: list[Any]) -> Sequence[object]:
        calls.append(len(records))
        assert peer.events[-1] == "begin"  # inside the transaction
        return [None] * len(records)

    run = spec()
    asyncio.run(
        drive.throughput_batch_transactional(
            send_batch, lambda i: (run.topic, b"v", None), peer.transaction, run, tally
        )
    )
    assert calls == [1000, 1000, 500]
    assert peer.events == ["begin", "commit"] * 3
    assert tally.acked == 2_500


def test_a_client_without_a_transaction_cannot_run_the_scenario() -> None:
    peer = Recorder()
    plain = drive.AsyncClient(peer.send, peer.flush)
    with pytest.raises(ValueError, match="transactional id"):
        asyncio.run(
            drive.throughput_transactional(plain, spec(), Payloads(100, False), drive.Tally(1))
        )


def test_warm_up_commits_its_record_in_a_transaction() -> None:
    peer = Recorder()
    asyncio.run(client_process.warm_up(peer.client()))
    assert peer.events == ["begin", ("send", client_process.WARM_UP), "commit"]


def test_warm_up_without_transactions_flushes() -> None:
    peer = Recorder()
    asyncio.run(client_process.warm_up(drive.AsyncClient(peer.send, peer.flush)))
    assert peer.events == [("send", client_process.WARM_UP), "flush"]


OK_RUN = {"client": "asyncproducer", "scenario": TRANSACTIONAL, "ok": True}


def read_back(monkeypatch: pytest.MonkeyPatch, answer: tuple[int, str] | Exception) -> list[Any]:
    calls: list[Any] = []

    def fake(servers: str, topic: str, partitions: int, **kwargs: Any) -> tuple[int, str]:
        calls.append((servers, topic, partitions))
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(verify, "read_committed_count", fake)
    return calls


def test_read_back_counts_every_record_and_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = read_back(monkeypatch, (2_501, ""))
    checked = verify.check_committed(OK_RUN, spec())
    assert checked == OK_RUN | {"read_committed": 2_501}
    assert calls == [("127.0.0.1:9092", "bench-transactional-x-1", 6)]


def test_missing_records_fail_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    read_back(monkeypatch, (1_501, ""))
    checked = verify.check_committed(OK_RUN, spec())
    assert not checked["ok"]
    assert checked["error"] == "read_committed read back 1,501 records, expected 2,501"


def test_a_partition_that_never_ends_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    read_back(monkeypatch, (2_000, "partition 3"))
    checked = verify.check_committed(OK_RUN, spec())
    assert not checked["ok"]
    assert "partition 3 never reached its end" in checked["error"]


def test_a_read_back_error_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    read_back(monkeypatch, RuntimeError("broker down"))
    checked = verify.check_committed(OK_RUN, spec())
    assert checked == OK_RUN | {"ok": False, "error": "reading back read_committed: broker down"}


def test_other_scenarios_and_failed_runs_are_not_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = read_back(monkeypatch, (0, ""))
    base = RunSpec(SCENARIOS[BASE], "127.0.0.1:9092", "t", 10, 60.0)
    assert verify.check_committed(OK_RUN, base) is OK_RUN
    failed = OK_RUN | {"ok": False, "error": "timed out"}
    assert verify.check_committed(failed, spec()) is failed
    assert calls == []
