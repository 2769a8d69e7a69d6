"""Shard-key routing is exact or does not narrow: checked against one MariaDB with the same data.

Schema ``exact`` is sharded over s0 and s1; ``exact_direct`` on s2 holds the
same tables unsharded, and every statement runs on both. String hash keys use
the collation's weights, so values equal under the collation (José/jose,
Straße/strasse under unicode_ci, K\u0131ra/kira) share a shard: a second one is a
duplicate key through the proxy exactly as on one server, and every lookup
finds what one server finds. Literals the server converts (a number against a
string key, '11abc' against an INT key) either narrow to what the server
compares or scatter. A collation whose weights the proxy cannot compute
(uca1400, with contractions) is refused for hash placement, by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.support.proxied import (
    drop_databases,
    module_proxy,
    proxied_and_direct,
    recreate_database,
)
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA, DIRECT = "exact", "exact_direct"
COLLATIONS = {
    "h_general": "utf8mb4_general_ci",
    "h_unicode": "utf8mb4_unicode_ci",
    "h_520": "utf8mb4_unicode_520_ci",
    "h_bin": "utf8mb4_bin",
    "h_nopad": "utf8mb4_unicode_nopad_ci",
}
TABLES: list[dict[str, Any]] = [
    *({"name": t, "shard_key": "k", "algorithm": "hash"} for t in (*COLLATIONS, "h_uca1400")),
    {"name": "h_int", "shard_key": "k", "algorithm": "hash"},
    {"name": "h_child", "shard_key": "k", "algorithm": "hash", "binding": "g"},
    {"name": "h_parent", "shard_key": "k", "algorithm": "hash", "binding": "g"},
    {
        "name": "r_int",
        "shard_key": "k",
        "algorithm": "range",
        "ranges": [{"shard": "s0", "below": 100}, {"shard": "s1"}],
    },
]
DDL = [
    *(
        f"CREATE TABLE {t} (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE {c} NOT NULL PRIMARY KEY, "
        "v INT NULL)"
        for t, c in {**COLLATIONS, "h_uca1400": "utf8mb4_uca1400_ai_ci"}.items()
    ),
    "CREATE TABLE h_int (k INT NOT NULL PRIMARY KEY, v INT NULL)",
    "CREATE TABLE r_int (k INT NOT NULL PRIMARY KEY, v INT NULL)",
    "CREATE TABLE h_parent (k VARCHAR(20) COLLATE utf8mb4_unicode_ci NOT NULL PRIMARY KEY, "
    "v INT NULL)",
    "CREATE TABLE h_child (id INT NOT NULL PRIMARY KEY, "
    "k VARCHAR(20) COLLATE utf8mb4_unicode_ci NOT NULL, v INT NULL)",
]
VALUES = (
    "José", "jose", "JOSE", "Jose\u0301", "Straße", "strasse", "strase", "STRASSE",
    "K\u0131ra", "kira", "KIRA", "K\u0130RA", "abc", "abc ", "abc\u00a0", "ABC\t", "7", "07",
    "7abc", "0", "x", "", "\u00e6", "ae", "\uff21", "A", "\U0001f600", "\U0001f601",
)  # fmt: skip
REFUSED = 1235


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    drop_databases(cluster, [DIRECT])
    recreate_database(cluster.servers, SCHEMA, DDL, charset="utf8mb4")
    recreate_database([cluster.servers[2]], DIRECT, DDL, charset="utf8mb4")
    config = proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": [
            {**t, "shards": ["s0", "s1"]} for t in TABLES
        ]}],
    )  # fmt: skip
    with module_proxy(
        config, tmp_path_factory, "exact", cleanup=lambda: drop_databases(cluster, [SCHEMA, DIRECT])
    ) as process:
        yield process


@pytest.fixture(scope="module")
def pair(proxy: ProxyProcess, cluster: LocalCluster) -> Iterator[tuple[Any, Any]]:
    with proxied_and_direct(proxy, SCHEMA, cluster.servers[2], DIRECT, charset="utf8mb4") as pair:
        yield pair


def outcome(conn: Any, sql: str, args: Any = None) -> tuple[str, object]:
    """('rows', sorted rows) / ('ok', affected) / ('error', code) of one statement."""
    try:
        with conn.cursor() as cur:
            affected = cur.execute(sql, args)
            if cur.description:
                return "rows", sorted(cur.fetchall(), key=repr)
            return "ok", affected
    except pymysql.MySQLError as exc:
        return "error", exc.args[0]


def same_or_refused(pair: tuple[Any, Any], sql: str, args: Any = None) -> bool:
    """Runs `sql` both ways; True if the proxy refused it, else asserts the same outcome."""
    via, direct = pair
    got = outcome(via, sql, args)
    if got == ("error", REFUSED):
        return True
    assert got == outcome(direct, sql, args), sql
    return False


def clear(pair: tuple[Any, Any], *tables: str) -> None:
    for conn in pair:
        for table in tables:
            outcome(conn, f"DELETE FROM {table}")


def shards_holding(cluster: LocalCluster, table: str, key: str) -> set[str]:
    found = set()
    for server in cluster.servers[:2]:
        conn = server.connect(SCHEMA, charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                if cur.execute(f"SELECT 1 FROM {table} WHERE k = %s", (key,)):
                    found.add(server.name)
        finally:
            conn.close()
    return found


@pytest.mark.parametrize("table", sorted(COLLATIONS))
def test_collation_equal_string_keys_are_one_key_through_the_proxy(
    pair: tuple[Any, Any], table: str
) -> None:
    clear(pair, table)
    for index, value in enumerate(VALUES):
        # a duplicate under the collation is 1062 through the proxy as on one server;
        # unicode_520_ci has weights beyond the BMP the proxy does not hold: refused
        refused = same_or_refused(pair, f"INSERT INTO {table} VALUES (%s, {index})", (value,))
        assert not refused or (table == "h_520" and value > "\uffff"), value
    assert not same_or_refused(pair, f"SELECT k, v FROM {table}")
    for value in (*VALUES, "JOSÉ", "jos\u00e9 ", "Strasse", "kIRA", "ABC  "):
        for where in ("k = %s", "k IN (%s, 'zzz')", "k <=> %s", "k = %s OR k = 'x'"):
            assert not same_or_refused(pair, f"SELECT k, v FROM {table} WHERE {where}", (value,))
        assert not same_or_refused(pair, f"UPDATE {table} SET v = v + 1 WHERE k = %s", (value,))
    for number in ("7", "7.50", "-3", "007", "1e3", ".5"):
        # a number into a string key is stored as MariaDB writes it, placed by that text
        same_or_refused(pair, f"INSERT INTO {table} VALUES ({number}, 99)")
    for number in ("0", "7", "7.0", "-0"):
        # a number against a string key compares as numbers: never narrowed
        assert not same_or_refused(pair, f"SELECT k FROM {table} WHERE k = {number}")
    assert not same_or_refused(pair, f"SELECT k, v FROM {table}")


def test_equal_string_keys_share_a_shard(pair: tuple[Any, Any], cluster: LocalCluster) -> None:
    clear(pair, "h_general")
    via, _ = pair
    for group in (("José", "jose"), ("Straße", "strase"), ("abc", "ABC   ")):
        for value in group:
            outcome(via, "DELETE FROM h_general")
            assert outcome(via, "INSERT INTO h_general VALUES (%s, 1)", (value,)) == ("ok", 1)
            holders = {s for v in group for s in shards_holding(cluster, "h_general", v)}
            assert len(holders) == 1, (group, holders)


def test_a_collation_the_proxy_cannot_weigh_is_refused_by_name(pair: tuple[Any, Any]) -> None:
    via, _ = pair
    try:
        with via.cursor() as cur:
            cur.execute("INSERT INTO h_uca1400 VALUES ('a', 1)")
        raise AssertionError("INSERT into a uca1400 hash key was not refused")
    except pymysql.MySQLError as exc:
        assert exc.args[0] == REFUSED and "utf8mb4_uca1400_ai_ci" in exc.args[1], exc.args
    # reads do not narrow on it, so they stay correct
    assert not same_or_refused(pair, "SELECT k FROM h_uca1400 WHERE k = 'a'")


def test_integer_keys_against_strings_and_fractions_match_the_server(
    pair: tuple[Any, Any],
) -> None:
    clear(pair, "h_int", "r_int")
    for key in (0, 7, 11, 99, 100, 101, -5):
        for table in ("h_int", "r_int"):
            assert not same_or_refused(pair, f"INSERT INTO {table} VALUES ({key}, 1)")
    for table in ("h_int", "r_int"):
        for literal in ("'11abc'", "'11'", "' 11'", "11.0", "'11.0'", "'1.1e1'", "99.5", "'x'",
                        "100.0", "'0x'", "-5", "'-5'", "99.9999999999999999999"):  # fmt: skip
            for where in (
                f"k = {literal}", f"k IN ({literal}, 1000)", f"k <=> {literal}",
                f"k < {literal}", f"k >= {literal}", f"k BETWEEN {literal} AND 1000",
                f"CAST(k AS CHAR) = {literal}", f"NOT (k <> {literal})",
            ):  # fmt: skip
                refused = same_or_refused(pair, f"SELECT k FROM {table} WHERE {where}")
                # `k = 99.5` is answered by plan on MariaDB (an index lookup rounds): refused
                fraction = literal.strip("'").replace(".0", "").count(".") > 0
                assert not refused or (fraction and "'" not in literal), where
        for literal in ("99.5", "'11abc'", "'12'", "100.4", "'1e2'"):
            # stored converted (99.5 as 100): placed where the stored value belongs, or refused
            same_or_refused(pair, f"INSERT INTO {table} VALUES ({literal}, 2)")
        assert not same_or_refused(pair, f"SELECT k, v FROM {table}")


def test_names_in_derived_tables_ctes_and_subqueries_never_narrow_the_outer_query(
    pair: tuple[Any, Any],
) -> None:
    clear(pair, "h_int")
    for key in range(10):
        assert not same_or_refused(pair, f"INSERT INTO h_int VALUES ({key}, {key * 10})")
    for sql in (
        "SELECT d.k FROM (SELECT k + 1 AS k FROM h_int) d WHERE d.k = 3",
        "WITH c AS (SELECT k + 1 AS k FROM h_int) SELECT k FROM c WHERE k = 3",
        "SELECT k FROM h_int WHERE v IN (SELECT k * 10 FROM h_int WHERE k = 3)",
        "SELECT k FROM h_int WHERE EXISTS (SELECT 1 FROM h_int i WHERE i.k = 3) AND k < 2",
        "SELECT (SELECT MAX(k) FROM h_int WHERE k = 3) AS m FROM h_int WHERE k = 5",
    ):
        same_or_refused(pair, sql)


def test_join_equalities_under_or_and_not_never_make_a_join_local(pair: tuple[Any, Any]) -> None:
    clear(pair, "h_parent", "h_child")
    for index, key in enumerate(("a", "b", "José", "c")):
        assert not same_or_refused(pair, "INSERT INTO h_parent VALUES (%s, %s)", (key, index))
    for index, key in enumerate(("a", "jose", "JOSÉ", "zz", "b ")):
        assert not same_or_refused(pair, "INSERT INTO h_child VALUES (%s, %s, %s)",
                                   (index, key, index))  # fmt: skip
    for sql in (
        "SELECT p.k, c.id FROM h_parent p JOIN h_child c ON p.k = c.k",
        "SELECT p.k, c.id FROM h_parent p JOIN h_child c ON p.k = c.k OR c.v = 1",
        "SELECT p.k, c.id FROM h_parent p JOIN h_child c ON NOT (p.k <> c.k) OR p.v = c.v",
        "SELECT p.k, c.id FROM h_parent p, h_child c WHERE p.k = c.k OR p.v = c.v",
        "SELECT p.k, c.id FROM h_parent p LEFT JOIN h_child c ON p.k = c.k WHERE c.k <=> NULL",
        "SELECT p.k, c.id FROM h_parent p LEFT JOIN h_child c ON p.k = c.k WHERE c.k IS NULL",
        "SELECT p.k, c.id FROM h_parent p LEFT JOIN h_child c ON p.k = c.k WHERE p.k = 'JOSE'",
        "SELECT c.id FROM h_child c WHERE c.k <=> NULL",
        "SELECT c.id FROM h_child c WHERE c.k = NULL",
    ):
        same_or_refused(pair, sql)


def names_of(conn: Any, sql: str) -> list[str] | int:
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
            return [d[0] for d in cur.description]
    except pymysql.MySQLError as exc:
        return exc.args[0]


def test_fetch_first_next_and_literal_column_names_match_the_server(pair: tuple[Any, Any]) -> None:
    clear(pair, "h_int")
    for key in range(12):
        assert not same_or_refused(pair, f"INSERT INTO h_int VALUES ({key}, {key % 4})")
    for sql in (
        "SELECT k FROM h_int ORDER BY k FETCH FIRST 3 ROWS ONLY",
        "SELECT k FROM h_int ORDER BY k DESC FETCH NEXT 1 ROW ONLY",
        "SELECT k FROM h_int ORDER BY k OFFSET 2 ROWS FETCH NEXT 4 ROWS ONLY",
        "SELECT k FROM h_int ORDER BY k LIMIT 3 OFFSET 5",
        "SELECT v FROM h_int ORDER BY v FETCH FIRST 2 ROWS WITH TIES",
        "SELECT v, COUNT(*) FROM h_int GROUP BY v ORDER BY v FETCH FIRST 2 ROWS ONLY",
    ):
        via, direct = pair
        got = outcome(via, sql)
        if got != ("error", REFUSED):
            # ORDER BY makes the rows' order part of the answer
            with direct.cursor() as cur:
                cur.execute(sql)
                want = list(cur.fetchall())
            with via.cursor() as cur:
                cur.execute(sql)
                assert list(cur.fetchall()) == want, sql
    items = ("1", "'a'", "'It''s'", "-2", "1.50", "NULL", "TRUE", "1+1", "'x' AS y", '"dq"',
             "_utf8mb4'intro'", "N'nat'", "0x41", "X'42'", "1e3", "k AS `K`", "''", "' pad '")  # fmt: skip
    for item in items:
        sql = f"SELECT {item}, k FROM h_int"
        assert names_of(pair[0], sql) in (names_of(pair[1], sql), REFUSED), sql


def test_check_config_connect_names_a_hash_key_collation_it_cannot_weigh(
    proxy: ProxyProcess,
) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xaproxy",
            "check-config",
            "--connect",
            "-c",
            str(proxy.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "exact.h_uca1400.k" in done.stdout and "utf8mb4_uca1400_ai_ci" in done.stdout
    assert "h_general" not in done.stdout
