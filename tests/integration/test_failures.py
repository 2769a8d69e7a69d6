"""Broken clients and broken shards: the proxy never dies and other sessions go on.

Every test ends by checking that the proxy process is still running and still
answers a normal client.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql
import pytest

from tests.support import rawclient as rc
from tests.support.proxied import connect_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "xp_failures"  # default shard s0
DOWN_SCHEMA = "xp_failures_s1"  # default shard s1, the one that gets killed
USER, PASSWORD = "app", "app-secret"


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for server in cluster.servers:
        server.execute(
            f"CREATE DATABASE IF NOT EXISTS {SCHEMA}; CREATE DATABASE IF NOT EXISTS {DOWN_SCHEMA}"
        )
    config = proxy_config(
        cluster,
        schemas=[
            {"name": SCHEMA, "default_shard": "s0"},
            {"name": DOWN_SCHEMA, "default_shard": "s1"},
        ],
    )
    process = ProxyProcess(config, tmp_path_factory.mktemp("failures"), name="failures")
    process.start()
    yield process
    process.stop()


def connect(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    return connect_proxy(
        proxy, **({"database": SCHEMA, "user": USER, "password": PASSWORD} | kwargs)
    )


def query(conn: pymysql.Connection, sql: str, args: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def raw(proxy: ProxyProcess, **kwargs: Any) -> rc.RawClient:
    kwargs.setdefault("database", SCHEMA)
    return rc.connect(proxy.host, proxy.port, USER, PASSWORD, **kwargs)


def assert_serves(proxy: ProxyProcess) -> None:
    assert proxy.is_running(), f"the proxy died; log tail:\n{proxy.log_tail()}"
    conn = connect(proxy)
    try:
        assert query(conn, "SELECT 'still here'") == [("still here",)]
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def proxy_survives(proxy: ProxyProcess) -> Iterator[None]:
    yield
    assert_serves(proxy)


def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the peer sends until it closes; fails if it neither answers nor closes."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"the proxy neither answered nor closed; got {data!r}")
        if not chunk:
            return data
        data += chunk


def packets(data: bytes) -> list[bytes]:
    out = []
    while len(data) >= 4:
        length = int.from_bytes(data[:3], "little")
        out.append(data[4 : 4 + length])
        data = data[4 + length :]
    return out


def pools(proxy: ProxyProcess) -> dict[str, tuple[int, int, int]]:
    """shard -> (pool_size, in_use, idle) from XAPROXY SHOW POOLS."""
    conn = connect(proxy)
    try:
        rows = query(conn, "XAPROXY SHOW POOLS")
    finally:
        conn.close()
    return {row[0]: (int(row[3]), int(row[4]), int(row[5])) for row in rows}


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# --- broken clients ------------------------------------------------------------------


GARBAGE = {
    "random_payload": struct.pack("<I", 40)[:3] + b"\x01" + bytes(range(200, 240)),
    "short_payload": b"\x03\x00\x00\x01abc",
    "http_request": b"GET / HTTP/1.1\r\nHost: proxy\r\n\r\n",
    "no_protocol_41": b"\x20\x00\x00\x01" + b"\x00" * 32,
}


@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_instead_of_a_handshake_response_gets_an_error_or_a_close(
    proxy: ProxyProcess, garbage: str
) -> None:
    client = rc.RawClient(proxy.host, proxy.port)
    try:
        client.read_greeting()
        client.send_raw(GARBAGE[garbage])
        # A header announcing more bytes than follow must not hang the proxy
        # once the client gives up.
        client.sock.shutdown(socket.SHUT_WR)
        answer = packets(read_until_closed(client.sock))
    finally:
        client.close()
    for payload in answer:
        assert rc.is_err(payload), f"expected only an error packet, got {payload!r}"
    assert_serves(proxy)


def test_garbage_flood_before_the_greeting_is_read(proxy: ProxyProcess) -> None:
    for _ in range(5):
        with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
            sock.sendall(b"\xff" * 4096)
            sock.shutdown(socket.SHUT_WR)
            read_until_closed(sock)
    assert_serves(proxy)


@pytest.mark.parametrize("announced", [100, 0xFFFFFF], ids=["100_bytes", "16MiB"])
def test_truncated_command_packet_followed_by_close(proxy: ProxyProcess, announced: int) -> None:
    before = len(query_sessions(proxy))
    for _ in range(3):
        client = raw(proxy)
        client.send_raw(struct.pack("<I", announced)[:3] + b"\x00" + b"\x03SELECT 1")
        client.close()
    assert wait_for(lambda: len(query_sessions(proxy)) <= before), query_sessions(proxy)


def query_sessions(proxy: ProxyProcess) -> list[tuple]:
    conn = connect(proxy)
    try:
        (own,) = query(conn, "SELECT CONNECTION_ID()")[0]
        return [row for row in query(conn, "XAPROXY SHOW SESSIONS") if int(row[0]) != int(own)]
    finally:
        conn.close()


def test_unknown_command_byte_gives_1047_and_the_session_goes_on(proxy: ProxyProcess) -> None:
    client = raw(proxy)
    try:
        for command in (0x99, 0x00, 0xFF):
            client.command(command, b"whatever")
            err = client.read_result().end
            assert isinstance(err, rc.Err), err
            assert err.code == 1047, err
            assert client.simple_query("SELECT 2").rows == [[b"2"]]
    finally:
        client.close()


def test_execute_of_an_unknown_statement_id_gives_1243_and_the_session_goes_on(
    proxy: ProxyProcess,
) -> None:
    client = raw(proxy)
    try:
        client.execute(424242)
        err = client.read_result().end
        assert isinstance(err, rc.Err) and err.code == 1243, err
        assert client.simple_query("SELECT 3").rows == [[b"3"]]
        # A real statement still works on the same session afterwards.
        prepared = client.prepare("SELECT ? AS v")
        client.execute(prepared.statement_id, [b"hello"])
        result = client.read_result(binary=True)
        assert result.raw_rows == [b"\x00\x00\x05hello"]
    finally:
        client.close()


def test_truncated_stmt_execute_gives_an_error_and_the_session_goes_on(
    proxy: ProxyProcess,
) -> None:
    client = raw(proxy)
    try:
        prepared = client.prepare("SELECT ? AS a, ? AS b")
        sid = struct.pack("<I", prepared.statement_id)
        broken = [
            sid[:2],  # statement id cut short
            sid + b"\x00",  # no iteration count, no parameters
            sid + b"\x00\x01\x00\x00\x00",  # no NULL bitmap
            sid + b"\x00\x01\x00\x00\x00\x00\x01\xfd\x00",  # one type of two
            sid + b"\x00\x01\x00\x00\x00\x00\x01\xfd\x00\xfd\x00\x05ab",  # short value
            sid + b"\x00\x01\x00\x00\x00\x00\x01\xfd\x00\xfd\x00\xfe\xff",  # bad lenenc
        ]
        for body in broken:
            client.command(rc.COM_STMT_EXECUTE, body)
            err = client.read_result().end
            assert isinstance(err, rc.Err), (body, err)
            assert client.simple_query("SELECT 4").rows == [[b"4"]]
        client.execute(prepared.statement_id, [b"x", None])
        result = client.read_result(binary=True)
        assert len(result.raw_rows) == 1
        assert result.raw_rows[0].startswith(b"\x00")
    finally:
        client.close()


SMALL_PACKET = 1024 * 1024


@pytest.fixture
def small_packet_proxy(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> Iterator[ProxyProcess]:
    """A proxy that learned max_allowed_packet = 1 MiB from its first shard."""
    config = proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}])
    # The proxy reads max_allowed_packet from the first shard in its list.
    config["shards"] = [config["shards"][2], config["shards"][0], config["shards"][1]]
    server = cluster["s2"]
    ((original,),) = server.execute("SELECT @@GLOBAL.max_allowed_packet")
    server.execute(f"SET GLOBAL max_allowed_packet = {SMALL_PACKET}")
    try:
        small = proxy_factory(config, name="small_packets")
        small.start()
    finally:
        server.execute(f"SET GLOBAL max_allowed_packet = {original}")
    yield small


def test_packet_bigger_than_max_allowed_packet_gets_1153_and_close(
    proxy: ProxyProcess, small_packet_proxy: ProxyProcess
) -> None:
    # Just below the limit works.
    conn = connect(small_packet_proxy, max_allowed_packet=64 * SMALL_PACKET)
    try:
        value = "v" * (SMALL_PACKET - 1000)
        assert query(conn, "SELECT LENGTH(%s)", (value,)) == [(len(value),)]
    finally:
        conn.close()

    for size in (2 * SMALL_PACKET, 20 * 1024 * 1024):
        client = rc.connect(small_packet_proxy.host, small_packet_proxy.port, USER, PASSWORD)
        try:
            # Announce the whole packet but send only its start: the proxy must
            # refuse on the announced size without waiting for the rest.
            length = min(size, 0xFFFFFF)
            client.send_raw(struct.pack("<I", length)[:3] + b"\x00" + b"\x03SELECT '" + b"x" * 1000)
            answer = packets(read_until_closed(client.sock))
        finally:
            client.close()
        assert len(answer) == 1, answer
        err = rc.parse_err(answer[0])
        assert (err.code, err.sqlstate) == (1153, "08S01"), err

    # A driver sending the whole oversized statement sees the error or a closed connection.
    conn = connect(small_packet_proxy, max_allowed_packet=64 * SMALL_PACKET)
    try:
        with pytest.raises(pymysql.MySQLError) as info:
            query(conn, "SELECT LENGTH(%s)", ("w" * (3 * SMALL_PACKET),))
        assert info.value.args[0] in (1153, 2006, 2013), info.value
    finally:
        conn.close()

    assert_serves(small_packet_proxy)
    assert_serves(proxy)


def test_client_vanishing_in_the_middle_of_a_large_result_leaks_nothing(
    proxy: ProxyProcess,
) -> None:
    sql = "SELECT seq, REPEAT('x', 200) AS pad FROM seq_1_to_200000"
    # The full result works for a patient client.
    conn = connect(proxy)
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(sql)
            assert sum(1 for _ in cur) == 200000
    finally:
        conn.close()

    for _ in range(20):
        client = raw(proxy)
        client.query(sql)
        for _ in range(50):
            client.read_packet()
        client.close()

    def settled() -> bool:
        return all(in_use == 0 for _, in_use, _ in pools(proxy).values())

    assert wait_for(settled), pools(proxy)
    for size, in_use, idle in pools(proxy).values():
        assert in_use == 0 and idle <= size
    conn = connect(proxy)
    try:
        for i in range(40):
            assert query(conn, "SELECT %s", (i,)) == [(i,)]
        assert query(conn, "SELECT COUNT(*) FROM seq_1_to_200000") == [(200000,)]
    finally:
        conn.close()


def _error_packet_for(client: rc.RawClient, sql: str, timeout: float = 30) -> rc.Err:
    client.sock.settimeout(timeout)  # the hang bound: a read that takes longer raises
    client.query(sql)
    result = client.read_result()
    assert isinstance(result.end, rc.Err), f"{sql!r} did not fail: {result}"
    return result.end


def test_shard_down_gives_a_clear_error_and_comes_back_without_a_proxy_restart(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    s1 = cluster["s1"]
    setup = connect(proxy, database=DOWN_SCHEMA)
    try:
        query(setup, "CREATE TABLE IF NOT EXISTS on_s1 (id INT PRIMARY KEY, v INT)")
        query(setup, "REPLACE INTO on_s1 VALUES (1, 10)")
    finally:
        setup.close()
    assert s1.execute(f"SELECT v FROM {DOWN_SCHEMA}.on_s1") == [(10,)]

    # Fill the pool with connections to s1 that die with the server.
    def s1_query(_: int) -> list[tuple]:
        conn = connect(proxy, database=DOWN_SCHEMA)
        try:
            return query(conn, "SELECT v, SLEEP(0.05) FROM on_s1")
        finally:
            conn.close()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(s1_query, range(8))) == [[(10, 0)]] * 8

    on_s1 = raw(proxy, database=DOWN_SCHEMA)
    on_s0 = connect(proxy)
    stop = threading.Event()
    s0_errors: list[BaseException] = []
    s0_count = 0

    def s0_load() -> None:
        nonlocal s0_count
        conn = connect(proxy)
        try:
            while not stop.is_set():
                assert query(conn, "SELECT 1") == [(1,)]
                s0_count += 1
                time.sleep(0.01)  # pacing only: no order depends on it
        except BaseException as exc:
            s0_errors.append(exc)
        finally:
            conn.close()

    load = threading.Thread(target=s0_load)
    load.start()
    try:
        s1.kill()
        for _ in range(3):
            err = _error_packet_for(on_s1, "SELECT v FROM on_s1")
            assert err.code in (1429, 2013), err
            assert "s1" in err.message
        # A new client connects fine and gets the same clear error for s1.
        fresh = raw(proxy, database=DOWN_SCHEMA)
        try:
            err = _error_packet_for(fresh, "SELECT v FROM on_s1")
            assert err.code in (1429, 2013), err
        finally:
            fresh.close()
        # A client that tracks session state still sets autocommit: what MariaDB reports
        # for it is read on another shard while the schema's own is down
        tracking = raw(proxy, database=DOWN_SCHEMA, capabilities=rc.DEFAULT_CAPABILITIES | 1 << 23)
        try:
            tracking.query("SET autocommit = 0")
            (result,) = tracking.read_results()
            assert result.ok is not None and result.ok.status & 0x4000, result.end
        finally:
            tracking.close()
        # The session itself survives and works on s0.
        on_s1.command(rc.COM_INIT_DB, SCHEMA.encode())
        assert on_s1.read_result().ok is not None
        assert on_s1.simple_query("SELECT 'on s0'").rows == [[b"on s0"]]
        assert query(on_s0, "SELECT 's0 works'") == [("s0 works",)]
        # and the load on s0 goes on while s1 is down
        answered = s0_count
        assert wait_for(lambda: s0_count > answered or bool(s0_errors), 60), "s0 load stalled"

        s1.restart()
        on_s1.command(rc.COM_INIT_DB, DOWN_SCHEMA.encode())
        assert on_s1.read_result().ok is not None
        assert on_s1.simple_query("SELECT v FROM on_s1").rows == [[b"10"]]
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(s1_query, range(16))) == [[(10, 0)]] * 16
    finally:
        stop.set()
        load.join()
        on_s1.close()
        on_s0.close()
        if not s1.is_running():
            s1.restart()
    assert not s0_errors, s0_errors
    assert s0_count > 0


def test_200_concurrent_connections_all_succeed(proxy: ProxyProcess) -> None:
    clients = 200
    barrier = threading.Barrier(clients)

    def work(n: int) -> list[tuple]:
        conn = connect(proxy)
        try:
            barrier.wait(timeout=60)
            rows = query(conn, "SELECT %s, SLEEP(0.1)", (n,))
            rows += query(conn, "SELECT %s * 2", (n,))
            return rows
        finally:
            conn.close()

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(work, range(clients)))
    assert results == [[(n, 0), (n * 2,)] for n in range(clients)]
    assert wait_for(lambda: all(u == 0 for _, u, _ in pools(proxy).values()))
