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
from tests.support.proxied import connect_proxy
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
    kwargs.setdefault("read_timeout", 120)
    return connect_proxy(
        proxy, **({"database": SCHEMA, "user": user, "password": PASSWORDS[user]} | kwargs)
    )


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
            "SELECT `load_file`('/etc/passwd')",  # native functions answer to quoted names
            "SELECT HEX(`LOAD_FILE` (0x2f6574632f706173737764))",
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


# --- read_only is enforced by the shards themselves --------------------------------------

WRITING_FUNCTION = (
    f"CREATE FUNCTION {SCHEMA}.f_writes() RETURNS INT MODIFIES SQL DATA "
    f"BEGIN INSERT INTO {SCHEMA}.notes VALUES (99, 'written'); RETURN 1; END"
)
ESCAPING_PROCEDURE = (
    f"CREATE PROCEDURE {SCHEMA}.p_escapes() BEGIN SET SESSION TRANSACTION READ WRITE; "
    f"INSERT INTO {SCHEMA}.notes VALUES (98, 'escaped'); END"
)


@pytest.fixture
def writing_routines(cluster: LocalCluster) -> Iterator[None]:
    """A stored function that writes, a view over it and a procedure that tries to lift
    READ ONLY, created on the default shard by its DBA (as a ddl user could)."""
    server = cluster["s0"]
    server.execute(WRITING_FUNCTION)
    server.execute(ESCAPING_PROCEDURE)
    server.execute(f"CREATE VIEW {SCHEMA}.v_writes AS SELECT {SCHEMA}.f_writes() AS x")
    try:
        yield
    finally:
        server.execute(
            f"DROP VIEW IF EXISTS {SCHEMA}.v_writes; DROP FUNCTION IF EXISTS {SCHEMA}.f_writes; "
            f"DROP PROCEDURE IF EXISTS {SCHEMA}.p_escapes; DELETE FROM {SCHEMA}.notes"
        )


def _notes_on_shard(cluster: LocalCluster) -> int:
    return int(cluster["s0"].execute(f"SELECT COUNT(*) FROM {SCHEMA}.notes")[0][0])


