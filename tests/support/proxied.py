"""The pieces every differential test module needs: a proxy for the module, databases
made afresh on the shards, and a (proxied, direct) connection pair to compare.

A module's proxy is a real ``xaproxy serve`` process; a non-zero exit at the end of the
module fails it, so a crash during the tests cannot pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest

from xaproxy.devkit.localshards import LocalCluster, LocalMariaDB
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess


def recreate_database(
    servers: Iterable[LocalMariaDB], name: str, ddl: Sequence[str], *, charset: str = ""
) -> None:
    """Drops and creates `name` on each server, then runs `ddl` in it."""
    spec = f" CHARACTER SET {charset}" if charset else ""
    for server in servers:
        server.execute(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}{spec}")
        if ddl:
            server.execute(";".join(ddl), name)


def drop_databases(cluster: LocalCluster, names: Iterable[str]) -> None:
    drops = "; ".join(f"DROP DATABASE IF EXISTS {name}" for name in names)
    for server in cluster.servers:
        server.execute(drops)


@contextmanager
def module_proxy(
    config: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *,
    cleanup: Callable[[], None] | None = None,
) -> Iterator[ProxyProcess]:
    """Starts the proxy, yields it, stops it; runs `cleanup`; fails on a non-zero exit."""
    process = ProxyProcess(config, tmp_path_factory.mktemp(name), name=name)
    process.start()
    try:
        yield process
    finally:
        code = process.stop()
        if cleanup is not None:
            cleanup()
    assert code == 0, f"proxy exited with {code}; log tail:\n{process.log_tail()}"


def connect_proxy(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    """A PyMySQL connection through the proxy (the devkit's account, no database, autocommit
    on, generous timeouts unless `kwargs` say otherwise)."""
    params: dict[str, Any] = {
        "host": proxy.host,
        "port": proxy.port,
        "user": PROXY_USER,
        "password": PROXY_PASSWORD,
        "autocommit": True,
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    params.update(kwargs)
    return pymysql.connect(**params)


@contextmanager
def proxied_and_direct(
    proxy: ProxyProcess, schema: str, oracle: LocalMariaDB, direct: str, **kwargs: Any
) -> Iterator[tuple[pymysql.Connection, pymysql.Connection]]:
    """(through the proxy to `schema`, straight to `direct` on the oracle server)."""
    via = connect_proxy(proxy, database=schema, **kwargs)
    straight = pymysql.connect(
        host=oracle.host, port=oracle.port, user="root", password="", database=direct,
        autocommit=True, **kwargs,
    )  # fmt: skip
    try:
        yield via, straight
    finally:
        via.close()
        straight.close()


def assert_same_transcripts(
    connect_direct: Callable[[], pymysql.Connection],
    connect_proxied: Callable[[], pymysql.Connection],
    transcript: Callable[[pymysql.Connection, list[str]], list[tuple]],
    script: list[str],
) -> list[tuple]:
    """Runs `script` directly and through the proxy; asserts the transcripts are equal
    step by step and returns the proxied one."""
    conns = [connect_direct(), connect_proxied()]
    try:
        mine, theirs = (transcript(conn, script) for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    for expected, got in zip(mine, theirs, strict=True):
        assert got == expected, f"MariaDB: {expected}\nxaproxy: {got}"
    return theirs
