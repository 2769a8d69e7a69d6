"""Reads of AT lock rows on a fresh autocommit connection, batched per shard.

Every AT lock check reads xaproxy.global_locks outside the checking transaction (see
at.LockWait). A check taking a pool connection of its own starves a busy pool: the
transactions that check already hold connections to that shard, and under contention
the pool is held by transactions queued behind the one that checks. So each shard has
one connection of its own for the checks, outside the pool, and the checks waiting
for it go out together, as one multi-statement, one batch after the other.
"""

from __future__ import annotations

import asyncio
import contextlib

from .. import errors
from ..shards.backend import Backend
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
        self._own: Backend | None = None

    def close(self) -> None:
        if self._own is not None:
            with contextlib.suppress(Exception):
                self._own.close()
            self._own = None

    async def _connection(self) -> Backend:
        if self._own is None or self._own.broken or not self._own.usable:
            self.close()
            self._own = await Backend.connect(self.pools[self.shard].shard, False)
        return self._own

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
        # a read: sent again once on a new connection when the kept one turned out dead
        # (the shard restarted since its last use)
        for attempt in (1, 2):
            try:
                backend = await self._connection()
                results = await backend.query_results("; ".join(sql for sql, _ in batch))
            except errors.BackendError as exc:  # the statement's own error: the connection is fine
                _fail(batch, exc)
                return
            except errors.ProxyError as exc:
                self.close()
                if attempt == 2:
                    _fail(batch, exc)
                    return
                continue
            except BaseException:
                self.close()
                _fail(batch, errors.shard_lost(self.shard, "a lock check was interrupted"))
                raise
            for (_, future), result in zip(batch, results, strict=False):
                if not future.done():
                    future.set_result(result.rows)
            _fail(batch, errors.ProxyError(1105, "HY000", "xaproxy: a lock check got no answer"))
            return


def _fail(batch: list[tuple[str, asyncio.Future[Rows]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
