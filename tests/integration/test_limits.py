"""Limits a public-facing proxy needs: logins that time out and slow down, bounded per-session state.

* A socket that does not log in within login_timeout_s is closed, and sockets
  still logging in do not count against max_connections.
* Failed logins from one address get slower answers after the first three.
* A session idle past its wait_timeout (config or SET) is closed, its transaction
  rolled back.
* A session holds at most max_prepared_statements prepared statements (1461),
  and long data beyond max_allowed_packet fails its EXECUTE (1153).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.support import rawclient as rc
from tests.support.proxied import connect_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

SCHEMA = "xp_limits"
MAX_CONNECTIONS = 3
MAX_PREPARED = 5
COM_STMT_SEND_LONG_DATA = 0x18
CAPPED = "capped"


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for server in cluster.servers:
        server.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    config = proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0"}],
        max_connections=MAX_CONNECTIONS,
        login_timeout_s=1,
        max_prepared_statements=MAX_PREPARED,
        users=[
            {"user": PROXY_USER, "password": PROXY_PASSWORD},
            {"user": CAPPED, "password": PROXY_PASSWORD, "max_connections": 1},
        ],
    )
    process = ProxyProcess(config, tmp_path_factory.mktemp("limits"), name="limits")
    process.start()
    yield process
    process.stop()


def _connect(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    return connect_proxy(proxy, **({"database": SCHEMA, "autocommit": False} | kwargs))


def _closed_by_peer(sock: socket.socket, timeout: float = 60) -> bool:
    """True once the proxy closed `sock` (reads past the greeting until EOF)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def test_sockets_that_never_log_in_are_closed_and_do_not_lock_others_out(
    proxy: ProxyProcess,
) -> None:
    idle = [socket.create_connection((proxy.host, proxy.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in idle:
            assert _closed_by_peer(sock), "a socket that never logged in was kept open"
        conn = _connect(proxy)
        conn.close()
    finally:
        for sock in idle:
            sock.close()


def test_connections_still_logging_in_do_not_count_against_max_connections(
    proxy: ProxyProcess,
) -> None:
    waiting = socket.create_connection((proxy.host, proxy.port))
    sessions = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sessions.append(_connect(proxy))
        with pytest.raises(pymysql.err.OperationalError) as info:
            _connect(proxy)
        assert info.value.args[0] == 1040
    finally:
        waiting.close()
        for conn in sessions:
            conn.close()


def test_failed_logins_from_one_address_get_slower_answers(proxy: ProxyProcess) -> None:
    took = []
    for _ in range(5):
        start = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as info:
            _connect(proxy, password="wrong", connect_timeout=30)
        took.append(time.monotonic() - start)
        assert info.value.args[0] == 1045
    # the 4th waited 1 s and the 5th 2 s before the answer (never less, however loaded)
    assert took[3] >= 1.0 and took[4] >= 2.0, took
    conn = _connect(proxy)  # a successful login forgets the failures
    conn.close()
    deadline = time.monotonic() + 30  # the log is written by another process
    while "failed login of 'app' from 127.0.0.1" not in proxy.log_text():
        assert time.monotonic() < deadline, "failed logins are not logged"
        time.sleep(0.2)


def test_a_session_holds_a_bounded_number_of_prepared_statements(proxy: ProxyProcess) -> None:
    with rc.connect(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, database=SCHEMA) as client:
        ids = [client.prepare(f"SELECT {i}").statement_id for i in range(MAX_PREPARED)]
        with pytest.raises(rc.ProtocolError, match="1461"):
            client.prepare("SELECT 'one too many'")
        client.command(0x19, struct.pack("<I", ids[0]))  # COM_STMT_CLOSE: no reply
        client.prepare("SELECT 'fits again'")


def test_long_data_beyond_max_allowed_packet_fails_the_execute(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    limit = int(cluster["s0"].execute("SELECT @@max_allowed_packet")[0][0])
    chunk = b"x" * (1 << 20)
    with rc.connect(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, database=SCHEMA) as client:
        prepared = client.prepare("SELECT LENGTH(?)")
        head = struct.pack("<IH", prepared.statement_id, 0)
        for _ in range(limit // len(chunk) + 2):
            client.command(COM_STMT_SEND_LONG_DATA, head + chunk)  # no reply
        client.execute(prepared.statement_id, [b""])
        result = client.read_result(binary=True)
        assert isinstance(result.end, rc.Err) and result.end.code == 1153, result
        # the statement is usable again afterwards
        client.execute(prepared.statement_id, [b"abc"])
        assert not isinstance(client.read_result(binary=True).end, rc.Err)


def test_a_pool_that_could_take_the_shards_last_connections_is_refused_at_start(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    limit = int(cluster["s0"].execute("SELECT @@global.max_connections")[0][0])
    config = proxy_config(
        cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}], pool_size=limit // 2
    )
    process = ProxyProcess(config, tmp_path_factory.mktemp("toobig"), name="toobig")
    with pytest.raises(RuntimeError, match="exited with code 1"):
        process.start()
    assert f"would reach the shard's max_connections ({limit})" in process.log_text()


def test_a_shard_whose_connections_start_in_a_misread_sql_mode_is_refused_at_start(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With PIPES_AS_CONCAT in a shard's global sql_mode every session would start in it."""
    server = cluster["s1"]
    before = server.execute("SELECT @@global.sql_mode")[0][0]
    server.execute("SET GLOBAL sql_mode = CONCAT(@@global.sql_mode, ',PIPES_AS_CONCAT')")
    try:
        config = proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}])
        process = ProxyProcess(config, tmp_path_factory.mktemp("pipes"), name="pipes")
        with pytest.raises(RuntimeError, match="exited with code 1"):
            process.start()
    finally:
        server.execute(f"SET GLOBAL sql_mode = '{before}'")
    assert "shards[s1]: new connections start with sql_mode PIPES_AS_CONCAT" in (process.log_text())


def test_a_session_idle_past_its_wait_timeout_is_closed_and_its_transaction_rolled_back(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    cluster["s0"].execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.idle (id INT PRIMARY KEY)")
    cluster["s0"].execute(f"DELETE FROM {SCHEMA}.idle")
    with rc.connect(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, database=SCHEMA) as client:
        client.simple_query("SET wait_timeout = 2")
        assert client.simple_query("SELECT @@wait_timeout").rows == [[b"2"]]
        client.simple_query("BEGIN")
        client.simple_query("INSERT INTO idle VALUES (1)")
        assert _closed_by_peer(client.sock), "an idle session outlived its wait_timeout"
    deadline = time.monotonic() + 30
    while cluster["s0"].execute(f"SELECT id FROM {SCHEMA}.idle"):
        assert time.monotonic() < deadline, "the closed session's transaction was not rolled back"
        time.sleep(0.2)


def test_a_users_own_max_connections_is_kept(proxy: ProxyProcess) -> None:
    first = _connect(proxy, user=CAPPED)
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            _connect(proxy, user=CAPPED)
        assert info.value.args[0] == 1226
        _connect(proxy).close()  # other users are not limited by it
    finally:
        first.close()
    deadline = time.monotonic() + 30  # the proxy notices the close asynchronously
    while True:
        try:
            _connect(proxy, user=CAPPED).close()
            break
        except pymysql.err.OperationalError:
            assert time.monotonic() < deadline, "the user's closed session still counted"
            time.sleep(0.2)


def _fill_shard(cluster: LocalCluster, admin: pymysql.Connection) -> list[pymysql.Connection]:
    """Lowers s0's max_connections and takes every slot left (the SUPER one too) from outside."""
    with admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST")
        (used,) = cur.fetchone()
        cur.execute(f"SET GLOBAL max_connections = {max(10, int(used) + 2)}")
    holders: list[pymysql.Connection] = []
    server = cluster["s0"]
    for _ in range(200):
        try:
            holders.append(server.connect())
        except pymysql.err.OperationalError as exc:
            assert exc.args[0] == 1040, exc
            return holders
    raise AssertionError("s0 never refused a connection")


def test_a_full_shard_answers_too_many_connections_and_the_session_goes_on(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    cluster["s0"].execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.full_shard (id INT PRIMARY KEY)")
    admin = cluster["s0"].connect()
    limit = int(cluster["s0"].execute("SELECT @@global.max_connections")[0][0])
    # CLIENT_FOUND_ROWS sessions use their own pooled connections: this one needs a new one
    # (no database at login: checking that it exists would open that connection now)
    conn = _connect(
        proxy, client_flag=pymysql.constants.CLIENT.FOUND_ROWS, autocommit=True, database=None
    )
    holders: list[pymysql.Connection] = []
    try:
        holders = _fill_shard(cluster, admin)
        for sql in (f"SELECT COUNT(*) FROM {SCHEMA}.full_shard", "BEGIN"):
            with conn.cursor() as cur:
                if sql == "BEGIN":
                    cur.execute(sql)
                    sql = f"INSERT INTO {SCHEMA}.full_shard VALUES (1)"
                with pytest.raises(pymysql.err.OperationalError) as info:
                    cur.execute(sql)
            assert info.value.args[0] == 1040, info.value.args
            assert "Too many connections on shard 's0'" in info.value.args[1]
        with conn.cursor() as cur:
            cur.execute("ROLLBACK")
    finally:
        for holder in holders:
            holder.close()
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL max_connections = {limit}")
        admin.close()
    try:
        with conn.cursor() as cur:  # the same session works once the shard has room
            cur.execute(f"INSERT INTO {SCHEMA}.full_shard VALUES (2)")
            cur.execute(f"SELECT id FROM {SCHEMA}.full_shard")
            assert cur.fetchall() == ((2,),)
    finally:
        conn.close()
        cluster["s0"].execute(f"DROP TABLE {SCHEMA}.full_shard")
    assert proxy.is_running()
