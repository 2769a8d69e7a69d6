"""Workload 5: large results, bounded memory and fairness.

``slow_reader``: one client sends a query whose result is ``--big-rows`` rows of
about 200 bytes and reads it slowly (``--slow-read-rate`` rows per second for
``--slow-read-time`` seconds, through a 64 KiB stream buffer and a 16 KiB socket
receive buffer), then hangs up. The harness samples the proxy's VmRSS while it
reads: the growth over the RSS before the query is what the slow reader costs.
Two targets: ``xaproxy`` relays one shard's result (the sequence engine's
``seq_1_to_N`` on s0: rows without storage), ``xaproxy-sharded`` merges a
fan-out (a sharded table of N/1000 keys over s1, s2 joined with a broadcast
``seq_1_to_1000``).

``fanout_latency``: while one client runs a fan-out ``GROUP BY`` over
``--big-rows`` rows (one group per row, streamed to it), ``--latency-clients``
clients run point selects on the sharded table in a loop. Reported: their
latency percentiles and rate during the fan-out, the fan-out's duration and
the proxy's RSS growth; the Notes give the same point selects without the
fan-out for comparison.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from asyncmy.cursors import SSCursor

from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ServiceProcess

from .clients import connect
from .connscale import RawConnection
from .harness import Harness
from .stats import percentiles_ms

DB = "bigres"
FANOUT = 1000
ROW_BYTES = 200
COM_QUERY = 0x03
RSS_SAMPLE_S = 0.1
RSS_TARGET_MIB = 32
P99_TARGET_MS = 50


@dataclass
class BigResultOptions:
    rows: int
    slow_read_time: float
    slow_read_rate: int
    latency_clients: int
    baseline_time: float
    notes: list[str] = field(default_factory=list)


def _schema(keys: int) -> list[dict[str, Any]]:
    return [
        {
            "name": DB,
            "default_shard": "s0",
            "tables": [
                {"name": "spread", "shard_key": "id", "algorithm": "mod", "shards": ["s1", "s2"]},
                {"name": f"seq_1_to_{FANOUT}", "broadcast": True},
            ],
        }
    ]


def load(h: Harness, keys: int) -> None:
    for server in h.cluster.servers:
        server.execute(
            f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}; "
            f"CREATE TABLE {DB}.spread (id BIGINT PRIMARY KEY)"
        )
    for name, parity in (("s1", 0), ("s2", 1)):
        h.shard(name).execute(
            f"INSERT INTO spread SELECT seq FROM seq_1_to_{keys} WHERE seq % 2 = {parity}", DB
        )


def _relayed(rows: int) -> str:
    return (
        f"SELECT seq AS id, RPAD(CONCAT('row', seq), {ROW_BYTES}, 'x') AS pad FROM seq_1_to_{rows}"
    )


def _merged() -> str:
    return (
        f"SELECT id, RPAD(CONCAT('row', seq), {ROW_BYTES}, 'x') AS pad "
        f"FROM spread JOIN seq_1_to_{FANOUT}"
    )


def _grouped() -> str:
    return (
        f"SELECT id * {FANOUT} + seq AS g, COUNT(*) AS n "
        f"FROM spread JOIN seq_1_to_{FANOUT} GROUP BY g"
    )


class _RssSampler:
    """The proxy's VmRSS every RSS_SAMPLE_S while running: the peak and the start."""

    def __init__(self, proxy: ServiceProcess) -> None:
        self.proxy = proxy
        self.start = proxy.rss_kib()
        self.peak = self.start
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.proxy.rss_kib())
            await asyncio.sleep(RSS_SAMPLE_S)

    def __enter__(self) -> _RssSampler:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, self.proxy.rss_kib())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 1024


