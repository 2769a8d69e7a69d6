"""Attacks through the proxy, each checked on the shards themselves, not only by its error.

A proxy in front of the three local shards (which it reaches as root) serves
schema ``sec`` to users of different grants: ``app`` (read and write, no DDL, no
operator commands), ``dev`` (DDL), ``reader`` (read only) and ``ops`` (operator,
given by its password hash). Each test tries what an attacker would, in several
spellings, through PyMySQL or raw packets, and then asks the shards directly: no
account created, global variable unchanged, no file written, shard still up,
bookkeeping rows intact, the other session still alive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests.support import rawclient as rc
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config
from xaproxy.protocol.auth import native_hash

SCHEMA = "sec"
OTHER = "sec_other"  # a logical schema app is not granted
EVIL = "sec_evil"  # the account attacks try to create
MARKER_GTRID = "sec-marker-gtrid"
OPS_PASSWORD = "ops-secret"
USERS = [
    {"user": "app", "password": "app-pw", "schemas": [SCHEMA], "ddl": False, "admin": False},
    {"user": "dev", "password": "dev-pw", "schemas": [SCHEMA], "ddl": True, "admin": False},
    {"user": "reader", "password": "reader-pw", "read_only": True, "ddl": False, "admin": False},
    {"user": "ops", "password_hash": native_hash(OPS_PASSWORD), "ddl": False, "admin": True},
]
PASSWORDS = {"app": "app-pw", "dev": "dev-pw", "reader": "reader-pw", "ops": OPS_PASSWORD}


def _cleanup_shards(cluster: LocalCluster) -> None:
    for server in cluster.servers:
        server.execute(
            f"DROP DATABASE IF EXISTS {SCHEMA}; DROP DATABASE IF EXISTS {OTHER}; "
            f"DROP USER IF EXISTS '{EVIL}'@'%'; DROP TABLE IF EXISTS xaproxy.sec_marker; "
            f"DELETE FROM xaproxy.decisions WHERE gtrid = '{MARKER_GTRID}'"
        )


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    config = proxy_config(
        cluster,
        schemas=[
            {
                "name": SCHEMA,
                "default_shard": "s0",
                "tables": [{"name": "accounts", "shard_key": "id", "algorithm": "mod"}],
            },
            {"name": OTHER, "default_shard": "s0"},
        ],
        users=USERS,
    )
    process = ProxyProcess(config, tmp_path_factory.mktemp("security"), name="security")
    process.start()  # creates the xaproxy bookkeeping tables on every shard
    _cleanup_shards(cluster)
    for server in cluster.servers:
        server.execute(
            f"CREATE DATABASE {SCHEMA}; CREATE DATABASE {OTHER}; "
            f"CREATE TABLE {SCHEMA}.accounts (id INT PRIMARY KEY, balance INT NOT NULL); "
            f"CREATE TABLE {SCHEMA}.notes (id INT PRIMARY KEY, body VARCHAR(100)); "
            f"CREATE TABLE {OTHER}.secrets (id INT PRIMARY KEY, body VARCHAR(100)); "
            f"INSERT INTO {OTHER}.secrets VALUES (1, 'top secret'); "
            "CREATE TABLE xaproxy.sec_marker (id INT PRIMARY KEY, v VARCHAR(20)); "
            "INSERT INTO xaproxy.sec_marker VALUES (1, 'intact'); "
            "INSERT INTO xaproxy.decisions (gtrid, outcome, proxy_id) "
            f"VALUES ('{MARKER_GTRID}', 'A', 'secmark')"
        )
    try:
        yield process
    finally:
        code = process.stop()
        _cleanup_shards(cluster)
    assert code == 0, f"proxy exited with {code}; log tail:\n{process.log_tail()}"


@pytest.fixture(autouse=True)
def proxy_survives(proxy: ProxyProcess) -> Iterator[None]:
    yield
    assert proxy.is_running(), f"the proxy died; log tail:\n{proxy.log_tail()}"


def connect(proxy: ProxyProcess, user: str = "app", **kwargs: Any) -> pymysql.Connection:
    params: dict[str, Any] = {
        "host": proxy.host, "port": proxy.port, "user": user, "password": PASSWORDS[user],
        "database": SCHEMA, "autocommit": True, "read_timeout": 120,
    }  # fmt: skip
    params.update(kwargs)
    return pymysql.connect(**params)


def query(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def error_of(conn: pymysql.Connection, sql: str) -> tuple[int, str]:
    """The error the statement fails with (it must fail)."""
    try:
        query(conn, sql)
    except pymysql.err.MySQLError as exc:
        return exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
    raise AssertionError(f"{sql!r} succeeded through the proxy")


def refused(conn: pymysql.Connection, sql: str, codes: tuple[int, ...]) -> None:
    code, message = error_of(conn, sql)
    assert code in codes, (sql, code, message)


def on_shards(cluster: LocalCluster, sql: str) -> list[list[tuple]]:
    return [server.execute(sql) for server in cluster.servers]


def evil_accounts(cluster: LocalCluster) -> int:
    return sum(
        rows[0][0]
        for rows in on_shards(cluster, f"SELECT COUNT(*) FROM mysql.user WHERE User = '{EVIL}'")
    )


# --- account management, server administration, global settings ----------------------


ACCOUNT_ATTACKS = [
    f"CREATE USER {EVIL} IDENTIFIED BY 'x'",
    f"create /* hidden */ user {EVIL}",
    f"CREATE /*! USER */ {EVIL}",
    f"/*!40101 CREATE USER {EVIL} */",
    f"/*M!100100 CREATE USER {EVIL} */",
    f"GRANT ALL PRIVILEGES ON *.* TO '{EVIL}'@'%' IDENTIFIED BY 'x'",
    f"PREPARE s FROM 'CREATE USER {EVIL}'",
    f"EXECUTE IMMEDIATE 'CREATE USER {EVIL}'",
    f"EXECUTE IMMEDIATE CONCAT('CREATE USER ', '{EVIL}')",
    f"BEGIN NOT ATOMIC CREATE USER {EVIL}; END",
]


@pytest.mark.parametrize("sql", ACCOUNT_ATTACKS)
def test_no_account_is_created_on_any_shard(
    proxy: ProxyProcess, cluster: LocalCluster, sql: str
) -> None:
    conn = connect(proxy)
    try:
        refused(conn, sql, (1227,))
    finally:
        conn.close()
    assert evil_accounts(cluster) == 0


def test_a_statement_after_set_without_multi_statements_never_reaches_a_shard(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    capabilities = rc.DEFAULT_CAPABILITIES & ~rc.CLIENT_MULTI_STATEMENTS
    with rc.connect(
        proxy.host, proxy.port, "app", "app-pw", database=SCHEMA, capabilities=capabilities
    ) as client:
        for sql in (
            f"SET @a = 1; CREATE USER {EVIL}",
            f"START TRANSACTION; CREATE USER {EVIL}",
            f"SELECT 1;/*!CREATE USER {EVIL}*/",
        ):
            client.query(sql)
            result = client.read_result()
            assert isinstance(result.end, rc.Err), sql
    assert evil_accounts(cluster) == 0


def test_each_statement_of_a_multi_statement_is_authorized(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    with rc.connect(proxy.host, proxy.port, "app", "app-pw", database=SCHEMA) as client:
        client.query(f"SELECT 1; CREATE USER {EVIL}; SELECT 2")
        results = client.read_results()
        assert results[0].rows == [[b"1"]]
        assert isinstance(results[-1].end, rc.Err) and results[-1].end.code == 1227
    assert evil_accounts(cluster) == 0


SHARD_ATTACKS = ["SHUTDOWN", "shutdown /* now */", "/*!SHUTDOWN*/", "EXECUTE IMMEDIATE 'SHUTDOWN'"]


@pytest.mark.parametrize("sql", SHARD_ATTACKS)
def test_shutdown_is_refused_and_every_shard_stays_up(
    proxy: ProxyProcess, cluster: LocalCluster, sql: str
) -> None:
    conn = connect(proxy)
    try:
        refused(conn, sql, (1227,))
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()
    for server in cluster.servers:
        assert server.is_running() and server.execute("SELECT 1") == [(1,)]


GLOBAL_ATTACKS = [
    "SET GLOBAL max_connections = 77",
    "set global max_connections=77",
    "SET @@global.max_connections = 77",
    "SET /*! GLOBAL */ max_connections = 77",
    "SET SESSION sql_mode = '', GLOBAL max_connections = 77",
    "EXECUTE IMMEDIATE 'SET GLOBAL max_connections = 77'",
    "SET sql_log_bin = 0",
]


@pytest.mark.parametrize("sql", GLOBAL_ATTACKS)
def test_global_variables_stay_unchanged_on_every_shard(
    proxy: ProxyProcess, cluster: LocalCluster, sql: str
) -> None:
    before = on_shards(cluster, "SELECT @@global.max_connections")
    conn = connect(proxy)
    try:
        refused(conn, sql, (1227,))
    finally:
        conn.close()
    assert on_shards(cluster, "SELECT @@global.max_connections") == before
    assert all(rows[0][0] != 77 for rows in before)


def test_administration_statements_are_refused(proxy: ProxyProcess) -> None:
    conn = connect(proxy)
    try:
        for sql in (
            "FLUSH PRIVILEGES",
            "RESET MASTER",
            "PURGE BINARY LOGS BEFORE NOW()",
            "CHANGE MASTER TO MASTER_HOST = 'example.invalid'",
            "STOP SLAVE",
            "INSTALL SONAME 'ha_connect'",
            "SHOW MASTER STATUS",
            "SHOW GRANTS",
            "SHOW ENGINE INNODB STATUS",
            "SET PASSWORD = PASSWORD('x')",
            "XAPROXY SHOW SESSIONS",
        ):
            refused(conn, sql, (1227,))
    finally:
        conn.close()


# --- files --------------------------------------------------------------------------------


def test_no_file_is_read_or_written_on_a_shard(
    proxy: ProxyProcess, cluster: LocalCluster, tmp_path: Path
) -> None:
    target = tmp_path / f"out-{uuid.uuid4().hex}.txt"
    conn = connect(proxy)
    try:
        for sql in (
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT /*! LOAD_FILE('/etc/passwd') */",
            "SELECT id FROM notes WHERE body = load_file('/etc/hostname')",
            f"SELECT * FROM notes INTO OUTFILE '{target}'",
            f"SELECT 1 /*! INTO DUMPFILE '{target}' */",
            f"EXECUTE IMMEDIATE 'SELECT 1 INTO OUTFILE ''{target}'''",
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE notes",
            "CREATE TABLE f (a INT) DATA DIRECTORY = '/tmp'",
        ):
            refused(conn, sql, (1227, 1142))
    finally:
        conn.close()
    assert not target.exists()
    assert all(
        rows == [(0,)] for rows in on_shards(cluster, f"SELECT COUNT(*) FROM {SCHEMA}.notes")
    )


# --- XA of other transactions -------------------------------------------------------------


def test_xa_of_another_transaction_is_refused_and_its_branch_stays_prepared(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    shard = cluster.servers[1]
    holder = shard.connect(SCHEMA)
    xid = "'sec-foreign','b1',7"
    try:
        with holder.cursor() as cur:
            cur.execute(f"XA START {xid}")
            cur.execute("INSERT INTO notes VALUES (99, 'prepared elsewhere')")
            cur.execute(f"XA END {xid}")
            cur.execute(f"XA PREPARE {xid}")
        conn = connect(proxy)
        try:
            for sql in (
                "XA RECOVER",
                f"XA COMMIT {xid}",
                f"xa rollback {xid}",
                f"/*! XA COMMIT {xid} */",
                f"EXECUTE IMMEDIATE 'XA COMMIT {xid.replace(chr(39), chr(39) * 2)}'",
            ):
                refused(conn, sql, (1399,))
        finally:
            conn.close()
        recovered = shard.execute("XA RECOVER")
        assert any(row[3] == b"sec-foreignb1" or row[3] == "sec-foreignb1" for row in recovered)
        assert shard.execute(f"SELECT COUNT(*) FROM {SCHEMA}.notes WHERE id = 99") == [(0,)]
    finally:
        with holder.cursor() as cur:
            cur.execute(f"XA ROLLBACK {xid}")
        holder.close()


# --- other databases and the bookkeeping tables ------------------------------------------


BOOKKEEPING_ATTACKS = [
    "SELECT * FROM xaproxy.decisions",
    "SELECT * FROM `xaproxy`.`decisions`",
    "select * from XAPROXY . DECISIONS",
    "SELECT * FROM xaproxy/**/./**/sec_marker",
    "SELECT * FROM /*!xaproxy.sec_marker*/",
    f"DELETE FROM xaproxy.decisions WHERE gtrid = '{MARKER_GTRID}'",
    "DELETE d FROM notes JOIN xaproxy.decisions d ON 1 = 1",
    "UPDATE xaproxy.sec_marker SET v = 'changed'",
    "INSERT xaproxy.sec_marker VALUES (2, 'added')",
    "REPLACE INTO xaproxy.sec_marker VALUES (1, 'replaced')",
    "TRUNCATE TABLE xaproxy.sec_marker",
    "DROP TABLE xaproxy.sec_marker",
    "RENAME TABLE xaproxy.sec_marker TO sec.stolen",
    "DROP DATABASE xaproxy",
    "PREPARE s FROM 'DELETE FROM xaproxy.sec_marker'",
    "EXECUTE IMMEDIATE 'UPDATE xaproxy.sec_marker SET v = ''changed'''",
    "BEGIN NOT ATOMIC DELETE FROM xaproxy.sec_marker; END",
    "SHOW TABLES FROM xaproxy",
    "SHOW COLUMNS FROM decisions FROM xaproxy",
    "USE xaproxy",
]


@pytest.mark.parametrize("sql", BOOKKEEPING_ATTACKS)
def test_the_bookkeeping_tables_are_unreachable_and_intact(
    proxy: ProxyProcess, cluster: LocalCluster, sql: str
) -> None:
    conn = connect(proxy, user="dev")
    try:
        refused(conn, sql, (1142, 1044))
    finally:
        conn.close()
    for rows in on_shards(cluster, "SELECT id, v FROM xaproxy.sec_marker"):
        assert rows == [(1, "intact")]
    decisions = on_shards(
        cluster, f"SELECT outcome FROM xaproxy.decisions WHERE gtrid = '{MARKER_GTRID}'"
    )
    assert all(rows == [("A",)] for rows in decisions)
    assert cluster.servers[0].execute("SELECT COUNT(*) FROM sec.notes") == [(0,)]


def test_init_db_of_the_bookkeeping_or_a_server_database_is_refused(proxy: ProxyProcess) -> None:
    with rc.connect(proxy.host, proxy.port, "app", "app-pw", database=SCHEMA) as client:
        for database in (b"xaproxy", b"mysql", b"sec_other"):
            client.command(rc.COM_INIT_DB, database)
            result = client.read_result()
            # the proxy shows no database `xaproxy` at all (1049); the others are denied (1044)
            assert isinstance(result.end, rc.Err) and result.end.code in (1044, 1049), database
    for database in ("xaproxy", "mysql"):
        with pytest.raises(pymysql.err.OperationalError) as caught:
            connect(proxy, database=database)
        assert caught.value.args[0] in (1044, 1049)


def test_field_list_without_a_current_database_is_refused(proxy: ProxyProcess) -> None:
    # a pooled shard connection could still be in another session's database
    with rc.connect(proxy.host, proxy.port, "app", "app-pw") as client:
        client.command(rc.COM_FIELD_LIST, b"secrets\0")
        result = client.read_result()
        assert isinstance(result.end, rc.Err) and result.end.code == 1046
        client.query("SELECT * FROM secrets")
        result = client.read_result()
        assert isinstance(result.end, rc.Err) and result.end.code == 1046


def test_other_databases_are_refused(proxy: ProxyProcess, cluster: LocalCluster) -> None:
    conn = connect(proxy)
    try:
        for sql in (
            "SELECT User, Password FROM mysql.user",
            "SELECT * FROM `mysql`.`user`",
            "SELECT * FROM notes WHERE body IN (SELECT Password FROM mysql.user)",
            "SELECT * FROM sec_other.secrets",
            "SELECT * FROM performance_schema.threads",
            "SELECT * FROM information_schema.PROCESSLIST",
            "DELETE FROM information_schema.TABLES",
        ):
            refused(conn, sql, (1142, 1044))
        refused(conn, "USE sec_other", (1044,))
        refused(conn, "DROP DATABASE sec_other", (1142, 1044))
        refused(conn, "USE mysql", (1044,))
        names = [row[0] for row in query(conn, "SHOW DATABASES")]
        assert names == ["information_schema", SCHEMA]
    finally:
        conn.close()
    for server in cluster.servers:
        assert server.execute("SELECT body FROM sec_other.secrets") == [("top secret",)]


# --- grants ----------------------------------------------------------------------------------


def test_ddl_needs_the_ddl_grant(proxy: ProxyProcess, cluster: LocalCluster) -> None:
    app = connect(proxy)
    dev = connect(proxy, user="dev")
    try:
        refused(app, "CREATE TABLE made_by_app (a INT)", (1142,))
        refused(app, "DROP TABLE notes", (1142,))
        query(dev, "CREATE TABLE made_by_dev (a INT PRIMARY KEY)")
        query(dev, "DROP TABLE made_by_dev")
    finally:
        app.close()
        dev.close()
    assert cluster.servers[0].execute(
        f"SELECT COUNT(*) FROM information_schema.TABLES WHERE table_schema = '{SCHEMA}' "
        "AND table_name IN ('made_by_app', 'made_by_dev', 'notes')"
    ) == [(1,)]


def test_stored_programs_hold_only_allowed_statements(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    dev = connect(proxy, user="dev")
    try:
        for sql in (
            f"CREATE PROCEDURE p_evil() BEGIN SELECT 1; CREATE USER {EVIL}; END",
            "CREATE PROCEDURE p_evil() SELECT * FROM mysql.user",
            "CREATE PROCEDURE p_evil() BEGIN DELETE FROM xaproxy.sec_marker; END",
            "CREATE TRIGGER t_evil BEFORE INSERT ON notes FOR EACH ROW "
            "BEGIN SET GLOBAL max_connections = 77; END",
            "CREATE EVENT e_evil ON SCHEDULE EVERY 1 DAY DO SHUTDOWN",
            "CREATE DEFINER = root@localhost PROCEDURE p_evil() SELECT 1",
        ):
            refused(dev, sql, (1227, 1142, 1044))
        query(dev, "CREATE PROCEDURE p_fine() BEGIN SELECT COUNT(*) FROM notes; END")
        assert query(dev, "CALL p_fine()") == [(0,)]
        query(dev, "DROP PROCEDURE p_fine")
    finally:
        dev.close()
    routines = cluster.servers[0].execute(
        f"SELECT COUNT(*) FROM information_schema.ROUTINES WHERE routine_schema = '{SCHEMA}'"
    )
    assert routines == [(0,)]
    triggers = cluster.servers[0].execute(
        f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE trigger_schema = '{SCHEMA}'"
    )
    assert triggers == [(0,)]
    assert evil_accounts(cluster) == 0


def test_read_only_users_cannot_write(proxy: ProxyProcess, cluster: LocalCluster) -> None:
    reader = connect(proxy, user="reader")
    try:
        for sql in (
            "INSERT INTO notes VALUES (1, 'x')",
            "/*! INSERT INTO notes VALUES (1, 'x') */",
            "UPDATE accounts SET balance = 0",
            "DELETE FROM accounts",
            "EXECUTE IMMEDIATE 'INSERT INTO notes VALUES (1, ''x'')'",
        ):
            refused(reader, sql, (1142,))
        assert query(reader, "SELECT COUNT(*) FROM notes") == [(0,)]
    finally:
        reader.close()
    assert cluster.servers[0].execute(f"SELECT COUNT(*) FROM {SCHEMA}.notes") == [(0,)]


def test_prepared_statements_are_authorized_before_the_shard_sees_them(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    with rc.connect(proxy.host, proxy.port, "app", "app-pw", database=SCHEMA) as client:
        for sql in (f"CREATE USER {EVIL}", "SELECT * FROM xaproxy.sec_marker", "SHUTDOWN"):
            with pytest.raises(rc.ProtocolError, match="prepare of"):
                client.prepare(sql)
        prepared = client.prepare("SELECT COUNT(*) FROM notes WHERE id > ?")
        client.execute(prepared.statement_id, [b"0"])
        assert client.read_result(binary=True).raw_rows
    assert evil_accounts(cluster) == 0


# --- sessions: KILL, SHOW PROCESSLIST, USER() ------------------------------------------------


def _connection_id(conn: pymysql.Connection) -> int:
    return int(query(conn, "SELECT CONNECTION_ID()")[0][0])


def test_kill_of_another_users_session_is_refused(proxy: ProxyProcess) -> None:
    app = connect(proxy)
    dev = connect(proxy, user="dev")
    ops = connect(proxy, user="ops")
    app_twin = connect(proxy)
    try:
        dev_id = _connection_id(dev)
        code, message = error_of(app, f"KILL {dev_id}")
        assert (code, message) == (1095, f"You are not owner of thread {dev_id}")
        refused(app, f"KILL QUERY {dev_id}", (1095,))
        assert query(dev, "SELECT 1") == [(1,)]  # still alive
        query(app, f"KILL {_connection_id(app_twin)}")  # one's own: allowed
        with pytest.raises(pymysql.err.MySQLError):
            query(app_twin, "SELECT 1")
        query(ops, f"KILL {dev_id}")  # an operator may
        with pytest.raises(pymysql.err.MySQLError):
            query(dev, "SELECT 1")
    finally:
        for conn in (app, dev, ops, app_twin):
            try:
                conn.close()
            except pymysql.err.Error:
                pass


def test_show_processlist_lists_the_proxys_sessions_and_only_ones_own(
    proxy: ProxyProcess,
) -> None:
    app = connect(proxy)
    dev = connect(proxy, user="dev")
    ops = connect(proxy, user="ops")
    try:
        app_id, dev_id = _connection_id(app), _connection_id(dev)
        rows = query(app, "SHOW FULL PROCESSLIST")
        assert {row[1] for row in rows} == {"app"}  # never 'root', the shards' account
        own = [row for row in rows if row[0] == app_id]
        assert own and own[0][7] == "SHOW FULL PROCESSLIST" and own[0][3] == SCHEMA
        seen = {row[0]: row for row in query(ops, "SHOW PROCESSLIST")}
        assert {app_id, dev_id} <= set(seen) and seen[dev_id][1] == "dev"
        assert seen[dev_id][4] == "Sleep"
        assert all(row[1] in PASSWORDS for row in seen.values())
    finally:
        for conn in (app, dev, ops):
            conn.close()


def test_user_functions_answer_the_proxy_user_not_the_shard_account(proxy: ProxyProcess) -> None:
    conn = connect(proxy)
    try:
        user, current, session, system = query(
            conn, "SELECT USER(), CURRENT_USER(), SESSION_USER(), SYSTEM_USER()"
        )[0]
        assert user == session == system == "app@127.0.0.1"
        assert current == "app@%"
        assert query(conn, "SELECT CURRENT_USER") == [("app@%",)]
        refused(conn, "SELECT USER() FROM notes", (1235,))
    finally:
        conn.close()


def test_a_password_hash_in_the_config_logs_in_with_both_plugins(proxy: ProxyProcess) -> None:
    conn = connect(proxy, user="ops")
    try:
        assert query(conn, "SELECT CURRENT_USER()") == [("ops@%",)]
        assert query(conn, "XAPROXY SHOW SESSIONS")  # an operator command
    finally:
        conn.close()
    for plugin in ("mysql_native_password", "caching_sha2_password"):
        with rc.RawClient(proxy.host, proxy.port) as client:
            assert isinstance(client.login("ops", OPS_PASSWORD, plugin=plugin), rc.Ok), plugin
        with rc.RawClient(proxy.host, proxy.port) as client:
            assert isinstance(client.login("ops", "wrong", plugin=plugin), rc.Err), plugin


def test_the_native_hash_is_what_mariadb_computes(cluster: LocalCluster) -> None:
    assert cluster.servers[0].execute(f"SELECT PASSWORD('{OPS_PASSWORD}')") == [
        (native_hash(OPS_PASSWORD),)
    ]


def test_an_application_still_works(proxy: ProxyProcess) -> None:
    """The allowlist lets ordinary work through: DML, transactions, SET, SHOW, metadata."""
    conn = connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        query(conn, "SET NAMES utf8mb4")
        query(conn, "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
        query(conn, "BEGIN")
        query(conn, "INSERT INTO accounts (id, balance) VALUES (1, 100), (2, 100)")
        query(conn, "UPDATE accounts SET balance = balance - 10 WHERE id = 1")
        query(conn, "COMMIT")
        assert query(conn, "SELECT SUM(balance) FROM accounts") == [(190,)]
        assert ("accounts",) in query(conn, "SHOW TABLES")
        assert query(conn, "SHOW COLUMNS FROM accounts")
        assert query(
            conn,
            "SELECT COUNT(*) FROM information_schema.COLUMNS "
            f"WHERE table_schema = '{SCHEMA}' AND table_name = 'accounts'",
        ) == [(2,)]
        query(conn, "DELETE FROM accounts")
    finally:
        conn.close()
