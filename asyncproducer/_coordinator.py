"""Requests to a coordinator (the transaction coordinator of a transactional id, the group
coordinator of a consumer group): find it, send, and retry as
``_transactions.coordinator_action`` says, within a deadline.

Every call is bounded: it ends by its deadline (the caller's ``max_block_ms``) with a
``KafkaTimeoutError`` naming the last error, never loops on. A coordinator that is never
available is the common way a transactional producer hangs (aiokafka #1091: a one-broker
cluster whose ``__transaction_state`` wants three replicas), so that error gets a hint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import BrokerConnection
from asyncproducer._metadata import MetadataManager
from asyncproducer._pool import ConnectionPool
from asyncproducer._transactions import Action, TxnApi, coordinator_action
from asyncproducer.errors import (
    ConcurrentTransactionsError,
    KafkaError,
    KafkaTimeoutError,
    ProducerClosedError,
    error_for_code,
)
from asyncproducer.protocol.messages import coordinator_of, find_coordinator_request
from asyncproducer.protocol.versions import ApiKey, NegotiatedVersions

logger = logging.getLogger("asyncproducer.transactions")

GROUP = 0
TRANSACTION = 1
_KEY_TYPES = {GROUP: "group", TRANSACTION: "transactional id"}

_CONCURRENT_TRANSACTIONS_BACKOFF_MS = 20
"""CONCURRENT_TRANSACTIONS usually means the previous transaction's markers are still
being written: retry soon (Java retries its first AddPartitionsToTxn after 20 ms)."""

T = TypeVar("T")


class CoordinatorClient:
    def __init__(
        self, metadata: MetadataManager, pool: ConnectionPool, backoff: ExponentialBackoff
    ) -> None:
        self._metadata = metadata
        self._pool = pool
        self._backoff = backoff
        self._coordinators: dict[tuple[int, str], BrokerAddress] = {}

    async def call(
        self,
        api: TxnApi,
        key_type: int,
        key: str,
        request: Callable[[NegotiatedVersions], Any],
        outcome: Callable[[Any], T],
        deadline: float,
    ) -> T:
        """Send ``request(versions)`` to the coordinator of ``key`` until
        ``outcome(response)`` returns (it raises the KafkaError an answer carries), or
        an error ends the call (raised as it is), or ``deadline`` (``anyio.current_time()``)
        passes (KafkaTimeoutError naming the last error)."""
        attempts = 0
        last: KafkaError | None = None
        while True:
            if self._pool.closed:  # the producer stopped: nothing will answer
                raise ProducerClosedError(f"{api.value}: the producer is closed")
            with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                try:
                    connection = await self._coordinator(key_type, key)
                    response = await connection.send(request(connection.versions))
                    return outcome(response)
                except KafkaError as exc:
                    last = exc
                action = coordinator_action(api, last)
                if action in (Action.ABORTABLE, Action.FATAL):
                    raise last
                if action is Action.FIND_COORDINATOR:
                    self._coordinators.pop((key_type, key), None)
                logger.debug(
                    "%s for %s %r: %s; retrying", api.value, _KEY_TYPES[key_type], key, last
                )
                if isinstance(last, ConcurrentTransactionsError):
                    wait_ms = min(
                        _CONCURRENT_TRANSACTIONS_BACKOFF_MS, self._backoff.delay_ms(attempts)
                    )
                else:
                    wait_ms = self._backoff.delay_ms(attempts)
                attempts += 1
                await anyio.sleep(wait_ms / 1000)
                continue
            raise self._timed_out(api, key_type, key, last)

    def _timed_out(
        self, api: TxnApi, key_type: int, key: str, last: KafkaError | None
    ) -> KafkaTimeoutError:
        because = f"; last error: {last}" if last is not None else ""
        hint = ""
        if last is not None and getattr(last, "code", None) == 15:  # COORDINATOR_NOT_AVAILABLE
            hint = (
                " (a coordinator that is never available often means the cluster has fewer "
                "brokers than transaction.state.log.replication.factor or "
                "offsets.topic.replication.factor asks for, or than their min.insync.replicas)"
            )
        error = KafkaTimeoutError(
            f"{api.value} for {_KEY_TYPES[key_type]} {key!r} did not complete within "
            f"max_block_ms{because}{hint}"
        )
        error.__cause__ = last
        return error

    async def _coordinator(self, key_type: int, key: str) -> BrokerConnection:
        address = self._coordinators.get((key_type, key))
        if address is None:
            address = await self._find(key_type, key)
            self._coordinators[key_type, key] = address
        return await self._pool.get(address)

    async def _find(self, key_type: int, key: str) -> BrokerAddress:
        """FindCoordinator on any broker; raises the error it answers."""
        connection = await self._metadata.connect_to_any()
        version = connection.versions.version_for(ApiKey.FIND_COORDINATOR)
        response = await connection.send(
            find_coordinator_request(version, key_type=key_type, key=key)
        )
        code, node_id, host, port, message = coordinator_of(response)
        if code:
            raise error_for_code(
                code,
                f"FindCoordinator for {_KEY_TYPES[key_type]} {key!r} on broker "
                f"{connection.address}" + (f": {message}" if message else ""),
            )
        known = self._metadata.snapshot.brokers.get(node_id)
        address = known.address if known is not None else BrokerAddress(host, port, node_id)
        logger.debug("the coordinator of %s %r is %s", _KEY_TYPES[key_type], key, address)
        return address
