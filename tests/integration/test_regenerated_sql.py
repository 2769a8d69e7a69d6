"""SQL the proxy regenerates means on MariaDB what the client's own text means.

Each expression of tests/golden/regenerated_expressions.txt runs in
`SELECT <expr> FROM t ORDER BY id` on a real MariaDB twice: as written, and as
routing/mariadb_sql.py regenerates it from sqlglot's tree (what a shard gets from
the fan-out rewrite). Results, or error codes, must be equal. A fan-out through
the proxy with REGEXP and LOG10 is checked against one MariaDB as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from xaproxy.analysis.parse import parse
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config
from xaproxy.routing.mariadb_sql import mariadb_sql

SCHEMA = "xp_regen"
FILE = Path(__file__).resolve().parents[1] / "golden" / "regenerated_expressions.txt"
EXPRESSIONS = [
    line.strip()
    for line in FILE.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith(("#", "KNOWN "))
]
TABLE = "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20), j JSON, d DATETIME, b VARBINARY(10))"
ROWS = (
    "INSERT INTO t VALUES (1, 'abc', '{\"a\": 1}', '2024-01-02 03:04:05', 'x'), "
    "(2, 'Bcd', NULL, NULL, NULL), (3, 'cab', '[1, 2]', '2025-06-30 23:59:59', 'yz')"
)


@pytest.fixture(scope="module")
def shard(cluster: LocalCluster) -> Iterator[pymysql.cursors.Cursor]:
    for server in cluster.servers:
        server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}")
        server.execute(TABLE, SCHEMA)
    cluster["s0"].execute(ROWS, SCHEMA)
    conn = cluster["s0"].connect(SCHEMA)
    try:
        yield conn.cursor()
    finally:
        conn.close()
        for server in cluster.servers:
            server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")


def _outcome(cursor: pymysql.cursors.Cursor, sql: str) -> tuple:
    try:
        cursor.execute(sql)
        return ("rows", cursor.fetchall())
    except pymysql.MySQLError as exc:
        return ("error", exc.args[0])


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_regenerated_expression_means_what_the_client_wrote(
    shard: pymysql.cursors.Cursor, expression: str
) -> None:
    sql = f"SELECT {expression} FROM t ORDER BY id"
    parsed = parse(sql)
    assert parsed.ast is not None, parsed.error
    regenerated = mariadb_sql(parsed.ast)
    assert _outcome(shard, regenerated) == _outcome(shard, sql), regenerated


def test_a_fan_out_with_regexp_and_log10_answers_as_one_mariadb(
    cluster: LocalCluster, shard: pymysql.cursors.Cursor, proxy_factory
) -> None:
    tables = [{"name": "t", "shard_key": "id", "algorithm": "mod"}]
    proxy: ProxyProcess = proxy_factory(
        proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": tables}])
    )
    proxy.start()
    direct = "SELECT id, note REGEXP '^c', LOG10(id), UTC_DATE() > '2000-01-01' FROM t"
    where = " WHERE note REGEXP 'b' OR note NOT RLIKE 'x' ORDER BY id"
    expected = _outcome(shard, direct + where)
    for server in cluster.servers:  # the same rows, spread over the shards
        server.execute("DELETE FROM t", SCHEMA)
    conn = pymysql.connect(
        host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
        database=SCHEMA, autocommit=True,
    )  # fmt: skip
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                ROWS.replace("INSERT INTO t VALUES", "INSERT INTO t (id, note, j, d, b) VALUES")
            )
            assert _outcome(cursor, direct + where) == expected
    finally:
        conn.close()
        for server in cluster.servers:
            server.execute("DELETE FROM t", SCHEMA)
        cluster["s0"].execute(ROWS, SCHEMA)
