"""Workload 2: cross-shard money transfers.

``accounts`` (id, balance) holds N accounts on s0 (even ids) and N on s1 (odd
ids); each transfer moves 1..100 between one account of each shard in one
transaction. The two UPDATEs run in account-id order, so transactions never
wait on each other in a cycle (a cross-shard deadlock would only end with a
lock wait timeout). Every target gets its own freshly loaded database
(``bank_xa``, ``bank_at``, ``bank_hw``), so whatever one target leaves behind
(in-doubt transactions, undo rows) cannot disturb another's check. Targets:

  xaproxy-xa       BEGIN; UPDATE; UPDATE; COMMIT through xaproxy (mode xa)
  xaproxy-at       the same after SET xaproxy_transaction_mode='at'
  handwritten-xa   what an application with an XA transaction manager sends
                   straight to the shards: XA START + UPDATE on each shard,
                   XA END + XA PREPARE on both (in parallel), the decision
                   logged durably (INSERT, autocommit, into tm.xa_log on s2),
                   XA COMMIT on both (in parallel)
  spider           BEGIN; UPDATE; UPDATE; COMMIT through a MariaDB Spider head
                   whose accounts table is PARTITION BY HASH(id) over s0, s1
                   (its default mode: not atomic across backends)
  spider-xa        the same with SET SESSION spider_internal_xa = 1 (Spider's
                   XA mode across the backends)

Before the timed window each proxy gets a few unreported transfers in both
shard orders (first-use work such as creating the decision tables is then
done). During the window, deadlocks, lock wait timeouts and pool timeouts are
retried; a transfer still failing when the window has closed is not retried
again and counts as failed, so a stalled target cannot stretch the run for
minutes. After every run the total balance is summed directly on the shards
and must equal the initial total; prepared XA branches left are counted. When a
proxy target ends with a mismatch, the proxy is started once more (it recovers
its own in-doubt transactions before it listens) and the total is checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ServiceProcess

from . import spider
from .clients import (
    CONNECTION_LOST,
    RETRYABLE,
    RunStats,
    WrongRowCount,
    close_all,
    connect,
    connect_many,
    error_code,
)
from .harness import Harness
from .stats import percentiles_ms

DATABASES = {
    "xaproxy-xa": "bank_xa",
    "xaproxy-at": "bank_at",
    "handwritten-xa": "bank_hw",
    "spider": "bank_sp",
    "spider-xa": "bank_spx",
}
TARGETS = tuple(DATABASES)
INITIAL_BALANCE = 1000
MAX_ATTEMPTS = 10
UPDATE = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
TM_LOG_NOTE = (
    "hand-written XA: XA START + UPDATE per shard (in account-id order), then XA END + "
    "XA PREPARE on both branches in parallel, then the transaction manager's decision record "
    "(one INSERT, autocommit, InnoDB with default durability, into tm.xa_log on the third "
    "server s2), then XA COMMIT on both in parallel; 3 connections per client (s0, s1, log)."
)


@dataclass
class TransferOptions:
    clients: list[int]
    seconds: float
    accounts_per_shard: int
    targets: tuple[str, ...] = TARGETS
    notes: list[str] = field(default_factory=list)


def shard_of(account: int) -> str:
    return "s0" if account % 2 == 0 else "s1"


def load(h: Harness, db: str, accounts_per_shard: int) -> None:
    ddl = (
        f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; "
        f"CREATE TABLE {db}.accounts (id BIGINT NOT NULL PRIMARY KEY, "
        "balance BIGINT NOT NULL) ENGINE=InnoDB"
    )
    for server in h.cluster.servers:
        server.execute(ddl)
    for parity, name in ((0, "s0"), (1, "s1")):
        ids = [2 * i + parity for i in range(accounts_per_shard)]
        for start in range(0, len(ids), 2000):
            values = ",".join(f"({i},{INITIAL_BALANCE})" for i in ids[start : start + 2000])
            h.shard(name).execute(f"INSERT INTO accounts (id, balance) VALUES {values}", db)
    h.shard("s2").execute(
        "CREATE DATABASE IF NOT EXISTS tm; "
        "CREATE TABLE IF NOT EXISTS tm.xa_log (gtrid VARBINARY(64) NOT NULL PRIMARY KEY, "
        "outcome CHAR(1) NOT NULL, branches VARCHAR(255) NOT NULL, "
        "created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
    )


def verify(h: Harness, db: str, accounts_per_shard: int) -> tuple[bool, str]:
    """Total balance and account count on the shards, and prepared branches left behind."""
    total = 0
    count = 0
    prepared = 0
    for name in ("s0", "s1"):
        server = h.shard(name)
        ((c, s),) = server.execute("SELECT COUNT(*), COALESCE(SUM(balance), 0) FROM accounts", db)
        count += int(c)
        total += int(s)
        prepared += len(server.execute("XA RECOVER"))
    expected = 2 * accounts_per_shard * INITIAL_BALANCE
    ok = total == expected and count == 2 * accounts_per_shard and prepared == 0
    text = f"money {'OK' if ok else 'MISMATCH'} (total {total}, expected {expected}"
    if count != 2 * accounts_per_shard:
        text += f", {count} accounts"
    if prepared:
        text += f", {prepared} prepared XA branches left"
    return ok, text + ")"


def _pick(rng: random.Random, n: int) -> list[tuple[int, int]]:
    a = 2 * rng.randrange(n)
    b = 2 * rng.randrange(n) + 1
    amount = rng.randint(1, 100)
    if rng.random() < 0.5:
        amount = -amount
    # a pays `amount` to b; the updates go in id order.
    return sorted(((a, -amount), (b, amount)))


def _may_retry(code: int, attempt: int, stop_at: float) -> bool:
    return code in RETRYABLE and attempt + 1 < MAX_ATTEMPTS and time.monotonic() < stop_at


# --- through the proxy -----------------------------------------------------------------


_SESSION_SETUP = {
    "at": "SET xaproxy_transaction_mode = 'at'",
    "spider-xa": "SET SESSION spider_internal_xa = 1",
}


async def _open_proxy_client(host: str, port: int, db: str, mode: str) -> Any:
    """A client of a proxy: xaproxy (mode xa/at) or a Spider head (mode spider/spider-xa)."""
    if mode.startswith("spider"):
        conn = await connect(host, port, "root", "", db)
    else:
        conn = await connect(host, port, PROXY_USER, PROXY_PASSWORD, db)
    setup = _SESSION_SETUP.get(mode)
    if setup is not None:
        async with conn.cursor() as cur:
            await cur.execute(setup)
    return conn


async def _proxy_transfer(cur: Any, updates: list[tuple[int, int]]) -> None:
    await cur.execute("BEGIN")
    for account, delta in updates:
        if await cur.execute(UPDATE, (delta, account)) != 1:
            raise WrongRowCount()
    await cur.execute("COMMIT")


async def _proxy_client(
    i: int,
    conn: Any,
    endpoint: tuple[str, int, str, str],
    n: int,
    start: asyncio.Event,
    stop_at: list[float],
    stats: RunStats,
) -> None:
    rng = random.Random(i * 7919 + 1)
    cur = conn.cursor()
    await start.wait()
    while time.monotonic() < stop_at[0]:
        updates = _pick(rng, n)
        t0 = time.perf_counter()
        for attempt in range(MAX_ATTEMPTS):
            try:
                await _proxy_transfer(cur, updates)
                stats.done += 1
                stats.latencies.append(time.perf_counter() - t0)
                break
            except Exception as exc:
                code = stats.error(exc)
                if code in CONNECTION_LOST:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = await _open_proxy_client(*endpoint)
                    cur = conn.cursor()
                else:
                    with contextlib.suppress(Exception):
                        await cur.execute("ROLLBACK")
                if _may_retry(code, attempt, stop_at[0]):
                    stats.retries += 1
                    await asyncio.sleep(0.001 * (attempt + 1))
                    continue
                stats.failed += 1
                break
    with contextlib.suppress(Exception):
        conn.close()


async def _warm_up_proxy(host: str, port: int, db: str, mode: str) -> None:
    """A few transfers in both shard orders (s0 first, s1 first), not reported."""
    conn = await _open_proxy_client(host, port, db, mode)
    try:
        cur = conn.cursor()
        for _ in range(5):
            await _proxy_transfer(cur, [(0, -1), (1, 1)])  # s0 first
            await _proxy_transfer(cur, [(1, -1), (2, 1)])  # s1 first
            await _proxy_transfer(cur, [(0, 1), (1, -1)])  # and back: balances unchanged
            await _proxy_transfer(cur, [(1, 1), (2, -1)])
    finally:
        conn.close()


async def _run_proxy(
    host: str, port: int, db: str, mode: str, clients: int, seconds: float, n: int
) -> tuple[RunStats, float]:
    endpoint = (host, port, db, mode)
    conns = await connect_many(clients, lambda _: _open_proxy_client(*endpoint))
    stats = RunStats()
    start = asyncio.Event()
    stop_at = [0.0]
    tasks = [
        asyncio.ensure_future(_proxy_client(i, c, endpoint, n, start, stop_at, stats))
        for i, c in enumerate(conns)
    ]
    try:
        t0 = time.monotonic()
        stop_at[0] = t0 + seconds
        start.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(conns)
    return stats, elapsed


# --- hand-written XA --------------------------------------------------------------------


class _Branches:
    """One client's connections to s0, s1 and the transaction manager's log on s2."""

    def __init__(self, h: Harness, db: str) -> None:
        self.h = h
        self.db = db
        self.conns: dict[str, Any] = {}
        self.curs: dict[str, Any] = {}

    async def open(self) -> _Branches:
        for name in ("s0", "s1", "s2"):
            await self.reopen(name)
        return self

    async def reopen(self, name: str) -> None:
        old = self.conns.get(name)
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        server = self.h.shard(name)
        db = "tm" if name == "s2" else self.db
        conn = await connect(server.host, server.port, "root", "", db)
        self.conns[name] = conn
        self.curs[name] = conn.cursor()

    def close(self) -> None:
        for conn in self.conns.values():
            with contextlib.suppress(Exception):
                conn.close()


async def _all(coros: Any) -> None:
    results = await asyncio.gather(*coros, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _xa_client(
    i: int,
    br: _Branches,
    n: int,
    start: asyncio.Event,
    stop_at: list[float],
    stats: RunStats,
) -> None:
    rng = random.Random(i * 7919 + 1)
    seq = 0
    run_id = f"{int(time.time() * 1000) % 10**9:x}"  # xids stay unique across runs
    await start.wait()
    while time.monotonic() < stop_at[0]:
        updates = _pick(rng, n)
        t0 = time.perf_counter()
        for attempt in range(MAX_ATTEMPTS):
            seq += 1
            gtrid = f"bench-{run_id}-{i}-{seq}"
            states: dict[str, str] = {}
            decided = False
            try:
                for account, delta in updates:
                    shard = shard_of(account)
                    cur = br.curs[shard]
                    await cur.execute(f"XA START '{gtrid}','{shard}'")
                    states[shard] = "active"
                    if await cur.execute(UPDATE, (delta, account)) != 1:
                        raise WrongRowCount()

                async def prepare(shard: str, gtrid: str = gtrid, states: dict = states) -> None:
                    await br.curs[shard].execute(f"XA END '{gtrid}','{shard}'")
                    states[shard] = "idle"
                    await br.curs[shard].execute(f"XA PREPARE '{gtrid}','{shard}'")
                    states[shard] = "prepared"

                await _all(prepare(s) for s in list(states))
                await br.curs["s2"].execute(
                    "INSERT INTO tm.xa_log (gtrid, outcome, branches) VALUES (%s, 'C', %s)",
                    (gtrid, ",".join(states)),
                )
                decided = True

                async def commit(shard: str, gtrid: str = gtrid, states: dict = states) -> None:
                    await br.curs[shard].execute(f"XA COMMIT '{gtrid}','{shard}'")
                    states[shard] = "done"

                await _all(commit(s) for s in list(states))
                stats.done += 1
                stats.latencies.append(time.perf_counter() - t0)
                break
            except Exception as exc:
                code = stats.error(exc)
                if decided:
                    # The decision is logged: the TM must finish the commit, whatever it takes.
                    await _finish(br, gtrid, states, commit=True, stats=stats)
                    stats.done += 1
                    stats.latencies.append(time.perf_counter() - t0)
                    break
                await _finish(br, gtrid, states, commit=False, stats=stats)
                if _may_retry(code, attempt, stop_at[0]):
                    stats.retries += 1
                    await asyncio.sleep(0.001 * (attempt + 1))
                    continue
                stats.failed += 1
                break


async def _finish(
    br: _Branches, gtrid: str, states: dict[str, str], *, commit: bool, stats: RunStats
) -> None:
    """Rolls back (or, after the decision, commits) every branch, reconnecting as needed."""
    for shard, state in states.items():
        if state == "done":
            continue
        for _ in range(20):
            cur = br.curs[shard]
            try:
                if state == "active":
                    with contextlib.suppress(Exception):
                        await cur.execute(f"XA END '{gtrid}','{shard}'")
                if commit:
                    await cur.execute(f"XA COMMIT '{gtrid}','{shard}'")
                else:
                    await cur.execute(f"XA ROLLBACK '{gtrid}','{shard}'")
                break
            except Exception as exc:
                if error_code(exc) == 1397:  # XAER_NOTA: already gone (rolled back on error)
                    break
                # A new connection: the server rolls back an unprepared branch of the old
                # one; a prepared branch stays and is finished from the new connection.
                await br.reopen(shard)
                if state != "prepared" and not commit:
                    break
                state = "prepared"
                await asyncio.sleep(0.05)
        else:
            stats.errors["in-doubt"] += 1


async def _run_handwritten(
    h: Harness, db: str, clients: int, seconds: float, n: int
) -> tuple[RunStats, float]:
    branches = await connect_many(clients, lambda _: _Branches(h, db).open(), parallel=16)
    stats = RunStats()
    start = asyncio.Event()
    stop_at = [0.0]
    tasks = [
        asyncio.ensure_future(_xa_client(i, br, n, start, stop_at, stats))
        for i, br in enumerate(branches)
    ]
    try:
        t0 = time.monotonic()
        stop_at[0] = t0 + seconds
        start.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for br in branches:
            br.close()
    return stats, elapsed


# --- driver -----------------------------------------------------------------------------


def _row(target: str, clients: int, stats: RunStats, elapsed: float, check: str) -> dict[str, Any]:
    note = f"{stats.done} transfers in {elapsed:.1f} s; error codes: {stats.error_summary()}"
    if stats.messages:
        note += f"; first messages: {stats.first_messages()}"
    return {
        "workload": "transfers",
        "target": target,
        "concurrency": clients,
        "unit": "tps",
        "throughput": stats.done / elapsed if elapsed > 0 else 0.0,
        **percentiles_ms(stats.latencies),
        "errors": f"{stats.failed} failed, {stats.retries} retries",
        "check": check,
        "note": note,
        "ok": check.startswith("money OK"),
    }


def _schema(db: str) -> list[dict[str, Any]]:
    return [
        {
            "name": db,
            "default_shard": "s0",
            "tables": [
                {"name": "accounts", "shard_key": "id", "algorithm": "mod", "shards": ["s0", "s1"]}
            ],
        }
    ]


def _run_target(
    h: Harness, target: str, opts: TransferOptions, log: Any, runner: Any
) -> list[dict[str, Any]]:
    n = opts.accounts_per_shard
    db = DATABASES[target]
    load(h, db, n)
    rows: list[dict[str, Any]] = []
    service: ServiceProcess | None = None
    address: tuple[str, int] | None = None
    mode = ""
    if target.startswith("xaproxy"):
        service = h.start_proxy(f"{target}-transfers", _schema(db))
        address = (service.host, service.port)
        mode = target.rpartition("-")[2]
    elif target.startswith("spider"):
        missing = spider.available()
        if missing is not None:
            opts.notes.append(f"transfers target {target}: not run: {missing}")
            return []
        head = spider.serve(h, db, ["accounts"], ("s0", "s1"))
        address = (head.host, head.port)
        mode = target
    try:
        if address is not None and mode.startswith("spider"):
            _spider_warm_up(runner, address, db, mode, opts)
        elif address is not None:
            runner(_warm_up_proxy(*address, db, mode))
        for clients in opts.clients:
            cpu0 = service.cpu_seconds() if service is not None else 0.0
            with h.profile(service, f"transfers-{target}-{clients}", opts.seconds):
                if address is not None:
                    stats, elapsed = runner(
                        _run_proxy(*address, db, mode, clients, opts.seconds, n)
                    )
                else:
                    stats, elapsed = runner(_run_handwritten(h, db, clients, opts.seconds, n))
            _, check = verify(h, db, n)
            row = _row(target, clients, stats, elapsed, check)
            if service is not None and stats.done:
                used = service.cpu_seconds() - cpu0
                row["note"] += (
                    f"; xaproxy CPU {used / stats.done * 1e6:.0f} us/transfer, "
                    f"{used / elapsed * 100:.0f}% of a core"
                )
            rows.append(row)
            log(
                f"  transfers {target:15} {clients:4} clients: {row['throughput']:8.1f} tps  "
                f"p95 {row['p95'] or 0:.1f} ms  {row['errors']}  {check}"
            )
    finally:
        if service is not None:
            h.stop_service(service, opts.notes)
    if service is not None and rows:
        ok, final = verify(h, db, n)
        if not ok:
            rows[-1]["check"] += f"; after proxy stop: {final}"
            rows[-1]["ok"] = False
            # Would the proxy's own recovery repair it? It runs before the proxy listens.
            again = h.start_proxy(f"{target}-restart", _schema(db))
            h.stop_service(again, opts.notes)
            _, repaired = verify(h, db, n)
            rows[-1]["check"] += f"; after a restart (startup recovery): {repaired}"
    return rows


def _spider_warm_up(
    runner: Any, address: tuple[str, int], db: str, mode: str, opts: TransferOptions
) -> None:
    """One transfer through the Spider head, not reported; what it answers goes to the Notes."""
    try:
        runner(_warm_up_proxy(*address, db, mode))
    except Exception as exc:
        opts.notes.append(f"transfers target {mode}: a warm-up transfer failed: {exc!r}")


def run(h: Harness, opts: TransferOptions, log: Any, runner: Any) -> list[dict[str, Any]]:
    """``runner(coro)`` runs a coroutine to completion on the harness's event loop."""
    n = opts.accounts_per_shard
    log(f"transfers: {2 * n} accounts (s0 even ids, s1 odd ids), a fresh database per target")
    rows: list[dict[str, Any]] = []
    for target in opts.targets:
        try:
            rows += _run_target(h, target, opts, log, runner)
        except Exception as exc:
            # One broken target must not cost the others' results.
            log(f"transfers: target {target} failed: {exc!r}")
            opts.notes.append(f"transfers target {target} failed: {str(exc)[:500]}")
    opts.notes.append(TM_LOG_NOTE)
    return rows
