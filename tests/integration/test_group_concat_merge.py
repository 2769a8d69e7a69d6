"""GROUP_CONCAT over several shards: the same string as one MariaDB with the same data, or refused.

Schema ``gcat`` is hash-sharded over s0 and s1; ``gcat_direct`` on s2 holds the
same rows unsharded. A GROUP_CONCAT ordered by its own column has one answer
on one server (ties are equal values), so the proxy joins the shards' pieces
in that order: with and without GROUP BY, DISTINCT, SEPARATOR, DESC, NULLs,
alongside other aggregates. Every other GROUP_CONCAT is computed by one shard over a
copy of the table; a result that reaches group_concat_max_len is refused (MariaDB
would cut it and warn).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mysql.connector
import pymysql
import pytest

from tests.support.proxied import (
    drop_databases,
    module_proxy,
    proxied_and_direct,
    recreate_database,
)
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

SCHEMA, DIRECT = "gcat", "gcat_direct"
DDL = (
    "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, g INT NULL, n INT NULL, "
    "s VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, "
    "u VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL)"
)
ROWS = [
    (i, i % 4 if i % 7 else None, (i * 37) % 11 if i % 5 else None, f"w{(i * 13) % 9}", "u")
    for i in range(1, 121)
]
REFUSED = 1235
EXACT = [
    "SELECT GROUP_CONCAT(n ORDER BY n) FROM t",
    "SELECT GROUP_CONCAT(n ORDER BY n DESC SEPARATOR '; ') AS c FROM t",
    "SELECT GROUP_CONCAT(DISTINCT n ORDER BY n) FROM t",
    "SELECT GROUP_CONCAT(DISTINCT s ORDER BY s DESC SEPARATOR '') FROM t",
    "SELECT g, GROUP_CONCAT(n ORDER BY n) FROM t GROUP BY g",
    "SELECT g, GROUP_CONCAT(DISTINCT n ORDER BY n SEPARATOR '|'), COUNT(*), SUM(n), MAX(s) "
    "FROM t GROUP BY g ORDER BY g DESC",
    "SELECT g, GROUP_CONCAT(s ORDER BY s) AS c, AVG(n) FROM t WHERE id > 30 GROUP BY g",
    "SELECT GROUP_CONCAT(n ORDER BY n) FROM t WHERE id < 0",
    "SELECT g, GROUP_CONCAT(n ORDER BY n) FROM t WHERE n IS NULL GROUP BY g",
    "SELECT g, GROUP_CONCAT(DISTINCT s ORDER BY s) AS c FROM t GROUP BY g ORDER BY g DESC LIMIT 2",
]
NEEDS_ORDER = [
    "SELECT GROUP_CONCAT(n) FROM t",
    "SELECT g, GROUP_CONCAT(n SEPARATOR '-') FROM t GROUP BY g",
    "SELECT GROUP_CONCAT(n ORDER BY s) FROM t",
    "SELECT GROUP_CONCAT(n, s ORDER BY n) FROM t",
]


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    literals = [["NULL" if v is None else repr(v) for v in r] for r in ROWS]
    values = ",".join(f"({','.join(r)})" for r in literals)
    drop_databases(cluster, [DIRECT])
    recreate_database(cluster.servers, SCHEMA, [DDL], charset="utf8mb4")
    recreate_database([cluster.servers[2]], DIRECT, [DDL, f"INSERT INTO t VALUES {values}"],
                      charset="utf8mb4")  # fmt: skip
    table = {"name": "t", "shard_key": "id", "algorithm": "hash", "shards": ["s0", "s1"]}
    config = proxy_config(
        cluster, schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": [table]}]
    )
    with module_proxy(
        config, tmp_path_factory, "gcat", cleanup=lambda: drop_databases(cluster, [SCHEMA, DIRECT])
    ) as process:
        yield process


@pytest.fixture(scope="module")
def pair(proxy: ProxyProcess, cluster: LocalCluster) -> Iterator[tuple[Any, Any]]:
    with proxied_and_direct(proxy, SCHEMA, cluster.servers[2], DIRECT, charset="utf8mb4") as pair:
        values = ",".join(["(%s,%s,%s,%s,%s)"] * len(ROWS))
        with pair[0].cursor() as cur:
            cur.execute(f"INSERT INTO t VALUES {values}", [v for r in ROWS for v in r])
        yield pair


def answer(conn: Any, sql: str) -> tuple[object, ...]:
    """(column names and types, rows in order, warnings) or ('error', code)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            described = [(d[0], d[1], d[3]) for d in cur.description]
            rows = cur.fetchall()
            cur.execute("SHOW WARNINGS")
            return described, rows, cur.fetchall()
    except pymysql.MySQLError as exc:
        return "error", exc.args[0]


