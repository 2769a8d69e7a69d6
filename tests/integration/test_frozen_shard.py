"""A shard that stops answering does not hang its clients (shards[].read_timeout_s).

A frozen shard process (SIGSTOP) keeps its TCP connections open and sends
nothing; without a read timeout a statement, or the commit of a cross-shard
transaction, would wait for as long as the freeze lasts. With one, the waiting
read fails after read_timeout_s, the client gets an error naming the shard,
and the transaction is rolled back everywhere: once the shard runs again both
shards hold the rows as they were, and no XA branch is left prepared.

These tests freeze shards, so they run on a cluster of their own.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from xaproxy.devkit.localshards import LocalCluster, LocalMariaDB
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

SCHEMA = "xp_frozen"
READ_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("frozen"), 2)
    cluster.start()
    try:
        for server in cluster.servers:
            server.execute(f"CREATE DATABASE {SCHEMA}")
            server.execute(f"CREATE TABLE {SCHEMA}.accounts (id INT PRIMARY KEY, balance INT)")
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            cluster.kill()


@pytest.fixture(scope="module")
def proxy(shards: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    tables = [{"name": "accounts", "shard_key": "id", "algorithm": "mod"}]
    config = proxy_config(
        shards, schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": tables}]
    )
    for shard in config["shards"]:
        shard["read_timeout_s"] = READ_TIMEOUT_S
    config["transactions"] = {"recover_interval_s": 1}
    process = ProxyProcess(config, Path(tmp_path_factory.mktemp("frozenproxy")), name="frozen")
    process.start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def balances(shards: LocalCluster) -> None:
    shards["s0"].execute(f"REPLACE INTO {SCHEMA}.accounts VALUES (0, 100)")
    shards["s1"].execute(f"REPLACE INTO {SCHEMA}.accounts VALUES (1, 100)")


class _Frozen:
    """SIGSTOP of a shard process for the `with` block; SIGCONT however it ends."""

    def __init__(self, server: LocalMariaDB) -> None:
        self.pid = server.pid
        assert self.pid is not None

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        # the stop is asynchronous: wait until every thread of the shard is stopped
        deadline = time.monotonic() + 30
        while not self._stopped():
            assert time.monotonic() < deadline, "the shard process did not stop"
            time.sleep(0.05)

    def _stopped(self) -> bool:
        states = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except OSError:
                continue  # a thread that just ended
        return all(state in ("T", "t") for state in states)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def _connect(proxy: ProxyProcess) -> pymysql.Connection:
    # the client's own timeout is far beyond the proxy's: an error must come from the proxy
    return pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=PROXY_USER,
        password=PROXY_PASSWORD,
        database=SCHEMA,
        autocommit=True,
        read_timeout=120,
    )


def _wait_until(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def test_a_statement_on_a_frozen_shard_fails_instead_of_hanging(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    conn = _connect(proxy)
    try:
        with conn.cursor() as cursor:  # the session's connection to s1 is open before the freeze
            cursor.execute("BEGIN")
            cursor.execute("SELECT balance FROM accounts WHERE id = 1")
        with _Frozen(shards["s1"]), conn.cursor() as cursor:
            with pytest.raises(pymysql.err.OperationalError) as info:
                cursor.execute("SELECT balance FROM accounts WHERE id = 1")
            assert "s1" in str(info.value) and "read_timeout_s" in str(info.value)
        with conn.cursor() as cursor:  # the session goes on once the shard is back
            cursor.execute("ROLLBACK")
            cursor.execute("SELECT balance FROM accounts WHERE id = 1")
            assert cursor.fetchall() == ((100,),)
    finally:
        conn.close()


def test_a_cross_shard_commit_with_a_frozen_shard_rolls_back_everywhere(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    conn = _connect(proxy)
    try:
        with conn.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 0")
            cursor.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 1")
            with _Frozen(shards["s1"]), pytest.raises(pymysql.err.MySQLError) as info:
                cursor.execute("COMMIT")
            assert "s1" in str(info.value)
    finally:
        conn.close()

    def settled() -> bool:
        rows = [
            shards["s0"].execute(f"SELECT balance FROM {SCHEMA}.accounts WHERE id = 0"),
            shards["s1"].execute(f"SELECT balance FROM {SCHEMA}.accounts WHERE id = 1"),
        ]
        prepared = sum(len(s.execute("XA RECOVER")) for s in shards.servers)
        return prepared == 0 and rows in ([[(100,)], [(100,)]], [[(90,)], [(110,)]])

    _wait_until(settled, "both shards agree and no branch is in doubt")
    s0 = shards["s0"].execute(f"SELECT balance FROM {SCHEMA}.accounts WHERE id = 0")
    s1 = shards["s1"].execute(f"SELECT balance FROM {SCHEMA}.accounts WHERE id = 1")
    assert s0 == [(100,)] and s1 == [(100,)], "a failed COMMIT must not have committed"
    assert proxy.is_running()
