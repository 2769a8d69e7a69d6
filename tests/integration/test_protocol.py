"""The MySQL protocol as real clients see it, through the proxy against real shards.

Framing (16 MiB packets, both EOF styles), status flags, authentication, the
utility commands, session state that must survive connection pooling, errors
passed through unchanged and prepared statements with every type.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import mysql.connector
import MySQLdb
import pymysql
import pytest

from tests.support import rawclient as rc
from tests.support.proxied import connect_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "xp_protocol"
UNLISTED = "xp_protocol_unlisted"
USER, PASSWORD = "app", "app-secret"
OTHER_USER, OTHER_PASSWORD = "other", "other-secret"
USERS = [
    {"user": USER, "password": PASSWORD},
    {"user": OTHER_USER, "password": OTHER_PASSWORD},
]
BIG = 17 * 1024 * 1024 + 321  # more than one 0xFFFFFF wire packet
MAX_PAYLOAD = 0xFFFFFF


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for server in cluster.servers:
        server.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    cluster["s0"].execute(f"CREATE DATABASE IF NOT EXISTS {UNLISTED}")
    config = proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}], users=USERS)
    process = ProxyProcess(config, tmp_path_factory.mktemp("protocol"), name="protocol")
    process.start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def proxy_survives(proxy: ProxyProcess) -> Iterator[None]:
    yield
    assert proxy.is_running(), f"the proxy died; log tail:\n{proxy.log_tail()}"


def connect(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    return connect_proxy(
        proxy, **({"database": SCHEMA, "user": USER, "password": PASSWORD} | kwargs)
    )


def connector(proxy: ProxyProcess, **kwargs: Any) -> Any:
    params: dict[str, Any] = {
        "host": proxy.host,
        "port": proxy.port,
        "user": USER,
        "password": PASSWORD,
        "database": SCHEMA,
        "autocommit": True,
    }
    params.update(kwargs)
    return mysql.connector.connect(**params)


def raw(proxy: ProxyProcess, **kwargs: Any) -> rc.RawClient:
    kwargs.setdefault("database", SCHEMA)
    return rc.connect(proxy.host, proxy.port, USER, PASSWORD, **kwargs)


def query(conn: Any, sql: str, args: Any = None) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def run(proxy: ProxyProcess, *statements: str) -> None:
    conn = connect(proxy)
    try:
        for sql in statements:
            query(conn, sql)
    finally:
        conn.close()


def error_of(action: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises((pymysql.MySQLError, mysql.connector.Error, MySQLdb.MySQLError)) as info:
        action()
    exc = info.value
    if isinstance(exc, mysql.connector.Error):
        return exc.errno, exc.msg
    return exc.args[0], exc.args[1]


# --- packets of 16 MiB and more ---------------------------------------------------


@pytest.fixture(scope="module")
def blob_table(proxy: ProxyProcess) -> str:
    run(
        proxy,
        "DROP TABLE IF EXISTS big_blobs",
        "CREATE TABLE big_blobs (id INT PRIMARY KEY, data LONGBLOB)",
    )
    return "big_blobs"


def test_17mib_blob_round_trips_byte_identical_through_pymysql(
    proxy: ProxyProcess, blob_table: str
) -> None:
    data = os.urandom(BIG)
    conn = connect(proxy, max_allowed_packet=256 * 1024 * 1024)
    try:
        query(conn, f"INSERT INTO {blob_table} VALUES (1, %s)", (data,))
        ((length, back),) = query(conn, f"SELECT LENGTH(data), data FROM {blob_table} WHERE id = 1")
    finally:
        conn.close()
    assert length == BIG
    assert back == data


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_17mib_blob_round_trips_byte_identical_through_prepared_statement(
    proxy: ProxyProcess, blob_table: str, use_pure: bool
) -> None:
    data = os.urandom(BIG)
    row_id = 10 + int(use_pure)
    conn = connector(proxy, use_pure=use_pure)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(f"REPLACE INTO {blob_table} VALUES (?, ?)", (row_id, data))
        select = f"SELECT LENGTH(data), data FROM {blob_table} WHERE id = "
        if use_pure:
            # Connector/Python's pure binary-row reader fails on rows of 16 MiB and
            # more even against MariaDB directly; read this one back as text.
            cur.close()
            cur = conn.cursor()
            cur.execute(select + str(row_id))
        else:
            cur.execute(select + "?", (row_id,))
        length, back = cur.fetchone()
        cur.close()
    finally:
        conn.close()
    assert length == BIG
    assert bytes(back) == data


def test_payload_of_exactly_0xffffff_bytes_needs_the_trailing_empty_packet_both_ways(
    proxy: ProxyProcess,
) -> None:
    client = raw(proxy)
    try:
        # Client to proxy: a COM_QUERY payload of exactly 0xFFFFFF bytes; the raw
        # client sends it as one full packet plus an empty one.
        head, tail = "SELECT LENGTH('", "') AS n"
        filler = MAX_PAYLOAD - 1 - len(head) - len(tail)
        sql = head + "q" * filler + tail
        assert 1 + len(sql) == MAX_PAYLOAD
        client.query(sql)
        assert client.read_result().rows == [[str(filler).encode()]]

        # Proxy to client: a row payload of exactly 0xFFFFFF bytes (4-byte length
        # prefix + value) must arrive as a full packet followed by an empty one.
        value_len = MAX_PAYLOAD - 4
        client.query(f"SELECT REPEAT('r', {value_len}) AS big")
        assert client.read_packet() == b"\x01"  # column count
        client.read_packet()  # column definition
        assert client.read_packet()[:1] == b"\xfe"  # EOF (no DEPRECATE_EOF)
        _, part1 = client.read_wire_packet()
        _, part2 = client.read_wire_packet()
        assert len(part1) == MAX_PAYLOAD
        assert part2 == b""
        assert part1 == b"\xfd" + value_len.to_bytes(3, "little") + b"r" * value_len
        end = client.read_packet()
        assert end[:1] == b"\xfe" and len(end) < 9

        # The connection is still in step afterwards.
        assert client.simple_query("SELECT 7").rows == [[b"7"]]
    finally:
        client.close()


# --- status flags -------------------------------------------------------------------


def test_autocommit_status_by_default_and_in_trans_follows_begin_commit_rollback(
    proxy: ProxyProcess,
) -> None:
    client = raw(proxy)
    try:
        assert client.greeting is not None
        assert client.greeting.status & rc.SERVER_STATUS_AUTOCOMMIT

        def status(sql: str) -> int:
            return client.simple_query(sql).status

        assert status("SELECT 1") & 0x3 == rc.SERVER_STATUS_AUTOCOMMIT
        assert status("BEGIN") & 0x3 == rc.SERVER_STATUS_AUTOCOMMIT | rc.SERVER_STATUS_IN_TRANS
        assert status("SELECT 1") & rc.SERVER_STATUS_IN_TRANS
        assert status("COMMIT") & 0x3 == rc.SERVER_STATUS_AUTOCOMMIT
        assert status("START TRANSACTION") & rc.SERVER_STATUS_IN_TRANS
        assert status("SELECT 1") & rc.SERVER_STATUS_IN_TRANS
        assert status("ROLLBACK") & 0x3 == rc.SERVER_STATUS_AUTOCOMMIT
    finally:
        client.close()

    conn = connect(proxy)
    try:
        assert conn.get_autocommit()
        conn.begin()
        assert conn.server_status & rc.SERVER_STATUS_IN_TRANS
        conn.commit()
        assert not conn.server_status & rc.SERVER_STATUS_IN_TRANS
        assert conn.get_autocommit()
    finally:
        conn.close()


def test_set_autocommit_0_clears_autocommit_and_first_statement_opens_a_transaction(
    proxy: ProxyProcess,
) -> None:
    client = raw(proxy)
    try:
        ok = client.simple_query("SET autocommit=0").status
        assert not ok & (rc.SERVER_STATUS_AUTOCOMMIT | rc.SERVER_STATUS_IN_TRANS)
        assert client.simple_query("SELECT 1").status & 0x3 == rc.SERVER_STATUS_IN_TRANS
        assert client.simple_query("COMMIT").status & 0x3 == 0
        assert client.simple_query("SELECT 2").status & 0x3 == rc.SERVER_STATUS_IN_TRANS
        assert client.simple_query("ROLLBACK").status & 0x3 == 0
        assert client.simple_query("SET autocommit=1").status & 0x3 == rc.SERVER_STATUS_AUTOCOMMIT
    finally:
        client.close()

    # mysqlclient reads the flag from whatever packet ended the last statement.
    conn = MySQLdb.connect(
        host=proxy.host, port=proxy.port, user=USER, password=PASSWORD, database=SCHEMA
    )
    try:
        conn.autocommit(True)
        assert conn.get_autocommit() is True
        conn.autocommit(False)
        assert conn.get_autocommit() is False
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        assert conn.get_autocommit() is False
        conn.rollback()
    finally:
        conn.close()


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["eof", "deprecate_eof"])
def test_more_results_flag_on_every_non_final_result_of_a_multi_statement(
    proxy: ProxyProcess, deprecate_eof: bool
) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS counters (id INT PRIMARY KEY, n INT)",
        "REPLACE INTO counters VALUES (1, 0)",
    )
    caps = rc.DEFAULT_CAPABILITIES | (rc.CLIENT_DEPRECATE_EOF if deprecate_eof else 0)
    client = raw(proxy, capabilities=caps)
    try:
        client.query("SELECT 1; SELECT 2, 3; UPDATE counters SET n = n + 1 WHERE id = 1")
        results = client.read_results()
        assert [r.rows for r in results] == [[[b"1"]], [[b"2", b"3"]], []]
        assert results[2].ok is not None and results[2].ok.affected_rows == 1
        assert [bool(r.status & rc.SERVER_MORE_RESULTS_EXISTS) for r in results] == [
            True,
            True,
            False,
        ]
        # Statements the proxy answers itself follow the same rule.
        client.query("SET @m = 5; SELECT @m; BEGIN; SELECT 4; COMMIT")
        results = client.read_results()
        assert len(results) == 5
        assert results[1].rows == [[b"5"]] and results[3].rows == [[b"4"]]
        flags = [bool(r.status & rc.SERVER_MORE_RESULTS_EXISTS) for r in results]
        assert flags == [True, True, True, True, False]
        assert client.simple_query("SELECT 9").rows == [[b"9"]]
    finally:
        client.close()


# --- EOF framings -------------------------------------------------------------------


def test_both_eof_framings_read_the_same_result_with_the_exact_packet_sequence(
    proxy: ProxyProcess,
) -> None:
    sql = "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL"
    old = raw(proxy)
    new = raw(proxy, capabilities=rc.DEFAULT_CAPABILITIES | rc.CLIENT_DEPRECATE_EOF)
    try:
        old_result = old.simple_query(sql)
        new_result = new.simple_query(sql)
        assert old_result.kinds == ["COUNT", "COLDEF", "COLDEF", "EOF", "ROW", "ROW", "EOF"]
        assert new_result.kinds == ["COUNT", "COLDEF", "COLDEF", "ROW", "ROW", "OK_EOF"]
        assert isinstance(old_result.end, rc.Eof)
        assert isinstance(new_result.end, rc.Ok)
        assert old_result.rows == new_result.rows == [[b"1", b"x"], [b"2", None]]
        assert old_result.columns == new_result.columns
        assert [rc.column_name(c) for c in new_result.columns] == ["a", "b"]
        assert old_result.status & rc.SERVER_STATUS_AUTOCOMMIT
        assert new_result.status & rc.SERVER_STATUS_AUTOCOMMIT

        empty = "SELECT 1 AS a FROM DUAL WHERE 1 = 0"
        assert old.simple_query(empty).kinds == ["COUNT", "COLDEF", "EOF", "EOF"]
        assert new.simple_query(empty).kinds == ["COUNT", "COLDEF", "OK_EOF"]

        # The prepare response drops its EOFs under DEPRECATE_EOF too.
        assert old.prepare("SELECT ? AS p, 2 AS q").kinds == [
            "PREPARE_OK",
            "PARAM",
            "EOF",
            "COLDEF",
            "COLDEF",
            "EOF",
        ]
        assert new.prepare("SELECT ? AS p, 2 AS q").kinds == [
            "PREPARE_OK",
            "PARAM",
            "COLDEF",
            "COLDEF",
        ]
    finally:
        old.close()
        new.close()


# --- authentication -------------------------------------------------------------------


def test_wrong_password_is_refused_with_1045_and_sqlstate_28000(proxy: ProxyProcess) -> None:
    client = rc.RawClient(proxy.host, proxy.port)
    try:
        result = client.login(USER, "not-the-password")
    finally:
        client.close()
    assert isinstance(result, rc.Err)
    assert (result.code, result.sqlstate) == (1045, "28000")
    assert "Access denied" in result.message
    code, _ = error_of(lambda: connect(proxy, password="wrong"))
    assert code == 1045


def test_unknown_user_is_refused_with_1045(proxy: ProxyProcess) -> None:
    client = rc.RawClient(proxy.host, proxy.port)
    try:
        result = client.login("nobody", PASSWORD)
    finally:
        client.close()
    assert isinstance(result, rc.Err)
    assert (result.code, result.sqlstate) == (1045, "28000")
    code, _ = error_of(lambda: connect(proxy, user="nobody"))
    assert code == 1045


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_caching_sha2_password_fast_path_with_mysql_connector(
    proxy: ProxyProcess, use_pure: bool
) -> None:
    conn = connector(proxy, auth_plugin="caching_sha2_password", use_pure=use_pure)
    try:
        assert query(conn, "SELECT 40 + 2") == [(42,)]
    finally:
        conn.close()
    code, _ = error_of(
        lambda: connector(
            proxy, auth_plugin="caching_sha2_password", use_pure=use_pure, password="bad"
        )
    )
    assert code == 1045


def test_caching_sha2_password_as_the_proxy_default_plugin_with_pymysql(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    config = proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0"}],
        users=USERS,
        auth_plugin="caching_sha2_password",
    )
    sha2_proxy = proxy_factory(config, name="sha2")
    sha2_proxy.start()
    client = rc.RawClient(sha2_proxy.host, sha2_proxy.port)
    try:
        result = client.login(USER, PASSWORD, plugin="caching_sha2_password")
        assert client.greeting is not None
        assert client.greeting.plugin == "caching_sha2_password"
        assert isinstance(result, rc.Ok)
        assert client.auth_trace[0] == b"\x01\x03"  # fast authentication succeeded
    finally:
        client.close()
    conn = connect(sha2_proxy)
    try:
        assert query(conn, "SELECT 'sha2'") == [("sha2",)]
    finally:
        conn.close()
    code, _ = error_of(lambda: connect(sha2_proxy, password="bad"))
    assert code == 1045


def test_unsupported_client_plugin_gets_an_auth_switch_to_native_password(
    proxy: ProxyProcess,
) -> None:
    client = rc.RawClient(proxy.host, proxy.port)
    try:
        result = client.login(USER, PASSWORD, plugin="client_ed25519", database=SCHEMA)
        assert isinstance(result, rc.Ok), result
        switch = client.auth_trace[0]
        assert switch.startswith(b"\xfemysql_native_password\x00")
        nonce = switch[len(b"\xfemysql_native_password\x00") :].rstrip(b"\0")
        assert len(nonce) == 20
        assert client.greeting is not None and nonce != client.greeting.scramble
        assert client.simple_query("SELECT DATABASE()").rows == [[SCHEMA.encode()]]
    finally:
        client.close()


def test_connect_attributes_sent_by_drivers_are_accepted(proxy: ProxyProcess) -> None:
    attrs = {"_client_name": "rawclient", "_pid": "1234", "program_name": "p" * 300}
    client = raw(proxy, attributes=attrs)
    try:
        assert client.simple_query("SELECT 5").rows == [[b"5"]]
    finally:
        client.close()
    conn = connect(proxy, program_name="xaproxy-tests")
    try:
        assert query(conn, "SELECT 6") == [(6,)]
    finally:
        conn.close()
    for use_pure in (False, True):
        cconn = connector(proxy, use_pure=use_pure, conn_attrs={"app": "tests"})
        try:
            assert query(cconn, "SELECT 7") == [(7,)]
        finally:
            cconn.close()


# --- utility commands -------------------------------------------------------------------


def test_init_db_and_use_switch_database_and_unknown_database_gives_1049(
    proxy: ProxyProcess,
) -> None:
    conn = connect(proxy, database=None)
    try:
        assert query(conn, "SELECT DATABASE()") == [(None,)]
        conn.select_db(SCHEMA)  # COM_INIT_DB
        assert query(conn, "SELECT DATABASE()") == [(SCHEMA,)]
        code, message = error_of(lambda: conn.select_db("no_such_db"))
        assert code == 1049 and "no_such_db" in message
        query(conn, "USE information_schema")
        assert query(conn, "SELECT DATABASE()") == [("information_schema",)]
        code, _ = error_of(lambda: query(conn, "USE no_such_db"))
        assert code == 1049
        query(conn, f"USE `{SCHEMA}`")
        assert query(conn, "SELECT DATABASE()") == [(SCHEMA,)]
    finally:
        conn.close()
    client = raw(proxy)
    try:
        client.command(rc.COM_INIT_DB, b"no_such_db")
        err = client.read_result().end
        assert isinstance(err, rc.Err) and (err.code, err.sqlstate) == (1049, "42000")
    finally:
        client.close()
    code, _ = error_of(lambda: connect(proxy, database="no_such_db"))
    assert code == 1049


def test_com_ping_answers_ok(proxy: ProxyProcess) -> None:
    conn = connect(proxy)
    try:
        conn.ping(reconnect=False)
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()
    client = raw(proxy)
    try:
        client.command(rc.COM_PING)
        result = client.read_result()
        assert result.kinds == ["OK"]
        assert result.status & rc.SERVER_STATUS_AUTOCOMMIT
    finally:
        client.close()


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["eof", "deprecate_eof"])
def test_com_field_list_returns_column_definitions(
    proxy: ProxyProcess, deprecate_eof: bool
) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS field_list (id INT PRIMARY KEY, name VARCHAR(20) "
        "DEFAULT 'x', created DATETIME)",
    )
    caps = rc.DEFAULT_CAPABILITIES | (rc.CLIENT_DEPRECATE_EOF if deprecate_eof else 0)
    client = raw(proxy, capabilities=caps)
    try:
        client.command(rc.COM_FIELD_LIST, b"field_list\0")
        names = []
        while True:
            packet = client.read_packet()
            if packet[:1] == b"\xfe":
                if deprecate_eof:
                    assert rc.parse_ok(packet).status & rc.SERVER_STATUS_AUTOCOMMIT
                else:
                    assert len(packet) == 5
                break
            assert not rc.is_err(packet), rc.parse_err(packet)
            names.append(rc.column_name(packet))
        assert names == ["id", "name", "created"]
        assert client.simple_query("SELECT 1").rows == [[b"1"]]
    finally:
        client.close()


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_reset_connection_clears_variables_and_rolls_back_the_transaction(
    proxy: ProxyProcess, use_pure: bool
) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS reset_rows (id INT PRIMARY KEY, tag VARCHAR(20))",
        "DELETE FROM reset_rows",
    )
    conn = connector(proxy, use_pure=use_pure)
    try:
        default_mode = query(conn, "SELECT @@sql_mode")[0][0]
        query(conn, "SET @v = 5")
        query(conn, "SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
        query(conn, "SET time_zone = '+03:00'")
        assert query(conn, "SELECT @v, @@sql_mode, @@time_zone") == [
            (5, "STRICT_ALL_TABLES", "+03:00")
        ]
        query(conn, "BEGIN")
        query(conn, "INSERT INTO reset_rows VALUES (1, 'uncommitted')")
        conn.cmd_reset_connection()
        assert query(conn, "SELECT @v, @@sql_mode, @@time_zone") == [(None, default_mode, "SYSTEM")]
        assert query(conn, "SELECT DATABASE()") == [(SCHEMA,)]
        assert query(conn, "SELECT COUNT(*) FROM reset_rows") == [(0,)]
    finally:
        conn.close()
    other = connect(proxy)
    try:
        assert query(other, "SELECT COUNT(*) FROM reset_rows") == [(0,)]
    finally:
        other.close()


def _session_user(conn: Any) -> str:
    (session_id,) = query(conn, "SELECT CONNECTION_ID()")[0]
    for row in query(conn, "XAPROXY SHOW SESSIONS"):
        if int(row[0]) == int(session_id):
            return row[1]
    raise AssertionError(f"session {session_id} not in XAPROXY SHOW SESSIONS")


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_change_user_switches_to_another_configured_user(
    proxy: ProxyProcess, use_pure: bool
) -> None:
    conn = connector(proxy, use_pure=use_pure)
    try:
        query(conn, "SET @before = 1")
        assert _session_user(conn) == USER
        conn.cmd_change_user(username=OTHER_USER, password=OTHER_PASSWORD, database=SCHEMA)
        assert _session_user(conn) == OTHER_USER
        assert query(conn, "SELECT @before, DATABASE()") == [(None, SCHEMA)]
    finally:
        conn.close()


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_change_user_with_a_wrong_password_fails_with_1045(
    proxy: ProxyProcess, use_pure: bool
) -> None:
    conn = connector(proxy, use_pure=use_pure)
    try:
        code, _ = error_of(
            lambda: conn.cmd_change_user(username=OTHER_USER, password="wrong", database=SCHEMA)
        )
        assert code == 1045
    finally:
        conn.close()
    # The proxy is unharmed.
    fresh = connect(proxy)
    try:
        assert query(fresh, "SELECT 1") == [(1,)]
    finally:
        fresh.close()


def _background_load(proxy: ProxyProcess, stop: threading.Event, sql: str) -> Callable[[], None]:
    def work() -> None:
        conn = connect(proxy)
        try:
            while not stop.is_set():
                query(conn, sql)
        finally:
            conn.close()

    return work


def test_show_warnings_returns_the_statements_warnings_despite_pooling(
    proxy: ProxyProcess,
) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS short_text (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(3))",
    )
    stop = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(_background_load(proxy, stop, "SELECT 1")) for _ in range(4)]
        try:
            conn = connect(proxy)
            try:
                for _ in range(5):
                    assert query(conn, "SELECT 1/0") == [(None,)]
                    assert query(conn, "SELECT 1") == [(1,)]  # another pooled connection
                    query(conn, "SELECT 1/0")
                    warnings = query(conn, "SHOW WARNINGS")
                    assert warnings == [("Warning", 1365, "Division by 0")]
                    assert query(conn, "SELECT @@warning_count") == [(1,)]
                query(conn, "SET SESSION sql_mode = ''")
                query(conn, "INSERT INTO short_text (v) VALUES ('abcdef')")
                warnings = query(conn, "SHOW WARNINGS")
                assert [(w[0], w[1]) for w in warnings] == [("Warning", 1265)]
                assert "'v'" in warnings[0][2]
                query(conn, "SELECT 1")
                assert query(conn, "SHOW WARNINGS") == []
            finally:
                conn.close()
        finally:
            stop.set()
        for load in loads:
            load.result()


def test_last_insert_id_is_per_session_with_20_concurrent_sessions(proxy: ProxyProcess) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS ids (id BIGINT AUTO_INCREMENT PRIMARY KEY, owner INT)",
    )

    def work(owner: int) -> int:
        conn = connect(proxy)
        try:
            for _ in range(25):
                cur = conn.cursor()
                cur.execute("INSERT INTO ids (owner) VALUES (%s)", (owner,))
                new_id = cur.lastrowid
                cur.close()
                assert new_id > 0
                assert query(conn, "SELECT LAST_INSERT_ID()") == [(new_id,)]
                assert query(conn, "SELECT owner FROM ids WHERE id = LAST_INSERT_ID()") == [
                    (owner,)
                ]
            return new_id
        finally:
            conn.close()

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(work, range(20)))
    assert len(set(results)) == 20


# --- session state survives pooling --------------------------------------------------


def test_session_variables_are_reapplied_on_pooled_connections(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    ((default_mode, default_tz),) = cluster["s0"].execute(
        "SELECT @@GLOBAL.sql_mode, @@GLOBAL.time_zone"
    )
    a = connect(proxy)
    query(a, "SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
    query(a, "SET @x = 42")
    query(a, "SET time_zone = '+05:00'")
    stop = threading.Event()
    failures: list[str] = []

    def other_session() -> int:
        conn = connect(proxy)
        count = 0
        try:
            while not stop.is_set() or count < 50:
                got = query(conn, "SELECT @@sql_mode, @x, @@time_zone")
                if got != [(default_mode, None, default_tz)]:
                    failures.append(f"default session saw {got}")
                # Under ANSI_QUOTES (refused by the proxy) this would be a column reference.
                if query(conn, 'SELECT "plain string"') != [("plain string",)]:
                    failures.append("double quotes lost their default meaning")
                count += 1
            return count
        finally:
            conn.close()

    try:
        with ThreadPoolExecutor(5) as pool:
            others = [pool.submit(other_session) for _ in range(5)]
            try:
                for _ in range(50):
                    assert query(a, "SELECT @@sql_mode, @x, @@time_zone") == [
                        ("STRICT_ALL_TABLES", 42, "+05:00")
                    ]
                    assert query(a, "SELECT 'single' AS \"quoted alias\"") == [("single",)]
            finally:
                stop.set()
            counts = [f.result() for f in others]
    finally:
        a.close()
    assert not failures, failures[:5]
    assert min(counts) >= 50


def test_set_names_latin1_returns_latin1_bytes(proxy: ProxyProcess) -> None:
    client = raw(proxy)
    try:
        client.simple_query("SET NAMES latin1")
        assert client.simple_query("SELECT @@character_set_results").rows == [[b"latin1"]]
        # A utf8mb4 value comes back converted to latin1.
        result = client.simple_query("SELECT CONVERT(X'C3A9' USING utf8mb4) AS e")
        assert result.rows == [[b"\xe9"]]
        # A latin1 literal in the statement is understood as latin1.
        client.query(b"SELECT HEX(CONVERT('\xe9' USING utf8mb4)), '\xe9'")
        assert client.read_result().rows == [[b"C3A9", b"\xe9"]]
    finally:
        client.close()
    conn = connect(proxy, charset="latin1")
    try:
        assert query(conn, "SELECT CONVERT(X'C3A9' USING utf8mb4)") == [("é",)]
    finally:
        conn.close()


# --- errors pass through unchanged -------------------------------------------------


def test_backend_errors_keep_code_sqlstate_and_message(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS dup_keys (id INT PRIMARY KEY)",
        "REPLACE INTO dup_keys VALUES (1)",
    )
    cases = {
        "INSERT INTO dup_keys VALUES (1)": (1062, "23000"),
        "SELECT no_such_column FROM dup_keys": (1054, "42S22"),
        "SELECT * FROM dup_keys WHERE": (1064, "42000"),
        "SELECT * FROM no_such_table": (1146, "42S02"),
    }
    through = raw(proxy)
    server = cluster["s0"]
    direct = rc.connect(server.host, server.port, "root", "", database=SCHEMA)
    try:
        for sql, (code, state) in cases.items():
            through.query(sql)
            direct.query(sql)
            got = through.read_result().end
            expected = direct.read_result().end
            assert isinstance(expected, rc.Err) and (expected.code, expected.sqlstate) == (
                code,
                state,
            )
            assert got == expected, sql
            assert through.simple_query("SELECT 1").rows == [[b"1"]]
    finally:
        through.close()
        direct.close()


# --- statements the proxy answers itself --------------------------------------------


def test_xa_statements_from_clients_are_refused_with_a_clear_error(proxy: ProxyProcess) -> None:
    conn = connect(proxy)
    try:
        for sql in ("XA START 'client-xa'", "XA RECOVER", "XA COMMIT 'client-xa'"):
            code, message = error_of(lambda sql=sql: query(conn, sql))
            assert code == 1399, (sql, code, message)
            assert "XA" in message and "refused" in message
        assert query(conn, "SELECT 1") == [(1,)]
        assert not conn.server_status & rc.SERVER_STATUS_IN_TRANS
    finally:
        conn.close()


def test_show_databases_lists_the_configured_logical_schemas(proxy: ProxyProcess) -> None:
    conn = connect(proxy)
    try:
        names = [row[0] for row in query(conn, "SHOW DATABASES")]
        like = [row[0] for row in query(conn, "SHOW DATABASES LIKE 'xp\\_protocol%'")]
    finally:
        conn.close()
    assert SCHEMA in names
    assert "information_schema" in names
    assert UNLISTED not in names  # exists on s0 but is not a configured schema
    assert like == [SCHEMA]


def test_show_tables_lists_the_tables(proxy: ProxyProcess) -> None:
    run(
        proxy,
        "CREATE TABLE IF NOT EXISTS listed_one (id INT PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS listed_two (id INT PRIMARY KEY)",
    )
    conn = connect(proxy)
    try:
        tables = [row[0] for row in query(conn, "SHOW TABLES")]
        like = query(conn, "SHOW TABLES LIKE 'listed%'")
        full = query(conn, f"SHOW FULL TABLES FROM {SCHEMA} LIKE 'listed_one'")
    finally:
        conn.close()
    assert {"listed_one", "listed_two"} <= set(tables)
    assert like == [("listed_one",), ("listed_two",)]
    assert full == [("listed_one", "BASE TABLE")]


# --- prepared statements with every type -----------------------------------------


PARAM_VALUES: list[tuple[str, str, Any]] = [
    ("i", "INT", 42),
    ("neg", "BIGINT", -9223372036854775807),
    ("ubig", "BIGINT UNSIGNED", 18446744073709551615),
    ("f", "DOUBLE", 3.25),
    ("d", "DECIMAL(20,6)", Decimal("-12345.678901")),
    ("s", "VARCHAR(64) CHARACTER SET utf8mb4", "héllo wörld 😀 ok"),
    ("b", "VARBINARY(64)", b"\x00\x01\x7f\x80\xfe\xff'\\\""),
    ("dt", "DATE", datetime.date(2024, 2, 29)),
    ("dtm", "DATETIME(6)", datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)),
    # datetime.time: the C extension sends timedelta parameters with a broken
    # microseconds field (MariaDB itself reads them as 00:00:00).
    ("tm", "TIME(6)", datetime.time(13, 14, 15, 654321)),
    ("n", "INT NULL", None),
]


@pytest.fixture(scope="module")
def param_table(proxy: ProxyProcess) -> str:
    columns = ", ".join(f"{name} {ddl}" for name, ddl, _ in PARAM_VALUES)
    run(
        proxy,
        "DROP TABLE IF EXISTS ps_params",
        f"CREATE TABLE ps_params (id INT PRIMARY KEY, {columns})",
    )
    return "ps_params"


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_prepared_statement_parameters_of_every_type_round_trip(
    proxy: ProxyProcess, param_table: str, use_pure: bool
) -> None:
    names = [name for name, _, _ in PARAM_VALUES]
    values = [value for _, _, value in PARAM_VALUES]
    big_unsigned = 18446744073709551615
    if not use_pure:
        # The C extension cannot bind integers above 2**63-1 at all (it fails the
        # same way against MariaDB directly); use the largest it can send.
        big_unsigned = 9223372036854775807
        values[names.index("ubig")] = big_unsigned
    row_id = 1 + int(use_pure)
    conn = connector(proxy, use_pure=use_pure)
    try:
        cur = conn.cursor(prepared=True)
        marks = ", ".join("?" for _ in range(len(names) + 1))
        cur.execute(f"INSERT INTO {param_table} VALUES ({marks})", (row_id, *values))
        assert cur.rowcount == 1
        # Every value also works as a filter parameter.
        where = " AND ".join(f"{n} = ?" for n in names if n != "n") + " AND n IS NULL"
        cur.execute(
            f"SELECT id FROM {param_table} WHERE id = ? AND {where}",
            (row_id, *[v for n, v in zip(names, values, strict=True) if n != "n"]),
        )
        assert cur.fetchall() == [(row_id,)]
        # Echoed parameters keep their values.
        cur.execute("SELECT ?, ?, ?, ?", (-7, big_unsigned, "😀", None))
        assert cur.fetchall() == [(-7, big_unsigned, "😀", None)]
        # Statements the proxy answers itself describe their result columns too.
        cur.execute("SELECT DATABASE(), CONNECTION_ID() > ?", (0,))
        assert cur.fetchall() == [(SCHEMA, 1)]
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchall() == [(0,)]
        cur.close()
        text = conn.cursor()
        text.execute(f"SELECT {', '.join(names)} FROM {param_table} WHERE id = {row_id}")
        stored = text.fetchone()
        text.close()
    finally:
        conn.close()
    expected = [
        datetime.timedelta(
            hours=v.hour, minutes=v.minute, seconds=v.second, microseconds=v.microsecond
        )
        if isinstance(v, datetime.time)
        else v
        for v in values
    ]
    assert [bytes(v) if isinstance(v, bytearray) else v for v in stored] == expected


TYPED_COLUMNS = """
    id INT PRIMARY KEY,
    t TINYINT, ut TINYINT UNSIGNED, sm SMALLINT, usm SMALLINT UNSIGNED,
    md MEDIUMINT, umd MEDIUMINT UNSIGNED, i INT, ui INT UNSIGNED, bi BIGINT, ubi BIGINT UNSIGNED,
    fl FLOAT, db DOUBLE, dc DECIMAL(30,10),
    ch CHAR(5), vc VARCHAR(50), tx TEXT, bl BLOB, vb VARBINARY(20),
    da DATE, dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, tm6 TIME(6), yr YEAR,
    bt BIT(10), en ENUM('a','b'), st SET('x','y','z'), js JSON, nl INT
