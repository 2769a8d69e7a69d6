"""``python -m bench``: start the shards, run the workloads, write the table."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

WORKLOADS = ("point_select", "read_write", "transfers", "oversell", "connections", "bigresults")
SYSBENCH_TARGETS = ("direct", "haproxy", "xaproxy", "xaproxy-sharded", "spider")
ALIASES = {
    "sysbench": ("point_select", "read_write"),
    "oltp_point_select": ("point_select",),
    "oltp_read_write": ("read_write",),
    "all": WORKLOADS,
}


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _oversell_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--oversell-targets",
        default="xaproxy-xa,xaproxy-at",
        help="oversell targets to run (xaproxy-xa,xaproxy-at)",
    )


def _check_oversell_targets(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.oversell_targets = tuple(t.strip() for t in args.oversell_targets.split(",") if t.strip())
    for t in args.oversell_targets:
        if t not in ("xaproxy-xa", "xaproxy-at"):
            p.error(f"unknown oversell target {t!r}")


def _big_result_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the bigresults workload and of the peers (Spider)."""
    p.add_argument(
        "--sysbench-targets",
        default="direct,haproxy,xaproxy,xaproxy-sharded,spider",
        help="sysbench targets to run (direct,haproxy,xaproxy,xaproxy-sharded,spider)",
    )
    p.add_argument(
        "--big-rows",
        type=int,
        help="rows of the slow reader's result and of the fan-out GROUP BY (2000000; quick 200000)",
    )
    p.add_argument(
        "--slow-read-time", type=float, help="seconds the slow reader reads (10; quick 3)"
    )
    p.add_argument(
        "--slow-read-rate", type=int, default=20000, help="rows per second it reads (20000)"
    )
    p.add_argument(
        "--latency-clients",
        type=int,
        default=4,
        help="point-select clients during the fan-out GROUP BY (4)",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks xaproxy against direct MariaDB, haproxy and hand-written XA "
        "on three local MariaDB servers it starts itself. See bench/README.md.",
    )
    p.add_argument("--quick", action="store_true", help="short runs for a smoke test")
    p.add_argument(
        "--only",
        action="append",
        metavar="WORKLOAD",
        help=f"run only these workloads ({', '.join(WORKLOADS)}, or 'sysbench'); "
        "repeat or separate with commas",
    )
    p.add_argument("--sysbench-time", type=float, help="seconds per sysbench run (15; quick 3)")
    p.add_argument("--threads", type=_ints, help="sysbench threads (1,8,64; quick 1,8)")
    p.add_argument("--tables", type=int, default=2, help="sysbench --tables (2)")
    p.add_argument("--table-size", type=int, help="sysbench --table-size (10000; quick 1000)")
    p.add_argument(
        "--warmup", type=float, help="unreported warm-up seconds per sysbench target (3; quick 1)"
    )
    p.add_argument("--transfer-time", type=float, help="seconds per transfer run (20; quick 3)")
    p.add_argument(
        "--transfer-clients", type=_ints, help="concurrent transfer clients (64,500; quick 16,64)"
    )
    p.add_argument(
        "--accounts-per-shard", type=int, help="accounts on each of s0, s1 (5000; quick 1000)"
    )
    p.add_argument(
        "--transfer-targets",
        default="xaproxy-xa,xaproxy-at,handwritten-xa,spider,spider-xa",
        help="transfer targets to run (xaproxy-xa,xaproxy-at,handwritten-xa,spider,spider-xa)",
    )
    p.add_argument("--oversell-clients", type=int, help="oversell clients (500; quick 100)")
    p.add_argument("--connections", type=int, help="idle connections to open (10000; quick 1000)")
    _oversell_arguments(p)
    _big_result_arguments(p)
    p.add_argument("--pool-size", type=int, default=64, help="xaproxy pool_size per shard (64)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="xaproxy worker processes (1: on 2 cores shared with sysbench and MariaDB a "
        "second worker costs more than it gives)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "RESULTS.md",
        help="where to write the Markdown results (bench/RESULTS.md)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record a py-spy profile (raw format) of xaproxy during every xaproxy run into DIR",
    )
    p.add_argument(
        "--keep-tmp", action="store_true", help="keep the temporary directory (logs, data)"
    )
    args = p.parse_args(argv)
    selected: list[str] = []
    for item in args.only or ["all"]:
        for name in item.split(","):
            name = name.strip()
            if not name:
                continue
            expanded = ALIASES.get(name, (name,))
            for w in expanded:
                if w not in WORKLOADS:
                    p.error(
                        f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}, sysbench"
                    )
                if w not in selected:
                    selected.append(w)
    args.workloads = selected
    args.transfer_targets = tuple(t.strip() for t in args.transfer_targets.split(",") if t.strip())
    for t in args.transfer_targets:
        if t not in ("xaproxy-xa", "xaproxy-at", "handwritten-xa", "spider", "spider-xa"):
            p.error(f"unknown transfer target {t!r}")
    args.sysbench_targets = tuple(t.strip() for t in args.sysbench_targets.split(",") if t.strip())
    bad = [t for t in args.sysbench_targets if t not in SYSBENCH_TARGETS]
    if bad:
        p.error(f"unknown sysbench target {bad[0]!r}")
    _check_oversell_targets(p, args)
    q = args.quick
    defaults = {
        "sysbench_time": 3.0 if q else 15.0,
        "threads": [1, 8] if q else [1, 8, 64],
        "table_size": 1000 if q else 10000,
        "warmup": 1.0 if q else 3.0,
        "transfer_time": 3.0 if q else 20.0,
        "transfer_clients": [16, 64] if q else [64, 500],
        "accounts_per_shard": 1000 if q else 5000,
        "oversell_clients": 100 if q else 500,
        "connections": 1000 if q else 10000,
        "big_rows": 200_000 if q else 2_000_000,
        "slow_read_time": 3.0 if q else 10.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sigterm(signum: int, frame: Any) -> None:
    # Handled like Ctrl-C, by whichever SIGINT handler is active (asyncio's or Python's).
    os.kill(os.getpid(), signal.SIGINT)


def _bigresults_phase(args: argparse.Namespace, harness: Any, loop_runner: Any) -> tuple:
    from . import bigresults

    bopts = bigresults.BigResultOptions(
        rows=args.big_rows,
        slow_read_time=args.slow_read_time,
        slow_read_rate=args.slow_read_rate,
        latency_clients=args.latency_clients,
        baseline_time=min(3.0, args.slow_read_time),
    )
    return ("bigresults", bopts, lambda o: bigresults.run(harness, o, _log, loop_runner.run))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import uvloop

    from xaproxy.devkit.processes import raise_nofile_limit

    from . import connscale, oversell, report, sysbench, transfers
    from .harness import Harness

    # Ctrl-C must stop the run even when the shell started us with SIGINT ignored
    # (a background job); SIGTERM is turned into the same orderly stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    raise_nofile_limit()
    command = (
        "python -m bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    harness = Harness(
        pool_size=args.pool_size,
        workers=args.workers,
        keep_tmp=args.keep_tmp,
        profile_dir=args.profile,
    )
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    machine: dict[str, str] = {}
    failed: BaseException | None = None
    phase_failures: list[str] = []
    started = time.monotonic()
    _log(f"temporary directory {harness.tmp}; starting 3 MariaDB servers")
    loop_runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    try:
        harness.start()
        ports = ", ".join(f"{s.name}:{s.port}" for s in harness.cluster.servers)
        _log(f"shards up ({ports}); direct target is s0")
        machine = report.machine_info(harness.mariadb_version())
        fingerprint = report.source_fingerprint(PROJECT_ROOT)
        machine["xaproxy sources (sha256 of xaproxy/**/*.py)"] = fingerprint
        sb_workloads = [
            w
            for w, key in (("oltp_point_select", "point_select"), ("oltp_read_write", "read_write"))
            if key in args.workloads
        ]
        phases: list[tuple[str, Any, Any]] = []
        if sb_workloads:
            opts = sysbench.SysbenchOptions(
                tables=args.tables,
                table_size=args.table_size,
                seconds=args.sysbench_time,
                threads=args.threads,
                workloads=sb_workloads,
                warmup=args.warmup,
            )
            targets = args.sysbench_targets
            phases.append(("sysbench", opts, lambda o: sysbench.run(harness, o, _log, targets)))
        if "transfers" in args.workloads:
            topts = transfers.TransferOptions(
                clients=args.transfer_clients,
                seconds=args.transfer_time,
                accounts_per_shard=args.accounts_per_shard,
                targets=args.transfer_targets,
            )
            phases.append(
                ("transfers", topts, lambda o: transfers.run(harness, o, _log, loop_runner.run))
            )
        if "oversell" in args.workloads:
            oopts = oversell.OversellOptions(
                clients=args.oversell_clients, targets=args.oversell_targets
            )
            phases.append(
                ("oversell", oopts, lambda o: oversell.run(harness, o, _log, loop_runner.run))
            )
        if "connections" in args.workloads:
            copts = connscale.ConnOptions(connections=args.connections)
            phases.append(
                ("connections", copts, lambda o: connscale.run(harness, o, _log, loop_runner.run))
            )
        if "bigresults" in args.workloads:
            phases.append(_bigresults_phase(args, harness, loop_runner))
        for name, phase_opts, phase in phases:
            try:
                rows += phase(phase_opts)
            except Exception as exc:
                # One broken workload must not cost the others' results.
                _log(f"{name} failed: {exc!r}")
                notes.append(f"workload {name} failed: {str(exc)[:500]}")
                phase_failures.append(name)
            finally:
                notes += phase_opts.notes
        machine["load average at end (1/5/15 min)"] = " / ".join(
            f"{x:.2f}" for x in os.getloadavg()
        )
        if report.source_fingerprint(PROJECT_ROOT) != fingerprint:
            notes.append(
                "the xaproxy sources changed while the benchmark ran: proxies started later "
                "ran newer code than earlier ones; run it again for a consistent table"
            )
    except KeyboardInterrupt:
        failed = KeyboardInterrupt()
        _log("interrupted; stopping everything")
    except Exception as exc:
        failed = exc
        _log(f"benchmark failed: {exc!r}")
    finally:
        # A second Ctrl-C must not leave servers behind half-stopped.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            loop_runner.close()
        except BaseException:
            pass
        try:
            harness.close()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _log(f"all targets and shards stopped ({time.monotonic() - started:.0f} s)")

    if isinstance(failed, KeyboardInterrupt):
        return 130
    if not rows:
        if failed is not None:
            raise failed
        return 1
    if failed is not None:
        notes.append(f"the run stopped early: {failed!r}")
    rows = report.sort_rows(rows)
    report.add_ratios(rows)
    settings = {
        "workloads": ", ".join(args.workloads),
        "sysbench": (
            f"--tables={args.tables} --table-size={args.table_size}, "
            f"{args.sysbench_time:g} s per run, "
            f"threads {','.join(map(str, args.threads))}, --db-ps-mode=auto, --auto_inc=off, "
            f"{args.warmup:g} s unreported warm-up per target"
        ),
        "transfers": (
            f"{2 * args.accounts_per_shard} accounts (s0 even ids, s1 odd ids), "
            f"{args.transfer_time:g} s per run, "
            f"clients {','.join(map(str, args.transfer_clients))}; "
            "clients are asyncio coroutines with one asyncmy connection each, in one uvloop process"
        ),
        "oversell": f"{args.oversell_clients} clients, one purchase each, stock 100",
        "connections": f"{args.connections} idle connections (raw asyncio login client)",
        "bigresults": (
            f"{args.big_rows} rows of ~200 bytes; slow reader {args.slow_read_rate} rows/s for "
            f"{args.slow_read_time:g} s; {args.latency_clients} point-select clients during the "
            "fan-out GROUP BY"
        ),
        "xaproxy": (
            f"workers {args.workers} (connection scale: 1), pool_size {args.pool_size} per "
            "shard and worker, 3 shards s0..s2"
        ),
    }
    text = report.markdown(rows, machine, settings, notes, command)
    print(report.table(rows))
    targets = report.product_targets(rows)
    if targets:
        print()
        print("\n".join(targets))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    _log(f"wrote {args.output}")
    checks_ok = all(r.get("ok", True) for r in rows if r["workload"] in ("transfers", "oversell"))
    return 0 if checks_ok and failed is None and not phase_failures else 1
