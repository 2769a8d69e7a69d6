"""Reads of AT lock rows on a fresh autocommit connection, batched per shard.

Every AT lock check reads xaproxy.global_locks outside the checking transaction (see
at.LockWait). Each check taking a pool connection of its own starves a busy pool: the
transactions that check already hold connections to that shard, and under contention
hundreds of them check at once. Here the checks waiting for one shard go out together,
as one multi-statement on one pooled connection, one batch after the other.
"""

from __future__ import annotations

import asyncio

from .. import errors
from ..shards.pool import Pools

_BATCH = 64  # statements per round trip

Rows = list[list[bytes | None]]


class BatchedPeek:
    """The peeks of one shard; at most one connection and one round trip in flight."""

    def __init__(self, pools: Pools, shard: str) -> None:
        self.pools = pools
        self.shard = shard
        self._pending: list[tuple[str, asyncio.Future[Rows]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, sql: str) -> Rows:
        future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self._pending.append((sql, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
            batch = [(sql, f) for sql, f in batch if not f.done()]  # waiters that gave up
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[tuple[str, asyncio.Future[Rows]]]) -> None:
        try:
            backend = await self.pools.acquire(self.shard, urgent=True)
        except errors.ProxyError as exc:
            _fail(batch, exc)
            return
        try:
            results = await backend.query_results("; ".join(sql for sql, _ in batch))
        except errors.BackendError as exc:  # the statement's own error: the connection is fine
            _fail(batch, exc)
        except BaseException as exc:
            backend.usable = False
            _fail(
                batch,
                exc
                if isinstance(exc, errors.ProxyError)
                else errors.shard_lost(self.shard, repr(exc)),
            )
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=False):
                if not future.done():
                    future.set_result(result.rows)
            _fail(batch, errors.ProxyError(1105, "HY000", "xaproxy: a lock check got no answer"))
        finally:
            self.pools.release(backend)


def _fail(batch: list[tuple[str, asyncio.Future[Rows]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
