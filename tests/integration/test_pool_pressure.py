"""Small pools under many cross-shard transactions: no hold-and-wait deadlock, no lost money."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pymysql
import pytest

from tests.support.bank import balances, bank_config, connect, reset_bank, run

ACCOUNTS = {i: 1000 for i in range(48)}


@pytest.fixture(params=["xa", "at"])
def tiny_pool_proxy(request, cluster, proxy_factory):
    reset_bank(cluster, ACCOUNTS)
    config = bank_config(cluster, proxy_id="pp", transactions={"mode": request.param})
    for shard in config["shards"]:
        shard["pool_size"] = 2
    proxy = proxy_factory(config, name=f"tiny-{request.param}")
    proxy.start()
    return proxy


# Lock wait timeout and deadlock: the transaction was rolled back; an application retries.
RETRYABLE = (1205, 1213)


def _transfer(proxy, src: int, dst: int, attempts: int = 30) -> float:
    """Moves 1 from ``src`` to ``dst``, retrying 1205/1213; returns its longest attempt (s)."""
    longest = 0.0
    for _attempt in range(attempts):
        started = time.monotonic()
        conn = connect(proxy)
        try:
            run(conn, "BEGIN")
            run(conn, "UPDATE accounts SET balance = balance - 1 WHERE id = %s", (src,))
            run(conn, "UPDATE accounts SET balance = balance + 1 WHERE id = %s", (dst,))
            run(conn, "COMMIT")
            return max(longest, time.monotonic() - started)
        except pymysql.MySQLError as exc:
            if exc.args[0] not in RETRYABLE:
                raise
        finally:
            conn.close()
        longest = max(longest, time.monotonic() - started)
    raise AssertionError(f"transfer {src} -> {dst} failed with 1205/1213 {attempts} times")


def test_transactions_holding_one_shard_and_waiting_for_another_do_not_deadlock(
    cluster, tiny_pool_proxy
):
    # 24 transfers between shards in both directions, 12 at a time, pools of 2; every
    # transfer has accounts of its own, so only the pools are contended, not rows
    pairs = [(2 * i, 2 * i + 1) if i % 2 else (2 * i + 1, 2 * i) for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        longest = max(pool.map(lambda p: _transfer(tiny_pool_proxy, *p), pairs))
    # A hang, not a speed limit: an attempt that lasted the pool's 30 s wait was a deadlock.
    assert longest < 29, "a transaction waited for the pool's 30 s timeout: a deadlock"
    expected = dict(ACCOUNTS)
    for src, dst in pairs:
        expected[src] -= 1
        expected[dst] += 1
    assert balances(cluster) == expected  # every transfer done exactly once
