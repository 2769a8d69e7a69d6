"""AT mode through the proxy: mode selection, exact images, commit, refusals,
dirty-write detection and global locks between two proxies.

Every check of the outcome looks at the shards directly, never only through the proxy.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from tests.support.atmode import (
    LOCKS,
    at_config,
    clear_at_state,
    connect,
    create_database,
    decision_rows,
    lock_key,
    lock_rows,
    on_shard,
    open_undo,
    query,
    undo_rows,
    wait_for,
)
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

DB = "xp_at"
TABLES = [
    {"name": "acc", "shard_key": "id", "algorithm": "mod"},
    {"name": "alltypes", "shard_key": "id", "algorithm": "mod"},
    {"name": "orders", "shard_key": "user_id", "algorithm": "mod"},
]
DDL = [
    "CREATE TABLE acc (id INT NOT NULL PRIMARY KEY, bal BIGINT NOT NULL)",
    """CREATE TABLE alltypes (
        id INT NOT NULL PRIMARY KEY,
        d DECIMAL(30,10) NULL,
        dt DATETIME(6) NULL,
        ts TIMESTAMP(6) NULL DEFAULT NULL,
        b BLOB NULL,
        j JSON NULL,
        n INT NULL,
        u BIGINT UNSIGNED NULL,
        t VARCHAR(200) CHARACTER SET utf8mb4 NULL,
        vb VARBINARY(300) NULL,
        bt BIT(8) NULL,
        db DOUBLE NULL,
        da DATE NULL,
        tm TIME(6) NULL,
        e ENUM('a', 'b', 'c d', 'é') NULL
    )""",
    # the primary key is not the shard key: an UPDATE of it reaches AT mode's own check
    "CREATE TABLE orders (id INT NOT NULL PRIMARY KEY, user_id INT NOT NULL, note VARCHAR(20))",
    "CREATE TABLE nopk (id INT, v INT)",  # unsharded (s0)
    "CREATE TABLE kv (k INT NOT NULL PRIMARY KEY, v INT)",  # unsharded (s0)
    "CREATE TABLE auto (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT)",  # unsharded (s0)
    # generated columns are compared, never written back
    "CREATE TABLE gen (id INT NOT NULL PRIMARY KEY, a INT, b INT AS (a * 2) VIRTUAL, "
    "c INT AS (a + 1) STORED)",  # unsharded (s0)
]
PROXY_IDS = (
    "atmode",
    "xamode",
    "atcommit",
    "atimgr",
    "atimgg",
    "atundo",
    "atrefuse",
    "atdirtya",
    "atdirtyr",
    "atdirtyc",
    "glholder",
    "glshort",
    "glpatient",
    "glread1",
    "glread2",
    "glauto",
    "glqueue",
    "other",
)
ACCOUNTS = 6  # ids 0..5, two per shard (id % 3)
START_BALANCE = 1000


@pytest.fixture(scope="module")
def database(cluster: LocalCluster) -> Iterator[str]:
    clear_at_state(cluster, PROXY_IDS)
    create_database(cluster, DB, DDL)
    yield DB
    clear_at_state(cluster, PROXY_IDS)


@pytest.fixture(autouse=True)
def fresh_accounts(cluster: LocalCluster, database: str) -> None:
    for index, server in enumerate(cluster.servers):
        ids = [i for i in range(ACCOUNTS) if i % 3 == index]
        values = ", ".join(f"({i}, {START_BALANCE})" for i in ids)
        server.execute(f"DELETE FROM acc; INSERT INTO acc (id, bal) VALUES {values}", DB)


Factory = Callable[..., ProxyProcess]


def start_proxy(
    proxy_factory: Factory,
    cluster: LocalCluster,
    proxy_id: str,
    *,
    env: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    **transactions: Any,
) -> ProxyProcess:
    config = config or at_config(cluster, DB, proxy_id=proxy_id, tables=TABLES, **transactions)
    proxy = proxy_factory(config, name=f"{proxy_id}-{int(time.monotonic() * 1000)}", env=env)
    proxy.start()
    return proxy


def balance(cluster: LocalCluster, account: int) -> int:
    return int(
        on_shard(
            cluster.servers[account % 3], f"SELECT bal FROM {DB}.acc WHERE id = %s", (account,)
        )[0][0]
    )


def balances(cluster: LocalCluster) -> dict[int, int]:
    return {i: balance(cluster, i) for i in range(ACCOUNTS)}


def assert_clean(cluster: LocalCluster, proxy_id: str, timeout: float = 10) -> None:
    """No undo rows, global locks or decision rows of `proxy_id` remain (after a short while)."""

    def clean() -> bool:
        return not open_undo(cluster, proxy_id) and not lock_rows(cluster, proxy_id)

    assert wait_for(clean, timeout), (
        f"undo rows {open_undo(cluster, proxy_id)}, locks {lock_rows(cluster, proxy_id)}"
    )


def holds_lock_of(cluster: LocalCluster, proxy_id: str, row: int) -> bool:
    """Whether a transaction of `proxy_id` holds the global lock of acc row `row`."""
    return any(key == lock_key(DB, "acc", row) for _, key, _ in lock_rows(cluster, proxy_id))


def transactions(conn: pymysql.Connection) -> list[tuple]:
    return query(conn, "XAPROXY SHOW TRANSACTIONS")


# --- mode selection ---------------------------------------------------------------------


def test_config_mode_at_and_the_session_switch(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    proxy = start_proxy(proxy_factory, cluster, "atmode")
    conn = connect(proxy, DB)
    watcher = connect(proxy, DB)

    def branches_of_open_transaction() -> str:
        rows = [r for r in transactions(watcher) if r[0] == "active"]
        assert len(rows) == 1, rows
        return rows[0][4]

    # the configured mode: every branch is a local transaction, with undo images
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    shown = branches_of_open_transaction()
    assert "s0:local" in shown and "s1:local" in shown and ":xa" not in shown, shown
    # the mode cannot change inside a transaction; the transaction goes on
    with pytest.raises(pymysql.MySQLError) as refused:
        query(conn, "SET xaproxy_transaction_mode = 'xa'")
    assert refused.value.args[0] == 1568
    assert "xaproxy_transaction_mode" in refused.value.args[1]
    assert "transaction" in refused.value.args[1].lower()
    query(conn, "COMMIT")
    assert balance(cluster, 0) == START_BALANCE - 1 and balance(cluster, 1) == START_BALANCE + 1
    assert_clean(cluster, "atmode")

    # XA for the next transaction: the second shard joins as an XA branch, no undo rows
    query(conn, "SET xaproxy_transaction_mode = 'xa'")
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 2 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 2 WHERE id = 1")
    shown = branches_of_open_transaction()
    assert "s1:xa" in shown, shown
    assert not undo_rows(cluster, "atmode")
    query(conn, "COMMIT")
    assert balance(cluster, 0) == START_BALANCE - 3 and balance(cluster, 1) == START_BALANCE + 3
    assert not undo_rows(cluster, "atmode")

    # and back to AT
    query(conn, "SET @@session.xaproxy_transaction_mode = 'at'")
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 3 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 3 WHERE id = 2")
    shown = branches_of_open_transaction()
    assert ":xa" not in shown, shown
    query(conn, "COMMIT")
    assert balances(cluster) == {
        0: START_BALANCE - 6,
        1: START_BALANCE + 3,
        2: START_BALANCE + 3,
        3: 1000,
        4: 1000,
        5: 1000,
    }
    assert_clean(cluster, "atmode")
    conn.close()
    watcher.close()


def test_config_mode_xa_with_a_session_in_at(proxy_factory: Factory, cluster: LocalCluster) -> None:
    proxy = start_proxy(proxy_factory, cluster, "xamode", mode="xa")
    conn = connect(proxy, DB)
    watcher = connect(proxy, DB)
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    active = [r for r in transactions(watcher) if r[0] == "active"]
    assert "s1:xa" in active[0][4], active
    query(conn, "ROLLBACK")
    query(conn, "SET xaproxy_transaction_mode = 'at'")
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    active = [r for r in transactions(watcher) if r[0] == "active"]
    assert ":xa" not in active[0][4], active
    query(conn, "COMMIT")
    assert balance(cluster, 0) == START_BALANCE - 1 and balance(cluster, 1) == START_BALANCE + 1
    assert_clean(cluster, "xamode")
    conn.close()
    watcher.close()


# --- commit ---------------------------------------------------------------------------


def test_commit_is_visible_on_every_shard_and_cleans_up(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    proxy = start_proxy(proxy_factory, cluster, "atcommit")
    conn = connect(proxy, DB)
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 30 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 10 WHERE id = 1")
    query(conn, "UPDATE acc SET bal = bal + 20 WHERE id = 2")
    query(conn, "DELETE FROM acc WHERE id = 4")
    query(conn, "INSERT INTO acc (id, bal) VALUES (6, 5), (7, 6), (8, 7)")
    query(conn, "COMMIT")
    expected = {0: 970, 1: 1010, 2: 1020, 3: 1000, 5: 1000, 6: 5, 7: 6, 8: 7}
    for index, server in enumerate(cluster.servers):
        rows = dict(on_shard(server, f"SELECT id, bal FROM {DB}.acc"))
        assert rows == {k: v for k, v in expected.items() if k % 3 == index}, server.name
    assert_clean(cluster, "atcommit")
    assert wait_for(lambda: not decision_rows(cluster, "atcommit"), 10), decision_rows(
        cluster, "atcommit"
    )
    # an autocommit statement over several shards is one AT transaction too
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id IN (0, 1, 2)")
    assert [balance(cluster, i) for i in (0, 1, 2)] == [971, 1011, 1021]
    assert_clean(cluster, "atcommit")
    assert wait_for(lambda: not decision_rows(cluster, "atcommit"), 10)
    conn.close()


# --- exact images -----------------------------------------------------------------------

ALL_COLUMNS = ("d", "dt", "ts", "b", "j", "n", "u", "t", "vb", "bt", "db", "da", "tm", "e")
ROWS: dict[int, dict[str, Any]] = {
    0: {
        "d": "-12345678901234567890.0123456789",
        "dt": "2024-02-29 23:59:59.999999",
        "ts": "2030-01-01 00:00:00.000001",
        "b": bytes(range(256)),
        "j": '{"k": ["ü", 1.5, null, {"e": "😀"}], "q": "it\'s \\"quoted\\""}',
        "n": None,
        "u": 18446744073709551615,
        "t": "emoji 😀 quote ' backslash \\ tab\t percent % nul\0 end",
        "vb": bytes(range(255, -1, -1)),
        "bt": b"\xaa",
        "db": 0.1 + 0.2,
        "da": "1000-01-01",
        "tm": "-838:59:59.000000",
        "e": "c d",
    },
    1: dict.fromkeys(ALL_COLUMNS),
    2: {
        "d": "0.0000000001",
        "dt": "1000-01-01 00:00:00.000000",
        "ts": "2001-01-01 00:00:00.500000",
        "b": b"",
        "j": "[]",
        "n": -2147483648,
        "u": 0,
        "t": "",
        "vb": b"\x00",
        "bt": b"\x00",
        "db": -1.7976931348623157e308,
        "da": "9999-12-31",
        "tm": "838:59:59.999999",
        "e": "é",
    },
}
ROWS[3] = {**ROWS[0], "b": bytes(range(256)) * 3, "t": "ß∂ƒ©˙∆˚¬…æ", "db": 5e-324}
ROWS[4] = {**ROWS[2], "j": '{"a": {"b": [1, 2, {"c": "😀"}]}}', "bt": b"\xff", "e": "a"}
ROWS[5] = {**ROWS[0], "u": 1, "db": 1e308, "tm": "00:00:00.000001"}
NEW_IDS = (6, 7, 8)

SNAPSHOT = (
    "SELECT id, "
    + ", ".join(f"HEX(CAST({c} AS BINARY))" for c in ALL_COLUMNS)
    + ", "
    + ", ".join(f"{c} IS NULL" for c in ALL_COLUMNS)
    + f" FROM {DB}.alltypes ORDER BY id"
)


def load_alltypes(cluster: LocalCluster) -> None:
    names = ", ".join(("id", *ALL_COLUMNS))
    marks = ", ".join(["%s"] * (len(ALL_COLUMNS) + 1))
    for index, server in enumerate(cluster.servers):
        conn = server.connect(DB, charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM alltypes")
                for key, row in ROWS.items():
                    if key % 3 == index:
                        cur.execute(
                            f"INSERT INTO alltypes ({names}) VALUES ({marks})",
                            (key, *(row[c] for c in ALL_COLUMNS)),
                        )
        finally:
            conn.close()


def snapshot(cluster: LocalCluster) -> dict[str, list[tuple]]:
    state = {server.name: on_shard(server, SNAPSHOT) for server in cluster.servers}
    # doubles exactly, not only as printed
    state["doubles"] = on_shard(
        cluster.servers[0], f"SELECT id FROM {DB}.alltypes WHERE db = 0.1e0 + 0.2e0 ORDER BY id"
    )
    return state


AT_WORK = [
    # every column of row 0 (s0), row 1 (s1, all NULL) and row 2 (s2) changes
    "UPDATE alltypes SET d = d + 1, dt = '2020-01-01 01:02:03.4', ts = NULL, b = REVERSE(b), "
    "j = '{\"x\": 1}', n = 7, u = u - 1, t = CONCAT(t, 'x'), vb = NULL, bt = b'1', db = db * 2, "
    "da = '2000-02-02', tm = '01:02:03', e = 'a' WHERE id = 0",
    "UPDATE alltypes SET d = 1.5, dt = '2021-01-01', ts = '2021-01-01 00:00:00', b = 'blob', "
    "j = '[1]', n = 1, u = 1, t = 'text', vb = 'v', bt = 3, db = 2.5, da = '2021-01-01', "
    "tm = '12:00:00', e = 'b' WHERE id = 1",
    "UPDATE alltypes SET d = NULL, dt = NULL, ts = NULL, b = NULL, j = NULL, n = NULL, u = NULL, "
    "t = NULL, vb = NULL, bt = NULL, db = NULL, da = NULL, tm = NULL, e = NULL WHERE id = 2",
    # deletes on s0 and s1, an update on s2, inserts on every shard
    "DELETE FROM alltypes WHERE id IN (3, 4)",
    "UPDATE alltypes SET b = UNHEX(REPEAT('00', 1000)), t = 'changed' WHERE id = 5",
    "INSERT INTO alltypes (id, d, t, b) VALUES (6, 6.6, 'six', x'06'), (7, 7.7, 'seven', x'07'), "
    "(8, 8.8, 'eight', x'08')",
]


@pytest.mark.parametrize("rollback_by", ["recovery", "global_lock_conflict"])
def test_images_restore_every_type_byte_for_byte(
    proxy_factory: Factory, cluster: LocalCluster, rollback_by: str
) -> None:
    load_alltypes(cluster)
    before = snapshot(cluster)
    assert [r[0] for r in before["s0"]] == [0, 3] and before["doubles"] == [(0,)]
    proxy_id = f"atimg{rollback_by[0]}"
    env = (
        {"XAPROXY_FAILPOINTS": "at_after_local_commit_all=kill"}
        if rollback_by == "recovery"
        else None
    )
    proxy = start_proxy(proxy_factory, cluster, proxy_id, env=env, lock_retry_count=5)
    # the client's character set and time zone must not matter: images are read in
    # utf8mb4, and TIMESTAMPs written back in the time zone they were read in
    conn = connect(proxy, DB, charset="latin1")
    query(conn, "SET time_zone = '+05:30'")
    query(conn, "BEGIN")
    for statement in AT_WORK:
        query(conn, statement)
    if rollback_by == "recovery":
        with pytest.raises(pymysql.err.OperationalError):
            query(conn, "COMMIT")  # the proxy kills itself after every local commit
        assert wait_for(lambda: not proxy.is_running(), 10)
        changed = snapshot(cluster)
        assert changed["s1"] != before["s1"] and changed["s2"] != before["s2"]  # locally committed
        # s0, the decider, commits its rows with the decision row: it never had an undo row
        assert {r[0] for r in open_undo(cluster, proxy_id)} == {"s1", "s2"}
        assert changed["s0"] == before["s0"]
        restarted = start_proxy(proxy_factory, cluster, proxy_id, config=proxy.config)
        restarted_conn = connect(restarted, DB)
        assert query(restarted_conn, "SELECT 1") == [(1,)]
        restarted_conn.close()
        assert "AT rollback" in restarted.log_text()
    else:
        # another transaction holds the global lock of row 5 (s2): s0 and s1 commit
        # locally, s2 cannot, and the coordinator compensates s0 and s1
        on_shard(
            cluster.servers[2],
            f"INSERT INTO {LOCKS} (lock_key, gtrid) VALUES (%s, 'other:s2:1:1')",
            (lock_key(DB, "alltypes", 5),),
        )
        try:
            with pytest.raises(pymysql.MySQLError) as failed:
                query(conn, "COMMIT")
            assert failed.value.args[0] == 1205, failed.value.args
            assert "global lock" in failed.value.args[1]
        finally:
            on_shard(cluster.servers[2], f"DELETE FROM {LOCKS} WHERE gtrid = 'other:s2:1:1'")
        assert "AT rollback" in proxy.log_text()
    after = snapshot(cluster)
    for name in ("s0", "s1", "s2", "doubles"):
        assert after[name] == before[name], name
    assert not open_undo(cluster, proxy_id)
    assert not lock_rows(cluster, proxy_id)
    conn.close()


def test_inserts_and_repeated_writes_are_undone_exactly(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    """INSERT forms (positional, SET, generated ids), a row written twice, a key deleted and
    inserted again, generated columns: the coordinator's rollback restores s0 exactly."""
    s0 = cluster.servers[0]
    s0.execute(
        "DELETE FROM kv; INSERT INTO kv VALUES (1, 1), (2, 2), (3, 3); "
        "DELETE FROM auto; INSERT INTO auto (v) VALUES (100); "
        "DELETE FROM gen; INSERT INTO gen (id, a) VALUES (1, 1), (2, 2)",
        DB,
    )
    state_sql = (
        f"SELECT (SELECT GROUP_CONCAT(CONCAT_WS(':', k, v) ORDER BY k) FROM {DB}.kv), "
        f"(SELECT GROUP_CONCAT(CONCAT_WS(':', id, v) ORDER BY id) FROM {DB}.auto), "
        f"(SELECT GROUP_CONCAT(CONCAT_WS(':', id, a, b, c) ORDER BY id) FROM {DB}.gen)"
    )
    before = on_shard(s0, state_sql)
    proxy = start_proxy(proxy_factory, cluster, "atundo", lock_retry_count=3)
    conn = connect(proxy, DB)
    query(conn, "BEGIN")
    for statement in [
        "INSERT INTO kv VALUES (10, 10)",
        "INSERT INTO kv SET k = 11, v = 11",
        "INSERT INTO auto (v) VALUES (1), (2), (3)",
        "INSERT INTO auto (id, v) VALUES (NULL, 4)",
        "UPDATE kv SET v = v + 1 WHERE k = 1",
        "UPDATE kv SET v = v * 10 WHERE k = 1",
        "DELETE FROM kv WHERE k = 2",
        "INSERT INTO kv (k, v) VALUES (2, 99)",
        "DELETE FROM kv WHERE k = 3 LIMIT 1",
        "UPDATE gen SET a = a + 5 WHERE id = 1",
        "DELETE FROM gen WHERE id = 2",
        "UPDATE acc SET bal = bal + 1 WHERE id = 1",  # s1: its global lock is taken
    ]:
        query(conn, statement)
    assert query(conn, "SELECT COUNT(*) FROM auto") == [(5,)]
    on_shard(
        cluster.servers[1],
        f"INSERT INTO {LOCKS} (lock_key, gtrid) VALUES (%s, 'other:s1:1:3')",
        (lock_key(DB, "acc", 1),),
    )
    try:
        with pytest.raises(pymysql.MySQLError) as failed:
            query(conn, "COMMIT")
        assert failed.value.args[0] == 1205, failed.value.args
    finally:
        on_shard(cluster.servers[1], f"DELETE FROM {LOCKS} WHERE gtrid = 'other:s1:1:3'")
    assert on_shard(s0, state_sql) == before
    assert balance(cluster, 1) == START_BALANCE
    assert not open_undo(cluster, "atundo") and not lock_rows(cluster, "atundo")
    # and the same work commits
    query(conn, "BEGIN")
    query(conn, "INSERT INTO auto (v) VALUES (7), (8)")
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    query(conn, "COMMIT")
    assert [r[0] for r in on_shard(s0, f"SELECT v FROM {DB}.auto ORDER BY id")] == [100, 7, 8]
    assert_clean(cluster, "atundo")
    conn.close()


