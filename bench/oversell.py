"""Workload 3: the oversell check.

``stock`` (one row, count 100) lives on s0 (unsharded, the schema's default
shard); ``orders`` lives on s1 (sharded ``mod`` on client_id over the single
shard s1). Every client, all released at once, runs one purchase through
xaproxy, once per mode (`xaproxy-xa`, then `xaproxy-at` after
SET xaproxy_transaction_mode = 'at'), each on freshly loaded rows:

  BEGIN; SELECT count FROM stock WHERE id = 1 FOR UPDATE;
  if count > 0: UPDATE stock SET count = count - 1 WHERE id = 1; INSERT INTO orders ...;
  COMMIT

Deadlocks and lock wait timeouts are retried. Afterwards exactly 100 orders
must exist and the stock must be 0 (and, in AT mode, no global lock or undo row
may be left once the proxy has stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER

from .clients import CONNECTION_LOST, RETRYABLE, RunStats, close_all, connect, connect_many
from .harness import Harness
from .stats import percentiles_ms

DB = "shop"
STOCK = 100
MAX_ATTEMPTS = 20


@dataclass
class OversellOptions:
    clients: int
    targets: tuple[str, ...] = ("xaproxy-xa", "xaproxy-at")
    notes: list[str] = field(default_factory=list)


def load(h: Harness) -> None:
    for server in h.cluster.servers:
        server.execute(f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}")
    h.shard("s0").execute(
        "CREATE TABLE stock (id INT NOT NULL PRIMARY KEY, count INT NOT NULL) ENGINE=InnoDB; "
        f"INSERT INTO stock VALUES (1, {STOCK})",
        DB,
    )
    h.shard("s1").execute(
        "CREATE TABLE orders (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "client_id INT NOT NULL, item_id INT NOT NULL) ENGINE=InnoDB",
        DB,
    )


def verify(h: Harness) -> tuple[bool, str]:
    ((stock,),) = h.shard("s0").execute("SELECT count FROM stock WHERE id = 1", DB)
    ((orders,),) = h.shard("s1").execute("SELECT COUNT(*) FROM orders", DB)
    prepared = len(h.shard("s0").execute("XA RECOVER")) + len(h.shard("s1").execute("XA RECOVER"))
    left = sum(_at_leftovers(h, shard) for shard in ("s0", "s1"))
    ok = int(stock) == 0 and int(orders) == STOCK and prepared == 0 and left == 0
    text = f"oversell {'OK' if ok else 'MISMATCH'} ({orders} orders, stock {stock}"
    if prepared:
        text += f", {prepared} prepared XA branches left"
    if left:
        text += f", {left} AT lock/undo rows left"
    return ok, text + ")"


def _at_leftovers(h: Harness, shard: str) -> int:
    """AT global locks and undo rows still on `shard` (none once every transaction ended)."""
    server = h.shard(shard)
    if not server.execute("SHOW DATABASES LIKE 'xaproxy'"):
        return 0
    if not server.execute("SHOW TABLES FROM xaproxy LIKE 'global_locks'"):
        return 0
    ((locks,),) = server.execute("SELECT COUNT(*) FROM xaproxy.global_locks")
    ((undo,),) = server.execute("SELECT COUNT(*) FROM xaproxy.undo_log WHERE status = 0")
    return int(locks) + int(undo)


async def _client(
    i: int,
    conn: Any,
    endpoint: tuple[str, int, str],
    start: asyncio.Event,
    stats: RunStats,
    bought: list[float],
) -> None:
    cur = conn.cursor()
    await start.wait()
    t0 = time.perf_counter()
    for attempt in range(MAX_ATTEMPTS):
        try:
            await cur.execute("BEGIN")
            await cur.execute("SELECT count FROM stock WHERE id = 1 FOR UPDATE")
            ((count,),) = await cur.fetchall()
            if count > 0:
                await cur.execute("UPDATE stock SET count = count - 1 WHERE id = 1")
                await cur.execute("INSERT INTO orders (client_id, item_id) VALUES (%s, 1)", (i,))
            await cur.execute("COMMIT")
            stats.done += 1
            stats.latencies.append(time.perf_counter() - t0)
            if count > 0:
                bought.append(time.perf_counter())
            break
        except Exception as exc:
            code = stats.error(exc)
            if code in CONNECTION_LOST:
                with contextlib.suppress(Exception):
                    conn.close()
                conn = await _connect(*endpoint)
                cur = conn.cursor()
            else:
                with contextlib.suppress(Exception):
                    await cur.execute("ROLLBACK")
            if code in RETRYABLE and attempt + 1 < MAX_ATTEMPTS:
                stats.retries += 1
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            stats.failed += 1
            break
    with contextlib.suppress(Exception):
        conn.close()


async def _connect(host: str, port: int, mode: str) -> Any:
    conn = await connect(host, port, PROXY_USER, PROXY_PASSWORD, DB)
    if mode == "at":
        async with conn.cursor() as cur:
            await cur.execute("SET xaproxy_transaction_mode = 'at'")
    return conn


async def _run(host: str, port: int, mode: str, clients: int) -> tuple[RunStats, float, float]:
    conns = await connect_many(clients, lambda _: _connect(host, port, mode))
    stats = RunStats()
    start = asyncio.Event()
    bought: list[float] = []
    tasks = [
        asyncio.ensure_future(_client(i, c, (host, port, mode), start, stats, bought))
        for i, c in enumerate(conns)
    ]
    try:
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(conns)
    sold_out = (max(bought) - t0) if bought else 0.0
    return stats, elapsed, sold_out


def run(h: Harness, opts: OversellOptions, log: Any, runner: Any) -> list[dict[str, Any]]:
    return [_run_target(h, opts, target, log, runner) for target in opts.targets]


def _run_target(
    h: Harness, opts: OversellOptions, target: str, log: Any, runner: Any
) -> dict[str, Any]:
    mode = target.rpartition("-")[2]
    log(
        f"oversell: stock {STOCK} on s0, orders on s1, {opts.clients} clients "
        f"through xaproxy ({mode})"
    )
    load(h)
    schema = [
        {
            "name": DB,
            "default_shard": "s0",
            "tables": [
                {"name": "orders", "shard_key": "client_id", "algorithm": "mod", "shards": ["s1"]}
            ],
        }
    ]
    service = h.start_proxy(f"xaproxy-oversell-{mode}", schema)
    try:
        stats, elapsed, sold_out = runner(_run(service.host, service.port, mode, opts.clients))
    finally:
        h.stop_service(service, opts.notes)
    _, check = verify(h)
    row = {
        "workload": "oversell",
        "target": target,
        "concurrency": opts.clients,
        "unit": "tps",
        "throughput": stats.done / elapsed if elapsed > 0 else 0.0,
        **percentiles_ms(stats.latencies),
        "errors": f"{stats.failed} failed, {stats.retries} retries",
        "check": check,
        "note": (
            f"{stats.done} transactions in {elapsed:.2f} s; {STOCK} sold after {sold_out:.2f} s "
            f"({STOCK / sold_out if sold_out else 0:.0f} orders/s); "
            f"error codes: {stats.error_summary()}"
            + (f"; first messages: {stats.first_messages()}" if stats.messages else "")
        ),
        "ok": check.startswith("oversell OK"),
    }
    log(
        f"  oversell {mode} {opts.clients} clients: {row['throughput']:.1f} tps  "
        f"{row['errors']}  {check}"
    )
    return row
