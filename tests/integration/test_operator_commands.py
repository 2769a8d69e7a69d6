"""The proxy's own SQL commands, its metrics endpoint, KILL and clear refusals."""

from __future__ import annotations

import urllib.request

import pymysql
import pytest

from tests.support.bank import bank_config, connect, reset_bank, run
from xaproxy.devkit.localshards import free_port

ACCOUNTS = {i: 100 for i in range(6)}


@pytest.fixture(scope="module")
def operated(cluster, tmp_path_factory):
    from xaproxy.devkit.processes import ProxyProcess

    reset_bank(cluster, ACCOUNTS)
    metrics_port = free_port()
    config = bank_config(cluster, proxy_id="op", metrics_listen=f"127.0.0.1:{metrics_port}")
    proxy = ProxyProcess(config, tmp_path_factory.mktemp("operated"), name="operated")
    proxy.start()
    yield proxy, metrics_port
    proxy.stop()


def test_explain_shows_one_shard_for_a_key_lookup_without_running_it(operated):
    proxy, _ = operated
    conn = connect(proxy)
    rows = run(conn, "XAPROXY EXPLAIN UPDATE accounts SET balance = 0 WHERE id = 4")
    assert rows == [("Route shard=s1 write (shard key)",)]
    assert run(conn, "SELECT balance FROM accounts WHERE id = 4") == [(100,)]


def test_explain_shows_the_rewrite_and_merge_of_a_fan_out_select(operated):
    proxy, _ = operated
    rows = run(connect(proxy), "XAPROXY EXPLAIN SELECT AVG(balance) FROM accounts")
    assert [r[0] for r in rows] == [
        "MergeRead shards=s0,s1,s2",
        "  sql: SELECT AVG(balance) AS `AVG(balance)`, SUM(balance) AS __xa0, "
        "COUNT(balance) AS __xa1 FROM accounts",
        "  Group by (all rows) aggregates AVG(#0) from sum #1 count #2",
        "  DropHidden 2: SUM(balance), COUNT(balance)",
    ]


def test_explain_shows_an_insert_split_per_shard(operated):
    proxy, _ = operated
    rows = run(
        connect(proxy),
        "XAPROXY EXPLAIN INSERT INTO accounts (id, balance) VALUES (10, 1), (11, 2)",
    )
    assert [r[0] for r in rows] == [
        "SplitInsert table=accounts shards=s1,s2",
        "  s1: INSERT INTO accounts (id, balance) VALUES (10, 1)",
        "  s2: INSERT INTO accounts (id, balance) VALUES (11, 2)",
    ]


def test_version_and_unknown_commands(operated):
    proxy, _ = operated
    conn = connect(proxy)
    assert run(conn, "XAPROXY VERSION")[0][0]
    with pytest.raises(pymysql.MySQLError) as caught:
        run(conn, "XAPROXY FROBNICATE")
    assert caught.value.args[0] == 1064
    assert "XAPROXY EXPLAIN" in caught.value.args[1]
    assert run(conn, "SELECT 1") == [(1,)]


def test_metrics_count_one_phase_and_xa_commits(operated):
    proxy, port = operated
    conn = connect(proxy)
    run(conn, "BEGIN")
    run(conn, "UPDATE accounts SET balance = balance WHERE id = 0")
    run(conn, "COMMIT")
    run(conn, "BEGIN")
    run(conn, "UPDATE accounts SET balance = balance - 1 WHERE id = 0")
    run(conn, "UPDATE accounts SET balance = balance + 1 WHERE id = 1")
    run(conn, "COMMIT")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("xaproxy_commits_total")
    }
    assert values['xaproxy_commits_total{protocol="xa"}'] >= 1
    assert values['xaproxy_commits_total{protocol="one_phase"}'] >= 1


def test_kill_closes_another_session_and_the_killer_goes_on(operated):
    proxy, _ = operated
    victim = connect(proxy)
    victim_id = run(victim, "SELECT CONNECTION_ID()")[0][0]
    killer = connect(proxy)
    run(killer, f"KILL {victim_id}")
    with pytest.raises(pymysql.err.OperationalError):
        run(victim, "SELECT 1")
    assert run(killer, "SELECT 1") == [(1,)]
    with pytest.raises(pymysql.MySQLError) as caught:
        run(killer, "KILL 999999")
    assert caught.value.args[0] == 1094


def test_load_data_local_from_a_client_without_local_files_is_mariadbs_4166(operated):
    """The proxy never reads a file itself: a client that did not enable local files
    gets MariaDB's answer (tests/integration/test_load_data_local.py loads files)."""
    proxy, _ = operated
    conn = connect(proxy)
    with pytest.raises(pymysql.MySQLError) as caught:
        run(conn, "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE accounts")
    assert caught.value.args[0] == 4166
    assert run(conn, "SELECT 1") == [(1,)]
