"""Backend connections per shard, shared by all sessions.

A session borrows a connection for one statement, or for a whole transaction;
connections come back in autocommit mode with no open transaction, and carry
the session settings last applied to them so the next borrower pays only for
the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .. import errors
from ..config import Config, ShardConfig
from ..protocol.constants import Status
from .backend import Backend

log = logging.getLogger(__name__)

# A connection idle longer than this is pinged before reuse: the shard may
# have restarted or timed it out in the meantime.
_PING_AFTER_IDLE_S = 2.0

# A requester that already holds connections of a transaction waits this long for a
# slot before taking an overflow connection: waiting longer could deadlock (one
# transaction holds s0 and waits for s1, another holds s1 and waits for s0).
_URGENT_WAIT_S = 0.2


class ShardPool:
    def __init__(self, shard: ShardConfig, acquire_timeout_s: float = 30.0) -> None:
        self.shard = shard
        self._idle: dict[bool, list[Backend]] = {False: [], True: []}
        self._slots = asyncio.Semaphore(shard.pool_size)
        self._acquire_timeout_s = acquire_timeout_s
        self.in_use = 0
        self.overflow = 0
        self.closed = False

    async def acquire(self, found_rows: bool = False, *, urgent: bool = False) -> Backend:
        """A connection; `urgent` for requesters that already hold connections (see above).

        Urgent requests get an overflow connection (up to pool_size more, closed on
        release) after a short wait; past that they fail with a retryable 1205.
        """
        if self.closed:
            raise errors.shard_unreachable(self.shard.name, "the proxy is shutting down")
        overflow = False
        try:
            if not self._slots.locked():
                await self._slots.acquire()  # free slot: no timer task on the hot path
            elif urgent:
                try:
                    await asyncio.wait_for(self._slots.acquire(), _URGENT_WAIT_S)
                except TimeoutError:
                    if self.overflow >= self.shard.pool_size:
                        raise errors.ProxyError(
                            1205,
                            "HY000",
                            f"Lock wait timeout exceeded; try restarting transaction (xaproxy: no "
                            f"free connection to shard '{self.shard.name}', pool_size "
                            f"{self.shard.pool_size} and as many overflow connections in use)",
                        ) from None
                    overflow = True
                    self.overflow += 1
            else:
                await asyncio.wait_for(self._slots.acquire(), self._acquire_timeout_s)
        except TimeoutError:
            raise errors.ProxyError(
                1040,
                "08004",
                f"xaproxy: all {self.shard.pool_size} connections to shard "
                f"'{self.shard.name}' stayed busy for {self._acquire_timeout_s:.0f}s; "
                "raise pool_size or shorten transactions",
            ) from None
        try:
            backend = None if overflow else await self._take_idle(found_rows)
            if backend is None:
                backend = await Backend.connect(self.shard, found_rows)
        except BaseException:
            self._give_back_slot(overflow)
            raise
        backend.overflow = overflow
        self.in_use += 1
        return backend

    def _give_back_slot(self, overflow: bool) -> None:
        if overflow:
            self.overflow -= 1
        else:
            self._slots.release()

    async def _take_idle(self, found_rows: bool) -> Backend | None:
        idle = self._idle[found_rows]
        now = time.monotonic()
        while idle:
            backend = idle.pop()
            if backend.broken:
                backend.close()
                continue
            if now - backend.last_used > _PING_AFTER_IDLE_S:
                try:
                    await backend.ping()
                except errors.ProxyError:
                    backend.close()
                    continue
            return backend
        return None

    def release(self, backend: Backend) -> None:
        """Returns a connection; one that is broken or mid-transaction is closed instead."""
        self.in_use -= 1
        self._give_back_slot(backend.overflow)
        if (
            self.closed
            or backend.overflow
            or backend.broken
            or backend.status & Status.IN_TRANS
            or not backend.status & Status.AUTOCOMMIT
        ):
            backend.close()
            return
        backend.last_used = time.monotonic()
        self._idle[backend.found_rows].append(backend)

    def discard(self, backend: Backend) -> None:
        self.in_use -= 1
        self._give_back_slot(backend.overflow)
        backend.close()

    def close(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            for backend in idle:
                with contextlib.suppress(Exception):
                    backend.close()
            idle.clear()


class Pools:
    """All shard pools of one proxy process."""

    def __init__(self, config: Config) -> None:
        self.by_shard = {name: ShardPool(shard) for name, shard in config.shards.items()}

    def __getitem__(self, shard: str) -> ShardPool:
        return self.by_shard[shard]

    async def acquire(
        self, shard: str, found_rows: bool = False, *, urgent: bool = False
    ) -> Backend:
        return await self.by_shard[shard].acquire(found_rows, urgent=urgent)

    def release(self, backend: Backend) -> None:
        self.by_shard[backend.shard].release(backend)

    def discard(self, backend: Backend) -> None:
        self.by_shard[backend.shard].discard(backend)

    def close(self) -> None:
        for pool in self.by_shard.values():
            pool.close()