"""
TYPED_ROWS = [
    "(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
    "-9223372036854775808, 18446744073709551615, 1.5, -2.25, -12345678901234567890.0123456789, "
    "'ab', 'héllo 😀', REPEAT('t', 300), X'00FF10', X'DEADBEEF', '2024-02-29', "
    "'1999-12-31 23:59:59', '2000-01-01 00:00:00.000001', '2038-01-19 03:14:07.999', "
    "'-838:59:59', '12:34:56.789012', 2155, b'1010101010', 'b', 'x,z', '{\"k\": [1, 2]}', NULL)",
    "(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', '', '', '', '', '0000-00-00', "
    "'0000-00-00 00:00:00', '0001-01-01 00:00:00', NULL, '00:00:00', '-00:00:00.5', 1901, b'0', "
    "'a', '', 'null', 7)",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


@pytest.fixture(scope="module")
def typed_table(proxy: ProxyProcess) -> str:
    run(
        proxy,
        "DROP TABLE IF EXISTS typed",
        f"CREATE TABLE typed ({TYPED_COLUMNS})",
        "SET SESSION sql_mode = ''",
        f"INSERT INTO typed VALUES {', '.join(TYPED_ROWS)}",
    )
    return "typed"


TYPED_NAMES = [
    "t",
    "ut",
    "sm",
    "usm",
    "md",
    "umd",
    "i",
    "ui",
    "bi",
    "ubi",
    "fl",
    "db",
    "dc",
    "ch",
    "vc",
    "tx",
    "bl",
    "vb",
    "da",
    "dt",
    "dt6",
    "ts",
    "tm",
    "tm6",
    "yr",
    "bt",
    "en",
    "st",
    "js",
    "nl",
]
# (driver, column) pairs where Connector/Python itself decodes the binary protocol
# differently from text, identically against MariaDB directly: the C extension
# reads BIGINT UNSIGNED as signed; the pure driver gets negative TIME values wrong
# and returns YEAR as its low byte.
DRIVER_BINARY_QUIRKS = {("c_ext", "ubi"), ("pure", "tm"), ("pure", "tm6"), ("pure", "yr")}


def _as_text_would(column: str, value: Any) -> Any:
    """The pure driver returns BIT as bytes and SET as str from binary rows only."""
    if column == "bt" and isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if column == "st" and isinstance(value, str):
        return {item for item in value.split(",") if item}
    return value


@pytest.mark.parametrize("use_pure", [False, True], ids=["c_ext", "pure"])
def test_prepared_result_columns_of_every_type_equal_the_text_protocol_result(
    proxy: ProxyProcess, cluster: LocalCluster, typed_table: str, use_pure: bool
) -> None:
    driver = "pure" if use_pure else "c_ext"

    def fetch(conn: Any, sql: str, prepared: bool) -> list[tuple]:
        cur = conn.cursor(prepared=prepared)
        if prepared:
            cur.execute(sql, (0,))
        else:
            cur.execute(sql.replace("?", "0"))
        rows = [tuple(bytes(v) if isinstance(v, bytearray) else v for v in r) for r in cur]
        cur.close()
        return rows

    conn = connector(proxy, use_pure=use_pure)
    server = cluster["s0"]
    direct = mysql.connector.connect(
        host=server.host,
        port=server.port,
        user="root",
        password="",
        database=SCHEMA,
        use_pure=use_pure,
    )
    try:
        # One column per statement: Connector/Python's pure binary reader trips
        # over some wide mixed rows even against MariaDB directly.
        mismatches = []
        for column in TYPED_NAMES:
            sql = f"SELECT id, {column} FROM {typed_table} WHERE id > ? ORDER BY id"
            binary_rows = fetch(conn, sql, True)
            text_rows = fetch(conn, sql, False)
            assert len(binary_rows) == 3, column
            server_rows = fetch(direct, sql, True)
            if binary_rows != server_rows:
                mismatches.append(f"{column}: proxy {binary_rows} != server {server_rows}")
            binary_rows = [(i, _as_text_would(column, v)) for i, v in binary_rows]
            if (driver, column) not in DRIVER_BINARY_QUIRKS and binary_rows != text_rows:
                mismatches.append(f"{column}: binary {binary_rows} != text {text_rows}")
        assert not mismatches, "\n".join(mismatches)
        if not use_pure:
            sql = f"SELECT * FROM {typed_table} WHERE id > ? ORDER BY id"
            assert fetch(conn, sql, True) == fetch(direct, sql, True)
    finally:
        conn.close()
        direct.close()


def test_binary_rows_are_byte_identical_to_the_servers(
    proxy: ProxyProcess, cluster: LocalCluster, typed_table: str
) -> None:
    sql = f"SELECT * FROM {typed_table} WHERE id > ? ORDER BY id"
    server = cluster["s0"]
    through = raw(proxy)
    direct = rc.connect(server.host, server.port, "root", "", database=SCHEMA)
    try:
        results = []
        for client in (through, direct):
            prepared = client.prepare(sql)
            assert (prepared.params, prepared.columns) == (1, 31)
            client.execute(prepared.statement_id, [b"0"])
            results.append(client.read_result(binary=True))
            client.command(rc.COM_STMT_CLOSE, prepared.statement_id.to_bytes(4, "little"))
        got, expected = results
        assert len(expected.raw_rows) == 3
        assert got.raw_rows == expected.raw_rows
        assert got.columns == expected.columns
        assert got.kinds == expected.kinds
        assert through.simple_query("SELECT 1").rows == [[b"1"]]
    finally:
        through.close()
        direct.close()