def test_rows_are_spread_over_both_shards(pair: tuple[Any, Any], cluster: LocalCluster) -> None:
    counts = [int(s.execute(f"SELECT COUNT(*) FROM {SCHEMA}.t")[0][0]) for s in cluster.servers[:2]]
    assert sum(counts) == len(ROWS) and min(counts) > 0


@pytest.mark.parametrize("sql", EXACT)
def test_group_concat_ordered_by_its_column_matches_one_database(
    pair: tuple[Any, Any], sql: str
) -> None:
    via, direct = pair
    got = answer(via, sql)
    assert got[0] != "error", got
    unordered = "GROUP BY" in sql and "ORDER BY g" not in sql
    expected = answer(direct, sql)
    if unordered:  # group order is not fixed by the statement
        got, expected = (got[0], sorted(got[1], key=repr), got[2]), (
            expected[0], sorted(expected[1], key=repr), expected[2],
        )  # fmt: skip
    assert got == expected, sql


@pytest.mark.parametrize("sql", EXACT[:2] + EXACT[5:6])
def test_group_concat_merges_the_same_as_a_prepared_statement(
    pair: tuple[Any, Any], proxy: ProxyProcess, cluster: LocalCluster, sql: str
) -> None:
    oracle = cluster.servers[2]
    sides = [
        dict(host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
             database=SCHEMA),
        dict(host=oracle.host, port=oracle.port, user="root", password="", database=DIRECT),
    ]  # fmt: skip
    answers = []
    for params in sides:
        conn = mysql.connector.connect(autocommit=True, use_pure=True, **params)
        try:
            cur = conn.cursor(prepared=True)
            cur.execute(sql)
            answers.append(([(d[0], d[1]) for d in cur.description], cur.fetchall()))
            cur.close()
        finally:
            conn.close()
    assert answers[0] == answers[1], sql


@pytest.mark.parametrize("sql", NEEDS_ORDER)
def test_group_concat_without_a_fixed_order_is_concatenated_by_one_shard_over_a_copy(
    pair: tuple[Any, Any], sql: str
) -> None:
    """Its order is the server's plan's, on one MariaDB too: the pieces are the same."""
    via, direct = pair
    got, expected = answer(via, sql), answer(direct, sql)
    assert got[0] != "error", got

    def pieces(result: tuple) -> list:
        return sorted(
            (repr(row[:-1]), sorted(str(row[-1]).replace("-", ",").split(","))) for row in result[1]
        )

    assert (got[0], pieces(got), got[2]) == (expected[0], pieces(expected), expected[2]), sql


def test_group_concat_of_a_collation_the_merge_does_not_model_is_answered_over_a_copy(
    pair: tuple[Any, Any],
) -> None:
    via, direct = pair
    sql = "SELECT GROUP_CONCAT(u ORDER BY u) FROM t"
    assert answer(via, sql) == answer(direct, sql)


def test_a_result_that_reaches_group_concat_max_len_is_refused_not_cut(
    pair: tuple[Any, Any],
) -> None:
    via, direct = pair
    sql = "SELECT g, GROUP_CONCAT(s ORDER BY s) FROM t GROUP BY g ORDER BY g"
    short = "SELECT g, GROUP_CONCAT(DISTINCT g ORDER BY g) FROM t GROUP BY g ORDER BY g"
    for conn in pair:
        with conn.cursor() as cur:
            cur.execute("SET SESSION group_concat_max_len = 40")
    try:
        cut = answer(direct, sql)
        assert any(w[1] == 1260 for w in cut[2])  # one server cuts and warns
        got = answer(via, sql)
        assert got == ("error", REFUSED)
        assert answer(via, short) == answer(direct, short)  # short results still merge
    finally:
        for conn in pair:
            with conn.cursor() as cur:
                cur.execute("SET SESSION group_concat_max_len = DEFAULT")
