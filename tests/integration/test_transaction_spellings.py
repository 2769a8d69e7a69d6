"""Transaction control in every spelling clients send, and stored-program bodies kept whole.

knex sends `BEGIN;`, Sequelize `START TRANSACTION;` ... `COMMIT;`; ORMs and tracing
add comments. Each spelling must be transaction control through the proxy (a
rolled-back cross-shard transfer leaves both shards unchanged, checked on the
shards directly), and a multi-statement `CREATE PROCEDURE ... BEGIN ...; ...; END`
must reach the shard whole. Accounts 0..5 of schema `bank` live on s{id % 3}.
"""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests.support import bank
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

INITIAL = {i: 1000 for i in range(6)}


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    bank.ensure_running(cluster)
    bank.reset_bank(cluster, INITIAL)
    config = bank.bank_config(
        cluster, proxy_id="sp", transactions={"timeout_s": 60, "abandon_age_s": 300}
    )
    process = ProxyProcess(config, tmp_path_factory.mktemp("spellings"), name="sp")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def accounts(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[LocalCluster]:
    bank.reset_bank(cluster, INITIAL)
    yield cluster
    assert bank.in_doubt(cluster) == {}
    assert proxy.is_running(), proxy.log_tail()


def changed(cluster: LocalCluster) -> dict[int, int]:
    now = bank.balances(cluster)
    return {i: now[i] - INITIAL[i] for i in now if now[i] != INITIAL[i]}


def transfer(conn: pymysql.Connection, begin: str, end: str, amount: int) -> None:
    """Moves `amount` from account 0 (s0) to account 1 (s1) inside begin ... end, raw text."""
    bank.run(conn, begin)
    assert bank.in_transaction(conn), f"{begin!r} did not start a transaction"
    bank.run(conn, f"UPDATE accounts SET balance = balance - {amount} WHERE id = 0")
    bank.run(conn, f"UPDATE accounts SET balance = balance + {amount} WHERE id = 1")
    bank.run(conn, end)
    assert not bank.in_transaction(conn), f"{end!r} did not end the transaction"


SPELLINGS = [
    ("BEGIN;", "ROLLBACK;", "COMMIT;"),  # knex
    ("START TRANSACTION;", "ROLLBACK;", "COMMIT;"),  # Sequelize
    ("/* tx */ BEGIN", "/* tx */ ROLLBACK", "/* tx */ COMMIT"),
    ("BEGIN -- c", "ROLLBACK -- c", "COMMIT -- c"),
    ("begin work # c", "rollback work", "commit work"),
    ("  \n start transaction read write ;", "ROLLBACK WORK;", "COMMIT WORK;"),
]


@pytest.mark.parametrize(("begin", "rollback", "commit"), SPELLINGS)
def test_spelled_transaction_control_rolls_back_and_commits_across_shards(
    accounts: LocalCluster, proxy: ProxyProcess, begin: str, rollback: str, commit: str
) -> None:
    conn = bank.connect(proxy)
    try:
        transfer(conn, begin, rollback, 5)
        assert changed(accounts) == {}, "the rolled-back transfer reached a shard"
        transfer(conn, begin, commit, 7)
    finally:
        conn.close()
    assert changed(accounts) == {0: -7, 1: 7}


def test_spelled_transaction_control_works_inside_a_multi_statement(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    conn = bank.connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "BEGIN; UPDATE accounts SET balance = balance - 3 WHERE id = 0; "
                "UPDATE accounts SET balance = balance + 3 WHERE id = 1; ROLLBACK;"
            )
            while cur.nextset():
                pass
        assert not bank.in_transaction(conn)
        assert changed(accounts) == {}
        transfer(conn, "START TRANSACTION;", "COMMIT;", 4)
    finally:
        conn.close()
    assert changed(accounts) == {0: -4, 1: 4}


def test_a_procedure_created_in_a_multi_statement_keeps_its_whole_body(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    s0 = cluster["s0"]  # the bank's default shard: unsharded tables live there
    s0.execute("DROP TABLE IF EXISTS bank.notes; CREATE TABLE bank.notes (n INT PRIMARY KEY)")
    s0.execute("DROP PROCEDURE IF EXISTS bank.add_notes")
    conn = bank.connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE PROCEDURE add_notes() BEGIN INSERT INTO notes VALUES (1); "
                "INSERT INTO notes VALUES (2); END; SELECT 'created'"
            )
            assert cur.description is None  # the CREATE answered OK
            assert cur.nextset()
            assert cur.fetchall() == (("created",),)
            assert not cur.nextset()
        bank.run(conn, "CALL add_notes()")
    finally:
        conn.close()
    assert s0.execute("SELECT n FROM bank.notes ORDER BY n") == [(1,), (2,)]
    s0.execute("DROP PROCEDURE bank.add_notes; DROP TABLE bank.notes")


def test_two_statements_without_multi_statements_are_refused(
    accounts: LocalCluster, proxy: ProxyProcess
) -> None:
    conn = bank.connect(proxy)
    try:
        with pytest.raises(pymysql.err.ProgrammingError) as info:
            bank.run(conn, "START TRANSACTION; UPDATE accounts SET balance = 0 WHERE id = 0")
        assert info.value.args[0] == 1064
        assert not bank.in_transaction(conn)
    finally:
        conn.close()
    assert changed(accounts) == {}


def test_executable_comments_run_as_the_code_mariadb_runs(proxy: ProxyProcess) -> None:
    conn = bank.connect(proxy, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        assert bank.run(conn, "SELECT 1 /*!, 2 */ /*!99999 , 3 */ /*M!100100 , 4 */") == [(1, 2, 4)]
        bank.run(conn, "/*!40101 START TRANSACTION */")
        assert bank.in_transaction(conn)
        bank.run(conn, "/*! ROLLBACK */")
        assert not bank.in_transaction(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT 5; -- a trailing comment is a statement MariaDB answers OK")
            assert cur.fetchall() == ((5,),)
            assert cur.nextset()
            assert cur.description is None
            assert not cur.nextset()
    finally:
        conn.close()
