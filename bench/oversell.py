"""Workload 3: the oversell check.

``stock`` (one row, count 100) lives on s0 (unsharded, the schema's default
shard); ``orders`` lives on s1 (sharded ``mod`` on client_id over the single
shard s1). Every client, all released at once, runs one purchase through
xaproxy in XA mode:

  BEGIN; SELECT count FROM stock WHERE id = 1 FOR UPDATE;
  if count > 0: UPDATE stock SET count = count - 1 WHERE id = 1; INSERT INTO orders ...;
  COMMIT

Deadlocks and lock wait timeouts are retried. Afterwards exactly 100 orders
must exist and the stock must be 0.
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
    ok = int(stock) == 0 and int(orders) == STOCK and prepared == 0
    text = f"oversell {'OK' if ok else 'MISMATCH'} ({orders} orders, stock {stock}"
    if prepared:
        text += f", {prepared} prepared XA branches left"
    return ok, text + ")"


async def _client(
    i: int,
    conn: Any,
    endpoint: tuple[str, int],
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
                conn = await connect(*endpoint, PROXY_USER, PROXY_PASSWORD, DB)
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


async def _run(host: str, port: int, clients: int) -> tuple[RunStats, float, float]:
    conns = await connect_many(
        clients, lambda _: connect(host, port, PROXY_USER, PROXY_PASSWORD, DB)
    )
    stats = RunStats()
    start = asyncio.Event()
    bought: list[float] = []
    tasks = [
        asyncio.ensure_future(_client(i, c, (host, port), start, stats, bought))
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
    log(f"oversell: stock {STOCK} on s0, orders on s1, {opts.clients} clients through xaproxy (xa)")
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
    service = h.start_proxy("xaproxy-oversell", schema)
    try:
        stats, elapsed, sold_out = runner(_run(service.host, service.port, opts.clients))
    finally:
        h.stop_service(service, opts.notes)
    _, check = verify(h)
    row = {
        "workload": "oversell",
        "target": "xaproxy-xa",
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
    log(f"  oversell {opts.clients} clients: {row['throughput']:.1f} tps  {row['errors']}  {check}")
    return [row]
