"""The fake broker's quota arithmetic (Kafka's Rate over windowed samples, the throttle
time of QuotaUtils, the quota lookup) and its violation check, without sockets."""

from __future__ import annotations

import pytest

from asyncproducer.testing.fake._quotas import (
    ClientQuotas,
    QuotaWindow,
    RequestArrival,
    Throttle,
    WindowedRate,
    throttle_ms,
    violations,
)

KAFKA = QuotaWindow()  # quota.window.num=11, quota.window.size.seconds=1


def test_throttle_time_brings_the_rate_back_to_the_quota() -> None:
    # O * W / (W + X) = T: 200 B/s over 10 s at a quota of 100 B/s needs 10 s of silence.
    assert throttle_ms(200.0, 100.0, 10.0) == 10_000
    assert throttle_ms(150.0, 100.0, 2.0) == 1_000
    assert 200.0 * 10.0 / (10.0 + 10.0) == 100.0
    # At or under the quota: nothing (Kafka's bound is inclusive).
    assert throttle_ms(100.0, 100.0, 10.0) == 0
    assert throttle_ms(3.0, 100.0, 10.0) == 0
    # Rounded to whole milliseconds, as Kafka's Math.round.
    assert throttle_ms(100.004, 100.0, 10.0) == 0
    assert throttle_ms(100.006, 100.0, 10.0) == 1
    # Java's Math.round takes halves up, where Python's round() would give 2.
    assert throttle_ms(100.025, 100.0, 10.0) == 3


def test_a_first_burst_is_spread_over_the_windows_before_it() -> None:
    rate = WindowedRate(KAFKA)
    rate.record(1000, now=50.0)
    # Kafka assumes the 10 windows before the current one were empty.
    assert rate.measure(50.0) == (100.0, 10.0)
    assert rate.measure(50.5) == (1000 / 10.5, 10.5)
    # Once a full window has passed, the span still counts 10 whole windows plus the part.
    assert rate.measure(51.25) == pytest.approx((1000 / 10.25, 10.25))


def test_the_span_is_the_samples_kept_once_there_are_enough() -> None:
    rate = WindowedRate(KAFKA)
    for second in range(29):  # 100 B at the start of each one-second window, 0..28
        rate.record(100, now=float(second))
    # A sample counts until its last event is 11 windows old: those of seconds 18..28.
    assert rate.measure(28.5) == pytest.approx((1100 / 10.5, 10.5))
    rate.record(100, now=29.0)
    assert rate.measure(29.0) == pytest.approx((1100 / 10.0, 10.0))


def test_samples_older_than_the_whole_span_no_longer_count() -> None:
    rate = WindowedRate(KAFKA)
    rate.record(5000, now=0.0)
    assert rate.measure(10.9)[0] == pytest.approx(5000 / 10.9)
    # 11 s (samples * window) after its last event the sample is gone.
    assert rate.measure(11.0) == (0.0, 10.0)


def test_short_windows_scale_everything() -> None:
    rate = WindowedRate(QuotaWindow(samples=11, size_s=0.01))
    rate.record(500, now=1.0)
    value, span = rate.measure(1.0)
    assert span == pytest.approx(0.1)
    assert value == pytest.approx(5000.0)
    assert throttle_ms(value, 1000.0, span) == 400


def test_the_window_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="quota_window_num must be >= 2, got 1"):
        QuotaWindow(samples=1)
    with pytest.raises(ValueError, match="quota_window_size_seconds must be > 0, got 0"):
        QuotaWindow(size_s=0)


def test_a_client_ids_own_quota_wins_over_the_default() -> None:
    quotas = ClientQuotas()
    assert not quotas.enabled
    quotas.set(None, 1000)
    quotas.set("fast", 1_000_000)
    assert quotas.enabled
    assert quotas.limit_for("fast") == 1_000_000
    assert quotas.limit_for("anyone") == 1000
    assert quotas.limit_for(None) == 1000  # no client id in the header: Kafka's ""
    quotas.set("fast", None)
    assert quotas.limit_for("fast") == 1000
    quotas.set(None, None)
    assert quotas.limit_for("fast") is None
    assert not quotas.enabled
    quotas.set("x", None)  # removing what is not there is fine


@pytest.mark.parametrize("rate", [0, -5, float("nan")])
def test_a_quota_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="producer_byte_rate must be > 0"):
        ClientQuotas().set("x", rate)


def test_produce_bytes_are_counted_per_broker_and_client_id() -> None:
    quotas = ClientQuotas()
    quotas.set("slow", 1000)
    # 12000 bytes at once: 1200 B/s over the 10 s span, 2 s to wait.
    assert quotas.record_produce(0, "slow", 12_000, now=5.0) == 2000
    # Another broker measures on its own (Kafka's quotas are per broker).
    assert quotas.record_produce(1, "slow", 10_000, now=5.0) == 0
    # A client id without a quota is not throttled.
    assert quotas.record_produce(0, "other", 10**9, now=5.0) == 0
    # The same client on broker 0 again: both requests count, 1300 B/s.
    assert quotas.record_produce(0, "slow", 1000, now=5.0) == 3000
    # As in Kafka, until 10 whole windows have passed the span stays 10 s (plus the part
    # of the current window): waiting 3 s did not bring the measured rate down.
    assert quotas.record_produce(0, "slow", 0, now=8.0) == 3000
    # Half way into a window the span is 10.5 s: 13000 B need 13 s, 2.5 s more.
    assert quotas.record_produce(0, "slow", 0, now=12.5) == 2500
    # 11 s after the last bytes, they no longer count.
    assert quotas.record_produce(0, "slow", 100, now=16.0) == 0


def test_nothing_is_measured_while_no_quota_is_set() -> None:
    quotas = ClientQuotas()
    assert quotas.record_produce(0, "a", 10**9, now=0.0) == 0
    quotas.set("a", 1000)
    # The earlier bytes were not recorded (Kafka records only while quotas exist).
    assert quotas.record_produce(0, "a", 10_000, now=0.0) == 0


def arrival(at: float, *, connection: int = 1, api: int = 0, broker: int = 0) -> RequestArrival:
    return RequestArrival(broker, connection, "c", api, int(at * 1000), at)


def window(started: float, ends: float, *, told: bool = True, connection: int = 1) -> Throttle:
    return Throttle(0, connection, "c", 1, round((ends - started) * 1000), started, ends, told)


def test_a_request_inside_a_told_throttle_is_a_violation() -> None:
    throttles = [window(10.0, 11.0)]
    inside, before, after, at_start = arrival(10.5), arrival(9.9), arrival(11.0), arrival(10.0)
    found = violations([before, at_start, inside, after], throttles)
    assert found == [inside]


def test_only_the_throttled_connection_and_told_throttles_count() -> None:
    throttles = [window(10.0, 11.0), window(20.0, 21.0, told=False)]
    other_connection = arrival(10.5, connection=2)
    other_broker = arrival(10.5, broker=1)
    untold = arrival(20.5)
    assert violations([other_connection, other_broker, untold], throttles) == []


def test_violations_can_be_filtered_by_api() -> None:
    throttles = [window(10.0, 11.0)]
    produce, metadata = arrival(10.2, api=0), arrival(10.4, api=3)
    assert violations([produce, metadata], throttles) == [produce, metadata]
    assert violations([produce, metadata], throttles, api_key=3) == [metadata]
