"""Workload 1: sysbench oltp_point_select and oltp_read_write against four targets.

Targets, all on the same rows (``--tables`` x ``--table-size``, prepared with
``--auto_inc=off`` so every target has identical tables and explicit ids):

  direct           MariaDB s0
  haproxy          haproxy (mode tcp) in front of s0: the cost of one extra hop
  xaproxy          xaproxy, schema ``sbtest`` unsharded (default_shard s0)
  xaproxy-sharded  xaproxy, sbtest1..N sharded ``mod`` on id over s1, s2; the
                   tables are created and loaded by sysbench's ``prepare``
                   through this proxy (DDL to every shard, INSERT rows split)
  spider           a MariaDB Spider head over the same tables on s1, s2
                   (PARTITION BY HASH(id): the same rows where mod puts them)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ServiceProcess

from . import spider
from .harness import Harness
from .stats import histogram_percentiles

SCHEMA = "sbtest"
WORKLOADS = ("oltp_point_select", "oltp_read_write")
TARGETS = ("direct", "haproxy", "xaproxy", "xaproxy-sharded", "spider")


@dataclass
class Endpoint:
    name: str
    host: str
    port: int
    user: str
    password: str


@dataclass
class SysbenchOptions:
    tables: int
    table_size: int
    seconds: float
    threads: list[int]
    workloads: list[str]
    warmup: float
    notes: list[str] = field(default_factory=list)


def _sysbench() -> str:
    path = shutil.which("sysbench")
    if path is None:
        raise RuntimeError("sysbench is not installed (apt-get install sysbench)")
    return path


def command(
    endpoint: Endpoint, workload: str, action: str, opts: SysbenchOptions, *extra: str
) -> list[str]:
    return [
        _sysbench(),
        workload,
        "--db-driver=mysql",
        f"--mysql-host={endpoint.host}",
        f"--mysql-port={endpoint.port}",
        f"--mysql-user={endpoint.user}",
        f"--mysql-password={endpoint.password}",
        f"--mysql-db={SCHEMA}",
        f"--tables={opts.tables}",
        f"--table-size={opts.table_size}",
        "--db-ps-mode=auto",  # sysbench's default: server-side prepared statements
        "--auto_inc=off",
        *extra,
        action,
    ]


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _first_fatal(output: str) -> str:
    for line in output.splitlines():
        if "FATAL" in line or "error" in line.lower():
            return line.strip()[:400]
    return output.strip().splitlines()[-1][:400] if output.strip() else "(no output)"


def prepare_direct(h: Harness, opts: SysbenchOptions) -> None:
    """Creates and loads sbtest on s0 directly (used by direct, haproxy, xaproxy)."""
    server = h.direct
    server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}")
    endpoint = Endpoint("direct", server.host, server.port, "root", "")
    done = _run(command(endpoint, "oltp_read_write", "prepare", opts), 600)
    if done.returncode != 0:
        raise RuntimeError(
            f"sysbench prepare on s0 failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def sharded_schema(opts: SysbenchOptions) -> list[dict[str, Any]]:
    return [
        {
            "name": SCHEMA,
            "default_shard": "s1",
            "tables": [
                {
                    "name": f"sbtest{i}",
                    "shard_key": "id",
                    "algorithm": "mod",
                    "shards": ["s1", "s2"],
                }
                for i in range(1, opts.tables + 1)
            ],
        }
    ]


def prepare_sharded(h: Harness, proxy: ServiceProcess, opts: SysbenchOptions) -> None:
    """``sysbench prepare`` through the sharded proxy; reports what the proxy refuses.

    sysbench's default prepare (``--auto_inc=on``) inserts rows without ``id``
    and lets the server number them; a sharded table cannot be placed without
    its shard key, so that is tried first and the refusal is recorded. The
    tables are then prepared with explicit ids (``--auto_inc=off``).
    """
    for name in ("s1", "s2"):
        h.shard(name).execute(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}")
    endpoint = Endpoint("xaproxy-sharded", proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD)
    default_cmd = [
        c for c in command(endpoint, "oltp_read_write", "prepare", opts) if c != "--auto_inc=off"
    ]
    first = _run(default_cmd, 600)
    if first.returncode != 0:
        opts.notes.append(
            "xaproxy-sharded: sysbench's default `prepare` (--auto_inc=on, INSERT without id) "
            f"was refused: `{_refusal(first.stdout + first.stderr)}`; "
            "the tables were prepared through the proxy with --auto_inc=off (explicit ids) instead."
        )
        cleanup = _run(command(endpoint, "oltp_read_write", "cleanup", opts), 120)
        if cleanup.returncode != 0:
            raise RuntimeError(
                f"sysbench cleanup through xaproxy failed:\n{cleanup.stdout[-2000:]}"
            )
        done = _run(command(endpoint, "oltp_read_write", "prepare", opts), 600)
        if done.returncode != 0:
            raise RuntimeError(
                "sysbench prepare --auto_inc=off through xaproxy failed: "
                f"{_refusal(done.stdout + done.stderr)}"
            )
    else:
        opts.notes.append("xaproxy-sharded: sysbench's default `prepare` worked through the proxy.")
    # The rows must be where `mod` puts them, and all of them.
    per_shard = {}
    for name in ("s1", "s2"):
        rows = h.shard(name).execute(
            " UNION ALL ".join(
                f"SELECT COUNT(*), COALESCE(SUM(id % 2), 0) FROM sbtest{i}"
                for i in range(1, opts.tables + 1)
            ),
            SCHEMA,
        )
        per_shard[name] = [(int(c), int(odd)) for c, odd in rows]
    for i in range(opts.tables):
        (c1, odd1), (c2, odd2) = per_shard["s1"][i], per_shard["s2"][i]
        if c1 + c2 != opts.table_size or odd1 != 0 or odd2 != c2:
            raise RuntimeError(
                f"sharded sbtest{i + 1} has wrong rows: s1 {c1}/{odd1} s2 {c2}/{odd2}"
            )


def _refusal(output: str) -> str:
    match = re.search(r"returned error (\d+) \((.*?)\)(?: for query|\s*$)", output, re.M)
    if match:
        return f"ERROR {match.group(1)}: {match.group(2)}"
    return _first_fatal(output)


_HIST_LINE = re.compile(r"^\s*([\d.]+)\s+\|\**\s*(\d+)\s*$", re.M)


def parse(output: str) -> dict[str, Any]:
    def stat(name: str) -> tuple[int, float] | None:
        m = re.search(rf"^\s*{name}:\s+(\d+)\s+\(([\d.]+) per sec\.\)", output, re.M)
        return (int(m.group(1)), float(m.group(2))) if m else None

    transactions = stat("transactions")
    queries = stat("queries")
    ignored = stat("ignored errors")
    reconnects = stat("reconnects")
    buckets = [(float(v), int(c)) for v, c in _HIST_LINE.findall(output)]
    events = re.search(r"total number of events:\s+(\d+)", output)
    result: dict[str, Any] = {
        "tps": transactions[1] if transactions else 0.0,
        "qps": queries[1] if queries else 0.0,
        "errors": (ignored[0] if ignored else 0) + (reconnects[0] if reconnects else 0),
        "events": int(events.group(1)) if events else 0,
        "queries": queries[0] if queries else 0,
        **histogram_percentiles(buckets),
    }
    m = re.search(r"95th percentile:\s+([\d.]+)", output)
    result["sysbench_p95"] = float(m.group(1)) if m else None
    return result


def run_one(
    endpoint: Endpoint, workload: str, threads: int, seconds: float, opts: SysbenchOptions
) -> dict[str, Any]:
    cmd = command(
        endpoint,
        workload,
        "run",
        opts,
        f"--threads={threads}",
        f"--time={max(1, round(seconds))}",
        "--report-interval=0",
        "--histogram=on",
        "--percentile=95",
    )
    done = _run(cmd, seconds + 120)
    output = done.stdout + done.stderr
    row: dict[str, Any] = {
        "workload": workload,
        "target": endpoint.name,
        "concurrency": threads,
        "unit": "qps" if workload == "oltp_point_select" else "tps",
    }
    if done.returncode != 0 or "FATAL" in output:
        row.update(throughput=0.0, errors="FATAL", p50=None, p95=None, p99=None)
        row["note"] = _refusal(output)
        return row
    parsed = parse(output)
    row.update(
        throughput=parsed["qps"] if row["unit"] == "qps" else parsed["tps"],
        errors=parsed["errors"],
        p50=parsed["p50"],
        p95=parsed["p95"],
        p99=parsed["p99"],
    )
    row["events"] = parsed["events"]
    row["queries"] = parsed["queries"]
    if row["unit"] == "tps":
        row["note"] = f"{parsed['qps']:.0f} qps"
    return row


def run_target(
    h: Harness, endpoint: Endpoint, opts: SysbenchOptions, service: ServiceProcess | None, log: Any
) -> list[dict[str, Any]]:
    rows = []
    if opts.warmup > 0:
        _run(
            command(
                endpoint,
                "oltp_point_select",
                "run",
                opts,
                "--threads=8",
                f"--time={max(1, round(opts.warmup))}",
            ),
            opts.warmup + 60,
        )
    for workload in opts.workloads:
        for threads in opts.threads:
            cpu0 = service.cpu_split() if service is not None else (0.0, 0.0)
            profiled = (
                service if service is not None and service.name.startswith("xaproxy") else None
            )
            with h.profile(profiled, f"{endpoint.name}-{workload}-{threads}", opts.seconds):
                row = run_one(endpoint, workload, threads, opts.seconds, opts)
            if service is not None and row.get("events"):
                user, system = (
                    now - then for now, then in zip(service.cpu_split(), cpu0, strict=True)
                )
                used = user + system
                cpu = (
                    f"{service.name} CPU {used / row['queries'] * 1e6:.0f} us/query "
                    f"(user {user / row['queries'] * 1e6:.0f}, "
                    f"system {system / row['queries'] * 1e6:.0f}), "
                    f"{used / row['events'] * 1e6:.0f} us/event, "
                    f"{used / opts.seconds * 100:.0f}% of a core"
                )
                row["note"] = f"{row['note']}; {cpu}" if row.get("note") else cpu
            log(
                f"  {workload:18} {endpoint.name:16} {threads:3} threads: "
                f"{row['throughput']:9.1f} {row['unit']}  p95 {row['p95'] or 0:.2f} ms  "
                f"errors {row['errors']}"
            )
            rows.append(row)
    return rows


def run(
    h: Harness, opts: SysbenchOptions, log: Any, targets: tuple[str, ...] = TARGETS
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    log(f"sysbench: preparing {opts.tables} tables x {opts.table_size} rows on s0")
    prepare_direct(h, opts)
    for target in targets:
        log(f"sysbench: target {target}")
        try:
            rows += _run_target(h, target, opts, log)
        except Exception as exc:
            # One broken target must not cost the others' results.
            log(f"sysbench: target {target} failed: {exc}")
            opts.notes.append(f"sysbench target {target} failed: {str(exc)[:500]}")
    return rows


def _run_target(h: Harness, target: str, opts: SysbenchOptions, log: Any) -> list[dict[str, Any]]:
    s0 = h.direct
    if target == "direct":
        return run_target(h, Endpoint("direct", s0.host, s0.port, "root", ""), opts, None, log)
    if target == "haproxy":
        service = h.start_haproxy(s0)
        try:
            endpoint = Endpoint("haproxy", service.host, service.port, "root", "")
            return run_target(h, endpoint, opts, service, log)
        finally:
            h.stop_service(service)
    if target == "xaproxy":
        service = h.start_proxy("xaproxy-unsharded", [{"name": SCHEMA, "default_shard": "s0"}])
        try:
            endpoint = Endpoint("xaproxy", service.host, service.port, PROXY_USER, PROXY_PASSWORD)
            return run_target(h, endpoint, opts, service, log)
        finally:
            _stop_proxy(h, service, opts)
    if target == "xaproxy-sharded":
        service = h.start_proxy("xaproxy-sharded", sharded_schema(opts))
        try:
            log("sysbench: preparing the sharded tables through xaproxy")
            prepare_sharded(h, service, opts)
            endpoint = Endpoint(
                "xaproxy-sharded", service.host, service.port, PROXY_USER, PROXY_PASSWORD
            )
            return run_target(h, endpoint, opts, service, log)
        finally:
            _stop_proxy(h, service, opts)
    if target == "spider":
        return _run_spider(h, opts, log)
    raise ValueError(f"unknown sysbench target {target}")


def _run_spider(h: Harness, opts: SysbenchOptions, log: Any) -> list[dict[str, Any]]:
    """Spider over the sharded tables xaproxy-sharded left on s1, s2 (loaded if absent)."""
    missing = spider.available()
    if missing is not None:
        opts.notes.append(f"spider: not run: {missing}")
        return []
    tables = [f"sbtest{i}" for i in range(1, opts.tables + 1)]
    if not _sharded_tables_loaded(h, opts):
        service = h.start_proxy("xaproxy-sharded-load", sharded_schema(opts))
        try:
            log("sysbench: loading the sharded tables through xaproxy for Spider")
            prepare_sharded(h, service, opts)
        finally:
            _stop_proxy(h, service, opts)
    log("sysbench: starting the Spider head over s1, s2")
    head = spider.serve(h, SCHEMA, tables, ("s1", "s2"))
    endpoint = Endpoint("spider", head.host, head.port, "root", "")
    return run_target(h, endpoint, opts, None, log)


def _sharded_tables_loaded(h: Harness, opts: SysbenchOptions) -> bool:
    total = 0
    for name in ("s1", "s2"):
        try:
            rows = h.shard(name).execute(
                " UNION ALL ".join(
                    f"SELECT COUNT(*) FROM sbtest{i}" for i in range(1, opts.tables + 1)
                ),
                SCHEMA,
            )
        except Exception:
            return False
        total += sum(int(r[0]) for r in rows)
    return total == opts.tables * opts.table_size


def _stop_proxy(h: Harness, service: ServiceProcess, opts: SysbenchOptions) -> None:
    h.stop_service(service, opts.notes)
