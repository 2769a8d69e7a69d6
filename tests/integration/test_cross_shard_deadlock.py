"""A deadlock across two shards, which neither MariaDB can see, ends in seconds with 1205."""

from __future__ import annotations

import threading

import pymysql
import pytest

from tests.support.bank import balances, bank_config, connect, reset_bank, run

ACCOUNTS = {0: 100, 1: 100}  # id 0 lives on s0, id 1 on s1


@pytest.fixture
def proxy(cluster, proxy_factory):
    reset_bank(cluster, ACCOUNTS)
    config = bank_config(
        cluster, proxy_id="dl", transactions={"mode": "xa", "cross_shard_lock_wait_s": 1}
    )
    proxy = proxy_factory(config, name="deadlock")
    proxy.start()
    return proxy


def test_a_cross_shard_deadlock_is_broken_with_1205_and_the_other_transaction_commits(
    cluster, proxy
):
    first, second = connect(proxy), connect(proxy)
    outcomes: dict[str, str] = {}
    both_hold_one = threading.Barrier(2)

    def transfer(name: str, conn, src: int, dst: int) -> None:
        try:
            run(conn, "BEGIN")
            run(conn, "UPDATE accounts SET balance = balance - 10 WHERE id = %s", (src,))
            both_hold_one.wait()
            run(conn, "UPDATE accounts SET balance = balance + 10 WHERE id = %s", (dst,))
            run(conn, "COMMIT")
            outcomes[name] = "ok"
        except pymysql.MySQLError as exc:
            outcomes[name] = f"{exc.args[0]} {exc.args[1]}"

    threads = [
        threading.Thread(target=transfer, args=("a", first, 0, 1)),
        threading.Thread(target=transfer, args=("b", second, 1, 0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)  # a hang bound only
    assert not any(thread.is_alive() for thread in threads), "the deadlock was never broken"
    first.close()
    second.close()

    # "cross-shard deadlock" in the 1205 (below) shows the proxy's detector broke it, not
    # innodb_lock_wait_timeout (whose 1205 does not say so)
    failed = [o for o in outcomes.values() if o != "ok"]
    assert failed, outcomes
    assert all(o.startswith("1205 ") and "cross-shard deadlock" in o for o in failed), outcomes
    assert sum(balances(cluster).values()) == sum(ACCOUNTS.values())
    if len(failed) == 1:  # the survivor's transfer committed on both shards
        assert balances(cluster) != ACCOUNTS
