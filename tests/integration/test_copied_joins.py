"""Joins of sharded tables without their shard keys: the same answer as one MariaDB.

Schema ``cjoin`` holds ``a`` and ``b``, each sharded by its own key over s0 and s1;
``cjoin_direct`` on s2 holds the same rows unsharded. A join on other columns reads
b whole, copies it into a temporary table of b's definition on each shard of the
join, and lets each shard join its own rows of a with all of b. Every answer is
compared with the direct database: rows, column metadata (org_table included),
exact values of every type the copy writes back (FLOAT, BIT, TIMESTAMP, latin1,
binary, ENUM, a generated column). The copies never outlive their statement: the
pooled connections read the real tables afterwards, inside transactions too.
What cannot be copied exactly is refused and leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mysql.connector
import pymysql
import pytest
from pymysql.constants import CLIENT, COMMAND

from tests.support.proxied import (
    connect_proxy,
    drop_databases,
    module_proxy,
    proxied_and_direct,
    recreate_database,
)
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

SCHEMA, DIRECT = "cjoin", "cjoin_direct"
REFUSED = 1235
DDL = [
    "CREATE TABLE a (id INT NOT NULL PRIMARY KEY, ref VARCHAR(20) COLLATE utf8mb4_unicode_ci NULL, "
    "n INT NULL, "
    "code INT NULL) ENGINE=InnoDB",
    "CREATE TABLE b (id INT NOT NULL PRIMARY KEY, "
    "code VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL, "
    "f FLOAT NULL, bits BIT(5) NULL, ts TIMESTAMP(6) NULL DEFAULT NULL, d DATETIME NULL, "
    "l VARCHAR(10) CHARACTER SET latin1 NULL, bin VARBINARY(8) NULL, e ENUM('x','y') NULL, "
    "total DECIMAL(10,2) NULL, g INT GENERATED ALWAYS AS (id * 2) VIRTUAL, "
    "KEY (code)) ENGINE=InnoDB",
    "CREATE TABLE u (id INT NOT NULL PRIMARY KEY, code INT NOT NULL, UNIQUE KEY (code))",
    "CREATE TABLE big (id INT NOT NULL PRIMARY KEY, body MEDIUMTEXT NOT NULL)",
    "CREATE TABLE ftx (id INT NOT NULL PRIMARY KEY, body TEXT NOT NULL, FULLTEXT (body))",
    "CREATE TABLE mid (id INT NOT NULL PRIMARY KEY, v INT NOT NULL)",
]
CODES = ("José", "jose", "Straße", "strasse", "x", "X ", None, "K\u0131ra", "kira", "")
A_ROWS = [
    (i, CODES[(i * 7) % len(CODES)], (i * 13) % 9 if i % 6 else None, i % 5) for i in range(1, 61)
]
B_ROWS = [
    (
        i,
        CODES[i % len(CODES)],
        [16777217.0, 0.1, -3.25, None][i % 4],
        i % 32,
        [f"2024-03-31 0{i % 4}:30:00.{i:06d}", None, "2024-10-27 02:30:00"][i % 3],
        f"2024-01-{1 + i % 28:02d} 12:00:00",
        ["Grüße", "é", None][i % 3],
        bytes([i, 0, 255, 10]),
        ["x", "y", None][i % 3],
        f"{i * 1.25:.2f}",
    )
    for i in range(1, 31)
]
B_COLUMNS = "id, code, f, bits, ts, d, l, bin, e, total"
EXACT = [
    "SELECT a.id, b.id FROM a JOIN b ON a.ref = b.code ORDER BY a.id, b.id",
    "SELECT a.id, b.code FROM a JOIN b ON a.n = b.id WHERE a.id > 10 ORDER BY a.id",
    "SELECT a.id, b.id FROM a LEFT JOIN b ON a.n = b.id ORDER BY a.id LIMIT 20",
    "SELECT b.id, a.id FROM b RIGHT JOIN a ON a.code = b.id ORDER BY a.id, b.id",
    "SELECT b.code, COUNT(*), SUM(a.n) FROM a JOIN b ON a.code = b.bits GROUP BY b.code "
    "ORDER BY COUNT(*) DESC, SUM(a.n)",
    "SELECT COUNT(*) FROM a x JOIN a y ON x.n = y.code",
    "SELECT x.id, y.id FROM a x JOIN a y ON x.ref = y.ref AND x.id < y.id ORDER BY 1, 2",
    "SELECT a.id, b.* FROM a JOIN b ON a.n = b.id ORDER BY a.id",
    "SELECT * FROM a JOIN b ON a.n = b.bits ORDER BY a.id, b.id",
    "SELECT DISTINCT b.e FROM a JOIN b ON a.n = b.id ORDER BY 1",
    "SELECT a.id, b.ts, b.f, b.bits, b.l, b.bin, b.g FROM a JOIN b ON b.id = a.id + 1 "
    "WHERE a.id = 7",
]

# what the shards cannot answer in parts: one shard answers over copies of both tables
GATHERED = [
    "SELECT VARIANCE(n), STDDEV_SAMP(code), JSON_ARRAYAGG(id ORDER BY id) FROM a",
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY code ORDER BY id DESC) AS r FROM a ORDER BY id",
    "SELECT id FROM a WHERE n IN (SELECT bits FROM b WHERE e = 'x') ORDER BY id",
    "SELECT id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.id = a.n + 1) ORDER BY id",
    "SELECT d.code, d.c FROM (SELECT code, COUNT(*) AS c FROM b GROUP BY code) d "
    "ORDER BY d.c DESC, d.code LIMIT 3",
    # grouped by utf8mb4_unicode_ci ('José' = 'jose'); which spelling shows is unspecified
    "SELECT COUNT(*), MAX(id) FROM b GROUP BY code ORDER BY MAX(id)",
    "WITH t AS (SELECT n, COUNT(*) AS c FROM a GROUP BY n) SELECT * FROM t ORDER BY n",
    "SELECT n FROM a UNION SELECT COUNT(*) FROM b ORDER BY 1",
    "SELECT n FROM a INTERSECT SELECT bits FROM b ORDER BY 1",
    "SELECT id FROM a EXCEPT SELECT id FROM b ORDER BY 1",
    "SELECT (SELECT COUNT(*) FROM b) AS c, a.id FROM a ORDER BY a.id LIMIT 2",
]


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    drop_databases(cluster, [DIRECT])
    recreate_database(cluster.servers, SCHEMA, DDL, charset="utf8mb4")
    recreate_database([cluster.servers[2]], DIRECT, DDL, charset="utf8mb4")
    tables = [
        {"name": name, "shard_key": "id", "algorithm": "hash", "shards": ["s0", "s1"]}
        for name in ("a", "b", "u", "big", "ftx", "mid")
    ]
    config = proxy_config(
        cluster, schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": tables}]
    )
    with module_proxy(
        config, tmp_path_factory, "cjoin", cleanup=lambda: drop_databases(cluster, [SCHEMA, DIRECT])
    ) as process:
        yield process


@pytest.fixture(scope="module")
def pair(proxy: ProxyProcess, cluster: LocalCluster) -> Iterator[tuple[Any, Any]]:
    with proxied_and_direct(proxy, SCHEMA, cluster.servers[2], DIRECT, charset="utf8mb4") as pair:
        for conn in pair:
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+05:30'")
                cur.executemany("INSERT INTO a VALUES (%s, %s, %s, %s)", A_ROWS)
                cur.executemany(
                    f"INSERT INTO b ({B_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})", B_ROWS
                )
        yield pair


def answer(conn: Any, sql: str) -> tuple[object, ...]:
    """(column metadata but the database, rows, warnings) or ('error', code)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            fields = [
                (f.name, f.org_name, f.table_name, f.org_table, f.type_code, f.charsetnr)
                for f in (cur._result.fields if cur.description else [])
            ]
            rows = cur.fetchall()
            cur.execute("SHOW WARNINGS")
            return fields, rows, cur.fetchall()
    except pymysql.MySQLError as exc:
        return "error", exc.args[0]


