"""The command line as users meet it: check-config, serve and its signals, and demo."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pymysql
import pytest

from xaproxy.devkit.localshards import LocalCluster, free_port
from xaproxy.devkit.processes import SOURCE_ROOT, ProxyProcess, proxy_config, python_env

BROKEN_CONFIG = """\
listen: 127.0.0.1:3307
proxy_id: px1
users:
  - user: app
    password: secret
shards:
  - {name: s0, host: 127.0.0.1, port: 13306, user: root}
  - {name: s1, host: 127.0.0.1, port: 13307, user: root, hots: typo}
schemas:
  - name: shop
    default_shard: s9
    tables:
      - name: orders
        algorithm: hash
"""
BROKEN_PROBLEMS = (
    "schemas[0].tables[0].shard_key: required",
    "schemas[0].default_shard: unknown shard 's9'",
    "shards[1].hots: unknown key",
)


def xaproxy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xaproxy", *args],
        capture_output=True,
        text=True,
        cwd=SOURCE_ROOT,
        env=python_env(),
        timeout=timeout,
    )


# --- check-config ---------------------------------------------------------------------------


def test_check_config_accepts_the_example_config() -> None:
    done = xaproxy("check-config", "-c", "config/example.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout


def test_check_config_reports_every_problem_with_its_yaml_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_CONFIG)
    done = xaproxy("check-config", "-c", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for problem in BROKEN_PROBLEMS:
        assert problem in lines, done.stdout
    assert "Traceback" not in done.stderr


def test_check_config_of_a_missing_file_fails_without_a_traceback(tmp_path: Path) -> None:
    done = xaproxy("check-config", "-c", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "missing.yaml" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# --- serve ------------------------------------------------------------------------------------


def test_serve_with_an_invalid_config_exits_1_and_names_the_problems(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_CONFIG)
    done = xaproxy("serve", "-c", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "invalid configuration" in done.stderr
    for problem in BROKEN_PROBLEMS:
        assert problem in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_a_missing_config_file_exits_1_with_a_message(tmp_path: Path) -> None:
    done = xaproxy("serve", "-c", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "missing.yaml" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_exits_1_when_the_listen_port_is_taken(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    first = proxy_factory(_config(cluster))
    first.start()
    second = ProxyProcess(_config(cluster, port=first.port), tmp_path, name="second")
    second.write_config()
    done = xaproxy("serve", "-c", str(second.config_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot serve" in done.stderr
    assert "Traceback" not in done.stderr
    assert first.is_running()


SCHEMA = "clitest"


@pytest.fixture(scope="module")
def clitest_schema(cluster: LocalCluster) -> Iterator[str]:
    s0 = cluster.servers[0]
    s0.execute(
        f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA};"
        f"CREATE TABLE {SCHEMA}.kv (k INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB"
    )
    yield SCHEMA
    s0.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")


def _config(cluster: LocalCluster, port: int | None = None, **extra: object) -> dict:
    return proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0"}],
        listen_port=port,
        **extra,
    )


def _wait_exit(proxy: ProxyProcess, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while proxy.returncode is None:
        if time.monotonic() > deadline:
            proxy.kill()
            raise AssertionError(
                f"proxy still running {timeout}s after the signal:\n{proxy.log_tail()}"
            )
        time.sleep(0.05)  # polling under a deadline; no order depends on it
    return proxy.returncode


def _query(proxy: ProxyProcess, sql: str) -> tuple:
    conn = pymysql.connect(
        host=proxy.host, port=proxy.port, user="app", password="app-secret", database=SCHEMA
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_serve_exits_0_on_sigterm(
    cluster: LocalCluster, clitest_schema: str, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    proxy = proxy_factory(_config(cluster))
    proxy.start()
    assert _query(proxy, "SELECT 1 + 1") == ((2,),)
    assert proxy.stop() == 0, proxy.log_tail()
    assert "Traceback" not in proxy.log_text()


def test_serve_exits_0_on_sigint(
    cluster: LocalCluster, clitest_schema: str, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    proxy = proxy_factory(_config(cluster))
    proxy.start()
    assert _query(proxy, "SELECT 1 + 1") == ((2,),)
    assert proxy.pid is not None
    os.kill(proxy.pid, signal.SIGINT)
    assert _wait_exit(proxy) == 0, proxy.log_tail()
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.log_text()
    assert "KeyboardInterrupt" not in proxy.log_text()


def test_sigterm_during_an_open_transaction_exits_0_and_rolls_the_write_back(
    cluster: LocalCluster, clitest_schema: str, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    s0 = cluster.servers[0]
    proxy = proxy_factory(_config(cluster, shutdown_timeout_s=2))
    proxy.start()
    conn = pymysql.connect(
        host=proxy.host, port=proxy.port, user="app", password="app-secret", database=SCHEMA
    )
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO kv VALUES (1001, 'uncommitted')")
            cur.execute("SELECT v FROM kv WHERE k = 1001")
            assert cur.fetchall() == (("uncommitted",),)
        # The transaction holds the row lock on the shard until the proxy lets go.
        assert s0.execute(f"SELECT COUNT(*) FROM {SCHEMA}.kv WHERE k = 1001") == [(0,)]
        assert proxy.stop() == 0, proxy.log_tail()  # stop() fails on a hang (15 s)
        # an idle transaction is not a running statement: the proxy did not wait for it
        assert "running statements" not in proxy.log_text()
        # The client's connection is gone; its transaction did not commit.
        with pytest.raises(pymysql.MySQLError), conn.cursor() as cur:
            cur.execute("COMMIT")
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    assert s0.execute(f"SELECT COUNT(*) FROM {SCHEMA}.kv WHERE k = 1001") == [(0,)]
    # No lock was left behind either: the shard accepts a write to the same row at once.
    s0.execute(
        f"SET SESSION innodb_lock_wait_timeout = 2; INSERT INTO {SCHEMA}.kv VALUES (1001, 'free');"
        f"DELETE FROM {SCHEMA}.kv WHERE k = 1001"
    )
    assert "Traceback" not in proxy.log_text()


# --- demo ---------------------------------------------------------------------------------


class Lines:
    """Reads a subprocess's output on a thread so the test can wait for a line."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        for line in self.seen:
            if match := re.search(pattern, line):
                return match
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(
            f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.seen)
        )

    def rest(self, timeout: float = 10) -> str:
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.seen.append(line)
        return "\n".join(self.seen)


