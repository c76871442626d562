from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from asyncproducer._backoff import ExponentialBackoff


def test_doubles_until_the_cap_without_jitter() -> None:
    backoff = ExponentialBackoff(100, 1000, jitter=0)
    assert [backoff.delay_ms(n) for n in range(6)] == [100, 200, 400, 800, 1000, 1000]
    assert backoff.delay_ms(10_000) == 1000  # no overflow for huge attempt counts


def test_constant_when_maximum_not_above_initial() -> None:
    assert ExponentialBackoff(500, 100).delay_ms(7) == 500


@given(st.integers(0, 100), st.integers(1, 10_000), st.integers(1, 100_000), st.randoms())
def test_jitter_stays_within_twenty_percent_and_the_cap(
    attempts: int, initial: int, maximum: int, rng: random.Random
) -> None:
    backoff = ExponentialBackoff(initial, maximum, rng=rng)
    exact = ExponentialBackoff(initial, maximum, jitter=0).delay_ms(attempts)
    delay = backoff.delay_ms(attempts)
    if maximum <= initial:
        assert delay == initial
    else:
        assert exact * 0.8 - 1e-9 <= delay <= min(exact * 1.2, maximum) + 1e-9