def on_shards(cluster: LocalCluster, sql: str) -> list[list[tuple]]:
    return [server.execute(sql, SCHEMA) for server in cluster.servers[:2]]


def test_both_tables_are_spread_over_both_shards(
    pair: tuple[Any, Any], cluster: LocalCluster
) -> None:
    for table in ("a", "b"):
        counts = [int(rows[0][0]) for rows in on_shards(cluster, f"SELECT COUNT(*) FROM {table}")]
        assert min(counts) > 0 and sum(counts) == len(A_ROWS if table == "a" else B_ROWS)


@pytest.mark.parametrize("sql", EXACT)
def test_a_join_without_shard_keys_answers_as_one_database(pair: tuple[Any, Any], sql: str) -> None:
    via, direct = pair
    got = answer(via, sql)
    assert got[0] != "error", got
    assert got == answer(direct, sql), sql


@pytest.mark.parametrize("sql", GATHERED)
def test_a_select_the_shards_cannot_answer_in_parts_is_answered_over_copies(
    pair: tuple[Any, Any], sql: str
) -> None:
    via, direct = pair
    got = answer(via, sql)
    assert got[0] != "error", got
    assert got == answer(direct, sql), sql


def test_copies_answer_found_rows_and_prepared_statements_as_one_database(
    pair: tuple[Any, Any], proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    found = []
    for conn in pair:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT SQL_CALC_FOUND_ROWS id FROM a WHERE n IN (SELECT id FROM b) ORDER BY id "
                "LIMIT 2"
            )
            rows = cur.fetchall()
            cur.execute("SELECT FOUND_ROWS()")
            found.append((rows, cur.fetchall()))
    assert found[0] == found[1] and found[0][1][0][0] > 2
    oracle = cluster.servers[2]
    sides = [
        dict(host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
             database=SCHEMA),
        dict(host=oracle.host, port=oracle.port, user="root", password="", database=DIRECT),
    ]  # fmt: skip
    exact = "SELECT CAST(VARIANCE(n) AS DECIMAL(20, 10)), COUNT(*) FROM a WHERE n > ?"
    answers = []
    for params in sides:
        conn = mysql.connector.connect(autocommit=True, use_pure=True, **params)
        try:
            cur = conn.cursor(prepared=True)
            cur.execute(exact, (2,))
            answers.append(cur.fetchall())
            if params["port"] == proxy.port:
                # VARIANCE() prints 4 decimals of its DOUBLE: the binary value is not in the text
                with pytest.raises(mysql.connector.Error) as caught:
                    cur.execute("SELECT VARIANCE(n) FROM a WHERE n > ?", (2,))
                    cur.fetchall()
                assert caught.value.errno == REFUSED and "fewer digits" in caught.value.msg
            cur.close()
        finally:
            conn.close()
    assert answers[0] == answers[1]


