"""The proxy works with a least-privilege shard account, and says when an account holds more.

An account with only DML and CREATE TEMPORARY TABLES on the logical schema and DML + CREATE on the
bookkeeping database `xaproxy` serves a cross-shard transaction, commits it with
XA, and lets recovery see its own prepared branches. `xaproxy check-config
--connect` reports it clean, warns about root's privileges, and fails on an
account that lacks what the proxy needs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import (
    PROXY_PASSWORD,
    PROXY_USER,
    SOURCE_ROOT,
    ProxyProcess,
    proxy_config,
    python_env,
)

SCHEMA = "xp_least"
ACCOUNT, SECRET = "xp_least", "least-secret"
POOR, POOR_SECRET = "xp_poor", "poor-secret"
NOTEMP, NOTEMP_SECRET = "xp_notemp", "notemp-secret"
GRANTS = [
    f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON `{SCHEMA}`.* "
    f"TO '{ACCOUNT}'@'%'",
    f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `xaproxy`.* TO '{ACCOUNT}'@'%'",
    f"GRANT SELECT ON `{SCHEMA}`.* TO '{POOR}'@'%'",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{SCHEMA}`.* TO '{NOTEMP}'@'%'",
    f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `xaproxy`.* TO '{NOTEMP}'@'%'",
]


@pytest.fixture(scope="module")
def accounts(cluster: LocalCluster) -> Iterator[LocalCluster]:
    for server in cluster.servers:
        server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
        server.execute(f"CREATE DATABASE {SCHEMA}")
        server.execute(f"CREATE TABLE {SCHEMA}.accounts (id INT PRIMARY KEY, balance INT)")
        for user, password in ((ACCOUNT, SECRET), (POOR, POOR_SECRET), (NOTEMP, NOTEMP_SECRET)):
            server.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            server.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        for grant in GRANTS:
            server.execute(grant)
    yield cluster
    for server in cluster.servers:
        for user in (ACCOUNT, POOR, NOTEMP):
            server.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")


def _config(cluster: LocalCluster, user: str | None, password: str = "") -> dict[str, Any]:
    tables = [{"name": "accounts", "shard_key": "id", "algorithm": "mod"}]
    config = proxy_config(
        cluster, schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": tables}]
    )
    if user is not None:
        for shard in config["shards"]:
            shard["user"], shard["password"] = user, password
    return config


def _check(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "xaproxy", "check-config", "--connect", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=SOURCE_ROOT,
        env=python_env(),
        timeout=120,
        check=False,
    )


def test_check_config_connect_finds_a_least_privilege_account_clean(
    accounts: LocalCluster, tmp_path: Path
) -> None:
    done = _check(tmp_path, _config(accounts, ACCOUNT, SECRET))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout and done.stdout.strip().endswith(": OK")


def test_check_config_connect_warns_about_root(accounts: LocalCluster, tmp_path: Path) -> None:
    done = _check(tmp_path, _config(accounts, None))
    assert done.returncode == 0, done.stdout + done.stderr
    for shard in ("s0", "s1", "s2"):
        assert f"WARNING shard {shard}: holds SUPER on *.*" in done.stdout
    assert "GRANT OPTION" in done.stdout and "with warnings" in done.stdout


def test_check_config_connect_fails_on_an_account_that_lacks_privileges(
    accounts: LocalCluster, tmp_path: Path
) -> None:
    done = _check(tmp_path, _config(accounts, POOR, POOR_SECRET))
    assert done.returncode == 1
    assert (
        f"ERROR shard s0: needs INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES on `{SCHEMA}`.*"
        in done.stdout
    )
    assert "ERROR shard s0: needs SELECT, INSERT, UPDATE, DELETE, CREATE on `xaproxy`.*" in (
        done.stdout
    )


def test_a_least_privilege_account_serves_cross_shard_transactions_and_recovery(
    accounts: LocalCluster, proxy_factory: Any
) -> None:
    proxy: ProxyProcess = proxy_factory(_config(accounts, ACCOUNT, SECRET), name="least")
    proxy.start()
    conn = pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=PROXY_USER,
        password=PROXY_PASSWORD,
        database=SCHEMA,
        autocommit=True,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("INSERT INTO accounts (id, balance) VALUES (0, 100), (1, 100), (2, 100)")
            cursor.execute("BEGIN")
            cursor.execute("UPDATE accounts SET balance = balance - 5 WHERE id = 0")
            cursor.execute("UPDATE accounts SET balance = balance + 5 WHERE id = 1")
            cursor.execute("COMMIT")
            cursor.execute("SELECT id, balance FROM accounts ORDER BY id")
            assert cursor.fetchall() == ((0, 95), (1, 105), (2, 100))
    finally:
        conn.close()
    assert "holds" not in proxy.log_text()  # no privilege warning at start
    with (
        pymysql.connect(
            host=accounts["s0"].host, port=accounts["s0"].port, user=ACCOUNT, password=SECRET
        ) as shard,
        shard.cursor() as cursor,
    ):
        cursor.execute("XA RECOVER")
        assert cursor.fetchall() == ()


def test_without_create_temporary_tables_a_statement_needing_copies_is_refused_plainly(
    accounts: LocalCluster, proxy_factory: Any
) -> None:
    """The refusal says what the account lacks, never the account's name (the shard's own
    1044 would); the session goes on."""
    proxy: ProxyProcess = proxy_factory(_config(accounts, NOTEMP, NOTEMP_SECRET), name="notemp")
    proxy.start()
    conn = pymysql.connect(
        host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD,
        database=SCHEMA, autocommit=True,
    )  # fmt: skip
    try:
        with conn.cursor() as cursor:
            with pytest.raises(pymysql.MySQLError) as refused:
                cursor.execute("SELECT VARIANCE(balance) FROM accounts")
            code, message = refused.value.args
            assert code == 1235 and "lacks CREATE TEMPORARY TABLES" in message
            assert NOTEMP not in message
            cursor.execute("SELECT COUNT(*) FROM accounts")
            assert cursor.fetchone() is not None
    finally:
        conn.close()
