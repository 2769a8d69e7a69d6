"""Table metadata read from the shards, and the INSERT forms it makes routable.

Schema ``meta`` is sharded over s0-s2; ``meta_ref`` on s0 holds the same tables
as one plain MariaDB. Each INSERT form (no column list, SET, REPLACE, DEFAULT and
NULL for the generated id) runs on both, and the rows must be equal and placed
by the shard map. The proxy reads the definitions at start, after DDL through
it and on XAPROXY RELOAD METADATA; a table whose shards disagree is logged and
shown, and statements that need its definition are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mysql.connector
import pymysql
import pymysql.cursors
import pytest

from tests.support.proxied import drop_databases, module_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "meta"
REF = "meta_ref"
USER, PASSWORD = "app", "app-secret"
SHARDS = ("s0", "s1", "s2")

TABLES: list[dict[str, Any]] = [
    {"name": "m_rows", "shard_key": "k", "algorithm": "mod"},
    {"name": "m_kv", "shard_key": "k", "algorithm": "mod"},
    {"name": "m_ids", "shard_key": "k", "algorithm": "mod", "auto_increment": "id"},
    {"name": "m_hidden", "shard_key": "k", "algorithm": "mod"},
    {"name": "m_differs", "shard_key": "k", "algorithm": "mod"},
    {"name": "m_later", "shard_key": "k", "algorithm": "mod"},
    {"name": "m_bcast", "broadcast": True},
]
DDL = {
    # the primary key does not hold the shard key: REPLACE is refused
    "m_rows": "CREATE TABLE m_rows (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, "
    "name VARCHAR(20) NOT NULL, n INT NULL DEFAULT 5)",
    # every unique key holds the shard key: REPLACE is exact
    "m_kv": "CREATE TABLE m_kv (k INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL)",
    "m_ids": "CREATE TABLE m_ids (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "k INT NOT NULL, name VARCHAR(20) NOT NULL)",
    "m_hidden": "CREATE TABLE m_hidden (id INT NOT NULL PRIMARY KEY, "
    "secret INT INVISIBLE DEFAULT 42, k INT NOT NULL)",
    "m_bcast": "CREATE TABLE m_bcast (code INT NOT NULL PRIMARY KEY, label VARCHAR(20))",
}
ROW_TABLES = ("m_rows", "m_kv", "m_hidden")


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for server in cluster.servers:
        server.execute(
            f"DROP DATABASE IF EXISTS {SCHEMA}; DROP DATABASE IF EXISTS {REF}; "
            f"CREATE DATABASE {SCHEMA}"
        )
        server.execute(";".join(DDL.values()), SCHEMA)
    # m_differs: s2's copy has another type for v, created behind the proxy's back
    for server in cluster.servers:
        v_type = "BIGINT" if server.name == "s2" else "INT"
        server.execute(f"CREATE TABLE m_differs (k INT NOT NULL PRIMARY KEY, v {v_type})", SCHEMA)
    reference = cluster.servers[0]
    reference.execute(f"CREATE DATABASE {REF}")
    reference.execute(";".join(DDL[t] for t in ROW_TABLES), REF)
    config = proxy_config(
        cluster, schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": TABLES}]
    )
    with module_proxy(
        config, tmp_path_factory, "metadata", cleanup=lambda: drop_databases(cluster, [SCHEMA, REF])
    ) as process:
        yield process


@pytest.fixture(autouse=True)
def proxy_survives(proxy: ProxyProcess) -> Iterator[None]:
    yield
    assert proxy.is_running(), f"the proxy died; log tail:\n{proxy.log_tail()}"


def connect(proxy: ProxyProcess) -> pymysql.Connection:
    return pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=USER,
        password=PASSWORD,
        database=SCHEMA,
        autocommit=True,
        read_timeout=120,
    )


@pytest.fixture
def conn(proxy: ProxyProcess) -> Iterator[pymysql.Connection]:
    connection = connect(proxy)
    yield connection
    connection.close()


@pytest.fixture
def ref(cluster: LocalCluster) -> Iterator[pymysql.Connection]:
    s0 = cluster.servers[0]
    connection = pymysql.connect(
        host=s0.host, port=s0.port, user="root", password="", database=REF, autocommit=True
    )
    yield connection
    connection.close()


def run(conn: pymysql.Connection, sql: str) -> tuple[int, list[tuple]]:
    """(affected rows, rows) of one statement."""
    with conn.cursor() as cur:
        affected = cur.execute(sql)
        return affected, list(cur.fetchall()) if cur.description else []


def error_of(conn: pymysql.Connection, sql: str) -> tuple[int, str]:
    with pytest.raises(pymysql.MySQLError) as info:
        run(conn, sql)
    return info.value.args[0], info.value.args[1]


def metadata(conn: pymysql.Connection, command: str = "SHOW") -> dict[str, dict[str, Any]]:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(f"XAPROXY {command} METADATA")
        return {row["table"]: row for row in cur.fetchall()}


def placed_by_mod(cluster: LocalCluster, table: str, key: str = "k") -> None:
    """Every row of `table` is on shard `key % 3`, and only there."""
    for index, server in enumerate(cluster.servers):
        for (value,) in server.execute(f"SELECT {key} FROM {table}", SCHEMA):
            assert value % len(SHARDS) == index, (table, server.name, value)


def same_rows(conn: pymysql.Connection, ref: pymysql.Connection, table: str) -> None:
    order = "k" if table == "m_kv" else "id"
    sql = f"SELECT * FROM {table} ORDER BY {order}"
    assert run(conn, sql)[1] == run(ref, sql)[1], table


def both(conn: pymysql.Connection, ref: pymysql.Connection, sql: str) -> int:
    """Runs `sql` through the proxy and on the reference; the affected rows must agree."""
    proxied = run(conn, sql)[0]
    assert proxied == run(ref, sql)[0], sql
    return proxied


# --- reading ------------------------------------------------------------------------------


def test_show_metadata_lists_each_configured_table_with_columns_and_keys(
    conn: pymysql.Connection,
) -> None:
    tables = metadata(conn)
    rows = tables["m_rows"]
    assert rows["status"] == "ok" and rows["problem"] is None
    assert rows["shards"] == "s0,s1,s2"
    assert rows["columns"].startswith("id int(11) not null, k int(11) not null, name varchar(20)")
    assert "n int(11) null default 5" in rows["columns"]
    assert rows["primary_key"] == "id"
    assert tables["m_ids"]["auto_increment"] == "id"
    assert "secret int(11) null default 42 invisible" in tables["m_hidden"]["columns"]
    assert tables["m_bcast"]["status"] == "ok"


def test_a_table_absent_at_start_is_shown_absent_and_not_logged(
    conn: pymysql.Connection, proxy: ProxyProcess
) -> None:
    assert metadata(conn)["m_later"]["status"] == "absent"
    assert "m_later" not in proxy.log_text()


def test_a_table_whose_shards_differ_is_logged_shown_and_refused(
    conn: pymysql.Connection, proxy: ProxyProcess
) -> None:
    log = proxy.log_text()
    warning = next(line for line in log.splitlines() if "meta.m_differs" in line)
    assert "WARNING" in warning
    assert "s0,s1,s2" in warning
    assert "differs between s0 and s2: column 'v': int(11) null default NULL vs bigint(20)" in (
        warning
    )
    shown = metadata(conn)["m_differs"]
    assert shown["status"] == "differs" and "s2" in shown["problem"]
    code, message = error_of(conn, "INSERT INTO m_differs VALUES (1, 2)")
    assert code == 1235
    assert "differs between s0 and s2" in message and "XAPROXY RELOAD METADATA" in message
    # with a column list the definition is not needed
    run(conn, "INSERT INTO m_differs (k, v) VALUES (1, 2)")


# --- INSERT forms, compared with one MariaDB -------------------------------------------------


def test_insert_without_a_column_list_is_split_by_the_key_position(
    conn: pymysql.Connection, ref: pymysql.Connection, cluster: LocalCluster
) -> None:
    sql = "INSERT INTO m_rows VALUES (1, 0, 'a', NULL), (2, 1, 'b', 7), (3, 5, 'c', DEFAULT)"
    assert both(conn, ref, sql) == 3
    same_rows(conn, ref, "m_rows")
    placed_by_mod(cluster, "m_rows")


def test_a_wrong_value_count_answers_mariadbs_error_code(
    conn: pymysql.Connection, ref: pymysql.Connection
) -> None:
    sql = "INSERT INTO m_rows VALUES (8, 1, 'x')"
    code, message = error_of(conn, sql)
    assert (code, error_of(ref, sql)[0]) == (1136, 1136)
    assert message.startswith("Column count doesn't match value count at row 1")


def test_insert_without_a_column_list_skips_invisible_columns_as_mariadb_does(
    conn: pymysql.Connection, ref: pymysql.Connection, cluster: LocalCluster
) -> None:
    assert both(conn, ref, "INSERT INTO m_hidden VALUES (1, 4), (2, 5), (3, 6)") == 3
    sql = "SELECT id, secret, k FROM m_hidden ORDER BY id"
    assert run(conn, sql)[1] == run(ref, sql)[1] == [(1, 42, 4), (2, 42, 5), (3, 42, 6)]
    placed_by_mod(cluster, "m_hidden")


def test_insert_set_is_routed_by_the_shard_key(
    conn: pymysql.Connection, ref: pymysql.Connection, cluster: LocalCluster
) -> None:
    assert both(conn, ref, "INSERT INTO m_rows SET id = 20, k = 4, name = 'set'") == 1
    assert both(conn, ref, "INSERT INTO m_rows SET name = 'set2', k = 8, id = 21, n = 1") == 1
    sql = "INSERT INTO m_rows SET id = 20, k = 4, name = 'dup' ON DUPLICATE KEY UPDATE n = 99"
    assert both(conn, ref, sql) == 2
    same_rows(conn, ref, "m_rows")
    placed_by_mod(cluster, "m_rows")


def test_replace_is_exact_where_every_unique_key_holds_the_shard_key(
    conn: pymysql.Connection, ref: pymysql.Connection, cluster: LocalCluster
) -> None:
    assert both(conn, ref, "REPLACE INTO m_kv (k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')") == 3
    # replacing existing rows on two shards: 2 affected rows each, as MariaDB counts
    assert both(conn, ref, "REPLACE INTO m_kv VALUES (1, 'A'), (2, 'B'), (4, 'd')") == 5
    assert both(conn, ref, "REPLACE INTO m_kv SET k = 3, v = 'C'") == 2
    same_rows(conn, ref, "m_kv")
    placed_by_mod(cluster, "m_kv")


def test_replace_that_could_conflict_on_another_shard_is_refused(
    conn: pymysql.Connection,
) -> None:
    code, message = error_of(conn, "REPLACE INTO m_rows (id, k, name) VALUES (1, 2, 'x')")
    assert code == 1235
    assert "unique key (id) does not contain shard key 'k'" in message


def test_replace_into_a_broadcast_table_writes_every_copy(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    run(conn, "REPLACE INTO m_bcast (code, label) VALUES (1, 'one')")
    assert run(conn, "REPLACE INTO m_bcast VALUES (1, 'uno')")[0] == 2
    for server in cluster.servers:
        assert list(server.execute("SELECT code, label FROM m_bcast", SCHEMA)) == [(1, "uno")]


def test_default_and_null_for_the_generated_id_get_ids_from_the_proxy(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    run(
        conn,
        "INSERT INTO m_ids VALUES (DEFAULT, 1, 'a'), (NULL, 2, 'b'), (5, 3, 'c')",
    )
    first = run(conn, "SELECT LAST_INSERT_ID()")[1][0][0]
    rows = run(conn, "SELECT id, k, name FROM m_ids ORDER BY k")[1]
    assert rows[0][0] == first and rows[1][0] > first
    assert rows[2] == (5, 3, "c")
    run(conn, "INSERT INTO m_ids SET k = 4, name = 'set'")
    assert run(conn, "SELECT COUNT(DISTINCT id) FROM m_ids")[1] == [(4,)]
    placed_by_mod(cluster, "m_ids")
    code, message = error_of(conn, "INSERT INTO m_ids VALUES (0, 1, 'zero')")
    assert code == 1235 and "each shard would generate its own id" in message


def test_prepared_insert_without_a_column_list_is_routed_by_its_parameters(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    cnx = mysql.connector.connect(
        host=proxy.host, port=proxy.port, user=USER, password=PASSWORD, database=SCHEMA
    )
    try:
        cur = cnx.cursor(prepared=True)
        for key in (30, 31, 32):
            cur.execute("INSERT INTO m_kv VALUES (?, ?)", (key, f"p{key}"))
        cnx.commit()
    finally:
        cnx.close()
    placed_by_mod(cluster, "m_kv")


# --- reloading ------------------------------------------------------------------------------


def test_ddl_through_the_proxy_reloads_the_metadata(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    run(conn, "DROP TABLE IF EXISTS m_later")
    run(conn, "CREATE TABLE m_later (k INT NOT NULL PRIMARY KEY, a INT, b INT)")
    run(conn, "INSERT INTO m_later VALUES (1, 10, 100), (2, 20, 200)")
    run(conn, "ALTER TABLE m_later ADD COLUMN c INT FIRST")
    assert metadata(conn)["m_later"]["columns"].startswith("c int(11)")
    run(conn, "INSERT INTO m_later VALUES (7, 3, 30, 300)")
    rows = run(conn, "SELECT c, k, a, b FROM m_later ORDER BY k")[1]
    assert rows == [(None, 1, 10, 100), (None, 2, 20, 200), (7, 3, 30, 300)]
    placed_by_mod(cluster, "m_later")
    run(conn, "DROP TABLE m_later")
    assert metadata(conn)["m_later"]["status"] == "absent"
    code, message = error_of(conn, "INSERT INTO m_later VALUES (1, 2)")
    assert code == 1235 and "XAPROXY RELOAD METADATA" in message


def test_ddl_behind_the_proxys_back_needs_reload_metadata(
    conn: pymysql.Connection, cluster: LocalCluster
) -> None:
    for server in cluster.servers:
        server.execute("CREATE TABLE m_later (k INT NOT NULL PRIMARY KEY, a INT)", SCHEMA)
    try:
        code, message = error_of(conn, "INSERT INTO m_later VALUES (1, 2)")
        assert code == 1235 and "run XAPROXY RELOAD METADATA" in message
        reloaded = metadata(conn, "RELOAD")
        assert reloaded["m_later"]["status"] == "ok"
        run(conn, "INSERT INTO m_later VALUES (1, 2), (2, 3)")
        placed_by_mod(cluster, "m_later")
        # a column added behind its back: the proxy knows 2 columns, the client sends 3
        for server in cluster.servers:
            server.execute("ALTER TABLE m_later ADD COLUMN b INT", SCHEMA)
        code, message = error_of(conn, "INSERT INTO m_later VALUES (4, 5, 6)")
        assert code == 1136 and "XAPROXY RELOAD METADATA" in message
        metadata(conn, "RELOAD")
        run(conn, "INSERT INTO m_later VALUES (4, 5, 6)")
        assert run(conn, "SELECT k, a, b FROM m_later WHERE k = 4")[1] == [(4, 5, 6)]
    finally:
        run(conn, "DROP TABLE IF EXISTS m_later")
