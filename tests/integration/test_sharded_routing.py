"""Focused examples of sharded routing, each checked on the shards themselves.

Schema ``routing`` holds one table per algorithm (mod over s0-s2, hash over
s0-s1, range and list), a second mod table outside any binding group, a
broadcast table, tables whose ids the proxy generates, a table created through
the proxy by DDL, and one big table for a 50 000-row streamed fan-out. The
examples below cover placement, splitting, refusals with their MySQL errors,
DDL and CREATE DATABASE fan-out, AUTO_INCREMENT, prepared statements, and the
merge bugs the differential test (test_sharded_differential.py) found.
"""

from __future__ import annotations

import datetime
import uuid
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import mysql.connector
import pymysql
import pymysql.cursors
import pytest

from tests.support.proxied import connect_proxy, drop_databases, module_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "routing"
NEW_SCHEMA = "routing_created"
USER, PASSWORD = "app", "app-secret"
SHARDS = ("s0", "s1", "s2")
BIG_ROWS = 50_000

TABLES: list[dict[str, Any]] = [
    {"name": "r_mod", "shard_key": "k", "algorithm": "mod"},
    {"name": "r_other", "shard_key": "k", "algorithm": "mod"},
    {"name": "r_hash", "shard_key": "k", "algorithm": "hash", "shards": ["s0", "s1"]},
    {
        "name": "r_range",
        "shard_key": "k",
        "algorithm": "range",
        "ranges": [{"shard": "s0", "below": 100}, {"shard": "s1", "below": 200}, {"shard": "s2"}],
    },
    {
        "name": "r_list",
        "shard_key": "k",
        "algorithm": "list",
        "values": {"s0": [1, 2], "s1": [3, 4], "s2": [5, 6]},
    },
    {"name": "r_bcast", "broadcast": True},
    {"name": "r_auto", "shard_key": "k", "algorithm": "mod", "auto_increment": "id"},
    {"name": "r_autokey", "shard_key": "id", "algorithm": "mod", "auto_increment": "id"},
    {"name": "r_ddl", "shard_key": "k", "algorithm": "hash", "shards": ["s0", "s1"]},
    {"name": "r_big", "shard_key": "k", "algorithm": "mod"},
    *(
        {"name": name, "shard_key": "k", "algorithm": "hash", "key_type": "string"}
        for name in ("r_hstr_general", "r_hstr_unicode")
    ),
]
ROW_DDL = (
    "CREATE TABLE {name} (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, name VARCHAR(20) NOT NULL, "
    "n INT NULL, amount DECIMAL(10,2) NULL, at DATETIME NULL) ENGINE=InnoDB"
)
SETUP_DDL = [
    *(ROW_DDL.format(name=t) for t in ("r_mod", "r_other", "r_hash", "r_range", "r_list")),
    "CREATE TABLE r_bcast (code INT NOT NULL PRIMARY KEY, label VARCHAR(20) NOT NULL)",
    "CREATE TABLE r_auto (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, "
    "name VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE r_autokey (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(20) NOT NULL)",
    "CREATE TABLE r_big (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, v INT NOT NULL, "
    "label VARCHAR(12) NOT NULL) ENGINE=InnoDB",
    *(
        f"CREATE TABLE r_hstr_{c} (id INT NOT NULL PRIMARY KEY, "
        f"k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_{c}_ci NOT NULL) ENGINE=InnoDB"
        for c in ("general", "unicode")
    ),
]


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for server in cluster.servers:
        server.execute(
            f"DROP DATABASE IF EXISTS {SCHEMA}; DROP DATABASE IF EXISTS {NEW_SCHEMA}; "
            f"CREATE DATABASE {SCHEMA}"
        )
        server.execute(";".join(SETUP_DDL), SCHEMA)
    config = proxy_config(
        cluster,
        schemas=[
            {"name": SCHEMA, "default_shard": "s0", "tables": TABLES},
            {"name": NEW_SCHEMA, "default_shard": "s1"},
        ],
    )
    with module_proxy(
        config,
        tmp_path_factory,
        "routing",
        cleanup=lambda: drop_databases(cluster, [SCHEMA, NEW_SCHEMA]),
    ) as process:
        yield process


@pytest.fixture(autouse=True)
def proxy_survives(proxy: ProxyProcess) -> Iterator[None]:
    yield
    assert proxy.is_running(), f"the proxy died; log tail:\n{proxy.log_tail()}"


