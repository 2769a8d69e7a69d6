"""Values the proxy answers itself carry MariaDB's column definitions, not only its values.

`SELECT @@in_transaction`, `LAST_INSERT_ID()`, `SELECT 1` and the like never reach a
shard, so the proxy makes up their column definitions. Clients read them: Connector/J
returns BigInteger for BIGINT UNSIGNED, the mariadb CLI widens a nullable column to fit
NULL, drivers decode DECIMAL as a decimal. Each statement here runs directly on shard
s0 and through the proxy; type, length, flags, decimals and collation must be equal
(and the values, except the account functions, whose users differ by design).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.support import bank
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

STATEMENTS = [
    "SELECT 1",
    "SELECT 0, 00012, 999999999, 1000000000, 9223372036854775807, 9223372036854775808",
    "SELECT 1.5, .5, 123.450, NULL",
    "SELECT 'abc', 'x' AS y, ''",
    "SELECT @@autocommit, @@session.autocommit, @@in_transaction, @@warning_count",
    "SELECT @@error_count, @@last_insert_id, @@identity",
    "SELECT LAST_INSERT_ID(), last_insert_id() AS l",
    "SELECT DATABASE(), SCHEMA()",
    "SELECT @@autocommit LIMIT 0",
    "SHOW COUNT(*) WARNINGS",
    "SHOW COUNT(*) ERRORS",
]
# values differ by design (the proxy user, the proxy's session id): columns only
COLUMNS_ONLY = [
    "SELECT USER(), CURRENT_USER(), SESSION_USER(), SYSTEM_USER()",
    "SELECT CONNECTION_ID()",
]


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    bank.ensure_running(cluster)
    bank.reset_bank(cluster, {0: 100})
    config = bank.bank_config(cluster, proxy_id="local-answers")
    process = ProxyProcess(config, tmp_path_factory.mktemp("local-answers"), name="local")
    process.start()
    yield process
    process.stop()


def _described(conn: pymysql.Connection, sql: str) -> tuple[list[tuple], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = list(cur.fetchall())
        fields = cur._result.fields if cur._result is not None else []
    columns = [(f.name, f.type_code, f.length, f.flags, f.scale, f.charsetnr) for f in fields]
    return columns, rows


def _pair(
    cluster: LocalCluster, proxy: ProxyProcess, **options: Any
) -> tuple[pymysql.Connection, pymysql.Connection]:
    direct = cluster["s0"].connect(database=bank.SCHEMA, **options)
    proxied = bank.connect(proxy, **options)
    return direct, proxied


def _compare(direct: pymysql.Connection, proxied: pymysql.Connection, sql: str) -> None:
    assert _described(proxied, sql) == _described(direct, sql), sql


@pytest.mark.parametrize("sql", STATEMENTS)
def test_a_local_answer_has_mariadbs_columns_and_values(
    cluster: LocalCluster, proxy: ProxyProcess, sql: str
) -> None:
    direct, proxied = _pair(cluster, proxy)
    try:
        _compare(direct, proxied, sql)
    finally:
        direct.close()
        proxied.close()


@pytest.mark.parametrize("sql", COLUMNS_ONLY)
def test_account_functions_and_the_connection_id_have_mariadbs_columns(
    cluster: LocalCluster, proxy: ProxyProcess, sql: str
) -> None:
    direct, proxied = _pair(cluster, proxy)
    try:
        assert _described(proxied, sql)[0] == _described(direct, sql)[0]
    finally:
        direct.close()
        proxied.close()


@pytest.mark.parametrize(
    "options, setup",
    [
        ({"charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}, None),
        ({"charset": "latin1"}, None),
        ({}, "SET NAMES latin1"),
        ({}, "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"),
        ({}, "SET collation_connection = utf8mb3_general_ci"),
        ({"charset": "latin1"}, "SET NAMES utf8mb4"),
    ],
    ids=["handshake-unicode_ci", "handshake-latin1", "set-names-latin1", "set-names-collate",
         "set-collation-connection", "back-to-utf8mb4"],
)  # fmt: skip
def test_local_strings_are_described_in_the_connections_collation(
    cluster: LocalCluster, proxy: ProxyProcess, options: dict[str, Any], setup: str | None
) -> None:
    direct, proxied = _pair(cluster, proxy, **options)
    try:
        if setup:
            bank.run(direct, setup)
            bank.run(proxied, setup)
        _compare(direct, proxied, "SELECT 'abc', DATABASE()")
        assert _described(proxied, "SELECT USER()")[0] == _described(direct, "SELECT USER()")[0]
    finally:
        direct.close()
        proxied.close()


def test_set_wait_timeout_is_the_sessions_and_validated_as_mariadb_does(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    """The proxy keeps the session's timeouts itself (it closes idle sessions) and leaves
    the server's on the shard connection, which a short client timeout would otherwise
    have the shard close while it waits in the pool; the SET is still validated by the
    shard, with MariaDB's warnings."""
    direct, proxied = _pair(cluster, proxy)
    try:
        for sql in ("SET wait_timeout = 0", "SET SESSION wait_timeout = 31536001, sql_mode = ''"):
            for conn in (direct, proxied):
                bank.run(conn, sql)
            assert bank.warnings(proxied) == bank.warnings(direct), sql
            for read in ("SELECT @@wait_timeout", "SELECT @@session.wait_timeout AS w"):
                _compare(direct, proxied, read)
        for conn in (direct, proxied):
            bank.run(conn, "SET interactive_timeout = 77")
        _compare(direct, proxied, "SELECT @@interactive_timeout, @@wait_timeout")
    finally:
        direct.close()
        proxied.close()
