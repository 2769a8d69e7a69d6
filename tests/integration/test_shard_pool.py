"""The shard pool under pressure, against a real shard: who gets a freed connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from xaproxy import errors
from xaproxy.config.model import ShardConfig
from xaproxy.shards import pool as pool_module
from xaproxy.shards.pool import ShardPool


def _pool(cluster, size: int) -> ShardPool:
    server = cluster.servers[0]
    shard = ShardConfig(
        name="s0",
        host=server.host,
        port=server.port,
        user="root",
        password="",
        pool_size=size,
        connect_timeout_s=5.0,
    )
    return ShardPool(shard, acquire_timeout_s=5.0)


async def _until(condition: Callable[[], bool]) -> None:
    """Lets the other tasks of this loop run until `condition` holds: ordering by state, not time."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)  # one turn of the loop, no wall-clock wait
    raise AssertionError("the other tasks never reached the awaited state")


def test_a_freed_connection_goes_to_a_transaction_that_already_holds_one_first(cluster):
    async def scenario() -> list[str]:
        pool = _pool(cluster, 1)
        held = await pool.acquire()
        order: list[str] = []

        async def take(name: str, urgent: bool) -> None:
            backend = await pool.acquire(urgent=urgent)
            order.append(name)
            pool.release(backend)

        newcomer = asyncio.create_task(take("newcomer", urgent=False))
        await _until(lambda: len(pool._waiters) == 1)  # the newcomer queues first
        holder = asyncio.create_task(take("holder", urgent=True))
        await _until(lambda: len(pool._urgent_waiters) == 1)
        pool.release(held)
        await asyncio.gather(newcomer, holder)
        pool.close()
        return order

    assert asyncio.run(scenario()) == ["holder", "newcomer"]


def test_an_urgent_requester_gets_an_overflow_connection_then_waits_then_fails_with_1205(
    cluster, monkeypatch
):
    monkeypatch.setattr(pool_module, "_URGENT_GIVE_UP_S", 0.3)

    async def scenario() -> tuple[bool, int]:
        pool = _pool(cluster, 1)
        held = await pool.acquire()
        overflow = await pool.acquire(urgent=True)
        with pytest.raises(errors.ProxyError) as refused:
            await pool.acquire(urgent=True)
        # a returned overflow connection is handed to the next urgent requester
        waiting = asyncio.create_task(pool.acquire(urgent=True))
        await _until(lambda: len(pool._urgent_waiters) == 1)
        pool.release(overflow)
        handed = await waiting
        pool.release(handed)
        pool.release(held)
        pool.close()
        return handed.overflow, refused.value.code

    assert asyncio.run(scenario()) == (True, 1205)
