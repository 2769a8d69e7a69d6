"""The results table, the ratios, the product targets and the machine description."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Where a row's throughput is compared: the baseline target of its workload.
BASELINE = {
    "oltp_point_select": "direct",
    "oltp_read_write": "direct",
    "transfers": "handwritten-xa",
}
TARGET_ORDER = [
    "direct",
    "haproxy",
    "xaproxy",
    "xaproxy-sharded",
    "spider",
    "handwritten-xa",
    "xaproxy-xa",
    "xaproxy-at",
    "spider-xa",
]
WORKLOAD_ORDER = [
    "oltp_point_select",
    "oltp_read_write",
    "transfers",
    "oversell",
    "connections",
    "slow_reader",
    "fanout_latency",
]


def _first_line(cmd: list[str]) -> str:
    exe = shutil.which(cmd[0])
    if exe is None:
        return "not installed"
    try:
        done = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def source_fingerprint(root: Path) -> str:
    """A short hash of xaproxy's Python sources: which code the proxies ran."""
    digest = hashlib.sha256()
    for path in sorted((root / "xaproxy").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine_info(mariadb_version: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "MariaDB": mariadb_version,
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sysbench": _first_line(["sysbench", "--version"]),
        "haproxy": re.sub(r"\s+-\s+https?://\S+", "", _first_line(["haproxy", "-v"])),
        "load average at start (1/5/15 min)": load,
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    by_key = {(r["workload"], r["target"], r["concurrency"]): r for r in rows}
    for row in rows:
        base = BASELINE.get(row["workload"])
        row["vs_direct"] = None
        row["vs_haproxy"] = None
        if base is None:
            continue
        ref = by_key.get((row["workload"], base, row["concurrency"]))
        if ref is not None and ref["throughput"] > 0:
            row["vs_direct"] = row["throughput"] / ref["throughput"]
        if row["target"].startswith("xaproxy") and row["workload"].startswith("oltp"):
            ha = by_key.get((row["workload"], "haproxy", row["concurrency"]))
            if ha is not None and ha["throughput"] > 0:
                row["vs_haproxy"] = row["throughput"] / ha["throughput"]


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple:
        w = row["workload"]
        t = row["target"]
        return (
            WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else 99,
            row["concurrency"],
            TARGET_ORDER.index(t) if t in TARGET_ORDER else 99,
        )

    return sorted(rows, key=key)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| workload | target | threads/clients | throughput | p50 ms | p95 ms | p99 ms | errors "
        "| vs direct | vs haproxy | check |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    r["workload"],
                    r["target"],
                    str(r["concurrency"]),
                    f"{_num(r['throughput'])} {r['unit']}",
                    _num(r.get("p50")),
                    _num(r.get("p95")),
                    _num(r.get("p99")),
                    str(r.get("errors", "")),
                    _ratio(r.get("vs_direct")),
                    _ratio(r.get("vs_haproxy")),
                    str(r.get("check", "")),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def product_targets(rows: list[dict[str, Any]]) -> list[str]:
    """PASS/FAIL against the targets in bench/README.md, for what was run."""
    out: list[str] = []

    def ratios(workload: str, target: str) -> list[tuple[int, float | None]]:
        return [
            (r["concurrency"], r.get("vs_haproxy"))
            for r in rows
            if r["workload"] == workload and r["target"] == target
        ]

    for workload in ("oltp_point_select", "oltp_read_write"):
        for target, goal in (("xaproxy", 0.8), ("xaproxy-sharded", 0.7)):
            found = ratios(workload, target)
            if not found:
                continue
            if all(v is None for _, v in found):
                out.append(f"- n/a: {workload} through {target} (haproxy was not run)")
                continue
            ok = all(v is not None and v >= goal for _, v in found)
            detail = ", ".join(f"{c} thr {_ratio(v)}" for c, v in found)
            out.append(
                f"- {'PASS' if ok else 'FAIL'}: {workload} through {target} "
                f">= {goal}x haproxy ({detail})"
            )
    xa = [r for r in rows if r["workload"] == "transfers" and r["target"] == "xaproxy-xa"]
    if xa and all(r.get("vs_direct") is None for r in xa):
        out.append("- n/a: XA transfers >= 0.9x hand-written XA (hand-written XA was not run)")
    elif xa:
        ok = all(r.get("vs_direct") is not None and r["vs_direct"] >= 0.9 for r in xa)
        detail = ", ".join(f"{r['concurrency']} clients {_ratio(r.get('vs_direct'))}" for r in xa)
        out.append(f"- {'PASS' if ok else 'FAIL'}: XA transfers >= 0.9x hand-written XA ({detail})")
    out += _spider_targets(rows)
    money = [
        r for r in rows if r["workload"] == "transfers" and not r["target"].startswith("spider")
    ]
    if money:
        ok = all(r.get("ok") for r in money)
        out.append(f"- {'PASS' if ok else 'FAIL'}: zero lost money in every transfer run")
    for r in rows:
        if r["workload"] == "oversell":
            out.append(f"- {'PASS' if r.get('ok') else 'FAIL'}: no oversell ({r['check']})")
        if r["workload"] == "connections":
            kib = r.get("kib_per_conn", 0.0)
            out.append(
                f"- {'PASS' if kib <= 50 and r.get('ok') else 'FAIL'}: "
                "<= 50 KiB per idle connection "
                f"({kib:.1f} KiB, {r['concurrency']} connections, {r['errors']})"
            )
        if r["workload"] == "slow_reader":
            out.append(
                f"- {'PASS' if r.get('ok') else 'FAIL'}: a slow reader ({r['target']}) grows the "
                f"proxy's RSS by < 32 MiB ({r['rss_growth_mib']:.1f} MiB)"
            )
        if r["workload"] == "fanout_latency":
            p99 = r.get("p99")
            out.append(
                f"- {'PASS' if r.get('ok') else 'FAIL'}: point-select p99 < 50 ms during a "
                f"fan-out GROUP BY ({'-' if p99 is None else f'{p99:.1f}'} ms; {r['check']})"
            )
    return out


def _spider_targets(rows: list[dict[str, Any]]) -> list[str]:
    """sharded point_select >= 3x Spider's; atomic xaproxy transfers >= 1.2x Spider's default."""
    out: list[str] = []
    by_key = {(r["workload"], r["target"], r["concurrency"]): r for r in rows}
    pairs = [
        ("oltp_point_select", "xaproxy-sharded", "spider", 3.0, "sharded point_select"),
        ("transfers", "xaproxy-xa", "spider", 1.2, "atomic XA transfers vs Spider's non-atomic"),
    ]
    for workload, ours, theirs, goal, label in pairs:
        found = []
        for (w, t, c), row in sorted(by_key.items(), key=lambda item: item[0][2]):
            ref = by_key.get((w, theirs, c))
            if w == workload and t == ours and ref is not None and ref["throughput"] > 0:
                found.append((c, row["throughput"] / ref["throughput"]))
        if found:
            ok = all(v >= goal for _, v in found)
            detail = ", ".join(f"{c}: {v:.2f}x" for c, v in found)
            out.append(f"- {'PASS' if ok else 'FAIL'}: {label} >= {goal}x Spider ({detail})")
    return out


def markdown(
    rows: list[dict[str, Any]],
    machine: dict[str, str],
    settings: dict[str, str],
    notes: list[str],
    command: str,
) -> str:
    parts = [
        "# xaproxy benchmark results",
        "",
        f"Produced by `{command}` (see bench/README.md for what each workload measures).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Settings",
        "",
        *[f"- {k}: {v}" for k, v in settings.items()],
        "",
        "## Results",
        "",
        table(rows),
        "",
        "Throughput: qps for oltp_point_select (one query per event), tps otherwise; "
        "latencies are per sysbench event / per transfer (including retries) / per purchase "
        "from the common start (oversell) / per login (connections). `vs direct`: throughput "
        "over the baseline of the same workload and concurrency (direct MariaDB for sysbench, "
        "hand-written XA for transfers); `vs haproxy`: xaproxy over haproxy.",
        "",
    ]
    targets = product_targets(rows)
    if targets:
        parts += ["## Product targets", "", *targets, ""]
    details = [
        f"- {r['workload']} / {r['target']} / {r['concurrency']}: {r['note']}"
        for r in rows
        if r.get("note")
    ]
    if details or notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], *details, ""]
    return "\n".join(parts)