async def _slow_read(proxy: ServiceProcess, sql: str, opts: BigResultOptions) -> int:
    """Sends `sql`, reads rows at the slow rate for the slow-read time; the rows read."""
    conn = await RawConnection.login(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB)
    sock = conn.writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    try:
        conn.send(0, bytes((COM_QUERY,)) + sql.encode())
        await conn.writer.drain()
        rows = 0
        batch = max(1, opts.slow_read_rate // 100)
        stop = time.monotonic() + opts.slow_read_time
        while time.monotonic() < stop:
            for _ in range(batch):
                await conn.read()
                rows += 1
            await asyncio.sleep(0.01)  # pacing: batch rows per 10 ms
        return rows
    finally:
        conn.writer.close()


async def _slow_reader_row(
    proxy: ServiceProcess, target: str, sql: str, opts: BigResultOptions
) -> dict[str, Any]:
    await asyncio.sleep(0.5)  # the proxy settles after start
    with _RssSampler(proxy) as rss:
        started = time.monotonic()
        rows = await _slow_read(proxy, sql, opts)
        elapsed = time.monotonic() - started
    ok = rss.growth_mib < RSS_TARGET_MIB
    return {
        "workload": "slow_reader",
        "target": target,
        "concurrency": 1,
        "throughput": rows / elapsed if elapsed else 0.0,
        "unit": "rows/s",
        "errors": 0,
        "ok": ok,
        "rss_growth_mib": rss.growth_mib,
        "check": f"RSS +{rss.growth_mib:.1f} MiB ({rss.start / 1024:.0f} -> {rss.peak / 1024:.0f})",
        "note": (
            f"{opts.rows} rows of ~{ROW_BYTES} bytes pending, {rows} read at "
            f"{opts.slow_read_rate} rows/s in {elapsed:.1f} s, then the client hung up"
        ),
    }


async def _point_clients(
    proxy: ServiceProcess, count: int, keys: int, until: asyncio.Event
) -> list[float]:
    conns = [
        await connect(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB) for _ in range(count)
    ]
    latencies: list[float] = []

    async def loop(conn: Any, seed: int) -> None:
        key = seed
        async with conn.cursor() as cur:
            while not until.is_set():
                key = key * 7919 % keys + 1
                started = time.perf_counter()
                await cur.execute("SELECT id FROM spread WHERE id = %s", (key,))
                await cur.fetchall()
                latencies.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(loop(c, i + 1) for i, c in enumerate(conns)))
    finally:
        for conn in conns:
            conn.close()
    return latencies


async def _fanout(proxy: ServiceProcess) -> tuple[int, float]:
    conn = await connect(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB)
    try:
        started = time.monotonic()
        async with conn.cursor(SSCursor) as cur:
            await cur.execute(_grouped())
            groups = 0
            while True:
                batch = await cur.fetchmany(1000)
                if not batch:
                    break
                groups += len(batch)
        return groups, time.monotonic() - started
    finally:
        conn.close()


async def _latency_row(proxy: ServiceProcess, opts: BigResultOptions) -> dict[str, Any]:
    keys = max(2, opts.rows // FANOUT)
    quiet = asyncio.Event()
    baseline_task = asyncio.ensure_future(_point_clients(proxy, opts.latency_clients, keys, quiet))
    await asyncio.sleep(opts.baseline_time)
    quiet.set()
    baseline = await baseline_task
    done = asyncio.Event()
    with _RssSampler(proxy) as rss:
        points = asyncio.ensure_future(_point_clients(proxy, opts.latency_clients, keys, done))
        try:
            groups, elapsed = await _fanout(proxy)
        finally:
            done.set()
        latencies = await points
    during = percentiles_ms(latencies)
    quiet_ms = percentiles_ms(baseline)
    expected = keys * FANOUT
    p99 = during["p99"]
    ok = groups == expected and p99 is not None and p99 < P99_TARGET_MS
    return {
        "workload": "fanout_latency",
        "target": "xaproxy-sharded",
        "concurrency": opts.latency_clients,
        "throughput": len(latencies) / elapsed if elapsed else 0.0,
        "unit": "qps",
        **during,
        "errors": 0,
        "ok": ok,
        "check": (
            f"{groups} groups in {elapsed:.1f} s; RSS +{rss.growth_mib:.1f} MiB"
            + ("" if groups == expected else f" (expected {expected} groups)")
        ),
        "note": (
            f"point selects of {opts.latency_clients} clients during a fan-out GROUP BY of "
            f"{expected} rows into {expected} groups; without it: p50 "
            f"{quiet_ms['p50'] or 0:.2f} ms, p99 {quiet_ms['p99'] or 0:.2f} ms, "
            f"{len(baseline) / opts.baseline_time:.0f} qps"
        ),
    }


def run(h: Harness, opts: BigResultOptions, log: Any, runner: Any) -> list[dict[str, Any]]:
    keys = max(2, opts.rows // FANOUT)
    load(h, keys)
    rows: list[dict[str, Any]] = []
    proxy = h.start_proxy("bigresults", _schema(keys))
    try:
        log(f"slow reader: {opts.rows} rows relayed from one shard")
        rows.append(runner(_slow_reader_row(proxy, "xaproxy", _relayed(opts.rows), opts)))
        log(f"slow reader: {keys * FANOUT} rows merged from two shards")
        rows.append(runner(_slow_reader_row(proxy, "xaproxy-sharded", _merged(), opts)))
        log(f"point selects during a fan-out GROUP BY of {keys * FANOUT} rows")
        rows.append(runner(_latency_row(proxy, opts)))
    finally:
        h.stop_service(proxy, opts.notes)
    return rows
