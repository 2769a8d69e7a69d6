"""Databases as one MariaDB has them: USE, SHOW DATABASES, CREATE/DROP DATABASE and the
notes of DDL that every shard runs.

The proxy's schema `xp_db` lives on s1 and s2 (default shard s1, table `t` split over
both); the direct side is the same database on s0. `xp_db_absent` is in the shard map but
on no shard, as a database a DBA has not created yet is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.support.proxied import assert_same_transcripts, connect_proxy, module_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

DB, ABSENT = "xp_db", "xp_db_absent"


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    tables = [{"name": "t", "shard_key": "id", "algorithm": "mod", "shards": ["s1", "s2"]}]
    schemas = [
        {"name": DB, "default_shard": "s1", "tables": tables},
        {"name": ABSENT, "default_shard": "s1"},
    ]
    config = proxy_config(cluster, schemas=schemas, proxy_id="databases")
    with module_proxy(config, tmp_path_factory, "databases") as process:
        yield process


@pytest.fixture
def fresh(cluster: LocalCluster) -> None:
    for server in cluster.servers:
        server.execute(f"DROP DATABASE IF EXISTS {ABSENT}; DROP DATABASE IF EXISTS {DB}")
        server.execute(f"CREATE DATABASE {DB}")


def _transcript(conn: pymysql.Connection, script: list[str]) -> list[tuple]:
    """Each statement's rows (or affected count) and the warnings it left, or its error."""
    seen: list[tuple] = []
    for sql in script:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                answer: Any = list(cur.fetchall()) if cur.description else cur.rowcount
                cur.execute("SHOW WARNINGS")
                seen.append((sql, answer, list(cur.fetchall())))
        except pymysql.MySQLError as exc:
            seen.append((sql, "error", exc.args[0]))
    return seen


SCRIPT = [
    r"SHOW DATABASES LIKE 'xp\_db%'",
    f"USE {ABSENT}",
    "SELECT DATABASE()",
    f"USE {DB}",
    f"CREATE DATABASE IF NOT EXISTS {DB}",
    f"DROP DATABASE IF EXISTS {ABSENT}",
    "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)",
    "SELECT @@warning_count",
    "DROP TABLE IF EXISTS t, nothere",
    "SELECT @@warning_count",
    f"USE {DB}",
    "SHOW TABLES",
    "DROP TABLE IF EXISTS nothere",
    f"CREATE DATABASE {ABSENT}",
    r"SHOW DATABASES LIKE 'xp\_db%'",
    f"USE {ABSENT}",
    "SELECT DATABASE()",
    f"DROP DATABASE {ABSENT}",
    "SELECT DATABASE()",
    f"USE {ABSENT}",
    r"SHOW DATABASES LIKE 'xp\_db%'",
]


def test_use_show_databases_and_database_ddl_answer_as_mariadb(
    cluster: LocalCluster, proxy: ProxyProcess, fresh: None
) -> None:
    seen = assert_same_transcripts(
        lambda: cluster["s0"].connect(),
        lambda: connect_proxy(proxy),
        _transcript,
        SCRIPT,
    )
    assert seen[1][1:] == ("error", 1049)
    assert seen[7][2] == [("Note", 1050, "Table 't' already exists")]  # once, not per shard


def test_a_database_that_no_shard_has_is_unknown_at_login_and_in_com_init_db(
    cluster: LocalCluster, proxy: ProxyProcess, fresh: None
) -> None:
    with pytest.raises(pymysql.MySQLError) as direct:
        cluster["s0"].connect(ABSENT)
    with pytest.raises(pymysql.MySQLError) as proxied:
        connect_proxy(proxy, database=ABSENT)
    assert proxied.value.args[0] == direct.value.args[0] == 1049
    conn = connect_proxy(proxy, database=DB)
    try:
        with pytest.raises(pymysql.MySQLError) as caught:
            conn.select_db(ABSENT)  # COM_INIT_DB
        assert caught.value.args[0] == 1049
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchall() == ((DB,),)
    finally:
        conn.close()