def test_the_copy_is_gone_after_the_statement_and_the_tables_are_read_again(
    pair: tuple[Any, Any], proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    via, _ = pair
    join = "SELECT COUNT(*) FROM a JOIN b ON a.n = b.id"
    with via.cursor() as cur:
        cur.execute(join)
        before = cur.fetchone()
        cur.execute("INSERT INTO b (id, code) VALUES (1001, 'new'), (1002, 'new')")
        cur.execute("SELECT COUNT(*) FROM b")
        assert cur.fetchone() == (len(B_ROWS) + 2,)
        # in a transaction the copy lives on the transaction's connections: a write after
        # it reaches the table itself and commits
        cur.execute("BEGIN")
        cur.execute(join)
        assert cur.fetchone() == before
        cur.execute("UPDATE b SET code = 'newer' WHERE id IN (1001, 1002)")
        cur.execute("SELECT COUNT(*) FROM a JOIN b ON a.ref = b.code")
        cur.fetchall()
        cur.execute("DELETE FROM b WHERE id = 1002")
        cur.execute("COMMIT")
    rows = [
        r for shard in on_shards(cluster, "SELECT id, code FROM b WHERE id > 1000") for r in shard
    ]
    assert rows == [(1001, "newer")]
    # many sessions, one pool: none of them ever reads a copy in place of the table
    others = [connect_proxy(proxy, database=SCHEMA) for _ in range(4)]
    try:
        for conn in others:
            with conn.cursor() as cur:
                cur.execute(join)
                cur.execute("SELECT COUNT(*) FROM b")
                assert cur.fetchone() == (len(B_ROWS) + 1,)
    finally:
        for conn in others:
            conn.close()
    with via.cursor() as cur:
        cur.execute("DELETE FROM b WHERE id > 1000")
        with pytest.raises(pymysql.MySQLError) as caught:
            cur.execute("SELECT * FROM xaproxy_copy_1")
        assert caught.value.args[0] == 1146  # no copy is left where the proxy reads


def test_a_join_that_cannot_be_copied_exactly_is_refused_and_leaves_nothing(
    pair: tuple[Any, Any], cluster: LocalCluster
) -> None:
    via, _ = pair
    # a unique key that does not hold the shard key may repeat across shards
    for number, server in enumerate(cluster.servers[:2]):
        server.execute(f"INSERT INTO u VALUES ({number}, 5)", SCHEMA)
    with via.cursor() as cur:
        cur.execute(
            "INSERT INTO big VALUES " + ", ".join(f"({i}, REPEAT('x', 60000))" for i in range(40))
        )
    cases = [
        ("SELECT a.id FROM a JOIN u ON a.code = u.code", "unique keys"),
        ("SELECT a.id FROM a JOIN big ON a.n = big.id", "MiB"),
        ("SELECT a.id FROM a JOIN b ON a.n = b.id FOR UPDATE", "cross-shard join"),
        ("SELECT a.id FROM a JOIN ftx ON a.n = ftx.id", "FULLTEXT"),
    ]
    for sql, part in cases:
        with pytest.raises(pymysql.MySQLError) as caught, via.cursor() as cur:
            cur.execute(sql)
        assert caught.value.args[0] == REFUSED and part in caught.value.args[1], sql
    with via.cursor() as cur:
        cur.execute("START TRANSACTION READ ONLY")
        with pytest.raises(pymysql.MySQLError) as caught:
            cur.execute("SELECT COUNT(*) FROM a JOIN b ON a.n = b.id")
        assert caught.value.args[0] == REFUSED and "READ ONLY" in caught.value.args[1]
        cur.execute("SELECT COUNT(*) FROM b")  # the transaction goes on
        assert cur.fetchone() == (len(B_ROWS),)
        cur.execute("COMMIT")
        cur.execute("SELECT COUNT(*) FROM u")
        assert cur.fetchone() == (2,)


def test_a_client_gone_mid_statement_leaves_no_copy_on_any_pooled_connection(
    pair: tuple[Any, Any], proxy: ProxyProcess
) -> None:
    """Whenever the client vanishes (before, during or after the copy), every session
    after it reads the tables themselves."""
    via, _ = pair
    with via.cursor() as cur:
        cur.execute("DELETE FROM mid")
        for start in range(0, 20_000, 2_000):
            cur.execute(
                "INSERT INTO mid VALUES "
                + ", ".join(f"({i}, {i % 97})" for i in range(start, start + 2_000))
            )
    join = "SELECT COUNT(*) FROM a JOIN mid ON mid.v = a.n"
    for _ in range(3):
        gone = connect_proxy(proxy, database=SCHEMA)
        gone._execute_command(COMMAND.COM_QUERY, join)
        gone._sock.close()  # the statement was sent; nothing of its answer is read
    sessions = [connect_proxy(proxy, database=SCHEMA) for _ in range(6)]
    try:
        for conn in sessions:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*), SUM(v) FROM mid")
                assert cur.fetchone() == (20_000, sum(i % 97 for i in range(20_000)))
                cur.execute("SELECT COUNT(*) FROM b")
                assert cur.fetchone() == (len(B_ROWS),)
    finally:
        for conn in sessions:
            conn.close()


