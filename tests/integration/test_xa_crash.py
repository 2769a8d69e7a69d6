"""Crashes at every step of the XA commit protocol: the outcome is all or nothing.

A transfer touches the three shards (BEGIN; UPDATE id 0 on s0; UPDATE id 1 on
s1; UPDATE id 2 on s2; COMMIT), so s0 holds the local branch with the decision
row and s1, s2 run XA branches. A failpoint (XAPROXY_FAILPOINTS) then

- SIGKILLs the proxy itself at each point; the proxy is restarted without
  failpoints and its startup recovery must finish every branch;
- SIGKILLs a shard's mariadbd at each point (s1, and the decision shard s0)
  while the proxy goes on; the shard is restarted and the proxy's background
  resolver must finish every branch;
- SIGKILLs one of two proxies; the other one resolves the dead one's branches
  after transactions.abandon_age_s.

Afterwards XA RECOVER is empty on every shard, the transfer is applied
everywhere or nowhere (nowhere when the crash came before the decision), and
the sum of the balances never changes. Every test leaves all shards running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pymysql
import pytest

from tests.support import bank
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

POINTS = (
    "before_prepare",
    "after_prepare_some",
    "after_prepare_all",
    "after_decision",
    "after_commit_some",
    "after_commit_all",
)
BEFORE_DECISION = {"before_prepare", "after_prepare_some", "after_prepare_all"}

INITIAL = {0: 1000, 1: 1000, 2: 1000}
APPLIED = {0: 980, 1: 1010, 2: 1010}
TRANSFER = (
    "UPDATE accounts SET balance = balance - 20 WHERE id = 0",
    "UPDATE accounts SET balance = balance + 10 WHERE id = 1",
    "UPDATE accounts SET balance = balance + 10 WHERE id = 2",
)
BACK = (
    "UPDATE accounts SET balance = balance + 20 WHERE id = 0",
    "UPDATE accounts SET balance = balance - 10 WHERE id = 1",
    "UPDATE accounts SET balance = balance - 10 WHERE id = 2",
)
# No background pass during the proxy-kill tests: only startup recovery may resolve.
STARTUP_ONLY = {"abandon_age_s": 3, "recover_interval_s": 600}
BACKGROUND = {"abandon_age_s": 3, "recover_interval_s": 1}
RESOLVE_WITHIN_S = 30


@dataclass
class Outcome:
    kind: str  # "ok" | "error" (a MySQL error from the proxy) | "lost" (connection died)
    error: BaseException | None = None
    warnings: list[tuple] = field(default_factory=list)

    @property
    def code(self) -> int | None:
        return self.error.args[0] if self.error is not None and self.error.args else None


def transfer(proxy: ProxyProcess, statements: tuple[str, ...] = TRANSFER) -> Outcome:
    """BEGIN, the three updates, COMMIT; only COMMIT may fail."""
    conn = bank.connect(proxy, read_timeout=60)
    try:
        bank.run(conn, "BEGIN")
        for sql in statements:
            bank.run(conn, sql)
        try:
            bank.run(conn, "COMMIT")
        except pymysql.MySQLError as exc:
            if bank.is_connection_lost(exc):
                return Outcome("lost", exc)
            assert not bank.in_transaction(conn)
            return Outcome("error", exc)
        return Outcome("ok", warnings=bank.warnings(conn))
    finally:
        conn.close()


def assert_all_or_nothing(cluster: LocalCluster, applied: bool, context: str) -> None:
    now = bank.balances(cluster)
    assert sum(now.values()) == sum(INITIAL.values()), f"{context}: money changed: {now}"
    expected = APPLIED if applied else INITIAL
    assert now == expected, (
        f"{context}: expected the transfer {'applied' if applied else 'not applied'} "
        f"everywhere, balances are {now}"
    )


@pytest.fixture
def accounts(cluster: LocalCluster) -> Iterator[LocalCluster]:
    bank.reset_bank(cluster, INITIAL)
    yield cluster
    bank.ensure_running(cluster)


def _wait_dead(cluster: LocalCluster, shard: str) -> None:
    server = cluster[shard]
    bank.wait_until(lambda: not server.is_running(), 10, f"{shard}'s mariadbd to die")


# --- the proxy dies -----------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_proxy_killed_at(
    point: str, accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    cluster = accounts
    proxy = proxy_factory(
        bank.bank_config(cluster, proxy_id="pk", transactions=STARTUP_ONLY),
        env={"XAPROXY_FAILPOINTS": point},
    )
    proxy.start()
    outcome = transfer(proxy)
    assert outcome.kind == "lost", f"the proxy should have died at {point}: {outcome}"
    bank.wait_until(lambda: not proxy.is_running(), 10, "the proxy to exit")
    assert proxy.returncode == -9, proxy.log_tail()
    assert f"failpoint {point}" in proxy.log_text()

    proxy.extra_env.pop("XAPROXY_FAILPOINTS")
    proxy.start()  # returns once listening: startup recovery has run
    assert bank.in_doubt(cluster) == {}, (
        f"startup recovery left branches in doubt; log:\n{proxy.log_tail(60)}"
    )
    assert_all_or_nothing(cluster, point not in BEFORE_DECISION, f"proxy killed at {point}")

    # No lock was left behind: the same rows move again through the restarted proxy.
    statements = BACK if point not in BEFORE_DECISION else TRANSFER
    again = transfer(proxy, statements)
    assert again.kind == "ok", again
    assert_all_or_nothing(cluster, point in BEFORE_DECISION, "transfer after recovery")


# --- a shard dies while the proxy goes on --------------------------------------------------


def _shard_killed(
    cluster: LocalCluster,
    proxy_factory: Callable[..., ProxyProcess],
    point: str,
    shard: str,
    transactions: dict | None = None,
) -> Outcome:
    server = cluster[shard]
    proxy = proxy_factory(
        bank.bank_config(cluster, proxy_id="sk", transactions=transactions or BACKGROUND),
        env={"XAPROXY_FAILPOINTS": f"{point}=kill_pid:{server.pid_file}"},
    )
    proxy.start()
    outcome = transfer(proxy)
    assert proxy.is_running(), f"the proxy died:\n{proxy.log_tail()}"
    assert outcome.kind in ("ok", "error"), f"expected an answer from the proxy, got {outcome}"
    if outcome.kind == "error":
        assert isinstance(outcome.error, pymysql.err.MySQLError)
        message = str(outcome.error.args[1])
        assert "xaproxy" in message or "rolled back" in message or "COMMIT" in message, message
    _wait_dead(cluster, shard)
    server.restart()
    bank.wait_no_in_doubt(cluster, RESOLVE_WITHIN_S, proxy)

    # The client's answer says what happened: success -> applied, an error -> not applied.
    assert_all_or_nothing(cluster, outcome.kind == "ok", f"{shard} killed at {point}: {outcome}")
    # The proxy still serves, and the rows are not locked any more.
    statements = BACK if outcome.kind == "ok" else TRANSFER
    again = transfer(proxy, statements)
    assert again.kind == "ok", f"{again}; log:\n{proxy.log_tail()}"
    assert_all_or_nothing(cluster, outcome.kind != "ok", "transfer after the shard came back")
    return outcome


@pytest.mark.parametrize("point", POINTS)
def test_branch_shard_killed_at(
    point: str, accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    outcome = _shard_killed(accounts, proxy_factory, point, "s1")
    if point == "before_prepare":
        assert outcome.kind == "error" and outcome.code == 1402, outcome
    elif point != "after_prepare_some":  # there it depends on which shard prepared first
        assert outcome.kind == "ok", outcome
    if point in ("after_prepare_all", "after_decision"):
        # s1 died before its XA COMMIT: the client is told it is finished later.
        assert any("s1" in str(w[2]) for w in outcome.warnings), outcome.warnings


@pytest.mark.parametrize("point", ["after_prepare_all", "after_decision"])
def test_a_branch_left_in_doubt_is_finished_when_its_shard_returns_not_at_the_next_sweep(
    point: str, accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    """The periodic sweep is an hour away: only the retry the commit itself asked for
    (the resolver woken when it left s1's branch prepared) can finish it in the test."""
    hourly = {**BACKGROUND, "recover_interval_s": 3600}
    outcome = _shard_killed(accounts, proxy_factory, point, "s1", transactions=hourly)
    assert outcome.kind == "ok", outcome


def test_decision_shard_killed_after_prepare_all(
    accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    """The decision cannot be written: the client learns it, recovery rolls back."""
    outcome = _shard_killed(accounts, proxy_factory, "after_prepare_all", "s0")
    assert outcome.kind == "error", outcome
    assert outcome.code in (1180, 1402), outcome


def test_decision_shard_killed_after_decision(
    accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    """The decision committed before s0 died: every branch commits."""
    outcome = _shard_killed(accounts, proxy_factory, "after_decision", "s0")
    assert outcome.kind == "ok", outcome


# --- another proxy finishes a dead proxy's transactions ------------------------------------


@pytest.mark.parametrize("point", ["after_prepare_all", "after_decision"])
def test_other_proxy_resolves_abandoned_branches(
    point: str, accounts: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    cluster = accounts
    px2 = proxy_factory(
        bank.bank_config(cluster, proxy_id="px2", transactions=BACKGROUND), name="px2"
    )
    px1 = proxy_factory(
        bank.bank_config(cluster, proxy_id="px1"), name="px1", env={"XAPROXY_FAILPOINTS": point}
    )
    px2.start()
    px1.start()
    outcome = transfer(px1)
    assert outcome.kind == "lost", outcome
    bank.wait_until(lambda: not px1.is_running(), 10, "px1 to exit")

    # px1 is not coming back. Its prepared branches on s1 and s2 wait for the abandon age.
    left = bank.in_doubt(cluster)
    assert set(left) == {"s1", "s2"}, left
    assert all(row[3].startswith(b"px1:s0:") for rows in left.values() for row in rows), left

    bank.wait_no_in_doubt(cluster, RESOLVE_WITHIN_S, px2)
    assert_all_or_nothing(cluster, point == "after_decision", f"px1 killed at {point}")
    assert "recovery: " in px2.log_text()
    # px2 serves the same rows afterwards.
    statements = BACK if point == "after_decision" else TRANSFER
    again = transfer(px2, statements)
    assert again.kind == "ok", again
    assert_all_or_nothing(cluster, point != "after_decision", "transfer through px2")
