"""USE inside a transaction changes the database the next statements read, as on MariaDB.

The transaction's connection to a shard was opened in the database of its
first statement; a later USE must move it, or the session reads a table of the
same name in another database (mariadb-dump --single-transaction starts its
transaction before USE, and dumped another client's rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

DATABASES = ("xp_use_a", "xp_use_b")
STEPS = [
    "START TRANSACTION WITH CONSISTENT SNAPSHOT",
    "USE xp_use_a",
    "SELECT v FROM notes",
    "USE xp_use_b",
    "SELECT v FROM notes",
    "COMMIT",
    "BEGIN",
    "SELECT v FROM notes",
    "USE xp_use_a",
    "SELECT v FROM notes",
    "ROLLBACK",
]


def _transcript(connect: Callable[[str | None], Any], first: str | None) -> list:
    conn = connect(first)
    try:
        with conn.cursor() as cursor:
            out = []
            for step in STEPS:
                cursor.execute(step)
                out.append((step, cursor.fetchall() if cursor.description else None))
            return out
    finally:
        conn.close()


@pytest.mark.parametrize("first", [None, "xp_use_b", "xp_use_a"])
def test_use_in_a_transaction_reads_the_new_database(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess], first: str | None
) -> None:
    for db in DATABASES:
        cluster["s0"].execute(
            f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; "
            f"CREATE TABLE {db}.notes (v VARCHAR(10)); INSERT INTO {db}.notes VALUES ('{db}')"
        )
    schemas = [{"name": db, "default_shard": "s0"} for db in DATABASES]
    proxy = proxy_factory(proxy_config(cluster, schemas=schemas, pool_size=1))
    proxy.start()

    def through_proxy(db: str | None) -> Any:
        return pymysql.connect(
            host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
            database=db, autocommit=True,
        )  # fmt: skip

    expected = _transcript(lambda db: cluster["s0"].connect(db), first)
    assert _transcript(through_proxy, first) == expected
    for db in DATABASES:
        cluster["s0"].execute(f"DROP DATABASE IF EXISTS {db}")
