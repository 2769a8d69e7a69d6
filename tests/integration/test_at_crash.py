"""Crashes at every step of the AT commit protocol: the outcome is all or nothing.

A transfer touches the three shards (BEGIN; UPDATE account 0 on s0; UPDATE
account 1 on s1; UPDATE account 2 on s2; INSERT its transfers row on s0;
COMMIT). In AT mode every branch commits locally with its undo row and global
locks; the decision row (on s0, the first shard written) decides. Then

- the proxy is SIGKILLed before COMMIT and at each failpoint, and restarted
  without failpoints: startup recovery compensates (no decision) or releases;
- a shard's mariadbd is SIGKILLed at each point (s1, and the decision shard s0)
  while the proxy goes on; the shard is restarted and the background resolver
  finishes the transaction;
- one of two proxies dies; the other finishes its transaction after the abandon age;
- a bank soak: concurrent transfers over the shards while the proxy is killed at
  random (XAPROXY_SOAK_SECONDS, 20 s by default).

Afterwards no undo row is left to act on (status 0), no global lock is held, the
transfer is applied everywhere or nowhere, and the money is all there.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest

from tests.support import bank
from tests.support.atmode import clear_at_state, lock_rows, undo_rows
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

Factory = Callable[..., ProxyProcess]

POINTS = (
    "at_after_local_commit_some",
    "at_after_local_commit_all",
    "at_after_decision",
    "at_after_release_some",
)
# the points after the commit decision: the transfer is applied
COMMITTED = ("at_after_decision", "at_after_release_some")
INITIAL = {0: 1000, 1: 1000, 2: 1000}
APPLIED = {0: 980, 1: 1010, 2: 1010}
TID = 1
TRANSFER = (
    "UPDATE accounts SET balance = balance - 20 WHERE id = 0",
    "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
    "UPDATE accounts SET balance = balance + 10 WHERE id = 2",
    f"INSERT INTO transfers (src, tid, dst, amount) VALUES (0, {TID}, 1, 20)",
)
BACK = (
    "UPDATE accounts SET balance = balance + 20 WHERE id = 0",
    "UPDATE accounts SET balance = balance - 10 WHERE id = 1",
    "UPDATE accounts SET balance = balance - 10 WHERE id = 2",
    f"DELETE FROM transfers WHERE src = 0 AND tid = {TID}",
)
RESOLVE_WITHIN_S = 30


def at_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "mode": "at",
        "lock_retry_count": 50,
        "lock_retry_interval_ms": 20,
        "recover_interval_s": 600,  # only startup recovery, unless a test asks for more
    }
    settings.update(overrides)
    return settings


@dataclass
class Outcome:
    kind: str  # "ok" | "error" (a MySQL error from the proxy) | "lost" (connection died)
    error: BaseException | None = None

    @property
    def code(self) -> int | None:
        return self.error.args[0] if self.error is not None and self.error.args else None


def transfer(
    proxy: ProxyProcess,
    statements: tuple[str, ...] = TRANSFER,
    before_commit: Callable[[], None] | None = None,
) -> Outcome:
    """BEGIN, the statements, COMMIT; only COMMIT may fail."""
    conn = bank.connect(proxy)
    try:
        bank.run(conn, "BEGIN")
        for sql in statements:
            bank.run(conn, sql)
        if before_commit is not None:
            before_commit()
        try:
            bank.run(conn, "COMMIT")
        except pymysql.MySQLError as exc:
            if bank.is_connection_lost(exc):
                return Outcome("lost", exc)
            return Outcome("error", exc)
        return Outcome("ok")
    finally:
        conn.close()


def open_work(cluster: LocalCluster, proxy_id: str) -> tuple[list, list]:
    """Undo rows with status 0 or 2 and global locks of `proxy_id`'s transactions."""
    undo = [r for r in undo_rows(cluster, proxy_id) if r[3] != 1]
    return undo, lock_rows(cluster, proxy_id)


def assert_finished(cluster: LocalCluster, proxy_id: str) -> None:
    undo, locks = open_work(cluster, proxy_id)
    assert not [r for r in undo if r[3] == 0], f"undo rows left with status 0: {undo}"
    assert not undo, f"undo rows left: {undo}"
    assert not locks, f"global locks left: {locks}"


