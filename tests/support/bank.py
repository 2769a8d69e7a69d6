"""A small bank on the three test shards, for the XA transaction and crash tests.

Schema ``bank`` exists on every shard (created directly, not through the proxy):

  accounts  (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)  sharded `mod` on id
  transfers (src, tid, dst, amount)                           sharded `mod` on src

With three shards, account ``id`` lives on shard ``s{id % 3}``. The helpers here
read and check the shards directly, never through the proxy, so an assertion
never depends on the component under test.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

from tests.support.proxied import connect_proxy
from xaproxy.devkit.localshards import LocalCluster, LocalMariaDB
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "bank"
USER, PASSWORD = "app", "app-secret"
SHARDS = ("s0", "s1", "s2")

ACCOUNTS_DDL = (
    "CREATE TABLE bank.accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB"
)
TRANSFERS_DDL = (
    "CREATE TABLE bank.transfers (src BIGINT NOT NULL, tid BIGINT NOT NULL, dst BIGINT NOT NULL, "
    "amount BIGINT NOT NULL, PRIMARY KEY (src, tid)) ENGINE=InnoDB"
)


def shard_of(account: int) -> str:
    return SHARDS[account % len(SHARDS)]


def schemas() -> list[dict[str, Any]]:
    """The `schemas:` section of a proxy config for the bank."""
    return [
        {
            "name": SCHEMA,
            "default_shard": "s0",
            "tables": [
                {"name": "accounts", "shard_key": "id", "algorithm": "mod", "shards": list(SHARDS)},
                {
                    "name": "transfers",
                    "shard_key": "src",
                    "algorithm": "mod",
                    "shards": list(SHARDS),
                },
            ],
        }
    ]


def bank_config(
    cluster: LocalCluster,
    *,
    proxy_id: str,
    transactions: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return proxy_config(
        cluster, schemas=schemas(), proxy_id=proxy_id, transactions=transactions, **extra
    )


# --- the shards, directly --------------------------------------------------------------


def ensure_running(cluster: LocalCluster) -> None:
    """Restarts every shard a test killed (the cluster is shared by all tests)."""
    for server in cluster.servers:
        if not server.is_running():
            server.restart()


def xa_recover(server: LocalMariaDB) -> list[tuple]:
    """XA RECOVER on one shard: (formatID, gtrid_length, bqual_length, data) rows."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("XA RECOVER")
            return list(cur.fetchall())
    finally:
        conn.close()


def in_doubt(cluster: LocalCluster) -> dict[str, list[tuple]]:
    """The prepared XA branches of every shard that has some."""
    found = {server.name: xa_recover(server) for server in cluster.servers}
    return {name: rows for name, rows in found.items() if rows}


# The proxy_ids (and foreign gtrids) the bank tests use: their branches, if a failed
# test left some behind, hold locks on the bank tables.
TEST_GTRID_PREFIXES = (
    b"pk:",
    b"sk:",
    b"px1:",
    b"px2:",
    b"xt:",
    b"xto:",
    b"dr:",
    b"soak:",
    b"foreign-",
    b"not-ours",
)


def rollback_stray_branches(cluster: LocalCluster) -> list[str]:
    """Rolls back prepared branches a failed earlier bank test left (they hold row locks)."""
    done = []
    for server in cluster.servers:
        if not server.is_running():
            continue
        for format_id, gtrid_length, bqual_length, data in xa_recover(server):
            gtrid, bqual = data[:gtrid_length], data[gtrid_length : gtrid_length + bqual_length]
            if not gtrid.startswith(TEST_GTRID_PREFIXES):
                continue
            server.execute(f"XA ROLLBACK X'{gtrid.hex()}',X'{bqual.hex()}',{format_id}")
            done.append(f"{server.name}: {gtrid!r}")
    return done