def _pgrep(pattern: str) -> list[int]:
    done = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()]


def _mariadb(port: int, sql: str) -> list[list[str]]:
    done = subprocess.run(
        [
            "mariadb",
            "--no-defaults",
            "--batch",
            "--skip-column-names",
            "-h",
            "127.0.0.1",
            "-P",
            str(port),
            "-u",
            "app",
            "-papp-secret",
            "shop",
            "-e",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def _shard_rows(port: int, sql: str) -> tuple:
    direct = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", database="shop")
    try:
        with direct.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        direct.close()


def _check_demo_orders(port: int, shard_ports: dict[str, int], lines: Lines) -> None:
    """The sharded orders table as the banner promises: sample rows, generated ids, XA."""
    # sample rows on both shards, each on the shard its user_id hashes to
    for name, shard_port in shard_ports.items():
        assert _shard_rows(shard_port, "SELECT COUNT(*) FROM orders")[0][0] > 0, name
    assert _mariadb(port, "SELECT COUNT(*) FROM orders") == [["6"]]
    # the insert a newcomer types: the proxy generates the id (as AUTO_INCREMENT would)
    inserted = _mariadb(
        port, "INSERT INTO orders (user_id, amount) VALUES (7, 1.5); SELECT LAST_INSERT_ID()"
    )
    new_id = inserted[0][0]
    assert int(new_id) > 6
    assert _mariadb(port, f"SELECT user_id, amount FROM orders WHERE id = {new_id}") == [
        ["7", "1.50"]
    ]
    placed = {
        name: _shard_rows(p, f"SELECT user_id FROM orders WHERE id = {new_id}")
        for name, p in shard_ports.items()
    }
    assert sorted(placed.values()) == [(), ((7,),)], placed
    # the banner's cross-shard transaction, run as printed
    begin = lines.wait_for(r"^  BEGIN;$", 1)
    start = lines.seen.index(begin.string)
    script = []
    for line in lines.seen[start:]:
        script.append(line.strip())
        if line.strip() == "COMMIT;":
            break
    assert any(line.startswith("XAPROXY SHOW TRANSACTIONS") for line in script), script
    assert any("XAPROXY EXPLAIN" in line for line in lines.seen), lines.seen
    before = dict(_mariadb(port, "SELECT user_id, SUM(amount) FROM orders GROUP BY user_id"))
    shown = _mariadb(port, " ".join(script))
    active = [row for row in shown if row and row[0] == "active"]
    assert len(active) == 1, shown
    assert "s0:" in active[0][4] and "s1:" in active[0][4], active
    after = dict(_mariadb(port, "SELECT user_id, SUM(amount) FROM orders GROUP BY user_id"))
    changed = {u for u in after if after[u] != before.get(u)}
    assert len(changed) == 3 and "7" in changed, (before, after)
    assert after["7"] == "3.00", after  # the two inserts of user 7, committed with the rest
    # the plan of a statement, without running it
    assert _mariadb(port, "XAPROXY EXPLAIN SELECT * FROM orders WHERE user_id = 7")[0][
        0
    ].startswith("Route shard=")


@pytest.mark.skipif(shutil.which("mariadb") is None, reason="the mariadb client is not installed")
def test_demo_serves_the_shop_schema_with_generated_ids_and_a_cross_shard_transaction_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "demo"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xaproxy", "demo", "--workdir", str(workdir), "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=python_env(),
    )
    assert proc.stdout is not None
    lines = Lines(proc.stdout)
    try:
        lines.wait_for(rf"mariadb -h 127\.0\.0\.1 -P {port} -u app -papp-secret shop", timeout=180)
        lines.wait_for(rf"listening on 127\.0\.0\.1:{port}", timeout=60)
        shard_ports = {
            name: int(lines.wait_for(rf"shard {name}: 127\.0\.0\.1:(\d+)", 1).group(1))
            for name in ("s0", "s1")
        }
        assert _pgrep(str(workdir)), "the demo's mariadbd processes should be running"

        countries = _mariadb(port, "SELECT code, name FROM countries ORDER BY code")
        assert ["DE", "Germany"] in countries
        assert len(countries) == 5
        _mariadb(port, "INSERT INTO notes (body) VALUES ('plain insert')")
        _mariadb(port, "BEGIN; INSERT INTO notes (body) VALUES ('in a transaction'); COMMIT;")
        _mariadb(port, "BEGIN; INSERT INTO notes (body) VALUES ('rolled back'); ROLLBACK;")
        assert _mariadb(port, "SELECT id, body FROM notes ORDER BY id") == [
            ["1", "plain insert"],
            ["2", "in a transaction"],
        ]
        # notes is unsharded: the rows are on the default shard s0, not on s1.
        direct = pymysql.connect(
            host="127.0.0.1", port=shard_ports["s0"], user="root", password="", database="shop"
        )
        try:
            with direct.cursor() as cur:
                cur.execute("SELECT body FROM notes ORDER BY id")
                assert cur.fetchall() == (("plain insert",), ("in a transaction",))
        finally:
            direct.close()

        _check_demo_orders(port, shard_ports, lines)

        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        output = lines.rest()
        assert code == 0, output
        assert "Traceback" not in output, output
        assert "Stopping the shards" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leftover = _pgrep(str(workdir))
    for pid in leftover:  # clean up before failing, so no mariadbd outlives the test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert leftover == [], f"mariadbd processes of {workdir} still running: {leftover}"
