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
from collections import deque

from .. import errors
from ..config import Config, ShardConfig
from ..protocol.constants import Status
from .backend import Backend

log = logging.getLogger(__name__)

# A connection idle longer than this is pinged before reuse: the shard may
# have restarted or timed it out in the meantime.
_PING_AFTER_IDLE_S = 2.0

# A requester that already holds connections of a transaction ("urgent") waits this
# long for a slot before taking an overflow connection: waiting longer could deadlock
# (one transaction holds s0 and waits for s1, another holds s1 and waits for s0).
_URGENT_WAIT_S = 0.2
# When the overflow connections are taken too, it waits for a slot or an overflow
# connection to come back, ahead of requesters that hold nothing, up to this bound,
# then fails with a retryable 1205: a bounded wait cannot deadlock, and under a burst
# the holders usually finish well within it.
_URGENT_GIVE_UP_S = 1.0

_SLOT = "slot"
_OVERFLOW = "overflow"


class ShardPool:
    def __init__(self, shard: ShardConfig, acquire_timeout_s: float = 30.0) -> None:
        self.shard = shard
        self._idle: dict[bool, list[Backend]] = {False: [], True: []}
        self._free_slots = shard.pool_size
        # Waiters get a slot (or an overflow connection) handed over on release;
        # urgent ones first, since they hold connections others may be waiting for.
        self._urgent_waiters: deque[asyncio.Future[str]] = deque()
        self._waiters: deque[asyncio.Future[str]] = deque()
        self._acquire_timeout_s = acquire_timeout_s
        self.in_use = 0
        self.overflow = 0
        self.closed = False

    async def acquire(self, found_rows: bool = False, *, urgent: bool = False) -> Backend:
        """A connection; `urgent` for requesters that already hold connections (see above).

        Urgent requests get an overflow connection (up to pool_size more, closed on
        release) after a short wait; past that they wait in front of the queue, and
        fail with a retryable 1205 after a bound.
        """
        if self.closed:
            raise errors.shard_unreachable(self.shard.name, "the proxy is shutting down")
        if self._free_slots:
            self._free_slots -= 1  # no waiter can be queued while slots are free
            granted = _SLOT
        elif urgent:
            granted = await self._wait(self._urgent_waiters, _URGENT_WAIT_S)
            if granted is None and self.overflow < self.shard.pool_size:
                self.overflow += 1
                granted = _OVERFLOW
            if granted is None:
                granted = await self._wait(self._urgent_waiters, _URGENT_GIVE_UP_S)
            if granted is None:
                raise errors.ProxyError(
                    1205,
                    "HY000",
                    f"Lock wait timeout exceeded; try restarting transaction (xaproxy: no free "
                    f"connection to shard '{self.shard.name}' for {_URGENT_GIVE_UP_S:g}s, "
                    f"pool_size {self.shard.pool_size} and as many overflow connections in "
                    "use; raise pool_size)",
                )
        else:
            granted = await self._wait(self._waiters, self._acquire_timeout_s)
            if granted is None:
                raise errors.ProxyError(
                    1040,
                    "08004",
                    f"xaproxy: all {self.shard.pool_size} connections to shard "
                    f"'{self.shard.name}' stayed busy for {self._acquire_timeout_s:.0f}s; "
                    "raise pool_size or shorten transactions",
                )
        overflow = granted == _OVERFLOW
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

    async def _wait(self, queue: deque[asyncio.Future[str]], timeout: float) -> str | None:
        """What a releaser handed over (_SLOT or _OVERFLOW), or None after `timeout`."""
        granted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        queue.append(granted)
        try:
            return await asyncio.wait_for(granted, timeout)
        except TimeoutError:
            return None
        except BaseException:  # cancelled: whatever was handed over goes back
            if granted.done() and not granted.cancelled():
                self._give_back_slot(granted.result() == _OVERFLOW)
            raise
        finally:
            if not granted.done() or granted.cancelled():
                with contextlib.suppress(ValueError):
                    queue.remove(granted)

    @staticmethod
    def _hand_over(queue: deque[asyncio.Future[str]], what: str) -> bool:
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(what)
                return True
        return False

    def _give_back_slot(self, overflow: bool) -> None:
        if overflow:
            # an overflow connection goes on to an urgent waiter, never to a new one
            if not self._hand_over(self._urgent_waiters, _OVERFLOW):
                self.overflow -= 1
        elif not (
            self._hand_over(self._urgent_waiters, _SLOT) or self._hand_over(self._waiters, _SLOT)
        ):
            self._free_slots += 1

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
        backend.owner = 0
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
