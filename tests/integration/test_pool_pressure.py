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


def _transfer(proxy, src: int, dst: int) -> str:
    conn = connect(proxy)
    try:
        run(conn, "BEGIN")
        run(conn, "UPDATE accounts SET balance = balance - 1 WHERE id = %s", (src,))
        run(conn, "UPDATE accounts SET balance = balance + 1 WHERE id = %s", (dst,))
        run(conn, "COMMIT")
        return "ok"
    except pymysql.MySQLError as exc:
        return str(exc.args[0])
    finally:
        conn.close()


def test_transactions_holding_one_shard_and_waiting_for_another_do_not_deadlock(
    cluster, tiny_pool_proxy
):
    # 24 transfers between shards in both directions, 12 at a time, pools of 2; every
    # transfer has accounts of its own, so only the pools are contended, not rows
    pairs = [(2 * i, 2 * i + 1) if i % 2 else (2 * i + 1, 2 * i) for i in range(24)]
    started = time.monotonic()
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(lambda p: _transfer(tiny_pool_proxy, *p), pairs))
    elapsed = time.monotonic() - started
    assert elapsed < 25, "transactions waited for the pool's 30 s timeout: a deadlock"
    assert set(outcomes) <= {"ok", "1205", "1213"}, outcomes
    assert outcomes.count("ok") >= len(pairs) // 4
    assert sum(balances(cluster).values()) == sum(ACCOUNTS.values())
