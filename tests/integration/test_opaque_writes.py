"""Statements the planner does not parse (REPLACE, CALL) still count as writes of their branch.

sqlglot reads `REPLACE INTO` and `CALL` as opaque commands. Routed to the default
shard unmarked, such a write in a transaction whose first shard was another one
joined as an XA branch that did not write, so COMMIT left it out and the rows were
lost while COMMIT answered OK. Checked on the shards themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import pymysql

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

SCHEMA = "opaque_writes"


def test_replace_and_call_on_the_default_shard_commit_with_a_transaction_begun_elsewhere(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    for server in cluster.servers:
        server.execute(
            f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}; "
            f"CREATE TABLE {SCHEMA}.keyed (id INT PRIMARY KEY, v INT); "
            f"CREATE TABLE {SCHEMA}.plain (id INT PRIMARY KEY, v INT); "
            f"CREATE PROCEDURE {SCHEMA}.put(i INT) INSERT INTO plain VALUES (i, 0)"
        )
    try:
        config = proxy_config(
            cluster,
            schemas=[
                {
                    "name": SCHEMA,
                    "default_shard": "s0",
                    "tables": [
                        {
                            "name": "keyed",
                            "shard_key": "id",
                            "algorithm": "mod",
                            "shards": ["s0", "s1"],
                        }
                    ],
                }
            ],
        )
        proxy = proxy_factory(config, name="opaque")
        proxy.start()
        conn = pymysql.connect(
            host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
            database=SCHEMA, autocommit=True,
        )  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("INSERT INTO keyed (id, v) VALUES (1, 1)")  # s1 first: decision shard
                cur.execute("REPLACE INTO plain (id, v) VALUES (10, 1)")  # joins s0 as XA branch
                cur.execute("COMMIT")
                cur.execute("BEGIN")
                cur.execute("INSERT INTO keyed (id, v) VALUES (3, 1)")
                cur.execute("CALL put(11)")
                cur.execute("COMMIT")
        finally:
            conn.close()
        s0, s1 = cluster.servers[0], cluster.servers[1]
        assert s0.execute(f"SELECT id FROM {SCHEMA}.plain ORDER BY id") == [(10,), (11,)]
        assert s1.execute(f"SELECT id FROM {SCHEMA}.keyed ORDER BY id") == [(1,), (3,)]
        assert s0.execute("XA RECOVER") == [] and s1.execute("XA RECOVER") == []
    finally:
        for server in cluster.servers:
            server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
