"""Work a SASL mechanism cannot do on an event loop, and SCRAM's key derivation (PBKDF2).

A mechanism that needs slow work (CPU, or a blocking call such as GSSAPI's ticket request
to the KDC) returns a :class:`NeedsComputation` instead of its next message; the caller
runs ``compute()`` where it likes (a worker thread) and hands the result to the
mechanism's ``provide()``. :class:`NeedsDerivation` is SCRAM's.

RFC 5802's ``SaltedPassword := Hi(password, salt, i)`` is PBKDF2-HMAC with the hash's own
output size. At 4096 iterations it costs milliseconds of CPU, and the server chooses the
count: long enough to stall an event loop that serves many connections. So the SCRAM client
never derives the key itself. It hands the caller a :class:`NeedsDerivation` request, a pure
computation the caller runs where it likes (a worker thread), and takes the result back with
``provide()``.

Results are kept in a small LRU cache keyed by (hash, password, salt, iterations), so that
opening another connection, or re-authenticating one (KIP-368), with the same credential
does not derive the key again: the server sends the same salt and count every time.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field

_DIGEST_SIZES = {"sha256": 32, "sha512": 64}
_CACHE_SIZE = 16
"""Distinct credentials a process authenticates with; a handful in practice."""

_CacheKey = tuple[str, bytes, bytes, int]


def digest_size(hash_name: str) -> int:
    """The output size of a SCRAM hash this package supports ("sha256" or "sha512")."""
    try:
        return _DIGEST_SIZES[hash_name]
    except KeyError:
        known = ", ".join(sorted(_DIGEST_SIZES))
        raise ValueError(f"unsupported SCRAM hash {hash_name!r}; supported: {known}") from None


def derive_salted_password(
    password: str | bytes, salt: bytes, iterations: int, hash_name: str
) -> bytes:
    """RFC 5802's SaltedPassword: PBKDF2-HMAC-``hash_name`` of the UTF-8 password.

    Pure and thread-safe (hashlib releases the GIL while it works); uncached. No SASLprep
    normalization: Kafka's ScramFormatter does not apply it either, so a broker's stored
    credential is derived from the raw UTF-8 bytes.
    """
    size = digest_size(hash_name)
    if iterations < 1:
        raise ValueError(f"SCRAM iteration count must be positive, got {iterations}")
    secret = password.encode("utf-8") if isinstance(password, str) else password
    return hashlib.pbkdf2_hmac(hash_name, secret, salt, iterations, size)


class _LruCache:
    # A lock, not functools.lru_cache: NeedsDerivation.cached() must look up without
    # computing, and compute() runs in worker threads.
    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: OrderedDict[_CacheKey, bytes] = OrderedDict()

    def get(self, key: _CacheKey) -> bytes | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: _CacheKey, value: bytes) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __repr__(self) -> str:
        return f"<SCRAM derivation cache: {len(self._entries)} of {self._maxsize} entries>"


_cache = _LruCache(_CACHE_SIZE)


def clear_derivation_cache() -> None:
    """Forget every cached salted password (e.g. after a credential is rotated)."""
    _cache.clear()


class NeedsComputation(ABC):
    """A mechanism's request for work to be done before it can go on: ``compute()`` may be
    slow or block, so run it in a worker thread (``await
    anyio.to_thread.run_sync(request.compute)``) and give its result to the mechanism's
    ``provide()``. ``cached()`` answers at once when the result is already known."""

    __slots__ = ()

    def cached(self) -> bytes | None:
        """The result if it is known without computing, else None."""
        return None

    @abstractmethod
    def compute(self) -> bytes:
        """The result; may take CPU time or block, never touches an event loop."""


@dataclass(frozen=True, slots=True)
class NeedsDerivation(NeedsComputation):
    """The SCRAM client's request to derive the salted password before it can go on.

    ``compute()`` is pure and thread-safe: run it in a worker thread
    (``await anyio.to_thread.run_sync(request.compute)``), then hand its result to the
    client's ``provide()``. ``cached()`` answers at once when the key is already known,
    sparing the thread hop on re-authentication.
    """

    hash_name: str
    salt: bytes
    iterations: int
    password: bytes = field(repr=False)

    def _key(self) -> _CacheKey:
        return (self.hash_name, self.password, self.salt, self.iterations)

    def cached(self) -> bytes | None:
        """The salted password if a previous exchange derived it, else None."""
        return _cache.get(self._key())

    def compute(self) -> bytes:
        """The salted password: from the cache, or derived (and then cached)."""
        key = self._key()
        salted = _cache.get(key)
        if salted is None:
            salted = derive_salted_password(
                self.password, self.salt, self.iterations, self.hash_name
            )
            _cache.put(key, salted)
        return salted