def test_a_read_only_user_cannot_write_through_a_function_view_or_procedure(
    proxy: ProxyProcess, cluster: LocalCluster, writing_routines: None
) -> None:
    reader = connect(proxy, user="reader", client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        for sql in (
            "SELECT f_writes()",
            "SELECT /*! f_writes() */",
            "SELECT * FROM v_writes",
            "SET @x = f_writes()",
            "SELECT 1 FROM DUAL WHERE f_writes() = 1",
            "EXECUTE IMMEDIATE 'SELECT f_writes()'",
        ):
            refused(reader, sql, (1792,))  # the shard itself: "in a READ ONLY transaction"
        query(reader, "BEGIN")
        refused(reader, "SELECT f_writes()", (1792,))
        query(reader, "ROLLBACK")
        for sql in (
            "CALL p_escapes()",
            "START TRANSACTION READ WRITE",
            "SET SESSION TRANSACTION READ WRITE",
            "SET tx_read_only = 0",
            "SET @@session.transaction_read_only = OFF",
            "SET STATEMENT tx_read_only = 0 FOR SELECT f_writes()",
            "SET /*!40101 SESSION */ TRANSACTION READ WRITE",
            "SELECT 1; SET SESSION TRANSACTION READ WRITE",
            "EXECUTE IMMEDIATE 'START TRANSACTION READ WRITE'",
        ):
            refused(reader, sql, (1142,))
        # reads still work, on one shard and across all of them, in and out of a transaction
        assert query(reader, "SELECT COUNT(*) FROM accounts") == [(0,)]
        query(reader, "BEGIN")
        assert query(reader, "SELECT COUNT(*) FROM accounts") == [(0,)]
        query(reader, "COMMIT")
    finally:
        reader.close()
    with (
        rc.connect(proxy.host, proxy.port, "reader", "reader-pw", database=SCHEMA) as client,
        pytest.raises(rc.ProtocolError, match="1792"),  # the shard refuses its prepare
    ):
        client.prepare("SELECT f_writes()")
    assert _notes_on_shard(cluster) == 0
    # the pooled connections the reader used are read-write again for the next user
    app = connect(proxy)
    try:
        assert query(app, "SELECT f_writes()") == [(1,)]
    finally:
        app.close()
    assert _notes_on_shard(cluster) == 1


def test_a_ddl_user_cannot_reach_beyond_its_grants_through_stored_programs(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    dev = connect(proxy, user="dev")
    try:
        for sql in (
            "CREATE FUNCTION f_evil() RETURNS TEXT SQL SECURITY DEFINER "
            f"RETURN (SELECT body FROM {OTHER}.secrets LIMIT 1)",
            "CREATE FUNCTION f_evil() RETURNS INT RETURN (SELECT COUNT(*) FROM mysql.user)",
            "CREATE /*!50001 DEFINER = root@localhost */ FUNCTION f_evil() RETURNS INT RETURN 1",
            "CREATE TRIGGER t_evil AFTER INSERT ON notes FOR EACH ROW "
            f"UPDATE {OTHER}.secrets SET body = 'stolen'",
            "CREATE TRIGGER t_evil AFTER INSERT ON notes FOR EACH ROW "
            "INSERT INTO xaproxy.sec_marker VALUES (2, 'x')",
            "CREATE /* c */ EVENT e_evil ON SCHEDULE EVERY 1 SECOND DO "
            f"DELETE FROM {OTHER}.secrets",
            f"ALTER EVENT e_evil DO DELETE FROM {OTHER}.secrets",
            f"CREATE VIEW v_evil AS SELECT * FROM {OTHER}.secrets",
            "CREATE VIEW v_evil AS SELECT * FROM information_schema.TABLES",
            "CREATE PROCEDURE p_evil() BEGIN PREPARE s FROM 'DELETE FROM sec_other.secrets'; END",
            f"CREATE PROCEDURE p_evil() SELECT NEXTVAL({OTHER}.seq)",
        ):
            refused(dev, sql, (1227, 1142, 1044))
        for sql in (
            "CREATE FUNCTION f_evil() RETURNS TEXT RETURN CURRENT_USER()",
            "CREATE TRIGGER t_evil BEFORE INSERT ON notes FOR EACH ROW SET NEW.body = USER()",
            "CREATE VIEW v_evil AS SELECT SESSION_USER() AS u",
        ):
            refused(dev, sql, (1235,))  # it would answer the shard's account, later
    finally:
        dev.close()
    for server in cluster.servers:
        for sql in (
            f"SELECT COUNT(*) FROM information_schema.ROUTINES WHERE routine_schema = '{SCHEMA}'",
            f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE trigger_schema = '{SCHEMA}'",
            f"SELECT COUNT(*) FROM information_schema.EVENTS WHERE event_schema = '{SCHEMA}'",
            f"SELECT COUNT(*) FROM information_schema.VIEWS WHERE table_schema = '{SCHEMA}'",
        ):
            assert server.execute(sql) == [(0,)], sql
        assert server.execute(f"SELECT body FROM {OTHER}.secrets") == [("top secret",)]


# --- sequences of other databases -------------------------------------------------------------


def test_sequence_functions_on_another_database_are_refused(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    for server in cluster.servers:
        server.execute(f"CREATE SEQUENCE {OTHER}.seq")
    conn = connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        for sql in (
            f"SELECT NEXTVAL({OTHER}.seq)",
            f"SELECT nextval ( `{OTHER}` . `seq` )",
            f"SELECT SETVAL({OTHER}.seq, 1000)",
            f"SELECT LASTVAL({OTHER}.seq)",
            f"SELECT NEXT VALUE FOR {OTHER}.seq",
            f"SELECT PREVIOUS VALUE FOR {OTHER}.seq",
            f"SELECT /*!NEXTVAL({OTHER}.seq) */",
            f"SELECT /*M!100300 SETVAL({OTHER}.seq, 1000) */",
            f"INSERT INTO notes VALUES (NEXT VALUE FOR {OTHER}.seq, 'x')",
            f"SET @v = SETVAL({OTHER}.seq, 1000)",
            f"DO SETVAL({OTHER}.seq, 1000)",
            f"EXECUTE IMMEDIATE 'SELECT SETVAL({OTHER}.seq, 1000)'",
            f"SELECT 1; SELECT SETVAL({OTHER}.seq, 1000)",
            "SELECT SETVAL(xaproxy.sec_marker, 1000)",
        ):
            refused(conn, sql, (1142, 1044))
    finally:
        conn.close()
    try:
        for server in cluster.servers:
            # untouched: no value was taken or set
            assert server.execute(f"SELECT next_not_cached_value FROM {OTHER}.seq") == [(1,)]
            assert server.execute("SELECT COUNT(*) FROM xaproxy.sec_marker") == [(1,)]
    finally:
        for server in cluster.servers:
            server.execute(f"DROP SEQUENCE IF EXISTS {OTHER}.seq")


# --- USER() & co. never store or reveal the shard account -----------------------------------


def test_user_functions_inside_statements_answer_the_proxy_user(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy)
    direct = cluster["s0"].connect()
    try:
        query(conn, "SET @v = USER()")
        query(conn, "SELECT CURRENT_USER() INTO @c")
        query(conn, "SET @s = CONCAT('by ', SESSION_USER(), '/', SYSTEM_USER())")
        assert query(conn, "SELECT @v, @c, @s") == [
            ("app@127.0.0.1", "app@%", "by app@127.0.0.1/app@127.0.0.1")
        ]
        # the value carries what MariaDB gives the function's: utf8mb3, SYSCONST
        query(direct, "SET @v = USER()")
        typed = "SELECT CHARSET(@v), COLLATION(@v), COERCIBILITY(@v)"
        assert query(conn, typed) == query(direct, typed)
        query(conn, "INSERT INTO notes VALUES (7, CONCAT('by ', USER()))")
        query(conn, "INSERT INTO notes VALUES (8, CURRENT_USER)")
        assert query(conn, "SELECT id FROM notes WHERE body = CONCAT('by ', USER())") == [(7,)]
        assert query(conn, "SELECT id FROM notes WHERE body = CURRENT_USER()") == [(8,)]
        query(conn, "UPDATE notes SET body = SYSTEM_USER() WHERE id = 7")
        with conn.cursor() as cur:
            assert cur.execute("DELETE FROM notes WHERE body = CURRENT_USER()") == 1
        for sql in (
            "SELECT USER() FROM notes",
            "SELECT * FROM (SELECT USER()) AS d",
            "SELECT (SELECT CURRENT_USER())",
            "SELECT id FROM notes UNION SELECT USER()",
            "SELECT USER(1)",
            "DELETE FROM notes WHERE id = 1 RETURNING USER()",
            "PREPARE s FROM 'SELECT USER()'",
            "EXECUTE IMMEDIATE 'SET @v = USER()'",
            "BEGIN NOT ATOMIC SELECT USER(); END",
        ):
            refused(conn, sql, (1235,))
    finally:
        conn.close()
        direct.close()
    with rc.connect(proxy.host, proxy.port, "app", "app-pw", database=SCHEMA) as client:
        prepared = client.prepare("INSERT INTO notes VALUES (?, USER())")
        client.execute(prepared.statement_id, [b"9"])
        assert client.read_result(binary=True).ok.affected_rows == 1
    try:
        rows = cluster["s0"].execute(f"SELECT id, body FROM {SCHEMA}.notes ORDER BY id")
        assert rows == [(7, "app@127.0.0.1"), (9, "app@127.0.0.1")]
    finally:
        cluster["s0"].execute(f"DELETE FROM {SCHEMA}.notes")


# --- information_schema and SHOW: only the user's schemas ----------------------------------


def test_information_schema_shows_only_the_users_schemas(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy)
    try:
        for sql in (
            "SELECT * FROM information_schema.TABLES",
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA",
            f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{OTHER}'",
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'xaproxy'",
            f"SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{SCHEMA}' OR 1 = 1",
            "SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA LIKE '%'",
            "SELECT * FROM information_schema.USER_PRIVILEGES",
            "SELECT * FROM information_schema.SCHEMA_PRIVILEGES",
            "SELECT * FROM information_schema.INNODB_TRX",
            "SELECT * FROM /*!information_schema.*/ TABLES",
            "EXECUTE IMMEDIATE 'SELECT * FROM information_schema.SCHEMATA'",
        ):
            refused(conn, sql, (1142,))
        for sql in ("SHOW GRANTS", "SHOW GRANTS FOR CURRENT_USER()", "SHOW PROCEDURE STATUS"):
            refused(conn, sql, (1227, 1142))
        mine = (
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = '{SCHEMA}' ORDER BY TABLE_NAME"
        )
        assert query(conn, mine) == [tuple(row) for row in cluster["s0"].execute(mine)]
        current = (
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
        )
        assert query(conn, current) == [("accounts",), ("notes",)]
        query(conn, "USE information_schema")
        refused(conn, "SELECT * FROM SCHEMATA", (1142,))
        assert query(conn, f"SELECT SCHEMA_NAME FROM SCHEMATA WHERE SCHEMA_NAME = '{SCHEMA}'") == [
            (SCHEMA,)
        ]
    finally:
        conn.close()


# --- sql_mode: "..." stays a string on the shard too ------------------------------------------


def test_ansi_quotes_never_reaches_a_shard_in_any_spelling(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        for sql in (
            "SET sql_mode = 'ANSI_QUOTES'",
            "SET SESSION sql_mode = 'ANSI'",
            "SET /*!40101 sql_mode = 'ORACLE' */",
            "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT 1",
            "SET STATEMENT sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES') FOR SELECT 1",
            # values the proxy cannot read are read back from the shard
            "SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
            "SET sql_mode = 'ANSI_QUOT' 'ES'",
            "SET @m = 'ANSI_QUOTES'; SET sql_mode = @m",
        ):
            refused(conn, sql, (1227,))
            # with ANSI_QUOTES stuck on the connection this would be a column (1054)
            assert query(conn, 'SELECT "mysql"') == [("mysql",)], sql
        query(conn, "SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")
        assert "STRICT_ALL_TABLES" in query(conn, "SELECT @@sql_mode")[0][0]
        assert "ANSI_QUOTES" not in query(conn, "SELECT @@sql_mode")[0][0]
    finally:
        conn.close()


def test_sql_modes_that_change_how_statements_parse_are_refused_in_any_spelling(
    proxy: ProxyProcess,
) -> None:
    """Under PIPES_AS_CONCAT `1 || 0` is '10' and under HIGH_NOT_PRECEDENCE `NOT 1 BETWEEN
    0 AND 2` is 1: the proxy, which reads them as the default mode does, would route a key
    (or regenerate the text) differently from what the shard computes."""
    conn = connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        for mode in ("PIPES_AS_CONCAT", "HIGH_NOT_PRECEDENCE"):
            for sql in (
                f"SET sql_mode = '{mode}'",
                f"SET SESSION sql_mode = 'STRICT_ALL_TABLES,{mode.lower()}'",
                f"SET STATEMENT sql_mode = '{mode}' FOR SELECT 1 || 0",
                f"SET sql_mode = CONCAT(@@sql_mode, ',{mode}')",
                f"SET @m = '{mode}'; SET sql_mode = @m",
            ):
                refused(conn, sql, (1227,))
                assert query(conn, "SELECT 1 || 0, NOT 1 BETWEEN 0 AND 2") == [(1, 0)], sql
            assert mode not in query(conn, "SELECT @@sql_mode")[0][0]
    finally:
        conn.close()
