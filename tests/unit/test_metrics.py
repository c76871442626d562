"""Sensors: Java's sampled-window statistics, on a clock the test drives."""

from __future__ import annotations

import math

import pytest

from asyncproducer._metrics import MetricConfig, Sensor

CONFIG = MetricConfig(samples=2, window_ms=1_000)


def test_nothing_recorded_is_nan_for_averages_and_maxima_and_zero_for_rates() -> None:
    sensor = Sensor(CONFIG, 0)
    assert math.isnan(sensor.avg(500))
    assert math.isnan(sensor.max(500))
    assert sensor.rate(500) == 0
    assert (sensor.count, sensor.total) == (0, 0)


def test_average_and_maximum_cover_the_current_windows() -> None:
    sensor = Sensor(CONFIG, 0)
    for at, value in ((0, 10), (400, 30), (1_200, 20)):  # the third opens a second window
        sensor.record(value, at)
    assert sensor.avg(1_500) == 20
    assert sensor.max(1_500) == 30
    # At 2,000 the first window (started at 0) is two windows old: it is dropped.
    assert sensor.avg(2_000) == 20
    assert sensor.max(2_000) == 20
    assert (sensor.count, sensor.total) == (3, 60)  # cumulative, never dropped


def test_a_rate_counts_at_least_samples_minus_one_whole_windows() -> None:
    sensor = Sensor(CONFIG, 0)
    sensor.record(100, 0)
    # 100 over (10 ms elapsed + one whole window), not over 10 ms: no start-up spike.
    assert sensor.rate(10) == pytest.approx(100 / 1.010)
    sensor.record(100, 1_500)
    # Two windows, the oldest started at 0: 200 over 1.5 s.
    assert sensor.rate(1_500) == pytest.approx(200 / 1.5)
    assert sensor.count_rate(1_500) == pytest.approx(2 / 1.5)


def test_windows_are_reused_in_turn() -> None:
    sensor = Sensor(CONFIG, 0)
    for second in range(10):
        sensor.record(second, second * 1_000)
    assert sensor.avg(9_500) == pytest.approx((8 + 9) / 2)  # the last two windows
    assert sensor.max(9_500) == 9
    assert sensor.total == sum(range(10))


def test_everything_expires_after_samples_windows_of_silence() -> None:
    sensor = Sensor(CONFIG, 0)
    sensor.record(5, 0)
    assert math.isnan(sensor.avg(2_000))
    assert sensor.rate(2_000) == 0
    sensor.record(7, 2_100)
    assert sensor.avg(2_200) == 7


def test_one_sample_of_one_window() -> None:
    sensor = Sensor(MetricConfig(samples=1, window_ms=1_000), 0)
    sensor.record(4, 0)
    sensor.record(6, 999)
    assert sensor.avg(999) == 5
    sensor.record(8, 1_000)  # a new window replaces the only one
    assert sensor.avg(1_000) == 8
    assert sensor.rate(1_500) == pytest.approx(8 / 0.5)
