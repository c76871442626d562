"""The peer benchmark's runs: topics created in calls Apache Kafka's controller accepts,
and the clients' order rotated from round to round."""

from __future__ import annotations

from benchmarks._bench_run import PARTITIONS_PER_CALL, _calls, rotated


def test_ten_thousand_partitions_go_in_calls_of_at_most_the_limit() -> None:
    topics = {f"t{i}": 100 for i in range(100)}  # issue 23's scale target
    calls = _calls(topics)
    assert [name for call in calls for name in call] == list(topics)  # each once, in order
    assert all(sum(topics[name] for name in call) <= PARTITIONS_PER_CALL for call in calls)
    assert len(calls) == 2


def test_a_topic_larger_than_the_limit_goes_alone() -> None:
    topics = {"big": PARTITIONS_PER_CALL + 1, "small": 1, "fills": PARTITIONS_PER_CALL - 1}
    assert _calls(topics) == [["big"], ["small", "fills"]]


def test_no_topics_no_calls() -> None:
    assert _calls({}) == []


def test_each_round_starts_one_client_further_on() -> None:
    clients = ["a", "b", "c"]
    assert [rotated(clients, r) for r in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert rotated([], 3) == []
