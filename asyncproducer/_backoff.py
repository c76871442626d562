"""Exponential backoff with jitter (pure; the caller owns the clock and the sleeping).

The same policy as Java's ``org.apache.kafka.common.utils.ExponentialBackoff`` as the
producer configures it: ``initial * 2**attempts``, capped at ``maximum``, then spread by a
random factor in ``[1 - jitter, 1 + jitter]`` (and capped again) so that clients that
failed together do not retry together. When ``maximum <= initial`` the backoff is the
constant ``initial``, without jitter, as in Java.
"""

from __future__ import annotations

import math
import random

from asyncproducer._value import Value


class ExponentialBackoff(Value):
    __slots__ = ("initial_ms", "jitter", "maximum_ms", "multiplier", "rng")
    _fields = ("initial_ms", "maximum_ms", "multiplier", "jitter")

    initial_ms: float
    maximum_ms: float
    multiplier: float
    jitter: float
    rng: random.Random

    def __init__(
        self,
        initial_ms: float,
        maximum_ms: float,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_ms = initial_ms
        self.maximum_ms = maximum_ms
        self.multiplier = multiplier
        self.jitter = jitter
        self.rng = random.Random() if rng is None else rng

    def delay_ms(self, attempts: int) -> float:
        """The delay after ``attempts`` consecutive failures (``attempts >= 0``)."""
        if self.maximum_ms <= self.initial_ms:
            return self.initial_ms
        # Java caps the exponent where the term reaches the maximum, so huge attempt counts
        # cannot overflow, and applies the cap again after the jitter.
        max_exponent = math.log(self.maximum_ms / max(self.initial_ms, 1), self.multiplier)
        term = self.initial_ms * float(self.multiplier ** min(attempts, max_exponent))
        factor = self.rng.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter > 0 else 1.0
        return min(term * factor, self.maximum_ms)
