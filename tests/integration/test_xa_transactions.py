"""Client transactions through the proxy, as a PyMySQL application sees them.

Accounts 0..5 of schema `bank` live on s{id % 3}; every check of the outcome
reads the shards directly. Covered: one-phase commit of single-shard
transactions, two-phase commit and rollback over three shards, disconnects,
the transaction timeout, deadlocks, statement errors that keep the transaction,
savepoints, refused XA statements, autocommit=0, atomic autocommit statements
over several shards, cleanup of decision rows, and `xaproxy recover` with
foreign branches and --dry-run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.support import bank
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import SOURCE_ROOT, ProxyProcess, python_env
from xaproxy.transactions.xid import FORMAT_ID

INITIAL = {i: 1000 for i in range(6)}
PROXY_ID = "xt"


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    bank.ensure_running(cluster)
    bank.reset_bank(cluster, INITIAL)
    config = bank.bank_config(
        cluster,
        proxy_id=PROXY_ID,
        # A long abandon age: this proxy must not touch the other proxies' branches here.
        transactions={"timeout_s": 60, "abandon_age_s": 300, "recover_interval_s": 1},
    )
    process = ProxyProcess(config, tmp_path_factory.mktemp("xa_transactions"), name="xt")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def accounts(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[LocalCluster]:
    bank.reset_bank(cluster, INITIAL)
    yield cluster
    bank.ensure_running(cluster)
    assert bank.in_doubt(cluster) == {}
    assert proxy.is_running(), proxy.log_tail()


def changed(cluster: LocalCluster) -> dict[int, int]:
    """Balance deltas against INITIAL, only for accounts that changed."""
    now = bank.balances(cluster)
    assert set(now) == set(INITIAL), now
    return {i: now[i] - INITIAL[i] for i in now if now[i] != INITIAL[i]}


def unlocked(cluster: LocalCluster, ids: list[int]) -> bool:
    """True when no transaction holds a lock on any of the accounts."""
    for account in ids:
        server = cluster[bank.shard_of(account)]
        try:
            server.execute(
                "SET SESSION innodb_lock_wait_timeout = 1; "
                f"UPDATE bank.accounts SET balance = balance WHERE id = {account}"
            )
        except pymysql.err.OperationalError as exc:
            if exc.args[0] == 1205:
                return False
            raise
    return True


def assert_unlocked(cluster: LocalCluster, ids: list[int], timeout: float = 10) -> None:
    bank.wait_until(lambda: unlocked(cluster, ids), timeout, f"accounts {ids} to be unlocked")


def error_of(call: Callable[[], Any]) -> pymysql.MySQLError:
    with pytest.raises(pymysql.MySQLError) as info:
        call()
    return info.value


class DecisionTableLock:
    """LOCK TABLES xaproxy.decisions READ on a shard: any decision row insert blocks."""

    def __init__(self, cluster: LocalCluster, shard: str = "s0") -> None:
        self.conn = cluster[shard].connect()

    def __enter__(self) -> DecisionTableLock:
        bank.run(self.conn, "LOCK TABLES xaproxy.decisions READ")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            bank.run(self.conn, "UNLOCK TABLES")
        finally:
            self.conn.close()


# --- commit and rollback ------------------------------------------------------------------


def test_single_shard_transactions_commit_in_one_phase(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    # With the decision table locked, writing a decision row would hang: none is written.
    with DecisionTableLock(cluster, "s0"), DecisionTableLock(cluster, "s1"):
        conn = bank.connect(proxy, read_timeout=10)
        try:
            # local branch only
            bank.run_all(conn, ["BEGIN", "UPDATE accounts SET balance = balance + 1 WHERE id = 0"])
            assert bank.in_transaction(conn)
            bank.run(conn, "COMMIT")
            # s0 read, s1 written: one XA branch committed ONE PHASE
            bank.run_all(
                conn,
                [
                    "BEGIN",
                    "SELECT balance FROM accounts WHERE id = 3",
                    "UPDATE accounts SET balance = balance + 2 WHERE id = 1",
                ],
            )
            assert bank.in_doubt(cluster) == {}
            bank.run(conn, "COMMIT")
            # two statements on one shard, first touching s1
            bank.run_all(
                conn,
                [
                    "START TRANSACTION",
                    "UPDATE accounts SET balance = balance + 3 WHERE id = 4",
                    "UPDATE accounts SET balance = balance - 3 WHERE id = 1",
                    "COMMIT",
                ],
            )
            # autocommit single-row statement
            bank.run(conn, "UPDATE accounts SET balance = balance + 4 WHERE id = 2")
            assert not bank.in_transaction(conn)
        finally:
            conn.close()
    assert changed(cluster) == {0: 1, 1: -1, 4: 3, 2: 4}
    assert bank.in_doubt(cluster) == {}
    for server in cluster.servers:
        assert bank.decision_rows(server, PROXY_ID) == []


def test_multi_shard_commit_writes_a_decision_and_cleans_it_up(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        committed = threading.Event()
        failure: list[BaseException] = []

        def commit() -> None:
            try:
                bank.run(conn, "COMMIT")
                committed.set()
            except BaseException as exc:
                failure.append(exc)

        bank.run_all(
            conn,
            [
                "BEGIN",
                "UPDATE accounts SET balance = balance - 30 WHERE id = 0",
                "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
                "UPDATE accounts SET balance = balance + 20 WHERE id = 5",
            ],
        )
        with DecisionTableLock(cluster, "s0"):
            thread = threading.Thread(target=commit)
            thread.start()
            # The commit waits for the decision row: s1 and s2 are prepared meanwhile.
            bank.wait_until(
                lambda: set(bank.in_doubt(cluster)) == {"s1", "s2"}, 10, "prepared branches"
            )
            assert not committed.is_set()
            assert changed(cluster) == {}  # nothing visible before the decision
        thread.join(30)
        assert committed.is_set(), failure
        assert not bank.in_transaction(conn)
    finally:
        conn.close()
    assert changed(cluster) == {0: -30, 1: 10, 5: 20}
    assert bank.in_doubt(cluster) == {}
    # The decision row goes away soon after every branch committed.
    bank.wait_until(
        lambda: not [r for r in bank.decision_rows(cluster["s0"], PROXY_ID) if r[1] == "C"],
        10,
        "the commit decision row to be deleted",
    )


def test_many_multi_shard_commits_leave_no_decision_rows(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        for n in range(20):
            first, second = n % 3, 3 + (n + 1) % 3
            bank.run_all(
                conn,
                [
                    "BEGIN",
                    f"UPDATE accounts SET balance = balance - 1 WHERE id = {first}",
                    f"UPDATE accounts SET balance = balance + 1 WHERE id = {second}",
                    "COMMIT",
                ],
            )
    finally:
        conn.close()
    assert sum(bank.balances(cluster).values()) == sum(INITIAL.values())
    for shard in ("s0", "s1", "s2"):
        bank.wait_until(
            lambda shard=shard: bank.decision_rows(cluster[shard], PROXY_ID) == [] or None,
            10,
            f"decision rows on {shard} to be deleted",
        )


def test_rollback_undoes_every_shard(accounts: LocalCluster, proxy: ProxyProcess) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        bank.run_all(
            conn,
            [
                "BEGIN",
                "UPDATE accounts SET balance = balance - 30 WHERE id = 0",
                "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
                "UPDATE accounts SET balance = balance + 20 WHERE id = 2",
            ],
        )
        assert bank.run(conn, "SELECT balance FROM accounts WHERE id = 2") == [(1020,)]
        bank.run(conn, "ROLLBACK")
        assert not bank.in_transaction(conn)
        assert bank.run(conn, "SELECT id, balance FROM accounts ORDER BY id") == sorted(
            INITIAL.items()
        )
    finally:
        conn.close()
    assert changed(cluster) == {}
    assert bank.in_doubt(cluster) == {}
    assert_unlocked(cluster, [0, 1, 2])


@pytest.mark.parametrize("how", ["quit", "socket_closed"])
def test_client_disconnect_rolls_back_everywhere(
    how: str, accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    bank.run_all(
        conn,
        [
            "BEGIN",
            "UPDATE accounts SET balance = balance - 30 WHERE id = 0",
            "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
            "UPDATE accounts SET balance = balance + 20 WHERE id = 2",
        ],
    )
    if how == "quit":
        conn.close()
    else:
        sock = conn._sock
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    assert_unlocked(cluster, [0, 1, 2])
    assert changed(cluster) == {}
    assert bank.in_doubt(cluster) == {}


# (autocommit, the statements that open the transaction, the first statement after the timeout)
AFTER_TIMEOUT = [
    (True, ["BEGIN"], "UPDATE accounts SET balance = balance + 1 WHERE id = 2"),
    (True, ["BEGIN"], "COMMIT"),
    (True, ["START TRANSACTION"], "BEGIN"),  # would commit the old transaction: must not pass
    (True, ["BEGIN"], "SELECT balance FROM accounts WHERE id = 2"),
    (False, [], "SET autocommit = 1"),  # would commit the old transaction too
    (False, [], "COMMIT"),
]


def test_transaction_older_than_timeout_is_rolled_back(
    accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    """Idle transactions past timeout_s are rolled back; the next statement gets 1205.

    One connection per case, all waiting out the timeout together; connection i
    writes accounts 6 + 2i (s0, s1, s2...) and 7 + 2i, on two shards.
    """
    cluster = accounts
    initial = {i: 1000 for i in range(6 + 2 * len(AFTER_TIMEOUT))}
    bank.reset_bank(cluster, initial)
    short = proxy_factory(
        bank.bank_config(cluster, proxy_id="xto", transactions={"timeout_s": 2}), name="xto"
    )
    short.start()
    conns = [bank.connect(short, autocommit=case[0]) for case in AFTER_TIMEOUT]
    try:
        for i, (conn, (_, opener, _)) in enumerate(zip(conns, AFTER_TIMEOUT, strict=True)):
            bank.run_all(conn, opener)
            for account in (6 + 2 * i, 7 + 2 * i):
                bank.run(conn, f"UPDATE accounts SET balance = balance + 1 WHERE id = {account}")
            assert bank.in_transaction(conn)
        time.sleep(3)
        # The idle transactions were rolled back in the background: their locks are gone.
        assert_unlocked(cluster, list(range(6, len(initial))), timeout=5)
        assert bank.balances(cluster) == initial
        for conn, (_, _, statement) in zip(conns, AFTER_TIMEOUT, strict=True):
            exc = error_of(lambda conn=conn, statement=statement: bank.run(conn, statement))
            assert exc.args[0] == 1205, (statement, exc)
            assert "timeout_s" in exc.args[1], (statement, exc)
            assert not bank.in_transaction(conn), statement
        # The client is told once; the session then works as usual.
        for i, conn in enumerate(conns):
            bank.run(conn, f"UPDATE accounts SET balance = balance + 5 WHERE id = {6 + 2 * i}")
            conn.commit()
    finally:
        for conn in conns:
            conn.close()
    expected = dict(initial)
    for i in range(len(AFTER_TIMEOUT)):
        expected[6 + 2 * i] += 5
    assert bank.balances(cluster) == expected
    assert bank.in_doubt(cluster) == {}


def test_busy_transaction_older_than_timeout_fails_at_its_next_statement(
    accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    """COMMIT of a transaction past timeout_s is refused with 1205 and nothing commits."""
    cluster = accounts
    short = proxy_factory(
        bank.bank_config(cluster, proxy_id="xto", transactions={"timeout_s": 2}), name="xto"
    )
    short.start()
    conn = bank.connect(short)
    try:
        bank.run(conn, "BEGIN")
        bank.run(conn, "UPDATE accounts SET balance = balance + 1 WHERE id = 0")
        # a statement that keeps the session busy past the timeout
        bank.run(conn, "SELECT SLEEP(2.5) FROM accounts WHERE id = 1")
        exc = error_of(lambda: bank.run(conn, "COMMIT"))
        assert exc.args[0] == 1205 and "timeout_s" in exc.args[1], exc
        assert not bank.in_transaction(conn)
    finally:
        conn.close()
    assert changed(cluster) == {}
    assert_unlocked(cluster, [0, 1])


# --- errors inside a transaction ------------------------------------------------------------

# (victim's first row, A's first row, B's first row, the two rows they fight over)
DEADLOCKS = {
    # A and B fight on s1, where both run an XA branch
    "xa_branches": (0, 2, (1, 4)),
    # they fight on s0: A's local branch against B's XA branch
    "local_and_xa": (1, 2, (0, 3)),
}


@pytest.mark.parametrize("case", sorted(DEADLOCKS))
def test_deadlock_rolls_back_one_transaction_on_every_shard(
    case: str, accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    a_first, b_first, (row1, row2) = DEADLOCKS[case]
    a = bank.connect(proxy)
    b = bank.connect(proxy)
    try:
        bank.run_all(
            a,
            [
                "BEGIN",
                f"UPDATE accounts SET balance = balance + 1 WHERE id = {a_first}",
                f"UPDATE accounts SET balance = balance + 10 WHERE id = {row1}",
            ],
        )
        bank.run_all(
            b,
            [
                "BEGIN",
                f"UPDATE accounts SET balance = balance + 100 WHERE id = {b_first}",
                f"UPDATE accounts SET balance = balance + 1000 WHERE id = {row2}",
            ],
        )
        a_result: list[BaseException | None] = []

        def a_blocks() -> None:
            try:
                bank.run(a, f"UPDATE accounts SET balance = balance + 10 WHERE id = {row2}")
                a_result.append(None)
            except BaseException as exc:
                a_result.append(exc)

        thread = threading.Thread(target=a_blocks)
        thread.start()
        # A now waits for B's lock on row2: wait until InnoDB says so, not for a guessed time
        bank.wait_until(
            lambda: cluster[bank.shard_of(row2)].execute(
                "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
            )[0][0],
            30,
            "A to wait for B's lock",
            interval=0.02,
        )
        try:
            bank.run(b, f"UPDATE accounts SET balance = balance + 1000 WHERE id = {row1}")
            b_error: BaseException | None = None
        except pymysql.MySQLError as exc:
            b_error = exc
        thread.join(30)
        assert a_result, "A's statement never finished"
        errors = {"a": a_result[0], "b": b_error}
        victims = [name for name, e in errors.items() if e is not None]
        assert len(victims) == 1, errors
        victim = victims[0]
        error = errors[victim]
        assert isinstance(error, pymysql.MySQLError) and error.args[0] == 1213, error
        loser, winner = (a, b) if victim == "a" else (b, a)
        assert not bank.in_transaction(loser)
        assert bank.in_transaction(winner)
        bank.run(winner, "COMMIT")
        # The victim's session goes on outside any transaction.
        assert bank.run(loser, "SELECT COUNT(*) FROM accounts") == [(6,)]
    finally:
        a.close()
        b.close()
    if victim == "a":
        expected = {b_first: 100, row2: 1000, row1: 1000}
    else:
        expected = {a_first: 1, row1: 10, row2: 10}
    assert changed(cluster) == expected
    assert_unlocked(cluster, [a_first, b_first, row1, row2])


def test_duplicate_key_keeps_the_transaction_open(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        bank.run_all(
            conn,
            [
                "BEGIN",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 0",
                "UPDATE accounts SET balance = balance + 2 WHERE id = 1",
            ],
        )
        # on an XA branch (s1) and on the local branch (s0)
        for dup in (4, 3):
            exc = error_of(
                lambda dup=dup: bank.run(
                    conn, f"INSERT INTO accounts (id, balance) VALUES ({dup}, 5)"
                )
            )
            assert exc.args[0] == 1062, exc
            assert bank.in_transaction(conn)
        bank.run_all(
            conn,
            [
                "UPDATE accounts SET balance = balance + 3 WHERE id = 2",
                "INSERT INTO accounts (id, balance) VALUES (7, 7)",
                "COMMIT",
            ],
        )
        assert not bank.in_transaction(conn)
    finally:
        conn.close()
    now = bank.balances(cluster)
    assert now.pop(7) == 7
    assert {i: now[i] - INITIAL[i] for i in now if now[i] != INITIAL[i]} == {0: 1, 1: 2, 2: 3}


def test_savepoints_across_shards(accounts: LocalCluster, proxy: ProxyProcess) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        bank.run_all(
            conn,
            [
                "BEGIN",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 0",
                "SAVEPOINT sp1",
                # s1 joins after sp1 was set: rolling back to sp1 must undo this too
                "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
                "UPDATE accounts SET balance = balance + 100 WHERE id = 0",
                "ROLLBACK TO SAVEPOINT sp1",
            ],
        )
        assert bank.run(
            conn, "SELECT id, balance FROM accounts WHERE id IN (0, 1) ORDER BY id"
        ) == [
            (0, 1001),
            (1, 1000),
        ]
        bank.run_all(
            conn,
            [
                # sp1 still exists after ROLLBACK TO; s2 joins now and gets it too
                "UPDATE accounts SET balance = balance + 1000 WHERE id = 2",
                "SAVEPOINT sp2",
                "UPDATE accounts SET balance = balance + 10000 WHERE id = 5",
                "UPDATE accounts SET balance = balance + 10000 WHERE id = 4",
                "ROLLBACK TO sp2",
                "UPDATE accounts SET balance = balance + 3 WHERE id = 3",
                "RELEASE SAVEPOINT sp1",
            ],
        )
        exc = error_of(lambda: bank.run(conn, "ROLLBACK TO SAVEPOINT sp2"))
        assert exc.args[0] == 1305, exc  # released together with sp1
        assert bank.in_transaction(conn)
        bank.run(conn, "COMMIT")
    finally:
        conn.close()
    assert changed(cluster) == {0: 1, 2: 1000, 3: 3}
    assert bank.in_doubt(cluster) == {}


def test_rollback_to_savepoint_then_rollback(accounts: LocalCluster, proxy: ProxyProcess) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        bank.run_all(
            conn,
            [
                "BEGIN",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 0",
                "SAVEPOINT a",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 2",
                "ROLLBACK TO SAVEPOINT a",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 4",
                "ROLLBACK",
            ],
        )
    finally:
        conn.close()
    assert changed(cluster) == {}
    assert_unlocked(cluster, [0, 1, 2, 4])


def test_xa_statements_from_clients_are_refused(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    conn = bank.connect(proxy)
    try:
        for sql in (
            "XA START 'client-xa'",
            "XA BEGIN 'client-xa'",
            "XA END 'client-xa'",
            "XA PREPARE 'client-xa'",
            "XA COMMIT 'client-xa'",
            "XA ROLLBACK 'client-xa'",
            "XA RECOVER",
            "xa start 'client-xa'",
        ):
            exc = error_of(lambda sql=sql: bank.run(conn, sql))
            assert exc.args[0] == 1399, (sql, exc)
            assert "xaproxy" in exc.args[1]
        # refused inside a transaction too, and the transaction stays
        bank.run_all(conn, ["BEGIN", "UPDATE accounts SET balance = balance + 1 WHERE id = 1"])
        exc = error_of(lambda: bank.run(conn, "XA END 'x'"))
        assert exc.args[0] == 1399
        assert bank.in_transaction(conn)
        bank.run(conn, "COMMIT")
    finally:
        conn.close()
    assert changed(accounts) == {1: 1}
    assert bank.in_doubt(accounts) == {}


def test_autocommit_off_transactions(accounts: LocalCluster, proxy: ProxyProcess) -> None:
    cluster = accounts
    conn = bank.connect(proxy, autocommit=False)  # PyMySQL sends SET autocommit = 0
    try:
        assert bank.run(conn, "SELECT @@autocommit") == [(0,)]
        moves = [
            "UPDATE accounts SET balance = balance - 2 WHERE id = 0",
            "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
            "UPDATE accounts SET balance = balance + 1 WHERE id = 2",
        ]
        bank.run_all(conn, moves)
        assert bank.in_transaction(conn)
        conn.rollback()
        assert not bank.in_transaction(conn)
        assert changed(cluster) == {}
        bank.run_all(conn, moves)
        conn.commit()
        assert changed(cluster) == {0: -2, 1: 1, 2: 1}
        # a read starts a transaction as well; then SET autocommit=1 commits the open one
        bank.run(conn, "SELECT balance FROM accounts WHERE id = 4")
        assert bank.in_transaction(conn)
        bank.run_all(conn, moves)
        bank.run(conn, "SET autocommit = 1")
        assert not bank.in_transaction(conn)
    finally:
        conn.close()
    assert changed(cluster) == {0: -4, 1: 2, 2: 2}
    assert bank.in_doubt(cluster) == {}


def test_autocommit_statement_over_all_shards_is_atomic(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    conn = bank.connect(proxy)
    try:
        assert bank.run(conn, "UPDATE accounts SET balance = balance + 1") == []
        assert changed(cluster) == {i: 1 for i in INITIAL}
        # fails on s1 only (account 4): the other shards' parts must be undone
        exc = error_of(
            lambda: bank.run(conn, "UPDATE accounts SET balance = IF(id = 4, NULL, balance + 100)")
        )
        assert exc.args[0] == 1048, exc
        assert not bank.in_transaction(conn)
        assert changed(cluster) == {i: 1 for i in INITIAL}
        assert_unlocked(cluster, list(INITIAL))
        bank.run(conn, "DELETE FROM accounts WHERE balance > 0 AND id IN (0, 1, 2)")
    finally:
        conn.close()
    assert sorted(bank.balances(cluster)) == [3, 4, 5]
    assert bank.in_doubt(cluster) == {}


# --- xaproxy recover ------------------------------------------------------------------------


def xaproxy_recover(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = python_env()
    env.pop("XAPROXY_FAILPOINTS", None)
    return subprocess.run(
        [sys.executable, "-m", "xaproxy", "recover", "-c", str(config_path), *args],
        capture_output=True,
        text=True,
        cwd=SOURCE_ROOT,
        env=env,
        timeout=60,
    )


def prepare_directly(
    cluster: LocalCluster, shard: str, gtrid: str, bqual: str, format_id: int
) -> None:
    """A prepared XA branch made on a shard by someone else than the proxy."""
    cluster[shard].execute(
        f"XA START '{gtrid}','{bqual}',{format_id}; "
        f"INSERT INTO bank.transfers VALUES (100, {len(gtrid)}, 1, 1); "
        f"XA END '{gtrid}','{bqual}',{format_id}; XA PREPARE '{gtrid}','{bqual}',{format_id}"
    )


FOREIGN = [
    ("s1", "foreign-app-1", "b1", 1),  # another transaction manager's formatID
    ("s2", "not-ours", "b2", FORMAT_ID),  # our formatID, but not a gtrid we make
    ("s2", "xt:s0:1700000000000:1", "s2", 7),  # looks like ours, another formatID
]


def test_foreign_branches_are_reported_and_left_alone(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    cluster = accounts
    try:
        for shard, gtrid, bqual, format_id in FOREIGN:
            prepare_directly(cluster, shard, gtrid, bqual, format_id)
        before = bank.in_doubt(cluster)
        assert sum(len(rows) for rows in before.values()) == len(FOREIGN), before
        # the running proxy's background resolver (every 1s) leaves them alone
        time.sleep(2.5)
        assert bank.in_doubt(cluster) == before
        assert "not made by xaproxy" in proxy.log_text()

        done = xaproxy_recover(proxy.config_path)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        for shard, gtrid, _, _ in FOREIGN:
            assert f"{shard}\t{gtrid}\tforeign\tnot done" in lines, done.stdout
        assert bank.in_doubt(cluster) == before
        dry = xaproxy_recover(proxy.config_path, "--dry-run")
        assert dry.returncode == 0 and "foreign" in dry.stdout, dry.stdout + dry.stderr
        assert bank.in_doubt(cluster) == before
    finally:
        for shard, gtrid, bqual, format_id in FOREIGN:
            cluster[shard].execute(f"XA ROLLBACK '{gtrid}','{bqual}',{format_id}")
    assert bank.in_doubt(cluster) == {}


@pytest.mark.parametrize(
    ("point", "action"), [("after_prepare_all", "rollback"), ("after_decision", "commit")]
)
def test_recover_dry_run_changes_nothing_then_recover_resolves(
    point: str, action: str, accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    cluster = accounts
    dead = proxy_factory(
        bank.bank_config(cluster, proxy_id="dr"), name="dr", env={"XAPROXY_FAILPOINTS": point}
    )
    dead.start()
    conn = bank.connect(dead)
    try:
        bank.run_all(
            conn,
            [
                "BEGIN",
                "UPDATE accounts SET balance = balance - 2 WHERE id = 0",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
                "UPDATE accounts SET balance = balance + 1 WHERE id = 2",
            ],
        )
        exc = error_of(lambda: bank.run(conn, "COMMIT"))
        assert bank.is_connection_lost(exc), exc
    finally:
        conn.close()
    bank.wait_until(lambda: not dead.is_running(), 10, "the proxy to die")

    left = bank.in_doubt(cluster)
    assert set(left) == {"s1", "s2"}, left
    decisions_before = bank.decision_rows(cluster["s0"], "dr")
    balances_before = bank.balances(cluster)

    dry = xaproxy_recover(dead.config_path, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned = [line.split("\t") for line in dry.stdout.splitlines() if line.startswith("s")]
    assert sorted((p[0], p[2], p[3]) for p in planned) == [
        ("s1", action, "planned"),
        ("s2", action, "planned"),
    ], dry.stdout
    assert bank.in_doubt(cluster) == left
    assert bank.decision_rows(cluster["s0"], "dr") == decisions_before  # no abort marker either
    assert bank.balances(cluster) == balances_before

    done = xaproxy_recover(dead.config_path)
    assert done.returncode == 0, done.stdout + done.stderr
    resolved = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("s")]
    assert sorted((p[0], p[2], p[3]) for p in resolved) == [
        ("s1", action, "done"),
        ("s2", action, "done"),
    ], done.stdout
    assert bank.in_doubt(cluster) == {}
    if action == "commit":
        assert changed(cluster) == {0: -2, 1: 1, 2: 1}
    else:
        assert changed(cluster) == {}
        # the rollback is written down so that it sticks
        outcomes = {r[1] for r in bank.decision_rows(cluster["s0"], "dr")}
        assert "A" in outcomes


def test_recover_does_not_report_a_branch_still_attached_to_a_connection_as_done(
    accounts: LocalCluster, proxy: ProxyProcess, tmp_path: Path
) -> None:
    """MariaDB answers XA ROLLBACK of a branch another live connection holds with 1397."""
    cluster = accounts
    config = ProxyProcess(bank.bank_config(cluster, proxy_id="dr"), tmp_path, name="dr")
    config_path = config.write_config()
    xid = f"'dr:s0:{int(time.time() * 1000)}:1','s1',{FORMAT_ID}"
    holder = cluster["s1"].connect()
    try:
        bank.run_all(
            holder,
            [
                f"XA START {xid}",
                "UPDATE bank.accounts SET balance = balance + 1 WHERE id = 1",
                f"XA END {xid}",
                f"XA PREPARE {xid}",
            ],
        )
        done = xaproxy_recover(config_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "s1\tdr:s0:" in done.stdout and "\trollback\tnot done" in done.stdout, done.stdout
        assert set(bank.in_doubt(cluster)) == {"s1"}
    finally:
        holder.close()

    def resolved() -> bool:
        again = xaproxy_recover(config_path)
        return again.returncode == 0 and "\trollback\tdone" in again.stdout

    bank.wait_until(resolved, 20, "`xaproxy recover` to roll the branch back", interval=0.5)
    assert bank.in_doubt(cluster) == {}
    assert changed(cluster) == {}
