"""Helpers for the AT-mode tests: databases on every shard, proxies in AT mode, and
direct looks at the AT bookkeeping tables (undo log, global locks, decisions)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import pymysql

from xaproxy.devkit.localshards import LocalCluster, LocalMariaDB
from xaproxy.devkit.processes import ProxyProcess, proxy_config

USER, PASSWORD = "app", "app-secret"
UNDO = "xaproxy.undo_log"
LOCKS = "xaproxy.global_locks"
DECISIONS = "xaproxy.decisions"


def create_database(cluster: LocalCluster, database: str, ddl: Iterable[str]) -> None:
    """(Re)creates `database` with the same tables on every shard."""
    statements = [f"DROP DATABASE IF EXISTS `{database}`", f"CREATE DATABASE `{database}`"]
    statements += [f"USE `{database}`", *ddl]
    for server in cluster.servers:
        server.execute("; ".join(statements))


def at_config(
    cluster: LocalCluster,
    database: str,
    *,
    proxy_id: str,
    tables: list[dict[str, Any]],
    mode: str = "at",
    **transactions: Any,
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "mode": mode,
        "lock_retry_count": 20,
        "lock_retry_interval_ms": 20,
        "recover_interval_s": 3600,  # tests trigger recovery by restarting the proxy
    }
    settings.update(transactions)
    return proxy_config(
        cluster,
        schemas=[{"name": database, "default_shard": "s0", "tables": tables}],
        proxy_id=proxy_id,
        transactions=settings,
    )


def connect(proxy: ProxyProcess, database: str, **kwargs: Any) -> pymysql.Connection:
    params: dict[str, Any] = {
        "host": proxy.host,
        "port": proxy.port,
        "user": USER,
        "password": PASSWORD,
        "database": database,
        "autocommit": True,
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    params.update(kwargs)
    return pymysql.connect(**params)


def query(conn: pymysql.Connection, sql: str, args: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def on_shard(server: LocalMariaDB, sql: str, args: Any = None) -> list[tuple]:
    """One statement on a shard directly (autocommit), bypassing the proxy."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def _like(proxy_id: str) -> str:
    return proxy_id.replace("_", "\\_") + ":%"


def undo_rows(cluster: LocalCluster, proxy_id: str) -> list[tuple[str, str, str, int]]:
    """(server, gtrid, shard column, status) of the undo rows of `proxy_id`'s transactions."""
    rows = []
    for server in cluster.servers:
        for gtrid, shard, status in on_shard(
            server,
            f"SELECT gtrid, shard, status FROM {UNDO} WHERE gtrid LIKE %s",
            (_like(proxy_id),),
        ):
            rows.append((server.name, gtrid.decode(), shard, int(status)))
    return rows


def lock_rows(cluster: LocalCluster, proxy_id: str) -> list[tuple[str, str, str]]:
    """(server, lock_key, gtrid) of the global locks held by `proxy_id`'s transactions."""
    rows = []
    for server in cluster.servers:
        for key, gtrid in on_shard(
            server, f"SELECT lock_key, gtrid FROM {LOCKS} WHERE gtrid LIKE %s", (_like(proxy_id),)
        ):
            rows.append((server.name, key.decode(), gtrid.decode()))
    return rows


def decision_rows(cluster: LocalCluster, proxy_id: str) -> list[tuple[str, str, str]]:
    """(server, gtrid, outcome) of the decision rows of `proxy_id`'s transactions."""
    rows = []
    for server in cluster.servers:
        for gtrid, outcome in on_shard(
            server,
            f"SELECT gtrid, outcome FROM {DECISIONS} WHERE gtrid LIKE %s",
            (_like(proxy_id),),
        ):
            rows.append((server.name, gtrid.decode(), outcome))
    return rows


def open_undo(cluster: LocalCluster, proxy_id: str) -> list[tuple[str, str, str, int]]:
    """Undo rows that still stand for work to do (defense rows, status 1, are markers)."""
    return [r for r in undo_rows(cluster, proxy_id) if r[3] != 1]


def wait_for(condition: Callable[[], Any], timeout: float = 15, interval: float = 0.05) -> Any:
    """Polls `condition` until it returns something truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def lock_key(database: str, table: str, *pk: object) -> str:
    """The global lock key xaproxy uses for a row: `db`.`table`:<hex of each key's text>."""
    return f"`{database}`.`{table}`:" + ",".join(str(v).encode().hex() for v in pk)


def clear_at_state(cluster: LocalCluster, prefixes: Iterable[str]) -> None:
    """Drops undo rows, global locks and decisions of these proxy ids (or gtrid prefixes)
    on every running shard: leftovers of an earlier failed run must not be compensated
    into tables that were created again since."""
    for server in cluster.servers:
        if not server.is_running():
            continue
        for prefix in prefixes:
            for table in (UNDO, LOCKS, DECISIONS):
                try:
                    on_shard(server, f"DELETE FROM {table} WHERE gtrid LIKE %s", (_like(prefix),))
                except pymysql.err.ProgrammingError:
                    pass  # the table appears with the first proxy start
