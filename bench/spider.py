"""MariaDB Spider as a peer: a Spider head whose tables are partitioned over the shards.

The head is a fourth MariaDB (``--plugin-load-add=ha_spider``, package
mariadb-plugin-spider) started by the harness. For each database it serves, one
``CREATE SERVER`` per backend shard and, per table, a Spider table with the
backend's columns, ``PARTITION BY HASH (id)`` with partition p0 on the first
shard and p1 on the second: HASH over two partitions is ``id % 2``, which is
where ``mod`` on id over the same two shards puts a row for xaproxy, so Spider
and xaproxy serve the very same rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from xaproxy.devkit.localshards import LocalMariaDB

from .harness import Harness

PLUGIN = "ha_spider"


def available() -> str | None:
    """None when the Spider plugin is installed, else why not."""
    for directory in ("/usr/lib/mysql/plugin", "/usr/lib64/mysql/plugin"):
        if Path(directory, f"{PLUGIN}.so").exists():
            return None
    if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
        return "mariadbd is not installed"
    return "the Spider plugin is not installed (apt-get install mariadb-plugin-spider)"


def head(h: Harness) -> LocalMariaDB:
    """The Spider head, started on first use (stopped with the harness)."""
    if h.spider is None:
        server = LocalMariaDB("spider", h.cluster.basedir, options=[f"--plugin-load-add={PLUGIN}"])
        h.spider = server
        server.start()
    return h.spider


def serve(h: Harness, db: str, tables: list[str], shards: tuple[str, str]) -> LocalMariaDB:
    """Spider tables in `db` on the head over `db`.`table` on the two `shards`."""
    server = head(h)
    server.execute(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}")
    for name in shards:
        backend = h.shard(name)
        link = f"{db}_{name}"
        server.execute(f"DROP SERVER IF EXISTS {link}")
        server.execute(
            f"CREATE SERVER {link} FOREIGN DATA WRAPPER mysql OPTIONS (HOST '{backend.host}', "
            f"PORT {backend.port}, USER 'root', PASSWORD '', DATABASE '{db}')"
        )
    for table in tables:
        ((_, ddl),) = h.shard(shards[0]).execute(f"SHOW CREATE TABLE {table}", db)
        server.execute(_spider_ddl(str(ddl), table, db, shards), db)
    return server


def _spider_ddl(ddl: str, table: str, db: str, shards: tuple[str, str]) -> str:
    """The backend's CREATE TABLE as a Spider table partitioned by HASH(id) over `shards`."""
    body = ddl[: ddl.rindex(")") + 1]  # the columns and keys, without the table options
    p0, p1 = (f"{db}_{name}" for name in shards)
    return (
        f'{body} ENGINE=SPIDER COMMENT=\'wrapper "mysql", table "{table}"\' '
        f"PARTITION BY HASH (id) (PARTITION p0 COMMENT = 'srv \"{p0}\"', "
        f"PARTITION p1 COMMENT = 'srv \"{p1}\"')"
    )