def test_copies_answer_every_spelling_as_one_database(
    pair: tuple[Any, Any], proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    """Comments, executable comments, case, SQL-level PREPARE and multi-statements reach
    the same plan: the same answer as one MariaDB, nothing left behind."""
    script = [
        "select /* why */ a.id, b.id from a join b on a.n = b.id order by 1, 2",
        "/*!40001 SELECT COUNT(*) FROM a JOIN b ON a.ref = b.code */",
        "SELECT /*!50000 VARIANCE(n) */ FROM a",
        "PREPARE s FROM 'SELECT COUNT(*) FROM a JOIN b ON a.n = b.id WHERE a.id > ?'",
        "SET @low = 10",
        "EXECUTE s USING @low",
        "DEALLOCATE PREPARE s",
    ]
    for sql in script:
        got, expected = answer(pair[0], sql), answer(pair[1], sql)
        assert got == expected, sql
    many = "SELECT COUNT(*) FROM a JOIN b ON a.n = b.id; SELECT VARIANCE(n) FROM a"
    results = []
    for params in (
        dict(host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
             database=SCHEMA),
        dict(host=cluster.servers[2].host, port=cluster.servers[2].port, user="root",
             password="", database=DIRECT),
    ):  # fmt: skip
        conn = pymysql.connect(client_flag=CLIENT.MULTI_STATEMENTS, **params)
        try:
            with conn.cursor() as cur:
                cur.execute(many)
                seen = [cur.fetchall()]
                while cur.nextset():
                    seen.append(cur.fetchall())
                results.append(seen)
        finally:
            conn.close()
    assert results[0] == results[1] and len(results[0]) == 2
    with pair[0].cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM b")
        assert cur.fetchone() == (len(B_ROWS),)