def test_insert_select_across_shards_rolls_back_and_commits_in_at_mode(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    """The rows an INSERT ... SELECT reads are written as VALUES: AT images undo them."""
    proxy = start_proxy(proxy_factory, cluster, "atinsel")
    conn = connect(proxy, DB)
    copied = f"SELECT id, bal FROM {DB}.acc WHERE id >= 1000 ORDER BY id"
    query(conn, "BEGIN")
    query(conn, "INSERT INTO acc (id, bal) SELECT id + 1000, bal + 1 FROM acc")
    assert query(conn, "SELECT COUNT(*) FROM acc WHERE id >= 1000") == [(ACCOUNTS,)]
    query(conn, "ROLLBACK")
    assert all(not on_shard(server, copied) for server in cluster.servers)
    assert_clean(cluster, "atinsel")
    query(conn, "INSERT INTO acc (id, bal) SELECT id + 1000, bal + 1 FROM acc WHERE id < 6")
    for index, server in enumerate(cluster.servers):
        rows = [(int(i), int(b)) for i, b in on_shard(server, copied)]
        expected = [(1000 + i, START_BALANCE + 1) for i in range(6) if (1000 + i) % 3 == index]
        assert rows == expected, (server.name, rows)
    assert_clean(cluster, "atinsel")
    conn.close()


# --- refusals ---------------------------------------------------------------------------

REFUSED = {
    "no_primary_key_insert": "INSERT INTO nopk (id, v) VALUES (1, 1)",
    "no_primary_key_update": "UPDATE nopk SET v = 5",
    "no_primary_key_delete": "DELETE FROM nopk",
    "multi_table_update": "UPDATE kv JOIN nopk ON kv.k = nopk.id SET kv.v = 9",
    "multi_table_update_comma": "UPDATE kv, nopk SET kv.v = 9 WHERE kv.k = nopk.id",
    "multi_table_delete": "DELETE kv FROM kv JOIN nopk ON kv.k = nopk.id",
    "primary_key_update": "UPDATE kv SET k = 100 WHERE k = 1",
    "primary_key_update_sharded": "UPDATE orders SET id = 100 WHERE user_id = 1",
    "on_duplicate_key_update": "INSERT INTO kv (k, v) VALUES (1, 9) ON DUPLICATE KEY UPDATE v = 9",
    "on_duplicate_key_update_sharded": (
        "INSERT INTO acc (id, bal) VALUES (1, 9) ON DUPLICATE KEY UPDATE bal = 9"
    ),
    "replace": "REPLACE INTO kv (k, v) VALUES (1, 9)",
    "replace_after_comment": "/* c */ REPLACE INTO kv (k, v) VALUES (1, 9)",
    "replace_sharded": "REPLACE INTO acc (id, bal) VALUES (1, 9)",
    "insert_ignore": "INSERT IGNORE INTO kv (k, v) VALUES (1, 9), (50, 50)",
    "insert_select": "INSERT INTO kv (k, v) SELECT id + 100, v FROM nopk",
    "insert_mixed_keys": "INSERT INTO kv (k, v) VALUES (NULL, 9), (60, 9)",
    "insert_expression_key": "INSERT INTO kv (k, v) VALUES (1 + 60, 9)",
    "call": "CALL no_such_procedure()",
}


@pytest.fixture(scope="module")
def refusal_proxy(cluster: LocalCluster, database: str, tmp_path_factory) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(
        at_config(cluster, DB, proxy_id="atrefuse", tables=TABLES),
        tmp_path_factory.mktemp("atrefuse"),
        name="atrefuse",
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("statement", list(REFUSED.values()), ids=list(REFUSED))
def test_writes_without_an_exact_image_are_refused(
    refusal_proxy: ProxyProcess, cluster: LocalCluster, statement: str
) -> None:
    s0 = cluster.servers[0]
    s0.execute(
        "DELETE FROM nopk; INSERT INTO nopk VALUES (1, 1), (1, 2); "
        "DELETE FROM kv; INSERT INTO kv VALUES (1, 1), (2, 2); "
        "DELETE FROM orders; INSERT INTO orders VALUES (1, 1, 'a')",
        DB,
    )
    snapshot_sql = (
        f"SELECT (SELECT GROUP_CONCAT(CONCAT_WS(':', id, v) ORDER BY id, v) FROM {DB}.nopk), "
        f"(SELECT GROUP_CONCAT(CONCAT_WS(':', k, v) ORDER BY k) FROM {DB}.kv), "
        f"(SELECT GROUP_CONCAT(CONCAT_WS(':', id, user_id) ORDER BY id) FROM {DB}.orders)"
    )
    before = [on_shard(server, snapshot_sql) for server in cluster.servers]
    accounts = balances(cluster)
    conn = connect(refusal_proxy, DB)
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    with pytest.raises(pymysql.MySQLError) as refused:
        query(conn, statement)
    code, message = refused.value.args
    assert code == 1235, message
    assert "xaproxy does not support" in message
    # the refused statement never ran: committing the transaction changes only the accounts
    query(conn, "COMMIT")
    assert [on_shard(server, snapshot_sql) for server in cluster.servers] == before
    assert balances(cluster) == {**accounts, 0: accounts[0] + 1, 1: accounts[1] + 1}
    assert_clean(cluster, "atrefuse")
    conn.close()


def test_refusal_messages_say_what_to_do(
    refusal_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    conn = connect(refusal_proxy, DB)
    query(conn, "BEGIN")
    for statement, words in [
        (REFUSED["no_primary_key_update"], ("primary key", "AT mode")),
        (REFUSED["multi_table_update"], ("multi-table", "AT mode")),
        (REFUSED["primary_key_update"], ("primary key", "AT mode")),
        (REFUSED["on_duplicate_key_update"], ("ON DUPLICATE KEY UPDATE", "AT mode")),
        (REFUSED["replace"], ("REPLACE", "AT mode")),
    ]:
        with pytest.raises(pymysql.MySQLError) as refused:
            query(conn, statement)
        assert all(w in refused.value.args[1] for w in words), refused.value.args
    query(conn, "ROLLBACK")
    conn.close()


# --- dirty writes -----------------------------------------------------------------------


@pytest.mark.parametrize("resolution", ["ACCEPT", "RESTORE"])
def test_rollback_never_overwrites_a_row_changed_outside_the_transaction(
    proxy_factory: Factory, cluster: LocalCluster, resolution: str
) -> None:
    proxy_id = f"atdirty{resolution[0].lower()}"
    proxy = start_proxy(
        proxy_factory,
        cluster,
        proxy_id,
        env={"XAPROXY_FAILPOINTS": "at_after_local_commit_all=kill"},
    )
    conn = connect(proxy, DB)
    query(conn, "BEGIN")
    query(conn, "UPDATE acc SET bal = bal - 100 WHERE id = 0")
    query(conn, "UPDATE acc SET bal = bal + 100 WHERE id = 1")
    with pytest.raises(pymysql.err.OperationalError):
        query(conn, "COMMIT")
    conn.close()
    assert wait_for(lambda: not proxy.is_running(), 10)
    # s1 committed locally (s0, the decider, died uncommitted with the proxy); before the
    # outcome, someone changes row 1 directly
    assert balance(cluster, 0) == 1000 and balance(cluster, 1) == 1100
    gtrid = {r[1] for r in open_undo(cluster, proxy_id)}
    assert len(gtrid) == 1
    gtrid = gtrid.pop()
    on_shard(cluster.servers[1], f"UPDATE {DB}.acc SET bal = 5555 WHERE id = 1")

    restarted = start_proxy(proxy_factory, cluster, proxy_id, config=proxy.config)
    # s0 has nothing to undo; s1 keeps the outside change, its undo row (status 2) and its lock
    assert balance(cluster, 0) == 1000
    assert balance(cluster, 1) == 5555
    assert open_undo(cluster, proxy_id) == [("s1", gtrid, "s1", 2)]
    assert [r[:1] + r[2:] for r in lock_rows(cluster, proxy_id)] == [("s1", gtrid)]
    log = restarted.log_text()
    assert gtrid in log and "XAPROXY RESOLVE" in log and "changed outside the transaction" in log
    admin = connect(restarted, DB)
    shown = [r for r in transactions(admin) if r[2] == gtrid]
    assert [(r[0], r[3], r[4]) for r in shown] == [("at", "at: needs operator", "s1")], shown
    # a new transaction on that row waits for the kept global lock, and gives up
    query(admin, "BEGIN")
    query(admin, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    query(admin, "UPDATE acc SET bal = bal + 1 WHERE id = 2")
    with pytest.raises(pymysql.MySQLError) as blocked:
        query(admin, "COMMIT")
    assert blocked.value.args[0] == 1205
    assert balance(cluster, 1) == 5555 and balance(cluster, 2) == 1000
    admin.close()
    # a later recovery pass leaves it alone too
    restarted.stop()
    again = start_proxy(proxy_factory, cluster, proxy_id, config=proxy.config)
    assert balance(cluster, 1) == 5555
    assert open_undo(cluster, proxy_id) == [("s1", gtrid, "s1", 2)]

    admin = connect(again, DB)
    result = query(admin, f"XAPROXY RESOLVE '{gtrid}' {resolution}")
    assert [r[0] for r in result] == ["s1"], result
    assert balance(cluster, 1) == (5555 if resolution == "ACCEPT" else 1000)
    assert balance(cluster, 0) == 1000
    assert not open_undo(cluster, proxy_id)
    assert not lock_rows(cluster, proxy_id)
    assert not [r for r in transactions(admin) if r[2] == gtrid]
    with pytest.raises(pymysql.MySQLError) as unknown:
        query(admin, f"XAPROXY RESOLVE '{gtrid}' ACCEPT")
    assert unknown.value.args[0] == 1397
    # the row is free again
    query(admin, "BEGIN")
    query(admin, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
    query(admin, "UPDATE acc SET bal = bal + 1 WHERE id = 2")
    query(admin, "COMMIT")
    assert balance(cluster, 2) == 1001
    admin.close()


def test_coordinator_rollback_stops_at_a_dirty_row(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    """Rollback by the live coordinator (a branch could not take its global lock) checks too."""
    proxy_id = "atdirtyc"
    proxy = start_proxy(
        proxy_factory, cluster, proxy_id, lock_retry_count=150, lock_retry_interval_ms=20
    )
    on_shard(
        cluster.servers[2],
        f"INSERT INTO {LOCKS} (lock_key, gtrid) VALUES (%s, 'other:s2:1:2')",
        (lock_key(DB, "acc", 2),),
    )
    outcome: dict[str, Any] = {}

    def transfer() -> None:
        conn = connect(proxy, DB)
        try:
            query(conn, "BEGIN")
            query(conn, "UPDATE acc SET bal = bal - 100 WHERE id = 0")
            query(conn, "UPDATE acc SET bal = bal + 50 WHERE id = 1")
            query(conn, "UPDATE acc SET bal = bal + 50 WHERE id = 2")
            query(conn, "COMMIT")
            outcome["ok"] = True
        except pymysql.MySQLError as exc:
            outcome["error"] = exc.args
        finally:
            conn.close()

    worker = threading.Thread(target=transfer)
    worker.start()
    try:
        # s1 commits locally while s2 waits for the lock (about 3 s); s0, the decider,
        # would commit only with the decision row
        assert wait_for(lambda: len(open_undo(cluster, proxy_id)) == 1, 10), open_undo(
            cluster, proxy_id
        )
        on_shard(cluster.servers[1], f"UPDATE {DB}.acc SET bal = 4444 WHERE id = 1")
        worker.join(30)
    finally:
        worker.join(30)
        on_shard(cluster.servers[2], f"DELETE FROM {LOCKS} WHERE gtrid = 'other:s2:1:2'")
    assert outcome.get("error", (None,))[0] == 1205, outcome
    assert balance(cluster, 1) == 4444  # not overwritten
    assert balance(cluster, 0) == 1000  # the decider rolled back
    assert balance(cluster, 2) == 1000  # never committed
    undo = open_undo(cluster, proxy_id)
    assert [(r[0], r[3]) for r in undo] == [("s1", 2)], undo
    assert {r[0] for r in lock_rows(cluster, proxy_id)} == {"s1"}
    assert "XAPROXY RESOLVE" in proxy.log_text()
    admin = connect(proxy, DB)
    assert [r[3] for r in transactions(admin) if r[2] == undo[0][1]] == ["at: needs operator"]
    query(admin, f"XAPROXY RESOLVE '{undo[0][1]}' ACCEPT")
    assert not open_undo(cluster, proxy_id) and not lock_rows(cluster, proxy_id)
    assert balance(cluster, 1) == 4444
    admin.close()


# --- global locks across proxies -----------------------------------------------------------


def test_global_locks_hold_off_another_proxy(proxy_factory: Factory, cluster: LocalCluster) -> None:
    holder = start_proxy(
        proxy_factory,
        cluster,
        "glholder",
        env={"XAPROXY_FAILPOINTS": "at_after_local_commit_all=sleep:15"},
    )
    impatient = start_proxy(
        proxy_factory, cluster, "glshort", lock_retry_count=10, lock_retry_interval_ms=50
    )
    patient = start_proxy(
        proxy_factory, cluster, "glpatient", lock_retry_count=1200, lock_retry_interval_ms=50
    )
    result: dict[str, Any] = {}

    def hold() -> None:
        conn = connect(holder, DB)
        try:
            query(conn, "BEGIN")
            query(conn, "UPDATE acc SET bal = bal - 100 WHERE id = 1")
            query(conn, "UPDATE acc SET bal = bal + 100 WHERE id = 2")
            # a write on s0, the decider: it commits with the decision row, so rows 1
            # and 2 are the ones held by global locks
            query(conn, "UPDATE acc SET bal = bal WHERE id = 3")
            query(conn, "COMMIT")
            result["holder"] = time.monotonic()
        except pymysql.MySQLError as exc:
            result["holder_error"] = exc.args
        finally:
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        # the holder committed locally on s1 and s2 and holds the global locks of rows 1 and 2
        assert wait_for(lambda: len(lock_rows(cluster, "glholder")) == 2, 10)
        conn = connect(impatient, DB)
        # plain reads do not wait (and see the locally committed value): they answer
        # while the holder still holds its locks (it holds them for 15 s)
        assert query(conn, "SELECT bal FROM acc WHERE id = 1") == [(900,)]
        assert holds_lock_of(cluster, "glholder", 1)
        # nor inside a transaction, with or without a comment in front
        query(conn, "BEGIN")
        assert query(conn, "SELECT bal FROM acc WHERE id = 1") == [(900,)]
        assert query(conn, "/* plain */ SELECT bal FROM acc WHERE id = 2") == [(1100,)]
        assert holds_lock_of(cluster, "glholder", 1) and holds_lock_of(cluster, "glholder", 2)
        query(conn, "COMMIT")
        # a conflicting multi-shard AT transaction waits, then fails with 1205, rolled back
        query(conn, "BEGIN")
        query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 0")
        query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1")
        with pytest.raises(pymysql.MySQLError) as failed:
            query(conn, "COMMIT")
        assert failed.value.args[0] == 1205, failed.value.args
        assert "glholder" in failed.value.args[1]
        # it gave up after its 10 retries, while the holder still held the lock
        assert holds_lock_of(cluster, "glholder", 1)
        assert balance(cluster, 1) == 900 and balance(cluster, 0) == 1000
        assert query(conn, "SELECT @@in_transaction") == [(0,)]
        # a one-shard transaction must wait for the lock too
        query(conn, "BEGIN")
        query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 2")
        with pytest.raises(pymysql.MySQLError) as failed:
            query(conn, "COMMIT")
        assert failed.value.args[0] == 1205
        assert balance(cluster, 2) == 1100
        # SELECT ... FOR UPDATE waits for the global lock too; it gives up with 1205
        query(conn, "BEGIN")
        with pytest.raises(pymysql.MySQLError) as failed:
            query(conn, "SELECT bal FROM acc WHERE id = 1 FOR UPDATE")
        assert failed.value.args[0] == 1205
        assert "glholder" in failed.value.args[1]
        query(conn, "ROLLBACK")
        assert thread.is_alive(), "the holder finished too early for this test"

        # a patient proxy waits until the holder is done, then succeeds
        patient_conn = connect(patient, DB)
        query(patient_conn, "BEGIN")
        query(patient_conn, "UPDATE acc SET bal = bal - 7 WHERE id = 1")
        query(patient_conn, "UPDATE acc SET bal = bal + 7 WHERE id = 0")
        query(patient_conn, "COMMIT")
        # it waited for the holder: it could commit only once the holder let go of row 0
        assert not holds_lock_of(cluster, "glholder", 1)
        thread.join(30)
        assert "holder" in result, result
        assert balances(cluster) == {0: 1007, 1: 893, 2: 1100, 3: 1000, 4: 1000, 5: 1000}
        # and a locking read waits for the holder's successor no longer
        query(patient_conn, "BEGIN")
        assert query(patient_conn, "SELECT bal FROM acc WHERE id = 1 FOR UPDATE") == [(893,)]
        query(patient_conn, "COMMIT")
        patient_conn.close()

        # after the holder is done, the impatient proxy succeeds at once
        assert_clean(cluster, "glholder")
        query(conn, "BEGIN")
        assert query(conn, "SELECT bal FROM acc WHERE id = 1 FOR UPDATE") == [(893,)]
        query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 1")
        query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 2")
        query(conn, "COMMIT")
        assert balance(cluster, 1) == 892 and balance(cluster, 2) == 1101
        conn.close()
    finally:
        thread.join(30)
    for proxy_id in ("glholder", "glshort", "glpatient"):
        assert_clean(cluster, proxy_id)


def test_locking_read_waits_for_a_global_lock_then_proceeds(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    holder = start_proxy(
        proxy_factory,
        cluster,
        "glread1",
        env={"XAPROXY_FAILPOINTS": "at_after_local_commit_all=sleep:10"},
    )
    reader = start_proxy(
        proxy_factory, cluster, "glread2", lock_retry_count=1500, lock_retry_interval_ms=20
    )
    finished: dict[str, float] = {}

    def hold() -> None:
        conn = connect(holder, DB)
        query(conn, "BEGIN")
        query(conn, "UPDATE acc SET bal = bal - 5 WHERE id = 3")  # s0, the decider
        query(conn, "UPDATE acc SET bal = bal + 5 WHERE id = 4")  # s1: a global lock
        query(conn, "UPDATE acc SET bal = bal WHERE id = 2")  # s2: a global lock
        query(conn, "COMMIT")
        finished["holder"] = time.monotonic()
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert wait_for(lambda: len(lock_rows(cluster, "glread1")) == 2, 10)
        conn = connect(reader, DB)
        # rows the holder did not touch do not wait: answered while the holder holds its locks
        query(conn, "BEGIN")
        assert query(conn, "SELECT bal FROM acc WHERE id = 5 FOR UPDATE") == [(1000,)]
        assert holds_lock_of(cluster, "glread1", 4)
        query(conn, "COMMIT")
        query(conn, "BEGIN")
        assert query(conn, "SELECT bal FROM acc WHERE id = 4 FOR UPDATE") == [(1005,)]
        # it waited for the holder: it got the row only once the holder let go of row 4
        assert not holds_lock_of(cluster, "glread1", 4)
        query(conn, "COMMIT")
        thread.join(30)
        assert "holder" in finished
        conn.close()
    finally:
        thread.join(30)


# --- autocommit statements and locking reads over several shards --------------------------


def test_autocommit_writes_and_multi_shard_locking_reads_respect_global_locks(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    """A lock row of another transaction (as another proxy leaves it) on row 2 (s2) holds
    off an autocommit write of that row, and a locking read over several shards, in a
    transaction and in autocommit; once it is gone they all run."""
    proxy = start_proxy(
        proxy_factory, cluster, "glauto", lock_retry_count=5, lock_retry_interval_ms=20
    )
    gtrid = "other:s2:1:3"
    on_shard(
        cluster.servers[2],
        f"INSERT INTO {LOCKS} (lock_key, gtrid) VALUES (%s, '{gtrid}')",
        (lock_key(DB, "acc", 2),),
    )
    conn = connect(proxy, DB)
    try:
        for statement in (
            "UPDATE acc SET bal = bal + 1 WHERE id = 2",
            "DELETE FROM acc WHERE id = 2",
            "SELECT id, bal FROM acc WHERE id IN (1, 2) FOR UPDATE",
            "SELECT id, bal FROM acc WHERE id IN (1, 2) LOCK IN SHARE MODE",
            "SELECT id, bal FROM acc WHERE id = 2 FOR UPDATE",
        ):
            with pytest.raises(pymysql.MySQLError) as failed:
                query(conn, statement)
            assert failed.value.args[0] == 1205, (statement, failed.value.args)
            assert gtrid in failed.value.args[1], failed.value.args
            assert query(conn, "SELECT @@in_transaction") == [(0,)]
        query(conn, "BEGIN")
        with pytest.raises(pymysql.MySQLError) as failed:
            query(conn, "SELECT id, bal FROM acc ORDER BY id FOR UPDATE")
        assert failed.value.args[0] == 1205, failed.value.args
        assert query(conn, "SELECT @@in_transaction") == [(0,)]  # the transaction ended
        # rows the lock does not cover are written in autocommit without waiting
        assert query(conn, "UPDATE acc SET bal = bal + 1 WHERE id = 1") == []
        assert balance(cluster, 1) == 1001 and balance(cluster, 2) == 1000
        # a table without a primary key has no global locks: autocommit writes still run
        query(conn, "DELETE FROM nopk")
        query(conn, "INSERT INTO nopk VALUES (1, 1)")
        assert query(conn, "SELECT id, v FROM nopk") == [(1, 1)]
        query(conn, "DELETE FROM nopk")
    finally:
        on_shard(cluster.servers[2], f"DELETE FROM {LOCKS} WHERE gtrid = '{gtrid}'")
    assert query(conn, "SELECT id, bal FROM acc WHERE id IN (1, 2) FOR UPDATE") == [
        (1, 1001),
        (2, 1000),
    ]
    assert query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 2") == []
    assert balance(cluster, 2) == 999
    conn.close()
    assert_clean(cluster, "glauto")


def test_waiters_of_one_proxy_queue_on_a_hot_row_and_lose_no_money(
    proxy_factory: Factory, cluster: LocalCluster
) -> None:
    """Many clients move money from row 0 (s0) to rows on s1 and s2 and back at once:
    waiters queue on the holder's completion (deadlock victims and timeouts are retried);
    afterwards every acknowledged transfer is applied and no money is lost."""
    proxy = start_proxy(
        proxy_factory, cluster, "glqueue", lock_retry_count=200, lock_retry_interval_ms=10
    )
    acknowledged: list[tuple[int, int]] = []
    problems: list[BaseException] = []

    def client(index: int) -> None:
        conn = connect(proxy, DB)
        try:
            for round_ in range(8):
                target = 1 + (index + round_) % 5
                for _attempt in range(50):
                    try:
                        query(conn, "BEGIN")
                        query(conn, "UPDATE acc SET bal = bal - 1 WHERE id = 1")
                        query(conn, f"UPDATE acc SET bal = bal + 1 WHERE id = {target}")
                        query(conn, "UPDATE acc SET bal = bal + 0 WHERE id = 0")
                        query(conn, "COMMIT")
                        acknowledged.append((1, target))
                        break
                    except pymysql.MySQLError as exc:
                        if exc.args[0] not in (1205, 1213):
                            raise
                        with contextlib.suppress(pymysql.MySQLError):
                            query(conn, "ROLLBACK")
        except BaseException as exc:
            problems.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not problems, problems
    now = balances(cluster)
    assert sum(now.values()) == ACCOUNTS * START_BALANCE, now
    moved = {i: sum(1 for _, t in acknowledged if t == i) for i in range(ACCOUNTS)}
    expected = {i: START_BALANCE + moved[i] for i in range(ACCOUNTS)}
    expected[1] = START_BALANCE - len(acknowledged) + moved[1]
    assert now == expected, (now, expected)
    assert_clean(cluster, "glqueue")
