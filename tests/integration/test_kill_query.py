"""KILL QUERY and KILL of a proxy session stop what it runs on the shards, as on MariaDB.

A session runs a long statement; another session KILLs it by the id the first
one's CONNECTION_ID() gave. Directly on MariaDB and through the proxy, the
statement ends long before its own length with the same outcome, and after
KILL QUERY the session goes on, after KILL its connection is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

SCHEMA = "xp_kill"
LONG = 60  # seconds the statement would run if nothing stopped it


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for server in cluster.servers:
        server.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    config = proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}])
    process = ProxyProcess(config, tmp_path_factory.mktemp("kill"), name="kill")
    process.start()
    yield process
    process.stop()


def _direct(cluster: LocalCluster) -> Callable[[], pymysql.Connection]:
    return lambda: cluster["s0"].connect(SCHEMA, read_timeout=LONG * 2)


def _proxied(proxy: ProxyProcess) -> Callable[[], pymysql.Connection]:
    return lambda: pymysql.connect(
        host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
        database=SCHEMA, autocommit=True, read_timeout=LONG * 2,
    )  # fmt: skip


def _killed_run(connect: Callable[[], pymysql.Connection], verb: str) -> dict[str, Any]:
    """Runs SELECT SLEEP(LONG) in one session and KILLs it from another once it runs."""
    victim = connect()
    with victim.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        victim_id = cursor.fetchall()[0][0]
    outcome: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            with victim.cursor() as cursor:
                cursor.execute(f"SELECT SLEEP({LONG})")
                outcome["result"] = ("rows", cursor.fetchall())
        except pymysql.MySQLError as exc:
            outcome["result"] = ("error", exc.args[0])
        outcome["took"] = time.monotonic() - start

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)  # let the statement start (if it has not, the KILL below is retried)
    killer = connect()
    try:
        deadline = time.monotonic() + LONG / 2
        while worker.is_alive() and time.monotonic() < deadline:
            with killer.cursor() as cursor:
                cursor.execute(f"{verb} {victim_id}")
            worker.join(2.0)
    finally:
        killer.close()
    worker.join(LONG * 2)
    try:
        with victim.cursor() as cursor:
            cursor.execute("SELECT 1")
            outcome["after"] = "usable"
    except pymysql.MySQLError:
        outcome["after"] = "gone"
    finally:
        victim.close()
    return outcome


@pytest.mark.parametrize("verb", ["KILL QUERY", "KILL"])
def test_kill_stops_the_sessions_statement_as_on_mariadb(
    cluster: LocalCluster, proxy: ProxyProcess, verb: str
) -> None:
    direct = _killed_run(_direct(cluster), verb)
    proxied = _killed_run(_proxied(proxy), verb)
    assert direct["took"] < LONG and proxied["took"] < LONG, (direct, proxied)
    assert proxied["after"] == direct["after"]
    if verb == "KILL QUERY":
        assert proxied["result"] == direct["result"]
    # nothing of the statement is left running on the shard
    deadline = time.monotonic() + 30
    while cluster["s0"].execute(
        f"SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP({LONG})'"
    ):
        assert time.monotonic() < deadline, "the statement still runs on the shard"
        time.sleep(0.2)
