"""At most one connection per broker address, reused, reopened with backoff.

Concurrent callers asking for the same broker share one connect attempt and its outcome.
After a failed attempt, or after a connection drops, the next attempt waits
``reconnect_backoff_ms`` doubling per consecutive failure up to
``reconnect_backoff_max_ms``, with ±20 % jitter (Java's ``ClusterConnectionStates``).
"""

from __future__ import annotations

import logging
from types import TracebackType

import anyio
import anyio.abc

from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import GRACEFUL_CLOSE_S, BrokerConnection, ConnectionSettings
from asyncproducer.errors import KafkaConnectionError, KafkaError, fresh_copy

logger = logging.getLogger("asyncproducer.connection")


class _Attempt:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: KafkaError | None = None


class _BrokerState:
    __slots__ = ("attempt", "connection", "failures", "next_attempt_at")

    def __init__(self) -> None:
        self.connection: BrokerConnection | None = None
        self.attempt: _Attempt | None = None
        self.failures = 0
        self.next_attempt_at = 0.0


class ConnectionPool:
    """Use as ``async with ConnectionPool(settings) as pool``; connections' tasks run inside it."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        reconnect_backoff_ms: int = 50,
        reconnect_backoff_max_ms: int = 1000,
        connections_max_idle_ms: int = -1,
    ) -> None:
        self.settings = settings
        self._backoff = ExponentialBackoff(reconnect_backoff_ms, reconnect_backoff_max_ms)
        self._setup_timeout = ExponentialBackoff(
            settings.socket_connection_setup_timeout_ms,
            settings.socket_connection_setup_timeout_max_ms,
        )
        self._states: dict[tuple[str, int], _BrokerState] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._max_idle_s = connections_max_idle_ms / 1000
        """Java's ``connections.max.idle.ms``: a connection with nothing out on it for that
        long is closed (and opened again when needed); negative: never."""
        self._idle_watch: anyio.CancelScope | None = None
        """The idle-connection check, while the pool is entered."""
        self._closed = False
        self.close_grace_s = GRACEFUL_CLOSE_S
        """How long closing waits for each broker to acknowledge the end of the stream
        (the producer lowers it to what is left of its close timeout)."""

    @property
    def closed(self) -> bool:
        """Closed for good (the producer stopped): no connection will be opened again."""
        return self._closed

    async def __aenter__(self) -> ConnectionPool:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        if self._max_idle_s >= 0:
            self._idle_watch = anyio.CancelScope()
            self._task_group.start_soon(self._close_idle, name="asyncproducer idle connections")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        assert self._task_group is not None
        return await self._task_group.__aexit__(exc_type, exc, tb)

    async def _close_idle(self) -> None:
        """Close the connections idle for ``connections_max_idle_ms``, checking a few times
        per period. Closed so, a connection is no failure: the next request to that broker
        connects again at once, without a reconnect backoff."""
        assert self._idle_watch is not None
        with self._idle_watch:
            while True:
                await anyio.sleep(min(max(self._max_idle_s / 4, 0.01), 30.0))
                self._close_idle_now()

    def _close_idle_now(self) -> None:
        assert self._task_group is not None
        now = anyio.current_time()
        for (host, port), state in self._states.items():
            connection = state.connection
            if (
                connection is not None
                and not connection.closed
                and not connection.busy
                and now - connection.last_active >= self._max_idle_s
            ):
                state.connection = None
                logger.debug("closing the connection to %s:%d: idle", host, port)
                self._task_group.start_soon(connection.aclose, self.close_grace_s)

    async def aclose(self) -> None:
        """Close every connection at once, each gracefully within ``close_grace_s``."""
        self._closed = True
        if self._idle_watch is not None:
            self._idle_watch.cancel()
        open_connections = [s.connection for s in self._states.values() if s.connection]
        async with anyio.create_task_group() as closing:
            for connection in open_connections:
                closing.start_soon(connection.aclose, self.close_grace_s)

    @property
    def open_connections(self) -> list[BrokerConnection]:
        return [
            s.connection for s in self._states.values() if s.connection and not s.connection.closed
        ]

    def connection_if_open(self, address: BrokerAddress) -> BrokerConnection | None:
        """The live connection to ``address``, without connecting."""
        state = self._states.get((address.host, address.port))
        if state is None or state.connection is None or state.connection.closed:
            return None
        return state.connection

    def next_attempt_at(self, address: BrokerAddress) -> float:
        """When (``anyio.current_time()`` clock) a new connect to ``address`` may start."""
        state = self._states.get((address.host, address.port))
        return 0.0 if state is None else self._refresh(state)

    async def get(self, address: BrokerAddress) -> BrokerConnection:
        """A live connection to ``address``: the open one, or a new one after any backoff."""
        if self._closed or self._task_group is None:
            raise KafkaConnectionError("the connection pool is closed (or was never entered)")
        state = self._states.setdefault((address.host, address.port), _BrokerState())
        while True:
            if state.connection is not None and not state.connection.closed:
                return state.connection
            if state.attempt is not None:
                attempt = state.attempt
                await attempt.done.wait()
                if attempt.error is not None:
                    raise fresh_copy(attempt.error)
                continue
            delay = self._refresh(state) - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
                continue  # another caller may have connected, or started to, meanwhile
            return await self._connect(state, address)

    def _refresh(self, state: _BrokerState) -> float:
        """Forget a dropped connection, starting its reconnect backoff; return next_attempt_at."""
        dropped = state.connection
        if dropped is not None and dropped.closed:
            state.connection = None
            assert dropped.closed_at is not None
            pause = self._backoff.delay_ms(state.failures) / 1000
            state.next_attempt_at = max(state.next_attempt_at, dropped.closed_at + pause)
        return state.next_attempt_at

    async def _connect(self, state: _BrokerState, address: BrokerAddress) -> BrokerConnection:
        assert self._task_group is not None
        attempt = state.attempt = _Attempt()
        settings = self.settings
        if state.failures:  # the setup timeout grows with each failed attempt in a row
            timeout_ms = round(self._setup_timeout.delay_ms(state.failures))
            settings = settings.replace(socket_connection_setup_timeout_ms=timeout_ms)
        try:
            connection = await BrokerConnection.open(address, settings, self._task_group)
        except KafkaError as exc:
            attempt.error = exc
            state.next_attempt_at = (
                anyio.current_time() + self._backoff.delay_ms(state.failures) / 1000
            )
            state.failures += 1
            logger.debug("connect to %s failed (%d in a row): %s", address, state.failures, exc)
            raise
        finally:
            state.attempt = None
            attempt.done.set()
        state.failures = 0
        state.connection = connection
        return connection
