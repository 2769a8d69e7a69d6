"""Ending lock waits that no single shard can see as a deadlock.

T1 holds a row on s0 and waits for one on s1 while T2 holds that row on s1 and
waits for T1's on s0: each InnoDB sees an ordinary lock wait and lets it run for
innodb_lock_wait_timeout (50 s by default). A statement of a transaction with
branches on two or more shards that has waited for a row lock longer than
`transactions.cross_shard_lock_wait_s` is interrupted from another connection
(KILL QUERY, only while the shard reports it waiting for a lock) and answers
1205, which rolls the global transaction back as MySQL's own timeout would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

from .. import errors
from ..shards.backend import Backend
from ..shards.pool import Pools

log = logging.getLogger(__name__)

_ER_QUERY_INTERRUPTED = 1317
_RECHECK_S = 0.5


@contextlib.asynccontextmanager
async def bounded_lock_wait(pools: Pools, backend: Backend, limit_s: float) -> AsyncIterator[None]:
    """Runs the body with a watchdog on `backend`'s lock waits; 1317 from it becomes 1205."""
    killed = asyncio.Event()
    watchdogs: list[asyncio.Task[None]] = []
    # a timer, not a task, per statement: most statements end long before it fires;
    # jitter: of two transactions waiting for each other, one is usually ended first and
    # the other then gets its lock and commits
    timer = asyncio.get_running_loop().call_later(
        limit_s * (1 + random.random() / 2),
        lambda: watchdogs.append(asyncio.ensure_future(_watch(pools, backend, limit_s, killed))),
    )
    try:
        yield
    except errors.BackendError as exc:
        if exc.code == _ER_QUERY_INTERRUPTED and killed.is_set():
            raise errors.EndsTransaction(
                1205,
                "HY000",
                "Lock wait timeout exceeded; try restarting transaction (xaproxy: waited "
                f"{limit_s:g}s for a row lock on shard '{backend.shard}' while holding rows "
                "on another shard: a possible cross-shard deadlock; see "
                "transactions.cross_shard_lock_wait_s)",
            ) from None
        raise
    finally:
        timer.cancel()
        for watchdog in watchdogs:
            watchdog.cancel()


async def _watch(pools: Pools, backend: Backend, limit_s: float, killed: asyncio.Event) -> None:
    thread_id = backend.conn.server_thread_id[0]
    while True:
        try:
            helper = await pools.acquire(backend.shard, urgent=True)
        except errors.ProxyError:
            await asyncio.sleep(_RECHECK_S)
            continue
        try:
            rows = await helper.query_rows(
                "SELECT 1 FROM information_schema.INNODB_TRX "
                f"WHERE trx_mysql_thread_id = {int(thread_id)} AND trx_state = 'LOCK WAIT' "
                f"AND trx_wait_started <= NOW() - INTERVAL {float(limit_s)} SECOND"
            )
            if rows:
                killed.set()
                await helper.execute_ok(f"KILL QUERY {int(thread_id)}")
                log.warning(
                    "interrupted a lock wait of %.1fs on %s (connection %d) in a cross-shard "
                    "transaction: a possible cross-shard deadlock",
                    limit_s,
                    backend.shard,
                    thread_id,
                )
                return
        except errors.ProxyError as exc:
            log.debug("lock-wait check on %s failed: %s", backend.shard, exc)
        finally:
            pools.release(helper)
        await asyncio.sleep(_RECHECK_S)