def reset_bank(cluster: LocalCluster, balances: Mapping[int, int]) -> None:
    """(Re)creates the bank tables on every shard and inserts the accounts on their shards."""
    ensure_running(cluster)
    rollback_stray_branches(cluster)
    for server in cluster.servers:
        rows = [f"({i}, {b})" for i, b in balances.items() if shard_of(i) == server.name]
        insert = f"; INSERT INTO bank.accounts VALUES {', '.join(rows)}" if rows else ""
        server.execute(
            "SET SESSION lock_wait_timeout = 20; "
            f"CREATE DATABASE IF NOT EXISTS {SCHEMA}; "
            "DROP TABLE IF EXISTS bank.accounts; DROP TABLE IF EXISTS bank.transfers; "
            f"{ACCOUNTS_DDL}; {TRANSFERS_DDL}{insert}"
        )


def balances(cluster: LocalCluster) -> dict[int, int]:
    """Every account's committed balance, read from the shards themselves."""
    result: dict[int, int] = {}
    for server in cluster.servers:
        for account, balance in server.execute("SELECT id, balance FROM bank.accounts"):
            assert shard_of(account) == server.name, f"account {account} found on {server.name}"
            result[int(account)] = int(balance)
    return result


def transfers(cluster: LocalCluster) -> dict[int, tuple[int, int, int]]:
    """tid -> (src, dst, amount) of every committed transfer row."""
    result: dict[int, tuple[int, int, int]] = {}
    for server in cluster.servers:
        for src, tid, dst, amount in server.execute(
            "SELECT src, tid, dst, amount FROM bank.transfers"
        ):
            assert shard_of(src) == server.name, f"transfer {tid} of {src} found on {server.name}"
            assert tid not in result, f"transfer {tid} recorded twice"
            result[int(tid)] = (int(src), int(dst), int(amount))
    return result


def decision_rows(server: LocalMariaDB, proxy_id: str | None = None) -> list[tuple]:
    """(gtrid, outcome, proxy_id) rows of xaproxy.decisions on one shard."""
    sql = "SELECT gtrid, outcome, proxy_id FROM xaproxy.decisions"
    if proxy_id is not None:
        sql += f" WHERE gtrid LIKE '{proxy_id}:%'"
    try:
        return [(bytes(g).decode(), o, p) for g, o, p in server.execute(sql)]
    except pymysql.err.ProgrammingError:  # no decision table yet
        return []


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Polls `check` until it returns something truthy; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        with contextlib.suppress(pymysql.err.OperationalError):
            last = check()
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


def wait_no_in_doubt(
    cluster: LocalCluster, timeout: float, proxy: ProxyProcess | None = None
) -> None:
    """Waits until XA RECOVER is empty on every shard."""
    left: dict[str, list[tuple]] = {}

    def clean() -> bool:
        nonlocal left
        left = in_doubt(cluster)
        return not left

    try:
        wait_until(clean, timeout, "XA RECOVER to be empty on every shard")
    except AssertionError as exc:
        tail = f"\nproxy log tail:\n{proxy.log_tail(60)}" if proxy is not None else ""
        raise AssertionError(f"{exc}; still in doubt: {left}{tail}") from None


# --- the proxy ---------------------------------------------------------------------------


def connect(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    kwargs.setdefault("write_timeout", 60)
    return connect_proxy(
        proxy, **({"database": SCHEMA, "user": USER, "password": PASSWORD} | kwargs)
    )


def run(conn: pymysql.Connection, sql: str, args: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []


def run_all(conn: pymysql.Connection, statements: Iterable[str]) -> None:
    for sql in statements:
        run(conn, sql)


def in_transaction(conn: pymysql.Connection) -> bool:
    """The IN_TRANS status flag, fresh (an error packet carries no status flags).

    A COM_PING's OK packet carries the flags; @@in_transaction must agree.
    """
    ((value,),) = run(conn, "SELECT @@in_transaction")
    conn.ping(reconnect=False)
    flag = bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)
    assert flag == bool(int(value)), f"IN_TRANS flag {flag} but @@in_transaction = {value}"
    return flag


def warnings(conn: pymysql.Connection) -> list[tuple]:
    return run(conn, "SHOW WARNINGS")


def is_connection_lost(exc: BaseException) -> bool:
    """True for the client-side errors of a connection that died (2006, 2013, 2003...)."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    if isinstance(exc, pymysql.err.OperationalError):
        return exc.args[0] in (2003, 2006, 2013, 2014, 2055)
    return False
