"""The test bed itself: local servers start, and survive crashes like real shards."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest

from xaproxy.devkit.localshards import LocalCluster, LocalMariaDB
from xaproxy.devkit.processes import ProxyProcess, proxy_config


def test_cluster_servers_answer_queries(cluster: LocalCluster) -> None:
    assert [s.name for s in cluster.servers] == ["s0", "s1", "s2"]
    assert len({s.port for s in cluster.servers}) == 3
    for server in cluster.servers:
        assert server.is_running()
        assert server.pid is not None
        assert server.execute("SELECT @@port, 1 + 1") == [(server.port, 2)]


def test_root_logs_in_over_tcp_with_empty_password(cluster: LocalCluster) -> None:
    server = cluster.servers[0]
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), @@innodb_flush_log_at_trx_commit")
            user, flush = cur.fetchone()
    finally:
        conn.close()
    assert user.startswith("root@")
    assert flush == 1


@pytest.fixture(scope="module")
def crash_basedir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One base directory, hence one template datadir, for all crash servers."""
    return tmp_path_factory.mktemp("crash")


@pytest.fixture
def crash_server(crash_basedir: Path, request: pytest.FixtureRequest) -> Iterator[LocalMariaDB]:
    """A server of its own so that killing it does not disturb the shared cluster."""
    server = LocalMariaDB(request.node.name, crash_basedir)
    server.start()
    yield server
    server.kill()


def test_kill_and_restart_keeps_committed_data(crash_server: LocalMariaDB) -> None:
    crash_server.execute(
        "CREATE DATABASE t; CREATE TABLE t.kv (k INT PRIMARY KEY, v TEXT) ENGINE=InnoDB;"
        "INSERT INTO t.kv VALUES (1, 'one'), (2, 'two')"
    )
    port, old_pid = crash_server.port, crash_server.pid
    crash_server.kill()
    assert not crash_server.is_running()
    assert crash_server.pid is None

    crash_server.restart()
    assert crash_server.port == port
    assert crash_server.pid != old_pid
    assert crash_server.execute("SELECT k, v FROM kv ORDER BY k", database="t") == [
        (1, "one"),
        (2, "two"),
    ]


def test_prepared_xa_branch_survives_kill_and_restart(crash_server: LocalMariaDB) -> None:
    crash_server.execute(
        "CREATE DATABASE x; CREATE TABLE x.acc (id INT PRIMARY KEY, n INT) ENGINE=InnoDB"
    )
    conn = crash_server.connect("x")
    with conn.cursor() as cur:
        for sql in (
            "XA START 'gtrid1'",
            "INSERT INTO acc VALUES (1, 100)",
            "XA END 'gtrid1'",
            "XA PREPARE 'gtrid1'",
        ):
            cur.execute(sql)
    # Crash while the client still holds the prepared branch.
    crash_server.kill()
    conn.close()

    crash_server.restart()
    # XA RECOVER rows: formatID, gtrid_length, bqual_length, data (bytes).
    assert crash_server.execute("XA RECOVER") == [(1, 6, 0, b"gtrid1")]

    crash_server.execute("XA COMMIT 'gtrid1'")
    assert crash_server.execute("XA RECOVER") == []
    assert crash_server.execute("SELECT id, n FROM acc", database="x") == [(1, 100)]


def test_stop_then_restart(crash_server: LocalMariaDB) -> None:
    crash_server.stop()
    assert not crash_server.is_running()
    crash_server.restart()
    assert crash_server.execute("SELECT 1") == [(1,)]


def test_proxy_config_has_the_shape_the_proxy_loads(cluster: LocalCluster) -> None:
    schemas = [{"name": "shop", "default_shard": "s0", "tables": []}]
    raw = proxy_config(cluster, schemas=schemas, transactions={"mode": "xa", "timeout_s": 60})
    assert [(s["name"], s["port"]) for s in raw["shards"]] == [
        (s.name, s.port) for s in cluster.servers
    ]
    try:
        from xaproxy.config import parse_config
    except ImportError as exc:
        pytest.skip(f"xaproxy.config is not importable yet: {exc}")
    assert parse_config(raw).proxy_id == "px1"


STUB_MAIN = """\
import signal, socket, sys, yaml
config = yaml.safe_load(open(sys.argv[sys.argv.index("-c") + 1]))
print("stub proxy", sys.argv[1:], file=sys.stderr, flush=True)
host, port = config["listen"].rsplit(":", 1)
sock = socket.create_server((host, int(port)))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    sock.accept()[0].close()
"""


def test_proxy_process_runs_and_stops_a_subprocess(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    # A stand-in package on PYTHONPATH checks the harness without the real proxy.
    stub = tmp_path / "stub" / "xaproxy"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "__main__.py").write_text(STUB_MAIN)
    config = proxy_config(cluster, schemas=[])
    proxy = proxy_factory(config, env={"PYTHONPATH": str(stub.parent)})
    proxy.start(timeout=10)
    assert proxy.is_running()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2):
        pass
    assert proxy.stop() == 0
    assert "stub proxy ['serve', '-c'" in proxy.log_text()

    proxy.start(timeout=10)
    assert proxy.kill() == -signal.SIGKILL
