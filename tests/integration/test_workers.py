"""`workers: N`: several proxy processes share the listen port and stay atomic together."""

from __future__ import annotations

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pymysql
import pytest

from tests.support.bank import (
    balances,
    bank_config,
    connect,
    in_doubt,
    reset_bank,
    run,
    wait_until,
)

ACCOUNTS = {i: 1000 for i in range(6)}


@pytest.fixture
def workers_proxy(cluster, proxy_factory):
    reset_bank(cluster, ACCOUNTS)
    proxy = proxy_factory(bank_config(cluster, proxy_id="pw", workers=2), name="workers")
    proxy.start()
    return proxy


def _worker_pids(parent: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(parent)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


# Lock wait timeout and deadlock: the transaction was rolled back; an application retries.
RETRYABLE = (1205, 1213)


def _transfer(proxy, src: int, dst: int, attempts: int = 50) -> None:
    """Moves 1 from ``src`` to ``dst``, retrying a deadlock victim as an application does."""
    for _attempt in range(attempts):
        conn = connect(proxy)
        try:
            run(conn, "BEGIN")
            run(conn, "UPDATE accounts SET balance = balance - 1 WHERE id = %s", (src,))
            run(conn, "UPDATE accounts SET balance = balance + 1 WHERE id = %s", (dst,))
            run(conn, "COMMIT")
            return
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in RETRYABLE:
                raise
        finally:
            conn.close()
    raise AssertionError(f"transfer {src} -> {dst} was a deadlock victim {attempts} times")


def test_two_workers_serve_cross_shard_transactions_atomically(cluster, workers_proxy):
    assert len(_worker_pids(workers_proxy.pid)) == 2
    pairs = [(i % 6, (i + 1) % 6) for i in range(60)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: _transfer(workers_proxy, *p), pairs))
    assert sum(balances(cluster).values()) == sum(ACCOUNTS.values())
    assert balances(cluster) == ACCOUNTS  # every account sent and received 10
    # both workers took connections: their session ids interleave (1, 3, ... and 2, 4, ...)
    # (the kernel spreads connections by a hash, so ask until both answered, within bounds)
    ids = set()
    for _ in range(400):
        conn = connect(workers_proxy)
        ids.add(run(conn, "SELECT CONNECTION_ID()")[0][0] % 2)
        conn.close()
        if ids == {0, 1}:
            break
    assert ids == {0, 1}


def test_a_killed_worker_is_started_again_and_its_transactions_resolved(cluster, workers_proxy):
    victim = _worker_pids(workers_proxy.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: (
            len(_worker_pids(workers_proxy.pid)) == 2
            and victim not in _worker_pids(workers_proxy.pid)
        ),
        20,
        "the supervisor to start the worker again",
    )
    _transfer(workers_proxy, 0, 1)
    assert sum(balances(cluster).values()) == sum(ACCOUNTS.values())
    assert not any(in_doubt(cluster).values())


def test_sigterm_stops_every_worker_with_exit_code_zero(workers_proxy):
    children = _worker_pids(workers_proxy.pid)
    assert workers_proxy.stop() == 0
    wait_until(
        lambda: not [pid for pid in children if os.path.exists(f"/proc/{pid}")],
        30,
        "every worker process to be gone",
    )