def wait_finished(cluster: LocalCluster, proxy_id: str, proxy: ProxyProcess) -> None:
    try:
        bank.wait_until(
            lambda: open_work(cluster, proxy_id) == ([], []),
            RESOLVE_WITHIN_S,
            f"the AT work of {proxy_id} to be finished",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nproxy log tail:\n{proxy.log_tail(60)}") from None


def assert_all_or_nothing(cluster: LocalCluster, applied: bool, context: str) -> None:
    now = bank.balances(cluster)
    assert sum(now.values()) == sum(INITIAL.values()), f"{context}: money changed: {now}"
    moved = bank.transfers(cluster)
    expected = (APPLIED, {TID: (0, 1, 20)}) if applied else (INITIAL, {})
    assert (now, moved) == expected, (
        f"{context}: expected the transfer {'applied' if applied else 'not applied'} "
        f"everywhere, balances are {now}, transfers {moved}"
    )


def applied_now(cluster: LocalCluster) -> bool:
    """Which of the two allowed states the shards are in (fails on any other)."""
    now = bank.balances(cluster)
    assert now in (INITIAL, APPLIED), f"half a transfer: {now}"
    return now == APPLIED


PROXY_IDS = ("atpk", "atsk", "atab1", "atab2", "atsoak")


@pytest.fixture
def accounts(cluster: LocalCluster) -> Iterator[LocalCluster]:
    bank.ensure_running(cluster)
    clear_at_state(cluster, PROXY_IDS)
    bank.reset_bank(cluster, INITIAL)
    yield cluster
    bank.ensure_running(cluster)


# --- the proxy dies -------------------------------------------------------------------------


@pytest.mark.parametrize("point", ("before_commit", *POINTS))
def test_proxy_killed_at(point: str, accounts: LocalCluster, proxy_factory: Factory) -> None:
    cluster = accounts
    env = {} if point == "before_commit" else {"XAPROXY_FAILPOINTS": point}
    proxy = proxy_factory(
        bank.bank_config(cluster, proxy_id="atpk", transactions=at_settings()), env=env
    )
    proxy.start()
    if point == "before_commit":
        outcome = transfer(proxy, before_commit=proxy.kill)
    else:
        outcome = transfer(proxy)
    assert outcome.kind == "lost", f"the proxy should have died at {point}: {outcome}"
    bank.wait_until(lambda: not proxy.is_running(), 10, "the proxy to exit")
    assert proxy.returncode == -9, proxy.log_tail()
    undo, locks = open_work(cluster, "atpk")
    if point != "before_commit":
        assert f"failpoint {point}" in proxy.log_text()
        if point != "at_after_release_some":
            assert undo and locks, (
                "the failpoint came after a local commit: undo rows and locks exist"
            )
    # s0, the decider, commits its rows with the decision row and keeps no undo row
    if point in ("at_after_local_commit_all", "at_after_decision"):
        assert {r[0] for r in undo} == {"s1", "s2"}, undo
    if point == "at_after_release_some":
        # one release is done; the other ran at the same time and may be done as well
        assert len(undo) <= 1 and {r[0] for r in undo} <= {"s1", "s2"}, undo
    if point in COMMITTED:
        assert applied_now(cluster)  # committed, the rest is only releasing

    proxy.extra_env.pop("XAPROXY_FAILPOINTS", None)
    proxy.start()  # returns once listening: startup recovery has run
    assert_finished(cluster, "atpk")
    assert_all_or_nothing(cluster, point in COMMITTED, f"proxy killed at {point}")

    # No global lock was left behind: the same rows move again through the restarted proxy.
    again = transfer(proxy, BACK if point in COMMITTED else TRANSFER)
    assert again.kind == "ok", again
    assert_all_or_nothing(cluster, point not in COMMITTED, "transfer after recovery")
    wait_finished(cluster, "atpk", proxy)


# --- a shard dies while the proxy goes on ----------------------------------------------------


@pytest.mark.parametrize("shard", ["s1", "s0"])
@pytest.mark.parametrize("point", ("before_commit", *POINTS))
def test_shard_killed_at(
    point: str, shard: str, accounts: LocalCluster, proxy_factory: Factory
) -> None:
    cluster = accounts
    server = cluster[shard]
    env = (
        {}
        if point == "before_commit"
        else {"XAPROXY_FAILPOINTS": f"{point}=kill_pid:{server.pid_file}"}
    )
    proxy = proxy_factory(
        bank.bank_config(cluster, proxy_id="atsk", transactions=at_settings(recover_interval_s=1)),
        env=env,
    )
    proxy.start()
    outcome = transfer(proxy, before_commit=server.kill if point == "before_commit" else None)
    assert proxy.is_running(), f"the proxy died:\n{proxy.log_tail()}"
    assert outcome.kind in ("ok", "error"), f"expected an answer from the proxy, got {outcome}"
    bank.wait_until(lambda: not server.is_running(), 10, f"{shard}'s mariadbd to die")
    server.restart()
    wait_finished(cluster, "atsk", proxy)

    applied = applied_now(cluster)
    context = f"{shard} killed at {point}: {outcome}"
    if outcome.kind == "ok":
        assert applied, context  # acknowledged: applied everywhere
    elif outcome.code != 1180:  # 1180: the outcome was unknown to the proxy at the time
        assert not applied, context
    if point == "before_commit" or (point == "at_after_local_commit_all" and shard == "s0"):
        assert outcome.kind == "error" and not applied, context  # no decision could be written
    if point in COMMITTED or (point == "at_after_local_commit_all" and shard == "s1"):
        assert outcome.kind == "ok", context  # the decision was (or could still be) recorded
    assert_all_or_nothing(cluster, applied, context)

    # The proxy still serves, and the rows are neither locked nor half-done.
    again = transfer(proxy, BACK if applied else TRANSFER)
    assert again.kind == "ok", f"{again}; log:\n{proxy.log_tail()}"
    assert_all_or_nothing(cluster, not applied, "transfer after the shard came back")
    wait_finished(cluster, "atsk", proxy)


# --- another proxy finishes a dead proxy's transaction ----------------------------------------


@pytest.mark.parametrize(
    "point", ["at_after_local_commit_all", "at_after_decision", "at_after_release_some"]
)
def test_other_proxy_finishes_an_abandoned_at_transaction(
    point: str, accounts: LocalCluster, proxy_factory: Factory
) -> None:
    cluster = accounts
    survivor = proxy_factory(
        bank.bank_config(
            cluster,
            proxy_id="atab2",
            transactions=at_settings(abandon_age_s=3, recover_interval_s=1),
        ),
        name="atab2",
    )
    doomed = proxy_factory(
        bank.bank_config(cluster, proxy_id="atab1", transactions=at_settings()),
        name="atab1",
        env={"XAPROXY_FAILPOINTS": point},
    )
    survivor.start()
    doomed.start()
    outcome = transfer(doomed)
    assert outcome.kind == "lost", outcome
    bank.wait_until(lambda: not doomed.is_running(), 10, "atab1 to exit")
    left = {r[0] for r in open_work(cluster, "atab1")[0]}
    if point == "at_after_release_some":  # one release done, the other maybe too
        assert left in (set(), {"s1"}, {"s2"}), left
    else:
        assert left == {"s1", "s2"}, left
    wait_finished(cluster, "atab1", survivor)
    assert_all_or_nothing(cluster, point in COMMITTED, f"atab1 killed at {point}")
    again = transfer(survivor, BACK if point in COMMITTED else TRANSFER)
    assert again.kind == "ok", again
    assert_all_or_nothing(cluster, point not in COMMITTED, "transfer through atab2")


# --- soak ----------------------------------------------------------------------------------------

SOAK_ACCOUNTS = int(os.environ.get("XAPROXY_AT_SOAK_ACCOUNTS", "30"))
SOAK_BALANCE = 1000
SOAK_WORKERS = 6


def test_bank_soak_with_random_proxy_kills(accounts: LocalCluster, proxy_factory: Factory) -> None:
    cluster = accounts
    seconds = float(os.environ.get("XAPROXY_SOAK_SECONDS", "20"))
    bank.reset_bank(cluster, dict.fromkeys(range(SOAK_ACCOUNTS), SOAK_BALANCE))
    proxy = proxy_factory(
        bank.bank_config(
            cluster, proxy_id="atsoak", transactions=at_settings(lock_retry_count=100)
        ),
        name="atsoak",
    )
    proxy.start()
    stop = threading.Event()
    restart_lock = threading.Lock()
    acknowledged: list[tuple[int, int, int, int]] = []  # (src, tid, dst, amount)
    counts = {"ok": 0, "error": 0, "lost": 0, "kills": 0}
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        rng = random.Random(index)
        sequence = 0
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = bank.connect(proxy, connect_timeout=2, read_timeout=30)
                src, dst = rng.sample(range(SOAK_ACCOUNTS), 2)
                amount = rng.randint(1, 50)
                sequence += 1
                tid = index * 1_000_000 + sequence
                bank.run(conn, "BEGIN")
                # lower id first: fewer InnoDB deadlocks between opposite transfers
                for account, delta in sorted([(src, -amount), (dst, amount)]):
                    bank.run(
                        conn,
                        f"UPDATE accounts SET balance = balance + ({delta}) WHERE id = {account}",
                    )
                bank.run(
                    conn,
                    "INSERT INTO transfers (src, tid, dst, amount) "
                    f"VALUES ({src}, {tid}, {dst}, {amount})",
                )
                bank.run(conn, "COMMIT")
                acknowledged.append((src, tid, dst, amount))
                counts["ok"] += 1
            except pymysql.MySQLError as exc:
                if bank.is_connection_lost(exc) or conn is None:
                    counts["lost"] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.1)
                else:
                    counts["error"] += 1
                    try:
                        bank.run(conn, "ROLLBACK")
                    except pymysql.MySQLError:
                        conn.close()
                        conn = None
            except BaseException as exc:  # a bug in the test itself
                failures.append(exc)
                return
        if conn is not None:
            conn.close()

    def killer() -> None:
        rng = random.Random(42)
        while not stop.wait(rng.uniform(2.0, 4.0)):
            with restart_lock:
                proxy.kill()
                counts["kills"] += 1
                time.sleep(rng.uniform(0, 0.3))
                proxy.start()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(SOAK_WORKERS)]
    threads.append(threading.Thread(target=killer))
    for thread in threads:
        thread.start()
    try:
        time.sleep(seconds)  # the soak's length; no order depends on it
        # on a loaded machine fewer transfers fit into that time: go on until enough did
        bank.wait_until(
            lambda: counts["ok"] >= 20 and (counts["kills"] >= 1 or seconds < 4),
            300,
            "20 acknowledged transfers and a crash",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures, failures
    assert counts["kills"] >= 1 or seconds < 4, counts

    # one more crash and restart: startup recovery finishes whatever is left
    proxy.kill()
    proxy.start()
    wait_finished(cluster, "atsoak", proxy)
    now = bank.balances(cluster)
    moved = bank.transfers(cluster)
    assert sum(now.values()) == SOAK_ACCOUNTS * SOAK_BALANCE, f"money changed: {counts}"
    missing = [t for t in acknowledged if t[1] not in moved]
    assert not missing, f"acknowledged transfers lost: {missing[:10]} ({counts})"
    for src, tid, dst, amount in acknowledged:
        assert moved[tid] == (src, dst, amount)
    # every transfer row that exists moved its money, and no money moved without one
    expected = dict.fromkeys(range(SOAK_ACCOUNTS), SOAK_BALANCE)
    for src, dst, amount in moved.values():
        expected[src] -= amount
        expected[dst] += amount
    assert now == expected, f"balances do not match the transfers that exist ({counts})"
    assert counts["ok"] >= 20, counts
    rollbacks = proxy.log_text().count("recovery: AT rollback")
    print(f"AT soak: {counts}, {len(moved)} transfers recorded, {rollbacks} compensations")
