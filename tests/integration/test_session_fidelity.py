"""Session state and transaction semantics as on one MariaDB, compared with MariaDB itself.

Every script runs twice: directly on shard s0 in database `fid_direct` (all rows in one
table) and through the proxy in `bank` (accounts sharded `mod` on id over s0, s1, s2;
`currencies` broadcast). The transcripts (rows, affected rows, error codes, the
IN_TRANS flag) must be equal, and so must the rows left behind, read from the shards
themselves. Covered: savepoints however a transaction starts; a SET of autocommit with
other variables (a JDBC driver's connect); SET STATEMENT ... FOR one statement; user
variables that neither leak to another client nor get lost; a failed multi-shard
statement undone alone inside a transaction (XA and AT mode), the whole transaction
only after a deadlock; an autocommit SELECT ... FOR UPDATE over several shards closed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.constants import SERVER_STATUS

from tests.support import bank
from tests.support.proxied import assert_same_transcripts
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

DIRECT = "fid_direct"
BALANCES = {i: 1000 for i in range(6)}
CURRENCIES_DDL = "CREATE TABLE {db}.currencies (code CHAR(3) PRIMARY KEY, name VARCHAR(20))"


def _config(cluster: LocalCluster) -> dict[str, Any]:
    # pool_size 4: a session pinned for its user variables keeps a connection per shard
    config = bank.bank_config(
        cluster,
        proxy_id="fid",
        transactions={"timeout_s": 120, "abandon_age_s": 300},
        pool_size=4,
    )
    config["schemas"][0]["tables"].append({"name": "currencies", "broadcast": True})
    return config


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    bank.ensure_running(cluster)
    bank.reset_bank(cluster, BALANCES)
    process = ProxyProcess(_config(cluster), tmp_path_factory.mktemp("fidelity"), name="fid")
    process.start()
    yield process
    process.stop()


def _forget_at_state(cluster: LocalCluster) -> None:
    """AT bookkeeping other modules' proxies left on the bank tables (recreated here, so
    it means nothing) would hold global locks on our rows or be compensated into them."""
    for server in cluster.servers:
        try:
            server.execute(
                "DELETE FROM xaproxy.global_locks WHERE lock_key LIKE '`bank`.%'; "
                "DELETE FROM xaproxy.undo_log WHERE gtrid NOT LIKE 'fid:%'"
            )
        except pymysql.err.ProgrammingError:
            pass  # no AT transaction ran on this cluster yet


def _reset(cluster: LocalCluster) -> None:
    bank.reset_bank(cluster, BALANCES)
    _forget_at_state(cluster)
    rows = ", ".join(f"({i}, {b})" for i, b in BALANCES.items())
    for server in cluster.servers:
        server.execute(
            f"DROP TABLE IF EXISTS bank.currencies; {CURRENCIES_DDL.format(db='bank')}; "
            "INSERT INTO bank.currencies VALUES ('EUR', 'euro')"
        )
    cluster["s0"].execute(
        f"DROP DATABASE IF EXISTS {DIRECT}; CREATE DATABASE {DIRECT}; "
        f"{bank.ACCOUNTS_DDL.replace('bank.', DIRECT + '.')}; "
        f"INSERT INTO {DIRECT}.accounts VALUES {rows}; {CURRENCIES_DDL.format(db=DIRECT)}; "
        f"INSERT INTO {DIRECT}.currencies VALUES ('EUR', 'euro'); "
        f"DROP PROCEDURE IF EXISTS bank.fid_out; "
        f"CREATE PROCEDURE bank.fid_out(OUT x INT) SET x = 42; "
        f"CREATE PROCEDURE {DIRECT}.fid_out(OUT x INT) SET x = 42"
    )


@pytest.fixture
def shards(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[LocalCluster]:
    _reset(cluster)
    yield cluster
    assert bank.in_doubt(cluster) == {}
    assert proxy.is_running(), proxy.log_tail()


def direct(cluster: LocalCluster) -> pymysql.Connection:
    return cluster["s0"].connect(DIRECT)


def through(proxy: ProxyProcess) -> pymysql.Connection:
    return bank.connect(proxy)


def transcript(conn: pymysql.Connection, script: list[str]) -> list[tuple]:
    """What a client sees of each statement: rows or affected count, error code, IN_TRANS."""
    seen: list[tuple] = []
    for sql in script:
        try:
            with conn.cursor() as cur:
                affected = cur.execute(sql)
                result = list(cur.fetchall()) if cur.description else affected
            flag = bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)
            seen.append((sql, "ok", result, flag))
        except pymysql.MySQLError as exc:
            seen.append((sql, "error", exc.args[0]))
    return seen


def both(cluster: LocalCluster, proxy: ProxyProcess, script: list[str]) -> list[tuple]:
    """Runs `script` directly and through the proxy; asserts the transcripts are equal."""
    return assert_same_transcripts(
        lambda: direct(cluster), lambda: through(proxy), transcript, script
    )


def accounts_left(cluster: LocalCluster) -> tuple[dict[int, int], dict[int, int]]:
    """(the direct table, the sharded table read from its shards) after a script."""
    mine = {int(i): int(b) for i, b in cluster["s0"].execute(f"SELECT * FROM {DIRECT}.accounts")}
    theirs: dict[int, int] = {}
    for server in cluster.servers:
        for i, b in server.execute("SELECT id, balance FROM bank.accounts"):
            assert bank.shard_of(int(i)) == server.name
            theirs[int(i)] = int(b)
    return mine, theirs


def assert_same_rows_left(cluster: LocalCluster) -> None:
    mine, theirs = accounts_left(cluster)
    assert theirs == mine


def open_transactions(cluster: LocalCluster) -> dict[str, int]:
    """Shards with transactions open (the tests run alone on the cluster)."""
    found = {
        s.name: int(s.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")[0][0])
        for s in cluster.servers
    }
    return {name: count for name, count in found.items() if count}


# --- 1. savepoints ------------------------------------------------------------------------

WRITE_TWO_SHARDS = [
    "UPDATE accounts SET balance = balance - 10 WHERE id = 0",
    "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
]
SAVEPOINT_SCRIPT = [
    "SAVEPOINT a",
    "SELECT @@in_transaction",
    *WRITE_TWO_SHARDS,
    "SAVEPOINT `b`",
    "UPDATE accounts SET balance = balance + 7 WHERE id = 2",
    "ROLLBACK TO `a`",
    "SELECT id, balance FROM accounts WHERE id IN (0, 1, 2) ORDER BY id",
    "ROLLBACK TO b",  # gone with the rollback to a
    "UPDATE accounts SET balance = balance + 3 WHERE id = 4",
    "SAVEPOINT B",
    "UPDATE accounts SET balance = balance + 100 WHERE id = 5",
    "ROLLBACK WORK TO SAVEPOINT `b`",
    "RELEASE SAVEPOINT A",
    "ROLLBACK TO a",
    "RELEASE SAVEPOINT nope",
    "COMMIT",
    "SELECT @@in_transaction",
    "ROLLBACK TO a",
]


@pytest.mark.parametrize(
    "start",
    [
        ["SET autocommit=0"],
        ["SET autocommit=0", "UPDATE accounts SET balance = balance + 1 WHERE id = 3"],
        ["BEGIN"],
        ["START TRANSACTION WITH CONSISTENT SNAPSHOT"],
        ["START TRANSACTION READ WRITE"],
    ],
    ids=["autocommit-off", "implicit", "begin", "consistent-snapshot", "read-write"],
)
def test_savepoints_work_however_the_transaction_started(
    shards: LocalCluster, proxy: ProxyProcess, start: list[str]
) -> None:
    both(shards, proxy, [*start, *SAVEPOINT_SCRIPT])
    assert_same_rows_left(shards)
    mine, _ = accounts_left(shards)
    assert mine[4] == 1003 and mine[5] == 1000 and mine[0] == 1000, mine


@pytest.mark.parametrize(
    "start", [["BEGIN"], ["SET autocommit=0"]], ids=["begin", "autocommit-off"]
)
def test_savepoints_in_at_mode_work_as_in_xa_mode(
    shards: LocalCluster, proxy: ProxyProcess, start: list[str]
) -> None:
    script = [*start, *SAVEPOINT_SCRIPT]
    conns = [direct(shards), through(proxy)]
    try:
        bank.run(conns[1], "SET xaproxy_transaction_mode = 'at'")
        mine, theirs = (transcript(conn, script) for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    assert theirs == mine
    assert_same_rows_left(shards)


def test_savepoints_in_a_read_only_transaction_and_outside_one(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(
        shards,
        proxy,
        [
            "SAVEPOINT x",  # autocommit on: accepted and forgotten
            "ROLLBACK TO x",
            "RELEASE SAVEPOINT x",
            "START TRANSACTION READ ONLY",
            "SAVEPOINT a",
            "SELECT COUNT(*) FROM accounts",
            "UPDATE accounts SET balance = 0 WHERE id = 1",
            "ROLLBACK TO a",
            "RELEASE SAVEPOINT a",
            "ROLLBACK TO a",
            "COMMIT",
        ],
    )
    assert_same_rows_left(shards)


def test_savepoints_set_with_autocommit_off_end_with_commit_rollback_and_autocommit_on(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(
        shards,
        proxy,
        [
            "SET autocommit=0",
            "SAVEPOINT a",
            "COMMIT",
            "ROLLBACK TO a",
            "SAVEPOINT a",
            "ROLLBACK",
            "ROLLBACK TO a",
            "SAVEPOINT a",
            "BEGIN",
            "ROLLBACK TO a",
            "ROLLBACK",
            "SAVEPOINT a",
            "SET autocommit=1",
            "ROLLBACK TO a",
        ],
    )


# --- 2. SET autocommit together with other variables -------------------------------------


def test_a_set_of_autocommit_with_other_variables_sets_them_all(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(
        shards,
        proxy,
        [
            "SET autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES'), "
            "session_track_schema=1",
            "SELECT @@autocommit, @@sql_mode, @@session_track_schema",
            "SET SESSION autocommit = 0, max_statement_time = 5",
            "SELECT @@autocommit",
            "SELECT @@in_transaction",
            *WRITE_TWO_SHARDS,
            "SELECT @@max_statement_time",
            "ROLLBACK",
            "SET autocommit = 1, no_such_variable = 1",  # refused whole: autocommit stays off
            "SET autocommit = 'maybe', max_statement_time = 1",
            "SELECT @@autocommit",
            "UPDATE accounts SET balance = balance + 1 WHERE id = 2",
            "SELECT @@max_statement_time",
            "SET max_statement_time = 0, autocommit = 1",  # commits the open transaction
            "SELECT @@autocommit",
            "SELECT @@in_transaction",
            "SELECT @@max_statement_time",
        ],
    )
    assert_same_rows_left(shards)
    assert accounts_left(shards)[1][2] == 1001


# --- 3. SET STATEMENT ... FOR --------------------------------------------------------------


def test_set_statement_applies_to_its_statement_once_and_is_never_replayed(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    script = [
        "SET STATEMENT max_statement_time=10 FOR "
        "UPDATE accounts SET balance = balance + 1 WHERE id IN (0, 1, 2)",
        "SELECT @@max_statement_time",
        "SET STATEMENT sql_mode='' FOR SELECT @@sql_mode",
        "SET STATEMENT max_statement_time=10 FOR SELECT id, balance FROM accounts ORDER BY id",
        "SET STATEMENT max_statement_time=10 FOR "
        "INSERT INTO accounts (id, balance) VALUES (6, 1), (7, 1)",
        "BEGIN",
        "SET STATEMENT max_statement_time=10 FOR "
        "UPDATE accounts SET balance = balance + 1 WHERE id IN (3, 4, 5)",
        "COMMIT",
        "SELECT @@max_statement_time, @@sql_mode = ''",
    ]
    both(shards, proxy, script)
    # the session goes on over many pooled connections: nothing is re-run
    conns = [through(proxy) for _ in range(3)]
    try:
        for _ in range(5):
            for conn in conns:
                bank.run(conn, "SELECT COUNT(*) FROM accounts")
                bank.run(conn, "SET sql_mode = 'STRICT_ALL_TABLES'")
                bank.run(conn, "UPDATE accounts SET balance = balance WHERE id IN (0, 1, 2)")
    finally:
        for conn in conns:
            conn.close()
    assert_same_rows_left(shards)
    assert accounts_left(shards)[1] == {
        0: 1001,
        1: 1001,
        2: 1001,
        3: 1001,
        4: 1001,
        5: 1001,
        6: 1,
        7: 1,
    }


# --- 4. user variables ---------------------------------------------------------------------

VARIABLES = "SELECT @secret, @v, @w, @out"


def test_user_variables_are_kept_for_their_session_and_never_seen_by_another(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    owner_script = [
        "SET @secret = 's3cr3t'",
        "SELECT @v := balance FROM accounts WHERE id = 1",
        "SELECT balance + 1 INTO @w FROM accounts WHERE id = 2",
        "CALL fid_out(@out)",
        "SELECT @secret",
        "SELECT @v",
        "SELECT @w",
        "SELECT @out",
        "SELECT @out + 1, @secret",
        "SET @v = @v + 1",
        "SELECT @v",
    ]
    # MariaDB directly is the reference for what the owner sees
    conn = direct(shards)
    try:
        expected = transcript(conn, owner_script)
    finally:
        conn.close()
    owner = through(proxy)
    others = [through(proxy) for _ in range(3)]
    try:
        got = transcript(owner, owner_script)
        assert got == expected
        for other in others:
            for sql in (
                VARIABLES,
                "SELECT @secret FROM accounts WHERE id = 1",
                "SELECT @w FROM accounts WHERE id = 2",
                "SELECT @v, balance FROM accounts WHERE id = 0",
            ):
                for row in bank.run(other, sql):
                    assert row[0] is None and all(v is None for v in row[:-1]), (sql, row)
        sessions = {int(r[0]): r for r in bank.run(owner, "XAPROXY SHOW SESSIONS")}
        ((owner_id,),) = bank.run(owner, "SELECT CONNECTION_ID()")
        row = sessions[int(owner_id)]
        assert row[6] == "s0,s1,s2" and row[7] == "user variables", row
        # still there after other clients ran
        assert bank.run(owner, "SELECT @secret") == [("s3cr3t",)]
        # statements that would read them on other shards are refused, not answered wrong
        for sql in (
            "SELECT id FROM accounts WHERE balance = @v",  # every shard
            "SELECT @v, @w",  # they live on s1 and s2
            "SELECT @v FROM accounts WHERE id = 2",  # @v lives on s1
        ):
            with pytest.raises(pymysql.MySQLError) as refused:
                bank.run(owner, sql)
            assert refused.value.args[0] == 1235, refused.value.args
    finally:
        owner.close()
    # the owner's pinned connections were reset before going back to the pool
    for _ in range(3):
        for other in others:
            assert bank.run(other, VARIABLES) == [(None, None, None, None)]
            assert bank.run(other, "SELECT @secret FROM accounts WHERE id = 1") == [(None,)]
    for other in others:
        other.close()


def test_temporary_tables_and_named_locks_pin_the_session(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    conn = through(proxy)
    try:
        bank.run(conn, "CREATE TEMPORARY TABLE scratch (a INT)")
        bank.run(conn, "INSERT INTO scratch VALUES (1)")
        assert bank.run(conn, "SELECT GET_LOCK('fid-lock', 5)") == [(1,)]
        for _ in range(5):  # other sessions borrow pooled connections meanwhile
            other = through(proxy)
            try:
                assert bank.run(other, "SELECT IS_USED_LOCK('fid-lock') IS NOT NULL") == [(1,)]
                with pytest.raises(pymysql.MySQLError):
                    bank.run(other, "SELECT * FROM scratch")
            finally:
                other.close()
            assert bank.run(conn, "SELECT a FROM scratch") == [(1,)]
        ((own,),) = bank.run(conn, "SELECT CONNECTION_ID()")
        row = {int(r[0]): r for r in bank.run(conn, "XAPROXY SHOW SESSIONS")}[int(own)]
        assert "temporary table" in row[7] and "GET_LOCK" in row[7], row
    finally:
        conn.close()
    other = through(proxy)
    try:
        bank.wait_until(
            lambda: bank.run(other, "SELECT IS_FREE_LOCK('fid-lock')") == [(1,)],
            30,
            "the closed session's named lock to be released",
        )
    finally:
        other.close()


# --- 5. statement atomicity ----------------------------------------------------------------

FAILING_STATEMENTS = [
    # split INSERT: id 3 exists (s0), 10 (s1) and 11 (s2) would be new
    "INSERT INTO accounts (id, balance) VALUES (10, 1), (11, 1), (3, 5)",
    # one UPDATE on every shard; id 5 (s2) goes negative and fails
    "UPDATE accounts SET balance = balance - 1000 - (id = 5) * 2000 WHERE id IN (1, 4, 5)",
]


@pytest.mark.parametrize("mode", ["xa", "at"])
def test_a_failed_multi_shard_statement_is_undone_alone_and_the_transaction_goes_on(
    shards: LocalCluster, proxy: ProxyProcess, mode: str
) -> None:
    for server in shards.servers:
        server.execute("ALTER TABLE bank.accounts ADD CHECK (balance >= 0)")
    shards["s0"].execute(f"ALTER TABLE {DIRECT}.accounts ADD CHECK (balance >= 0)")
    script = [
        "BEGIN",
        *WRITE_TWO_SHARDS,
        *FAILING_STATEMENTS,
        "SELECT @@in_transaction",
        "SELECT id, balance FROM accounts ORDER BY id",
        "UPDATE accounts SET balance = balance + 1 WHERE id IN (2, 4)",
        "COMMIT",
        "SET autocommit = 0",
        *FAILING_STATEMENTS,
        "UPDATE accounts SET balance = balance + 1 WHERE id = 5",
        "COMMIT",
        "SET autocommit = 1",
        *FAILING_STATEMENTS,  # autocommit: each one alone, undone on every shard
        "SELECT @@in_transaction",
    ]
    conns = [direct(shards), through(proxy)]
    try:
        bank.run(conns[1], f"SET xaproxy_transaction_mode = '{mode}'")
        mine, theirs = (transcript(conn, script) for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    assert theirs == mine
    assert_same_rows_left(shards)
    assert accounts_left(shards)[1] == {0: 990, 1: 1010, 2: 1001, 3: 1000, 4: 1001, 5: 1001}


def test_a_failed_broadcast_insert_is_undone_on_every_copy(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    shards["s2"].execute("INSERT INTO bank.currencies VALUES ('USD', 'dollar')")
    conn = through(proxy)
    try:
        bank.run(conn, "BEGIN")
        bank.run(conn, "UPDATE accounts SET balance = 1 WHERE id = 1")
        with pytest.raises(pymysql.MySQLError) as failed:
            bank.run(conn, "INSERT INTO currencies VALUES ('USD', 'dollar')")
        assert failed.value.args[0] == 1062
        assert bank.in_transaction(conn)
        bank.run(conn, "INSERT INTO currencies VALUES ('CHF', 'franc')")
        bank.run(conn, "COMMIT")
    finally:
        conn.close()
    for server in shards.servers:
        codes = sorted(c for (c,) in server.execute("SELECT code FROM bank.currencies"))
        assert codes == (["CHF", "EUR", "USD"] if server.name == "s2" else ["CHF", "EUR"])
    assert accounts_left(shards)[1][1] == 1


def test_a_deadlock_ends_the_whole_transaction_and_the_client_is_told(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    victim, other = through(proxy), through(proxy)
    try:
        bank.run(other, "BEGIN")
        bank.run(other, "UPDATE accounts SET balance = balance + 1 WHERE id = 0")
        # the heavier transaction: InnoDB chooses the other one as the deadlock victim
        heavy = ", ".join(f"({i}, 1)" for i in range(6, 60, 3))
        bank.run(other, f"INSERT INTO accounts (id, balance) VALUES {heavy}")
        bank.run(victim, "BEGIN")
        bank.run(victim, "UPDATE accounts SET balance = 555 WHERE id = 1")  # s1
        bank.run(victim, "UPDATE accounts SET balance = balance + 1 WHERE id = 3")  # s0
        outcome: dict[str, Any] = {}

        def blocked() -> None:
            try:
                bank.run(other, "UPDATE accounts SET balance = balance + 1 WHERE id = 3")
                outcome["ok"] = True
            except pymysql.MySQLError as exc:
                outcome["error"] = exc.args

        thread = threading.Thread(target=blocked)
        thread.start()
        bank.wait_until(
            lambda: shards["s0"].execute(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            )[0][0],
            30,
            "the other transaction to wait for the row lock of id 3",
        )
        with pytest.raises(pymysql.MySQLError) as failed:
            bank.run(victim, "UPDATE accounts SET balance = balance + 1 WHERE id = 0")
        thread.join(60)
        assert outcome == {"ok": True}
        assert failed.value.args[0] == 1213
        assert "whole transaction was rolled back" in failed.value.args[1]
        assert not bank.in_transaction(victim)
        bank.run(victim, "UPDATE accounts SET balance = 7 WHERE id = 2")  # autocommits
        bank.run(other, "COMMIT")
    finally:
        victim.close()
        other.close()
    left = accounts_left(shards)[1]
    assert left[1] == 1000 and left[2] == 7 and left[0] == 1001 and left[3] == 1001, left
    assert all(left[i] == 1 for i in range(6, 60, 3)), left


# --- 6. autocommit SELECT ... FOR UPDATE over several shards -----------------------------


@pytest.mark.parametrize("lock", ["FOR UPDATE", "LOCK IN SHARE MODE"])
def test_an_autocommit_locking_read_over_shards_is_closed_before_the_reply(
    shards: LocalCluster, proxy: ProxyProcess, lock: str
) -> None:
    script = [
        f"SELECT id, balance FROM accounts WHERE id IN (0, 1, 2) ORDER BY id {lock}",
        "SELECT @@in_transaction",
        "UPDATE accounts SET balance = 5 WHERE id = 1",
    ]
    conn = direct(shards)
    try:
        expected = transcript(conn, script)
    finally:
        conn.close()
    conn = through(proxy)
    try:
        assert transcript(conn, script) == expected
        assert not bank.in_transaction(conn)
        # while the session is still open, no shard has a transaction of it
        bank.wait_until(lambda: open_transactions(shards) == {}, 20, "no open transaction")
        assert shards["s1"].execute("SELECT balance FROM bank.accounts WHERE id = 1") == [(5,)]
    finally:
        conn.close()
    assert_same_rows_left(shards)
