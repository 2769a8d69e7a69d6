"""Bank soak: concurrent cross-shard transfers while the proxy is SIGKILLed and restarted.

30 accounts spread over s0, s1, s2 (account id -> s{id % 3}). Client threads
(PyMySQL) move money between two random accounts on different shards:

    BEGIN
    UPDATE accounts ... WHERE id = <lower id>     -- rows locked in id order: no deadlock cycles
    UPDATE accounts ... WHERE id = <higher id>
    INSERT INTO transfers (src, tid, dst, amount)  -- sharded by src: on the source's shard
    COMMIT

Meanwhile a chaos thread SIGKILLs the proxy at random moments and starts it
again (its startup recovery and background resolver finish what the dead one
left in doubt). Each client records what it was told: COMMIT succeeded
(acknowledged), the transaction failed with a MySQL error before or at COMMIT
(rejected), or the connection died during COMMIT (unknown).

Afterwards, read from the shards directly:
- XA RECOVER is empty everywhere and the total of the balances is unchanged;
- every acknowledged transfer has its row; no rejected transfer has one;
- every account's balance is its initial balance + incoming - outgoing over
  the transfer rows, so no transfer was applied in part.

CI runs it for XAPROXY_SOAK_SECONDS (default 20) with XAPROXY_SOAK_CLIENTS
(default 16) clients. A longer run, e.g. before a release:

    XAPROXY_SOAK_SECONDS=600 XAPROXY_SOAK_CLIENTS=32 \\
        /opt/xavenv/bin/pytest tests/integration/test_bank_soak.py -q

XAPROXY_SOAK_KILL_EVERY_S (default "1,3") sets the range of seconds between kills.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pymysql

from tests.support import bank
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess

SOAK_SECONDS = float(os.environ.get("XAPROXY_SOAK_SECONDS", "20"))
CLIENTS = int(os.environ.get("XAPROXY_SOAK_CLIENTS", "16"))
KILL_EVERY_S = tuple(
    float(x) for x in os.environ.get("XAPROXY_SOAK_KILL_EVERY_S", "1,3").split(",")
)
ACCOUNTS = 30
INITIAL_BALANCE = 1000
# A short pause right after the decision makes more kills land inside the commit protocol.
FAILPOINTS = "after_decision=sleep:0.003"


@dataclass
class Ledger:
    """What one client was told about its transfers: tid -> (src, dst, amount)."""

    acknowledged: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    rejected: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    unknown: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)  # MySQL error code -> count


_tids = itertools.count(1)
_tid_lock = threading.Lock()


def next_tid() -> int:
    with _tid_lock:
        return next(_tids)


def pick_transfer(rng: random.Random) -> tuple[int, int, int]:
    src = rng.randrange(ACCOUNTS)
    dst = rng.randrange(ACCOUNTS)
    while bank.shard_of(dst) == bank.shard_of(src):
        dst = rng.randrange(ACCOUNTS)
    return src, dst, rng.randint(1, 50)


def client(proxy: ProxyProcess, deadline: float, seed: int, ledger: Ledger) -> None:
    rng = random.Random(seed)
    conn: pymysql.Connection | None = None
    while time.monotonic() < deadline:
        if conn is None:
            try:
                conn = bank.connect(proxy, connect_timeout=2, read_timeout=30, write_timeout=30)
                bank.run(conn, "SET innodb_lock_wait_timeout = 5")
            except pymysql.MySQLError:
                conn = None
                time.sleep(0.05)  # the proxy is restarting
                continue
        src, dst, amount = pick_transfer(rng)
        tid = next_tid()
        transfer = (src, dst, amount)
        first, second = sorted((src, dst))
        delta = {src: -amount, dst: amount}
        committing = False
        try:
            bank.run(conn, "BEGIN")
            for account in (first, second):
                change = delta[account]
                bank.run(
                    conn, f"UPDATE accounts SET balance = balance + {change} WHERE id = {account}"
                )
            values = f"({src}, {tid}, {dst}, {amount})"
            bank.run(conn, f"INSERT INTO transfers (src, tid, dst, amount) VALUES {values}")
            committing = True
            bank.run(conn, "COMMIT")
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args else 0
            ledger.errors[code] = ledger.errors.get(code, 0) + 1
            if bank.is_connection_lost(exc):
                # Lost before COMMIT was sent: nothing can commit it. During COMMIT: unknown.
                (ledger.unknown if committing else ledger.rejected)[tid] = transfer
                conn.close()
                conn = None
            elif committing and code == 1180:  # the proxy says the outcome is not known yet
                ledger.unknown[tid] = transfer
            else:
                ledger.rejected[tid] = transfer
                try:
                    bank.run(conn, "ROLLBACK")
                except pymysql.MySQLError:
                    conn.close()
                    conn = None
            continue
        ledger.acknowledged[tid] = transfer
    if conn is not None:
        conn.close()


def chaos(
    proxy: ProxyProcess, deadline: float, seed: int, kills: list[float], failures: list[str]
) -> None:
    """SIGKILLs the proxy at random moments and starts it again."""
    rng = random.Random(seed)
    while True:
        pause = rng.uniform(*KILL_EVERY_S)
        if time.monotonic() + pause >= deadline - 1:
            return
        time.sleep(pause)
        proxy.kill()
        kills.append(time.monotonic())
        time.sleep(rng.uniform(0, 0.3))
        try:
            proxy.start()
        except Exception as exc:  # reported by the test, which also restarts it
            failures.append(repr(exc))
            return


def test_bank_soak_with_proxy_kills(
    cluster: LocalCluster, proxy_factory: Callable[..., ProxyProcess]
) -> None:
    initial = {i: INITIAL_BALANCE for i in range(ACCOUNTS)}
    bank.reset_bank(cluster, initial)
    proxy = proxy_factory(
        bank.bank_config(
            cluster,
            proxy_id="soak",
            transactions={"timeout_s": 30, "abandon_age_s": 3, "recover_interval_s": 1},
        ),
        name="soak",
        env={"XAPROXY_FAILPOINTS": FAILPOINTS},
    )
    proxy.start()
    seed = int(os.environ.get("XAPROXY_SOAK_SEED", str(random.randrange(1 << 30))))
    deadline = time.monotonic() + SOAK_SECONDS
    ledgers = [Ledger() for _ in range(CLIENTS)]
    kills: list[float] = []
    chaos_failures: list[str] = []
    threads = [
        threading.Thread(target=client, args=(proxy, deadline, seed + n, ledgers[n]), daemon=True)
        for n in range(CLIENTS)
    ]
    threads.append(
        threading.Thread(
            target=chaos, args=(proxy, deadline, seed, kills, chaos_failures), daemon=True
        )
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOAK_SECONDS + 120)
        assert not thread.is_alive(), "a soak thread hangs"
    assert not chaos_failures, f"restarting the proxy failed: {chaos_failures}\n{proxy.log_tail()}"
    if not proxy.is_running():
        proxy.start()

    acknowledged: dict[int, tuple[int, int, int]] = {}
    rejected: dict[int, tuple[int, int, int]] = {}
    unknown: dict[int, tuple[int, int, int]] = {}
    error_counts: dict[int, int] = {}
    for ledger in ledgers:
        acknowledged.update(ledger.acknowledged)
        rejected.update(ledger.rejected)
        unknown.update(ledger.unknown)
        for code, count in ledger.errors.items():
            error_counts[code] = error_counts.get(code, 0) + count
    summary = (
        f"seed {seed}: {len(acknowledged)} acknowledged, {len(rejected)} rejected, "
        f"{len(unknown)} unknown transfers; {len(kills)} proxy kills; errors {error_counts}"
    )
    print(summary)

    # The restarted proxy (startup recovery + background resolver) finishes everything.
    bank.wait_no_in_doubt(cluster, 30, proxy)
    balances = bank.balances(cluster)
    rows = bank.transfers(cluster)

    assert sum(balances.values()) == sum(initial.values()), f"money changed; {summary}"
    missing = {t: v for t, v in acknowledged.items() if rows.get(t) != v}
    assert not missing, f"acknowledged transfers lost: {sorted(missing)[:20]}; {summary}"
    resurrected = sorted(set(rejected) & set(rows))
    assert not resurrected, f"rejected transfers committed: {resurrected[:20]}; {summary}"
    strangers = sorted(set(rows) - set(acknowledged) - set(unknown))
    assert not strangers, f"transfer rows nobody attempted: {strangers[:20]}; {summary}"

    expected = dict(initial)
    for src, dst, amount in rows.values():
        expected[src] -= amount
        expected[dst] += amount
    wrong = {i: (balances[i], expected[i]) for i in expected if balances.get(i) != expected[i]}
    assert not wrong, f"half-applied transfers: (balance, expected) {wrong}; {summary}"

    assert len(acknowledged) >= 20, f"the soak did too little work; {summary}"
    if SOAK_SECONDS >= 10:
        assert kills, f"the proxy was never killed; {summary}"
    proxy.stop()
