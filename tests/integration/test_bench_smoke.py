"""Smoke test of the benchmark harness: ``python -m bench --quick --only transfers``.

The quickest run that still exercises the whole harness: its own three MariaDB
servers, an xaproxy process, asyncio clients, the hand-written XA baseline, the
money check, the Markdown table, and the cleanup. About 30 s on two cores.

AT mode is left out (``--transfer-targets``): with 64 clients and pool_size 64
its commit path waits for pool connections that its own transactions hold, and
the run takes minutes (the pool's 30 s acquire timeout) instead of seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not any(Path(p).exists() for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"))
    and shutil.which("mariadbd") is None,
    reason="mariadb-server is not installed",
)


def test_quick_transfer_benchmark_produces_the_table_and_loses_no_money(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "transfers",
            "--transfer-targets",
            "xaproxy-xa,handwritten-xa",
            "--output",
            str(output),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    elapsed = time.monotonic() - started
    report = (
        f"exit {done.returncode} after {elapsed:.0f}s\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    assert done.returncode == 0, report

    text = output.read_text()
    assert "| workload | target | threads/clients | throughput |" in text, text
    assert "## Machine" in text and "MariaDB" in text, text
    rows = [line for line in text.splitlines() if line.startswith("| transfers |")]
    targets = {(cells[2], cells[3]) for cells in (line.split("|") for line in rows)}
    assert {
        (t, c) for t in (" xaproxy-xa ", " handwritten-xa ") for c in (" 16 ", " 64 ")
    } <= targets, text
    for line in rows:
        assert "money OK" in line, line
    assert "MISMATCH" not in text
    # The table is also printed.
    assert "| transfers | xaproxy-xa |" in done.stdout

    # Nothing left behind: the temporary directory is gone and no process uses it.
    match = re.search(r"temporary directory (\S+);", done.stderr)
    assert match, done.stderr
    tmp = match.group(1)
    assert not Path(tmp).exists(), f"{tmp} was not removed"
    leftovers = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if tmp in cmdline:
            leftovers.append(f"{proc.name}: {cmdline.replace(chr(0), ' ')[:200]}")
    assert not leftovers, leftovers
