"""sysbench's OLTP workloads run through the proxy without a single error.

sysbench is a demanding client: server-side prepared statements re-executed
thousands of times (``--db-ps-mode=auto``), the same statements as text
(``--db-ps-mode=disable``), explicit transactions, and several threads at once.
Schema ``sbtest`` is unsharded and lives on s0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SYSBENCH = shutil.which("sysbench")
pytestmark = pytest.mark.skipif(
    SYSBENCH is None, reason="sysbench is not installed (apt-get install sysbench)"
)

SCHEMA = "sbtest"
TABLES = 2
TABLE_SIZE = 1000
RUN_SECONDS = 5


@pytest.fixture(scope="module")
def sysbench_proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    s0 = cluster.servers[0]
    s0.execute(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}")
    config = proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}])
    proxy = ProxyProcess(config, tmp_path_factory.mktemp("sysbench"), name="sysbench")
    proxy.start()
    try:
        yield proxy
    finally:
        code = proxy.stop()
        s0.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
    assert code == 0, f"proxy exited with {code}; log tail:\n{proxy.log_tail()}"


@pytest.fixture(scope="module")
def prepared(sysbench_proxy: ProxyProcess, cluster: LocalCluster) -> ProxyProcess:
    """``sysbench oltp_read_write prepare`` through the proxy: tables and rows on s0."""
    done = sysbench(sysbench_proxy, "oltp_read_write", "prepare")
    assert done.returncode == 0, _failure("prepare", done, sysbench_proxy)
    counts = cluster.servers[0].execute(
        " UNION ALL ".join(f"SELECT COUNT(*) FROM sbtest{i}" for i in range(1, TABLES + 1)),
        SCHEMA,
    )
    assert counts == [(TABLE_SIZE,)] * TABLES
    return sysbench_proxy


def sysbench(
    proxy: ProxyProcess, workload: str, command: str, *options: str
) -> subprocess.CompletedProcess[str]:
    assert SYSBENCH is not None
    cmd = [
        SYSBENCH,
        workload,
        "--db-driver=mysql",
        f"--mysql-host={proxy.host}",
        f"--mysql-port={proxy.port}",
        "--mysql-user=app",
        "--mysql-password=app-secret",
        f"--mysql-db={SCHEMA}",
        f"--tables={TABLES}",
        f"--table-size={TABLE_SIZE}",
        "--mysql-ignore-errors=none",
        *options,
        command,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _failure(what: str, done: subprocess.CompletedProcess[str], proxy: ProxyProcess) -> str:
    return (
        f"sysbench {what} exited with {done.returncode}\nstdout:\n{done.stdout[-4000:]}\n"
        f"stderr:\n{done.stderr[-4000:]}\nproxy log tail:\n{proxy.log_tail()}"
    )


def _statistic(output: str, name: str) -> int:
    match = re.search(rf"^\s*{name}:\s+(\d+)", output, re.M)
    assert match, f"no '{name}:' line in sysbench output:\n{output}"
    return int(match.group(1))


def run_and_check(proxy: ProxyProcess, workload: str, *options: str) -> int:
    """Runs a workload for RUN_SECONDS; asserts no errors or reconnects; returns transactions."""
    done = sysbench(proxy, workload, "run", f"--time={RUN_SECONDS}", *options)
    assert done.returncode == 0, _failure(f"{workload} run", done, proxy)
    assert "FATAL" not in done.stdout + done.stderr, _failure(workload, done, proxy)
    assert _statistic(done.stdout, "ignored errors") == 0, done.stdout
    assert _statistic(done.stdout, "reconnects") == 0, done.stdout
    transactions = _statistic(done.stdout, "transactions")
    assert transactions > 0, done.stdout
    return transactions


def test_sysbench_read_write_with_server_side_prepared_statements_has_no_errors(
    prepared: ProxyProcess,
) -> None:
    run_and_check(prepared, "oltp_read_write", "--threads=1", "--db-ps-mode=auto")


def test_sysbench_read_write_with_text_statements_has_no_errors(
    prepared: ProxyProcess,
) -> None:
    run_and_check(prepared, "oltp_read_write", "--threads=1", "--db-ps-mode=disable")


def test_sysbench_point_select_with_four_threads_has_no_errors(prepared: ProxyProcess) -> None:
    run_and_check(prepared, "oltp_point_select", "--threads=4", "--db-ps-mode=auto")


def test_sysbench_left_the_data_consistent_and_the_proxy_running(
    prepared: ProxyProcess, cluster: LocalCluster
) -> None:
    # oltp_read_write deletes and re-inserts the same id in each transaction,
    # so every committed transaction leaves the row count unchanged.
    counts = cluster.servers[0].execute(
        " UNION ALL ".join(f"SELECT COUNT(*) FROM sbtest{i}" for i in range(1, TABLES + 1)),
        SCHEMA,
    )
    assert counts == [(TABLE_SIZE,)] * TABLES
    assert prepared.is_running()
    assert "Traceback" not in prepared.log_text(), prepared.log_tail(80)