def connect(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    kwargs.setdefault("read_timeout", 120)
    return connect_proxy(
        proxy, **({"database": SCHEMA, "user": USER, "password": PASSWORD} | kwargs)
    )


def connect_prepared(proxy: ProxyProcess, use_pure: bool = True) -> Any:
    """Connector/Python, whose cursor(prepared=True) uses the binary protocol."""
    return mysql.connector.connect(
        host=proxy.host, port=proxy.port, user=USER, password=PASSWORD, database=SCHEMA,
        autocommit=True, use_pure=use_pure,
    )  # fmt: skip


@pytest.fixture
def conn(proxy: ProxyProcess) -> Iterator[pymysql.Connection]:
    connection = connect(proxy)
    yield connection
    connection.close()


def query(conn: pymysql.Connection, sql: str, args: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []


def execute(conn: pymysql.Connection, sql: str) -> int:
    with conn.cursor() as cur:
        return cur.execute(sql)


def error_of(action: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises((pymysql.MySQLError, mysql.connector.Error)) as info:
        action()
    exc = info.value
    if isinstance(exc, mysql.connector.Error):
        return exc.errno, exc.msg
    return exc.args[0], exc.args[1]


def on_shards(cluster: LocalCluster, sql: str, database: str = SCHEMA) -> dict[str, list[tuple]]:
    """The rows `sql` returns on each shard, read directly."""
    return {server.name: server.execute(sql, database) for server in cluster.servers}


def ids_by_shard(cluster: LocalCluster, table: str) -> dict[str, set[int]]:
    return {
        name: {row[0] for row in rows}
        for name, rows in on_shards(cluster, f"SELECT id FROM {table}").items()
    }


def clear(conn: pymysql.Connection, *tables: str) -> None:
    for table in tables:
        execute(conn, f"DELETE FROM {table}")


# --- placement ----------------------------------------------------------------------------


def test_mod_places_each_row_on_key_modulo_shard_count(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_mod")
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name) VALUES (1, 0, 'a'), (2, 1, 'b'), (3, 2, 'c'), "
        "(4, 3, 'd'), (5, 7, 'e'), (6, -1, 'f'), (7, 11, 'g')",
    )
    # Python's modulo: -1 % 3 == 2
    assert ids_by_shard(cluster, "r_mod") == {"s0": {1, 4}, "s1": {2, 5}, "s2": {3, 6, 7}}
    assert query(conn, "SELECT id FROM r_mod WHERE k = 7") == [(5,)]
    assert query(conn, "SELECT id FROM r_mod WHERE k = '11'") == [(7,)]


def test_hash_places_rows_by_crc32_of_the_key_text(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_hash")
    keys = list(range(20))
    execute(
        conn,
        "INSERT INTO r_hash (id, k, name) VALUES " + ", ".join(f"({k}, {k}, 'h')" for k in keys),
    )
    expected = {"s0": set(), "s1": set(), "s2": set()}
    for k in keys:
        expected[("s0", "s1")[zlib.crc32(str(k).encode()) % 2]].add(k)
    assert ids_by_shard(cluster, "r_hash") == expected
    assert expected["s0"] and expected["s1"]  # the keys really spread
    for k in (3, 17):
        assert query(conn, f"SELECT id FROM r_hash WHERE k = {k}") == [(k,)]
        # the same number written differently finds the same row (the hash of '7.0'
        # is not the hash of '7': such literals must not narrow to one shard)
        assert query(conn, f"SELECT id FROM r_hash WHERE k = '{k}.0'") == [(k,)]
        assert query(conn, f"SELECT id FROM r_hash WHERE k = {k}.00") == [(k,)]
        assert query(conn, f"SELECT id FROM r_hash WHERE k IN ('0{k}', '{k}e0')") == [(k,)]


def test_range_places_rows_below_each_bound(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_range")
    execute(
        conn,
        "INSERT INTO r_range (id, k, name) VALUES (1, -5, 'a'), (2, 99, 'b'), (3, 100, 'c'), "
        "(4, 199, 'd'), (5, 200, 'e'), (6, 100000, 'f')",
    )
    assert ids_by_shard(cluster, "r_range") == {"s0": {1, 2}, "s1": {3, 4}, "s2": {5, 6}}
    assert query(conn, "SELECT id FROM r_range WHERE k BETWEEN 99 AND 100 ORDER BY id") == [
        (2,),
        (3,),
    ]
    assert query(conn, "SELECT id FROM r_range WHERE k >= 199 AND k < 200") == [(4,)]
    assert query(conn, "SELECT id FROM r_range WHERE 150 < k ORDER BY id") == [(4,), (5,), (6,)]


def test_list_places_rows_by_value_and_refuses_unlisted_values(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_list")
    execute(
        conn,
        "INSERT INTO r_list (id, k, name) VALUES (1, 1, 'a'), (2, 3, 'b'), (3, 6, 'c'), "
        "(4, 2, 'd')",
    )
    assert ids_by_shard(cluster, "r_list") == {"s0": {1, 4}, "s1": {2}, "s2": {3}}
    code, message = error_of(
        lambda: execute(conn, "INSERT INTO r_list (id, k, name) VALUES (9, 9, 'x')")
    )
    assert code == 1526 and "9" in message
    assert query(conn, "SELECT id FROM r_list WHERE k IN (3, 6) ORDER BY id") == [(2,), (3,)]


def test_multi_row_insert_is_split_per_shard(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_mod")
    rows = [(i, i, f"n{i}") for i in range(1, 31)]
    affected = execute(
        conn,
        "INSERT INTO r_mod (id, k, name) VALUES "
        + ", ".join(f"({i}, {k}, '{n}')" for i, k, n in rows),
    )
    assert affected == 30
    placed = ids_by_shard(cluster, "r_mod")
    for index, shard in enumerate(SHARDS):
        assert placed[shard] == {i for i in range(1, 31) if i % 3 == index}
    # one statement is atomic across the shards: a failure on one shard undoes the others
    code, _ = error_of(
        lambda: execute(
            conn,
            "INSERT INTO r_mod (id, k, name) VALUES (100, 0, 'x'), (101, 1, 'y'), (3, 3, 'dup')",
        )
    )
    assert code == 1062
    assert query(conn, "SELECT COUNT(*) FROM r_mod") == [(30,)]


def test_broadcast_write_goes_to_every_shard_and_counts_rows_once(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_bcast")
    assert (
        execute(
            conn, "INSERT INTO r_bcast (code, label) VALUES (1, 'one'), (2, 'two'), (3, 'three')"
        )
        == 3
    )
    assert execute(conn, "UPDATE r_bcast SET label = UPPER(label) WHERE code < 3") == 2
    assert execute(conn, "DELETE FROM r_bcast WHERE code = 3") == 1
    copies = on_shards(cluster, "SELECT code, label FROM r_bcast ORDER BY code")
    assert copies == {s: [(1, "ONE"), (2, "TWO")] for s in SHARDS}


def test_non_deterministic_broadcast_writes_are_refused_or_evaluated_once_and_copies_stay_equal(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_bcast")
    execute(conn, "INSERT INTO r_bcast (code, label) VALUES (1, 'one')")
    for sql, name in (
        ("UPDATE r_bcast SET label = UUID()", "UUID()"),
        ("UPDATE r_bcast SET label = RAND()", "RAND()"),
        ("UPDATE r_bcast SET label = UUID_SHORT()", "UUID_SHORT()"),
        ("DELETE FROM r_bcast WHERE RAND() < 0.5", "RAND()"),
    ):
        code, message = error_of(lambda sql=sql: execute(conn, sql))
        assert (code, name in message) == (1235, True), message
    copies = on_shards(cluster, "SELECT code, label FROM r_bcast ORDER BY code")
    assert copies == {s: [(1, "one")] for s in SHARDS}
    # in an INSERT's values the proxy evaluates it once, and the clock's in any write
    execute(conn, "INSERT INTO r_bcast (code, label) VALUES (2, SYSDATE())")
    execute(conn, "UPDATE r_bcast SET label = NOW() WHERE code = 1")
    execute(conn, "UPDATE r_bcast SET label = CURRENT_TIMESTAMP WHERE code = 2")
    copies = on_shards(cluster, "SELECT code, label FROM r_bcast ORDER BY code")
    assert len({repr(rows) for rows in copies.values()}) == 1, copies


def test_bit_aggregates_fetch_and_literal_names_over_shards_equal_one_server(
    conn: pymysql.Connection,
) -> None:
    clear(conn, "r_mod")
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name, n) VALUES (1, 0, 'a', 5), (2, 1, 'b', 3), (3, 2, 'c', 6)",
    )
    assert query(conn, "SELECT BIT_OR(n), BIT_AND(n), BIT_XOR(n) FROM r_mod") == [(7, 0, 0)]
    assert query(conn, "SELECT id FROM r_mod ORDER BY id OFFSET 1 ROWS FETCH NEXT 1 ROWS ONLY") == [
        (2,)
    ]
    assert query(conn, "SELECT id FROM r_mod ORDER BY id FETCH FIRST 2 ROWS ONLY") == [(1,), (2,)]
    with conn.cursor() as cur:
        cur.execute("SELECT 'abc', 1.50, id FROM r_mod ORDER BY id")
        assert [d[0] for d in cur.description] == ["abc", "1.50", "id"]
    # aggregates the merge does not know: one shard computes them over a copy of r_mod
    assert query(conn, "SELECT VAR_POP(n), JSON_ARRAYAGG(n ORDER BY n) FROM r_mod") == [
        (1.5556, "[3,5,6]")
    ]


def test_key_literals_the_server_converts_find_every_row(conn: pymysql.Connection) -> None:
    clear(conn, "r_mod", "r_hash")
    execute(conn, "INSERT INTO r_mod (id, k, name) VALUES (11, 11, 'a')")
    execute(conn, "INSERT INTO r_hash (id, k, name) VALUES (11, 11, 'a')")
    for table in ("r_mod", "r_hash"):
        assert query(conn, f"SELECT id FROM {table} WHERE k = '11abc'") == [(11,)]
        assert query(conn, f"SELECT id FROM {table} WHERE CAST(k AS CHAR) = '11'") == [(11,)]
        # the derived table's k is not the shard key: it must not narrow to the shard of 12
        derived = f"SELECT id FROM (SELECT id, k + 1 AS k FROM {table}) d WHERE k = 12"
        assert query(conn, derived) == [(11,)]


HASH_STRINGS = (
    "José", "jose", "JOSE", "Straße", "strasse", "strase", "K\u0131ra", "kira", "KIRA",
    "abc", "abc ", "7", "07", "7abc", "x", "",
)  # fmt: skip


@pytest.mark.parametrize("table", ["r_hstr_general", "r_hstr_unicode"])
def test_hash_string_key_lookups_find_every_collation_equal_row(
    conn: pymysql.Connection, cluster: LocalCluster, table: str
) -> None:
    clear(conn, table)
    rows = ", ".join(f"({i}, %s)" for i in range(len(HASH_STRINGS)))
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} (id, k) VALUES {rows}", HASH_STRINGS)
    probes = [*(f"'{v}'" for v in HASH_STRINGS), "0", "7", "'7.0'"]
    for probe in probes:
        for condition in (f"k = {probe}", f"k IN ({probe}, 'zzz')", f"CAST(k AS CHAR) = {probe}"):
            sql = f"SELECT id FROM {table} WHERE {condition}"
            direct = sorted(r for rows in on_shards(cluster, sql).values() for r in rows)
            assert sorted(query(conn, sql)) == direct, sql


# --- refusals and errors -------------------------------------------------------------------


def test_update_of_the_shard_key_is_refused_naming_the_key(conn: pymysql.Connection) -> None:
    clear(conn, "r_mod")
    execute(conn, "INSERT INTO r_mod (id, k, name) VALUES (1, 1, 'a')")
    code, message = error_of(lambda: execute(conn, "UPDATE r_mod SET k = 2 WHERE id = 1"))
    assert code == 1235
    assert "r_mod.k" in message and "shard key" in message
    code, message = error_of(
        lambda: execute(
            conn, "INSERT INTO r_mod (id, k, name) VALUES (1, 1, 'b') ON DUPLICATE KEY UPDATE k = 5"
        )
    )
    assert code == 1235 and "r_mod.k" in message
    assert query(conn, "SELECT id, k, name FROM r_mod") == [(1, 1, "a")]


def test_unknown_table_gets_the_shard_error(conn: pymysql.Connection) -> None:
    code, message = error_of(lambda: query(conn, "SELECT * FROM no_such_table"))
    assert code == 1146
    assert f"{SCHEMA}.no_such_table" in message


def test_cross_shard_join_of_unbound_tables_reads_a_copy_of_one_of_them(
    conn: pymysql.Connection,
) -> None:
    clear(conn, "r_mod", "r_other", "r_hash", "r_bcast")
    execute(conn, "INSERT INTO r_mod (id, k, name) VALUES " + ", ".join(
        f"({i}, {i}, 'm{i}')" for i in range(12)))  # fmt: skip
    execute(conn, "INSERT INTO r_other (id, k, name) VALUES " + ", ".join(
        f"({i}, {i * 5}, 'o{i}')" for i in range(12)))  # fmt: skip
    execute(conn, "INSERT INTO r_hash (id, k, name) VALUES (1, 2, 'h'), (2, 7, 'h'), (3, 11, 'h')")
    expected = sorted((m, o) for m in range(12) for o in range(12) if m == o * 5)
    join = "SELECT a.id, b.id FROM r_mod a JOIN r_other b ON a.k = b.k ORDER BY a.id, b.id"
    assert query(conn, join) == expected
    # r_hash lives on s0 and s1 only: it is the table read in place, r_mod is copied there
    assert query(
        conn, "SELECT b.id, a.id FROM r_mod a JOIN r_hash b ON a.k = b.k WHERE a.k > 1 ORDER BY 1"
    ) == [(1, 2), (2, 7), (3, 11)]
    # a locking read of a copy would lock nothing
    code, message = error_of(
        lambda: query(conn, "SELECT a.id FROM r_mod a JOIN r_other b ON a.k = b.k FOR UPDATE")
    )
    assert code == 1235 and "cross-shard join" in message
    clear(conn, "r_mod", "r_other", "r_hash")


def test_outer_join_keeping_broadcast_rows_returns_each_unmatched_row_once(
    conn: pymysql.Connection,
) -> None:
    clear(conn, "r_mod", "r_bcast")
    execute(conn, "INSERT INTO r_bcast (code, label) VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    execute(conn, "INSERT INTO r_mod (id, k, name, n) VALUES (1, 0, 'a', 1), (2, 1, 'b', 1)")
    # every shard would NULL-extend 'two' and 'three', and the shards without r_mod rows 'one'
    assert query(
        conn, "SELECT b.code, a.id FROM r_bcast b LEFT JOIN r_mod a ON a.n = b.code ORDER BY 1, 2"
    ) == [(1, 1), (1, 2), (2, None), (3, None)]
    assert query(
        conn,
        "SELECT b.label, COUNT(a.id) FROM r_mod a RIGHT JOIN r_bcast b ON a.n = b.code "
        "WHERE b.code < 3 GROUP BY b.label ORDER BY b.label",
    ) == [("one", 2), ("two", 0)]
    # the WHERE clause sees the NULL-extended rows as one server has them
    assert query(
        conn,
        "SELECT b.code FROM r_bcast b LEFT JOIN r_mod a ON a.n = b.code WHERE a.id IS NULL "
        "ORDER BY 1",
    ) == [(2,), (3,)]
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT b.code, a.id FROM r_bcast b LEFT JOIN r_mod a ON a.n = b.code AND a.k = %s "
            "ORDER BY 1",
            (1,),
        )
        assert cursor.fetchall() == ((1, 2), (2, None), (3, None))
    # with another join beside it, one shard answers over a copy of r_mod
    assert query(
        conn,
        "SELECT b.code, a.id FROM r_bcast b LEFT JOIN r_mod a ON a.n = b.code "
        "JOIN r_bcast c ON c.code = b.code ORDER BY 1, 2",
    ) == [(1, 1), (1, 2), (2, None), (3, None)]
    assert query(
        conn,
        "SELECT b.code, a.id FROM r_bcast b LEFT JOIN r_mod a ON a.n = b.code AND a.k = 0 "
        "WHERE a.k = 0",
    ) == [(1, 1)]


def test_aggregates_the_merge_does_not_know_are_computed_over_copies_or_refused(
    conn: pymysql.Connection,
) -> None:
    clear(conn, "r_mod")
    execute(conn, "INSERT INTO r_mod (id, k, name, n) VALUES (1, 0, 'a', 5), (2, 1, 'b', 3), "
                  "(3, 2, 'b', 5)")  # fmt: skip
    for sql, expected in (
        ("SELECT VARIANCE(n) FROM r_mod", [(0.8889,)]),
        ("SELECT COUNT(DISTINCT n, name) FROM r_mod", [(3,)]),
        ("SELECT n + COUNT(*) FROM r_mod GROUP BY n ORDER BY 1", [(4,), (7,)]),
        ("SELECT SUM(n) / COUNT(*) AS a FROM r_mod HAVING a > 1", [(Decimal("4.3333"),)]),
    ):
        assert query(conn, sql) == expected, sql
    # refused once the shards said the types: no copies then
    for sql, part in (
        ("SELECT SUM(DISTINCT n), AVG(DISTINCT name) FROM r_mod", "(DISTINCT x) of a string"),
        ("SELECT CONCAT(MIN(name), '!') FROM r_mod", "around an aggregate of a string"),
    ):
        code, message = error_of(lambda sql=sql: query(conn, sql))
        assert (code, part in message) == (1235, True), message


def test_a_computed_item_refused_after_the_shards_read_leaves_the_transaction_going(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    """Over a string aggregate the refusal comes once the shards answered (the types are
    theirs); the transaction's writes stay, the session goes on, COMMIT commits them."""
    clear(conn, "r_mod")
    execute(conn, "BEGIN")
    execute(conn, "INSERT INTO r_mod (id, k, name) VALUES (1, 0, 'a'), (2, 1, 'b')")
    code, message = error_of(lambda: query(conn, "SELECT CONCAT(MIN(name), '!') FROM r_mod"))
    assert (code, "around an aggregate of a string" in message) == (1235, True), message
    assert query(conn, "SELECT COUNT(*) + 0 FROM r_mod") == [(2,)]
    execute(conn, "COMMIT")
    assert ids_by_shard(cluster, "r_mod") == {"s0": {1}, "s1": {2}, "s2": set()}


# --- INSERT ... SELECT ---------------------------------------------------------------------


def seed_r_mod(conn: pymysql.Connection) -> None:
    clear(conn, "r_mod", "r_other", "r_auto", "r_bcast")
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name, n, amount, at) VALUES "
        + ", ".join(
            f"({i}, {i}, 'n\\'{i}é', {i % 3}, {i}.25, '2024-01-0{1 + i % 9} 10:00:00')"
            for i in range(9)
        ),
    )


def test_insert_select_places_each_selected_row_by_its_own_key(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    seed_r_mod(conn)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO r_other (id, k, name, n, amount, at) "
            "SELECT id + 100, k + 1, name, n, amount, at FROM r_mod WHERE n < 2"
        )
        assert cur.rowcount == 6
        assert conn._result.message[1:] == b"Records: 6  Duplicates: 0  Warnings: 0"
    # k + 1 modulo 3 decides each copy's shard, whatever shard the original row was on
    assert ids_by_shard(cluster, "r_other") == {
        "s0": set(),
        "s1": {100, 103, 106},
        "s2": {101, 104, 107},
    }
    assert query(conn, "SELECT id, name, n, amount, at FROM r_other WHERE id = 104") == [
        (104, "n'4é", 1, Decimal("4.25"), datetime.datetime(2024, 1, 5, 10, 0))
    ]
    # an upsert from a SELECT, with the VALUES() of each row; no column list: the metadata's
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO r_other SELECT id + 100, k + 1, 'again', n, amount, at FROM r_mod "
            "WHERE id < 2 ON DUPLICATE KEY UPDATE name = VALUES(name)"
        )
        assert cur.rowcount == 4
        assert conn._result.message[1:] == b"Records: 2  Duplicates: 2  Warnings: 0"
    assert query(conn, "SELECT name FROM r_other WHERE id IN (100, 101)") == [
        ("again",),
        ("again",),
    ]


def test_insert_select_generates_ids_and_writes_broadcast_copies(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    seed_r_mod(conn)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO r_auto (k, name) SELECT k, name FROM r_mod ORDER BY id LIMIT 4")
        first = cur.lastrowid
    rows = query(conn, "SELECT id, k FROM r_auto ORDER BY id")
    assert [k for _, k in rows] == [0, 1, 2, 3] and rows[0][0] == first
    assert query(conn, "SELECT LAST_INSERT_ID()") == [(first,)]
    execute(conn, "INSERT INTO r_bcast (code, label) SELECT id, name FROM r_mod WHERE n = 0")
    copies = on_shards(cluster, "SELECT code FROM r_bcast ORDER BY code")
    assert all(rows == [(0,), (3,), (6,)] for rows in copies.values()), copies
    with conn.cursor() as cur:
        cur.execute("REPLACE INTO r_bcast (code, label) SELECT id, 'again' FROM r_mod WHERE n < 2")
        assert cur.rowcount == 9  # 3 replaced (deleted and inserted), 3 new
        assert conn._result.message[1:] == b"Records: 6  Duplicates: 3  Warnings: 0"
    copies = on_shards(cluster, "SELECT code, label FROM r_bcast ORDER BY code")
    assert all(len(rows) == 6 and {r[1] for r in rows} == {"again"} for rows in copies.values())


def test_insert_select_in_a_transaction_rolls_back_on_every_shard(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy, autocommit=False)
    try:
        seed_r_mod(conn)
        conn.commit()
        execute(conn, "INSERT INTO r_other (id, k, name) SELECT id, k, name FROM r_mod")
        assert query(conn, "SELECT COUNT(*) FROM r_other") == [(9,)]
        conn.rollback()
        assert all(not rows for rows in on_shards(cluster, "SELECT id FROM r_other").values())
        # a duplicate on one shard fails the whole statement, the transaction goes on
        execute(conn, "INSERT INTO r_other (id, k, name) VALUES (4, 4, 'there')")
        code, _ = error_of(
            lambda: execute(conn, "INSERT INTO r_other (id, k, name) SELECT id, k, name FROM r_mod")
        )
        assert code == 1062
        conn.commit()
        assert ids_by_shard(cluster, "r_other") == {"s0": set(), "s1": {4}, "s2": set()}
    finally:
        conn.close()


def test_insert_select_as_a_prepared_statement_binds_its_parameters(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    seeding = connect(proxy)
    seed_r_mod(seeding)
    seeding.close()
    conn = connect_prepared(proxy)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(
            "INSERT INTO r_other (id, k, name) SELECT id + ?, k, name FROM r_mod WHERE n = ?",
            (1000, 2),
        )
        assert cur.rowcount == 3
    finally:
        conn.close()
    assert ids_by_shard(cluster, "r_other") == {"s0": set(), "s1": set(), "s2": {1002, 1005, 1008}}


def test_insert_select_of_many_batches_is_one_statement(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy)
    clear(conn, "r_mod", "r_other", "r_auto")
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name, n) VALUES "
        + ", ".join(f"({i}, {i}, 'row number {i}', {i})" for i in range(1, 1501)),
    )
    copy = "INSERT INTO r_other (id, k, name, n) SELECT id, k, name, n FROM r_mod"
    with conn.cursor() as cur:
        cur.execute("INSERT INTO r_auto (k, name) SELECT k, name FROM r_mod ORDER BY id")
        first = cur.lastrowid
        assert conn._result.message[1:] == b"Records: 1500  Duplicates: 0  Warnings: 0"
    assert query(conn, "SELECT MIN(id), COUNT(*) FROM r_auto") == [(first, 1500)]
    assert query(conn, "SELECT LAST_INSERT_ID()") == [(first,)]
    # the rows are written in several INSERTs: a duplicate in the last undoes all of them
    execute(conn, "INSERT INTO r_other (id, k, name) VALUES (1500, 1500, 'last')")
    assert error_of(lambda: execute(conn, copy))[0] == 1062
    assert sum(len(rows) for rows in on_shards(cluster, "SELECT id FROM r_other").values()) == 1
    # and inside a transaction, only the statement is undone (under the proxy's savepoint,
    # whose name a client may not take)
    execute(conn, "BEGIN")
    assert error_of(lambda: execute(conn, "SAVEPOINT xaproxy_statement_steps"))[0] == 1235
    execute(conn, "INSERT INTO r_other (id, k, name) VALUES (2000, 2000, 'kept')")
    assert error_of(lambda: execute(conn, copy))[0] == 1062
    execute(conn, "COMMIT")
    assert query(conn, "SELECT id FROM r_other ORDER BY id") == [(1500,), (2000,)]
    execute(conn, "DELETE FROM r_other")
    assert execute(conn, copy) == 1500
    assert query(conn, "SELECT COUNT(*), SUM(n) FROM r_other") == [(1500, 1500 * 1501 // 2)]
    conn.close()


def test_insert_select_refuses_what_it_cannot_copy_exactly_and_writes_nothing(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    seed_r_mod(conn)
    for sql, part in (
        ("REPLACE INTO r_other (id, k, name) SELECT id, k, name FROM r_mod", "unique key (id)"),
        (
            "INSERT INTO r_other (id, k, name) SELECT id, k, name FROM r_mod "
            "ON DUPLICATE KEY UPDATE name = r_mod.name",
            "ON DUPLICATE KEY UPDATE",
        ),
        (
            "INSERT INTO r_other (id, k, amount) SELECT id, k, CAST(amount AS FLOAT) FROM r_mod",
            "FLOAT column",
        ),
        (
            "INSERT INTO r_other (id, k, name) SELECT id, k, REPEAT('x', 500000) FROM r_mod",
            "MiB of rows",
        ),
    ):
        code, message = error_of(lambda sql=sql: execute(conn, sql))
        assert (code, part in message) == (1235, True), message
    # strict mode: MariaDB fails at a warning of the SELECT or not, as its plan decides
    code, message = error_of(
        lambda: execute(conn, "INSERT INTO r_other (id, k, name) SELECT id, k, name FROM r_mod "
                        "WHERE name = 0")
    )  # fmt: skip
    assert code == 1235 and "warns under a strict sql_mode (1292: Truncated" in message
    assert all(not rows for rows in on_shards(cluster, "SELECT id FROM r_other").values())


def test_update_and_delete_with_order_by_and_limit_change_the_first_rows_across_shards(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy)
    seed_r_mod(conn)
    # n = id % 3; ties in the client's order are broken by the primary key
    assert execute(conn, "DELETE FROM r_mod ORDER BY n DESC LIMIT 2") == 2
    assert sorted(set().union(*ids_by_shard(cluster, "r_mod").values())) == [0, 1, 3, 4, 6, 7, 8]
    with conn.cursor() as cur:
        cur.execute("UPDATE r_mod SET name = 'first' WHERE n = 1 ORDER BY id DESC LIMIT 2")
        assert cur.rowcount == 2
        assert conn._result.message[1:] == b"Rows matched: 2  Changed: 2  Warnings: 0"
        cur.execute("UPDATE r_mod SET n = n ORDER BY id LIMIT 3")
        assert conn._result.message[1:] == b"Rows matched: 3  Changed: 0  Warnings: 0"
        assert cur.execute("DELETE FROM r_mod ORDER BY id LIMIT 0") == 0
    assert query(conn, "SELECT id FROM r_mod WHERE name = 'first' ORDER BY id") == [(4,), (7,)]
    # in a transaction: undone with it
    execute(conn, "BEGIN")
    assert execute(conn, "DELETE FROM r_mod WHERE n < 2 ORDER BY at DESC, id LIMIT 4") == 4
    assert query(conn, "SELECT COUNT(*) FROM r_mod") == [(3,)]
    execute(conn, "ROLLBACK")
    assert query(conn, "SELECT COUNT(*) FROM r_mod") == [(7,)]
    # prepared, with the LIMIT as a parameter
    prepared = connect_prepared(proxy)
    try:
        cur = prepared.cursor(prepared=True)
        cur.execute("DELETE FROM r_mod WHERE n = ? ORDER BY id DESC LIMIT ?", (0, 2))
        assert cur.rowcount == 2
    finally:
        prepared.close()
    assert sorted(set().union(*ids_by_shard(cluster, "r_mod").values())) == [0, 1, 4, 7, 8]
    code, message = error_of(
        lambda: execute(
            conn, "DELETE FROM r_mod WHERE n IN (SELECT code FROM r_bcast) ORDER BY id LIMIT 1"
        )
    )
    assert code == 1235 and "reads other tables" in message
    conn.close()


def test_update_and_delete_joined_with_a_broadcast_table_run_on_every_shard(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    seed_r_mod(conn)
    execute(conn, "INSERT INTO r_bcast (code, label) VALUES (0, 'zero'), (1, 'one')")
    with conn.cursor() as cur:
        cur.execute("UPDATE r_mod m JOIN r_bcast b ON b.code = m.n SET m.name = b.label")
        assert cur.rowcount == 6
        assert conn._result.message[1:] == b"Rows matched: 6  Changed: 6  Warnings: 0"
    assert query(conn, "SELECT id, name FROM r_mod WHERE n < 2 ORDER BY id") == [
        (i, "zero" if i % 3 == 0 else "one") for i in (0, 1, 3, 4, 6, 7)
    ]
    sql = "UPDATE r_mod SET name = 'sub' WHERE n IN (SELECT code FROM r_bcast WHERE label = 'one')"
    assert execute(conn, sql) == 3
    sql = "DELETE m FROM r_mod m JOIN r_bcast b ON b.code = m.n WHERE b.label = 'zero'"
    assert execute(conn, sql) == 3
    assert sorted(set().union(*ids_by_shard(cluster, "r_mod").values())) == [1, 2, 4, 5, 7, 8]
    for sql, part in (
        ("UPDATE r_mod m JOIN r_bcast b ON b.code = m.n SET b.label = 'x'", "changes broadcast"),
        ("UPDATE r_mod m JOIN r_bcast b ON b.code = m.n SET label = 'x'", "qualify it"),
        ("DELETE b FROM r_mod m JOIN r_bcast b ON b.code = m.n", "changes broadcast"),
    ):
        code, message = error_of(lambda sql=sql: execute(conn, sql))
        assert (code, part in message) == (1235, True), message
    copies = on_shards(cluster, "SELECT code, label FROM r_bcast ORDER BY code")
    assert all(rows == [(0, "zero"), (1, "one")] for rows in copies.values()), copies


def test_now_uuid_and_rand_of_an_insert_on_several_shards_are_evaluated_once(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    clear(conn, "r_mod", "r_bcast")
    execute(conn, "INSERT INTO r_bcast (code, label) VALUES (1, LEFT(UUID(), 18)), (2, RAND())")
    copies = on_shards(cluster, "SELECT code, label FROM r_bcast ORDER BY code")
    assert len({repr(rows) for rows in copies.values()}) == 1, copies
    assert len(copies["s0"][0][1]) == 18 and copies["s0"][0][1] != copies["s0"][1][1]
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name, at) VALUES (1, 0, 'a', NOW()), (2, 1, 'b', NOW()), "
        "(3, 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    rows = query(conn, "SELECT at, name FROM r_mod ORDER BY id")
    assert len({at for at, _ in rows}) == 1 and rows[2][1] == str(rows[0][0])[:20]
    # each row's shard holds it: the values were written into the statement
    assert ids_by_shard(cluster, "r_mod") == {"s0": {1}, "s1": {2}, "s2": {3}}
    for sql in (
        "INSERT INTO r_bcast (code, label) VALUES (3, RAND(code))",
        "INSERT INTO r_bcast (code, label) VALUES (4, CONNECTION_ID())",
        "INSERT INTO r_bcast (code, label) VALUES (1, 'x') ON DUPLICATE KEY UPDATE label = UUID()",
        "UPDATE r_bcast SET label = UUID()",
        "UPDATE r_bcast SET label = SYSDATE()",
    ):
        code, message = error_of(lambda sql=sql: execute(conn, sql))
        assert code == 1235 and "each shard would evaluate it" in message, message


# --- DDL and databases ------------------------------------------------------------------------


def table_exists(cluster: LocalCluster, table: str) -> dict[str, bool]:
    sql = (
        "SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table}'"
    )
    return {
        name: rows[0][0] == 1
        for name, rows in on_shards(cluster, sql, "information_schema").items()
    }


def columns_of(cluster: LocalCluster, table: str) -> dict[str, list[str]]:
    sql = (
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table}' ORDER BY ordinal_position"
    )
    return {
        name: [r[0] for r in rows]
        for name, rows in on_shards(cluster, sql, "information_schema").items()
    }


def test_views_stored_programs_and_table_copies_over_sharded_tables_are_refused(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    """They would live on one shard (or copy each shard's own rows) and answer with one
    shard's rows; nothing of them is left on any shard. Over unsharded tables they work."""
    for sql, name in (
        ("CREATE VIEW r_view AS SELECT id, n FROM r_mod", "r_view"),
        ("CREATE VIEW r_view AS SELECT code FROM r_bcast", "r_view"),
        ("CREATE FUNCTION r_count() RETURNS INT RETURN (SELECT COUNT(*) FROM r_mod)", "r_count"),
        (
            "CREATE PROCEDURE r_bump(IN which INT) BEGIN "
            "UPDATE r_mod SET n = n + 1 WHERE id = which; END",
            "r_bump",
        ),
        ("CREATE TRIGGER r_trig BEFORE INSERT ON r_mod FOR EACH ROW SET NEW.n = 1", "r_trig"),
        ("CREATE TABLE r_copy AS SELECT * FROM r_mod", "r_copy"),
    ):
        code, message = error_of(lambda sql=sql: execute(conn, sql))
        assert code == 1235 and "sharded or broadcast table" in message, (sql, message)
        for shard, rows in on_shards(
            cluster,
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = "
            f"'{SCHEMA}' AND ROUTINE_NAME = '{name}' UNION ALL SELECT COUNT(*) FROM "
            f"information_schema.TABLES WHERE TABLE_SCHEMA = '{SCHEMA}' AND TABLE_NAME = "
            f"'{name}' UNION ALL SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE "
            f"TRIGGER_NAME = '{name}'",
            "information_schema",
        ).items():
            assert [r[0] for r in rows] == [0, 0, 0], (sql, shard)
    execute(conn, "CREATE TABLE IF NOT EXISTS r_local (id INT PRIMARY KEY)")
    try:
        execute(conn, "CREATE PROCEDURE r_add(IN v INT) BEGIN INSERT INTO r_local VALUES (v); END")
        execute(conn, "CALL r_add(7)")
        assert query(conn, "SELECT id FROM r_local") == [(7,)]
    finally:
        execute(conn, "DROP PROCEDURE IF EXISTS r_add")
        execute(conn, "DROP TABLE r_local")


def test_ddl_on_a_sharded_table_runs_on_every_shard_holding_it(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    execute(conn, "CREATE TABLE r_ddl (id INT PRIMARY KEY, k INT NOT NULL)")
    assert table_exists(cluster, "r_ddl") == {"s0": True, "s1": True, "s2": False}
    execute(conn, "ALTER TABLE r_ddl ADD COLUMN note VARCHAR(10) NULL")
    columns = columns_of(cluster, "r_ddl")
    assert columns["s0"] == columns["s1"] == ["id", "k", "note"]
    execute(conn, "INSERT INTO r_ddl (id, k, note) VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 3, 'z')")
    assert query(conn, "SELECT id, note FROM r_ddl ORDER BY id") == [(1, "x"), (2, "y"), (3, "z")]
    execute(conn, "TRUNCATE TABLE r_ddl")
    assert query(conn, "SELECT COUNT(*) FROM r_ddl") == [(0,)]
    execute(conn, "DROP TABLE r_ddl")
    assert table_exists(cluster, "r_ddl") == {"s0": False, "s1": False, "s2": False}
    # a table on all three shards
    execute(conn, "ALTER TABLE r_other ADD COLUMN extra INT NULL")
    assert all(cols[-1] == "extra" for cols in columns_of(cluster, "r_other").values())
    execute(conn, "ALTER TABLE r_other DROP COLUMN extra")
    assert all("extra" not in cols for cols in columns_of(cluster, "r_other").values())


def test_create_database_of_a_logical_schema_goes_to_all_shards(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    def exists() -> dict[str, bool]:
        sql = f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{NEW_SCHEMA}'"
        return {
            n: rows[0][0] == 1 for n, rows in on_shards(cluster, sql, "information_schema").items()
        }

    execute(conn, f"CREATE DATABASE {NEW_SCHEMA}")
    assert exists() == {s: True for s in SHARDS}
    execute(conn, f"DROP DATABASE {NEW_SCHEMA}")
    assert exists() == {s: False for s in SHARDS}
    code, message = error_of(lambda: execute(conn, "CREATE DATABASE not_in_the_shard_map"))
    assert code == 1235 and "not_in_the_shard_map" in message


# --- generated ids --------------------------------------------------------------------------


def test_auto_increment_ids_are_unique_across_shards_and_reported_first(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO r_auto (k, name) VALUES "
                + ", ".join(f"({k}, 'r{k}')" for k in range(12))
            )
            first = cur.lastrowid
            assert cur.rowcount == 12
            cur.execute("SELECT LAST_INSERT_ID()")
            assert cur.fetchone()[0] == first
            cur.execute("INSERT INTO r_auto (k, name) VALUES (4, 'single')")
            single = cur.lastrowid
            cur.execute("SELECT LAST_INSERT_ID()")
            assert cur.fetchone()[0] == single
        rows = {
            shard: sorted(r)
            for shard, r in on_shards(cluster, "SELECT id, k, name FROM r_auto").items()
        }
        every = [row for shard_rows in rows.values() for row in shard_rows]
        ids = [row[0] for row in every]
        assert len(ids) == len(set(ids)) == 13  # unique across shards
        by_name = {name: row_id for row_id, _, name in every}
        batch = [by_name[f"r{k}"] for k in range(12)]
        assert batch[0] == first and batch == sorted(batch)  # increasing, first reported
        assert by_name["single"] == single > batch[-1]
        for index, shard in enumerate(SHARDS):
            assert all(k % 3 == index for _, k, _ in rows[shard])
    finally:
        conn.close()


def test_generated_id_that_is_the_shard_key_places_the_row(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO r_autokey (name) VALUES ('a'), ('b'), ('c'), ('d'), ('e'), ('f')")
        first = cur.lastrowid
    placed = ids_by_shard(cluster, "r_autokey")
    every = sorted(i for ids in placed.values() for i in ids)
    assert every[0] == first and len(every) == 6
    for index, shard in enumerate(SHARDS):
        assert all(i % 3 == index for i in placed[shard])
    assert query(conn, f"SELECT name FROM r_autokey WHERE id = {first}") == [("a",)]


# --- a big fan-out ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_table(proxy: ProxyProcess) -> list[tuple[int, int, int, str]]:
    conn = connect(proxy)
    rows = [(i, i * 7 % 1000, (i * 7919) % 50_021, f"L{i % 97}") for i in range(1, BIG_ROWS + 1)]
    try:
        execute(conn, "DELETE FROM r_big")
        for start in range(0, BIG_ROWS, 2500):
            chunk = rows[start : start + 2500]
            execute(
                conn,
                "INSERT INTO r_big (id, k, v, label) VALUES "
                + ", ".join(f"({i}, {k}, {v}, '{label}')" for i, k, v, label in chunk),
            )
    finally:
        conn.close()
    return rows


def test_large_fanout_result_streams_in_order(
    proxy: ProxyProcess, big_table: list[tuple[int, int, int, str]]
) -> None:
    expected = sorted(big_table, key=lambda r: (-r[2], r[0]))
    conn = connect(proxy, cursorclass=pymysql.cursors.SSCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, k, v, label FROM r_big ORDER BY v DESC, id")
            count = 0
            for row, want in zip(cur, expected, strict=True):
                assert row == want
                count += 1
        assert count == BIG_ROWS
        with conn.cursor() as cur:
            cur.execute("SELECT id, v FROM r_big ORDER BY v DESC, id LIMIT 5 OFFSET 40000")
            assert list(cur) == [(r[0], r[2]) for r in expected[40000:40005]]
        with conn.cursor() as cur:
            cur.execute(
                "SELECT label, COUNT(*), SUM(v), MAX(id) FROM r_big GROUP BY label ORDER BY label"
            )
            grouped = list(cur)
        assert len(grouped) == 97
        label, count_, total, top = grouped[0]
        members = [r for r in big_table if r[3] == label]
        assert (count_, total, top) == (
            len(members),
            sum(r[2] for r in members),
            max(r[0] for r in members),
        )
    finally:
        conn.close()


# --- prepared statements ------------------------------------------------------------------------


@pytest.fixture
def general_log(cluster: LocalCluster) -> Iterator[Callable[[str], dict[str, list[str]]]]:
    """Turns the shards' general log on; the fixture finds the statements carrying a marker."""
    for server in cluster.servers:
        server.execute(
            "SET GLOBAL log_output = 'TABLE'; TRUNCATE TABLE mysql.general_log; "
            "SET GLOBAL general_log = 1"
        )

    def find(marker: str) -> dict[str, list[str]]:
        head, tail = marker[:4], marker[4:]  # split, so this query does not find itself
        sql = (
            "SELECT command_type, CONVERT(argument USING utf8mb4) FROM mysql.general_log "
            f"WHERE argument LIKE CONCAT('%', '{head}', '{tail}', '%')"
        )
        return {
            server.name: [f"{kind}: {text}" for kind, text in server.execute(sql)]
            for server in cluster.servers
        }

    yield find
    for server in cluster.servers:
        server.execute("SET GLOBAL general_log = 0; TRUNCATE TABLE mysql.general_log")


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "cext"])
def test_prepared_statement_with_the_key_as_parameter_runs_on_one_shard(
    proxy: ProxyProcess, general_log: Callable[[str], dict[str, list[str]]], use_pure: bool
) -> None:
    setup = connect(proxy)
    clear(setup, "r_mod")
    execute(
        setup, "INSERT INTO r_mod (id, k, name) VALUES (1, 3, 'zero'), (2, 4, 'one'), (3, 5, 'two')"
    )
    setup.close()
    marker = f"mark{uuid.uuid4().hex[:12]}"
    conn = connect_prepared(proxy, use_pure)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(f"SELECT /* {marker} */ id, name FROM r_mod WHERE k = ?", (4,))
        assert cur.fetchall() == [(2, "one")]
        cur.execute(f"SELECT /* {marker} */ id, name FROM r_mod WHERE k = ?", (5,))
        assert cur.fetchall() == [(3, "two")]
        cur.close()
    finally:
        conn.close()
    logged = general_log(marker)
    # each execute runs once, on its key's shard, as that shard's own prepared statement
    # (the general log writes an Execute with the values; s0 only described it at prepare)
    queries = {
        shard: [e for e in entries if e.startswith(("Query", "Execute"))]
        for shard, entries in logged.items()
    }
    assert len(queries["s0"]) == 0, logged
    assert all(e.startswith("Execute") for e in queries["s1"] + queries["s2"]), logged
    assert len(queries["s1"]) == 1 and "k = 4" in queries["s1"][0], logged
    assert len(queries["s2"]) == 1 and "k = 5" in queries["s2"][0], logged


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "cext"])
def test_prepared_fanout_select_returns_binary_rows(proxy: ProxyProcess, use_pure: bool) -> None:
    setup = connect(proxy)
    clear(setup, "r_mod")
    at = datetime.datetime(2024, 2, 29, 13, 14, 15)
    rows = [
        (
            i,
            i,
            f"name{i % 4}",
            None if i % 5 == 0 else i - 3,
            Decimal(f"{i * 1.25:.2f}"),
            at + datetime.timedelta(hours=i),
        )
        for i in range(1, 40)
    ]
    execute(
        setup,
        "INSERT INTO r_mod (id, k, name, n, amount, at) VALUES "
        + ", ".join(
            f"({i}, {k}, '{name}', {'NULL' if n is None else n}, {amount}, "
            f"'{when:%Y-%m-%d %H:%M:%S}')"
            for i, k, name, n, amount, when in rows
        ),
    )
    setup.close()
    conn = connect_prepared(proxy, use_pure)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(
            "SELECT id, k, name, n, amount, at FROM r_mod WHERE amount >= ? "
            "ORDER BY n DESC, id LIMIT ?",
            (Decimal("10.00"), 20),
        )
        got = [tuple(r) for r in cur.fetchall()]
        wanted = sorted(
            (r for r in rows if r[4] >= 10),
            key=lambda r: (r[3] is not None, r[3] or 0, -r[0]),
            reverse=True,
        )
        assert got == wanted[:20]
        cur.execute(
            "SELECT name, COUNT(*), SUM(amount), MIN(at), AVG(n) FROM r_mod WHERE k > ? "
            "GROUP BY name ORDER BY name",
            (2,),
        )
        grouped = [tuple(r) for r in cur.fetchall()]
        assert [g[0] for g in grouped] == ["name0", "name1", "name2", "name3"]
        name0 = [r for r in rows if r[2] == "name0" and r[1] > 2]
        assert grouped[0][1:4] == (len(name0), sum(r[4] for r in name0), min(r[5] for r in name0))
        cur.close()
    finally:
        conn.close()


# --- merge bugs the differential test found -------------------------------------------------


@pytest.fixture
def merge_rows(conn: pymysql.Connection) -> pymysql.Connection:
    clear(conn, "r_mod")
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name, n, amount) VALUES "
        "(1, 0, 'apple', NULL, 1.00), (2, 1, 'APPLE', NULL, 2.00), (3, 2, 'apple ', 5, 3.00), "
        "(4, 3, 'Banana', 1, 4.00), (5, 4, 'banana', 1, 5.00), (6, 5, 'cherry', 7, NULL), "
        "(7, 6, 'cherry', 7, 7.50), (8, 7, 'cherry', 2, 8.00)",
    )
    return conn


def test_having_not_over_null_keeps_sql_three_valued_logic(merge_rows: pymysql.Connection) -> None:
    # the NULL group's n > 1 is unknown, and so is NOT (n > 1): the group is dropped
    assert query(merge_rows, "SELECT n, COUNT(*) FROM r_mod GROUP BY n HAVING NOT (n > 1)") == [
        (1, 2)
    ]
    assert query(merge_rows, "SELECT n, COUNT(*) FROM r_mod GROUP BY n HAVING n IS NULL") == [
        (None, 2)
    ]


def test_having_compares_strings_by_the_collation(merge_rows: pymysql.Connection) -> None:
    rows = query(merge_rows, "SELECT name, COUNT(*) FROM r_mod GROUP BY name HAVING name = 'apple'")
    assert [(name.lower().strip(), count) for name, count in rows] == [("apple", 3)]
    assert query(
        merge_rows,
        "SELECT COUNT(*) FROM r_mod GROUP BY name HAVING MIN(name) > 'BANANA' ORDER BY 1",
    ) == [(3,)]


def test_order_by_an_aggregate_that_is_not_selected(merge_rows: pymysql.Connection) -> None:
    rows = query(
        merge_rows,
        "SELECT name FROM r_mod GROUP BY name ORDER BY COUNT(*) DESC, AVG(amount) LIMIT 2",
    )
    # apple: 3 rows averaging 2.00, cherry: 3 rows averaging 7.75, banana: 2 rows
    assert [name.lower().strip() for (name,) in rows] == ["apple", "cherry"]
    # sums per n: 1 -> 9.00, 2 -> 8.00, 7 -> 7.50, NULL -> 3.00, 5 -> 3.00
    sql = "SELECT n FROM r_mod GROUP BY n ORDER BY SUM(amount) DESC, n LIMIT 3"
    assert query(merge_rows, sql) == [(1,), (2,), (7,)]


def test_group_by_a_select_list_position(merge_rows: pymysql.Connection) -> None:
    assert query(merge_rows, "SELECT n, COUNT(*) FROM r_mod GROUP BY 1 ORDER BY 1") == [
        (None, 2), (1, 2), (2, 1), (5, 1), (7, 2),
    ]  # fmt: skip


def test_count_distinct_together_with_other_aggregates(merge_rows: pymysql.Connection) -> None:
    assert query(
        merge_rows, "SELECT COUNT(DISTINCT name), COUNT(*), SUM(amount), AVG(n), MAX(n) FROM r_mod"
    ) == [(3, 8, Decimal("30.50"), Decimal("3.8333"), 7)]


def test_distinct_column_is_named_without_the_keyword(merge_rows: pymysql.Connection) -> None:
    with merge_rows.cursor() as cur:
        cur.execute("SELECT DISTINCT n + 1 FROM r_mod")
        assert [d[0] for d in cur.description] == ["n + 1"]
        assert sorted(cur.fetchall(), key=str) == sorted([(None,), (2,), (3,), (6,), (8,)], key=str)


def test_having_without_group_by_filters_before_the_limit(merge_rows: pymysql.Connection) -> None:
    sql = "SELECT id, name FROM r_mod HAVING name = 'cherry' ORDER BY id LIMIT 2"
    assert query(merge_rows, sql) == [(6, "cherry"), (7, "cherry")]


def test_backslash_escapes_in_fanout_literals(conn: pymysql.Connection) -> None:
    clear(conn, "r_mod")
    execute(
        conn,
        "INSERT INTO r_mod (id, k, name) VALUES (1, 0, 'tab\\there'), (2, 1, 'nl\\nx'), "
        "(3, 2, 'plain')",
    )
    assert query(conn, "SELECT name FROM r_mod WHERE id = 1") == [("tab\there",)]
    assert query(conn, "SELECT id FROM r_mod WHERE name = 'tab\\there'") == [(1,)]
    assert query(
        conn, "SELECT id FROM r_mod WHERE name IN ('nl\\nx', 'tab\\there') ORDER BY id"
    ) == [(1,), (2,)]


def test_distinct_with_a_hidden_order_column_still_fills_the_limit(
    merge_rows: pymysql.Connection,
) -> None:
    values = ", ".join(f"({i}, {i}, 'apple', 0.0{i - 19})" for i in range(20, 26))
    execute(merge_rows, f"INSERT INTO r_mod (id, k, name, amount) VALUES {values}")
    # each shard's DISTINCT covers (name, amount) and its first three rows are all apples:
    # the LIMIT must count distinct names after the merge
    rows = query(merge_rows, "SELECT DISTINCT name FROM r_mod ORDER BY amount LIMIT 3")
    assert len(rows) == 3
    assert len({name.lower().strip() for (name,) in rows}) == 3


@pytest.mark.parametrize("table", ["r_hash", "r_bcast"])
@pytest.mark.parametrize("spelling", ["DESCRIBE {t}", "DESC {t}", "EXPLAIN {t}", "DESCRIBE {t} k"])
def test_describe_of_a_sharded_or_broadcast_table_answers_as_the_shard_does(
    cluster: LocalCluster, conn: pymysql.Connection, table: str, spelling: str
) -> None:
    sql = spelling.format(t=table)
    if table == "r_bcast" and sql.endswith(" k"):
        sql = sql[:-2] + " code"
    assert query(conn, sql) == on_shards(cluster, sql)["s1"]


def test_explain_of_a_query_over_several_shards_is_refused_with_the_proxys_own_named(
    conn: pymysql.Connection,
) -> None:
    code, message = error_of(lambda: query(conn, "EXPLAIN SELECT * FROM r_hash"))
    assert code == 1235 and "XAPROXY EXPLAIN" in message
