"""Summarize py-spy raw profiles: ``python -m bench.pyspy_top FILE... [--top N] [--match TEXT]``.

A raw profile (``py-spy record -f raw``, or ``python -m bench --profile DIR``)
has one collapsed stack per line, ``frame;frame;...;frame count``, each frame
``function (file:line)``. Printed: the share of samples whose innermost frame is
each function (self time), and the share of samples with each matching
function anywhere on the stack (inclusive time; by default xaproxy's own
functions).
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> tuple[str, str]:
    """('function (short/file.py)', file) of one frame."""
    frame = frame.strip()
    m = _FRAME.match(frame)
    if not m:
        return frame, ""
    path = m.group("file")
    short = path
    for marker in ("/xaproxy/", "site-packages/", "/lib/python3"):
        if marker in path:
            short = path.split(marker, 1)[1]
            if marker == "/xaproxy/":
                short = "xaproxy/" + short
            break
    return f"{m.group('func')} ({short})", path


def summarize(paths: list[Path], top: int, match: str) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_name(f) for f in stack.split(";")]
            total += count
            self_counts[frames[-1][0]] += count
            seen = set()
            for name, file in frames:
                if match in file and name not in seen:
                    seen.add(name)
                    inclusive[name] += count
    if total == 0:
        return "no samples"
    out = [f"{total} samples in {len(paths)} file(s)", "", "self (innermost frame):"]
    for name, count in self_counts.most_common(top):
        out.append(f"  {100 * count / total:5.1f}%  {name}")
    out += ["", f"inclusive (functions whose file contains {match!r}):"]
    for name, count in inclusive.most_common(top):
        out.append(f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pyspy_top", description=__doc__)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--match", default="xaproxy/", help="file filter for the inclusive list")
    args = p.parse_args(argv)
    print(summarize(args.files, args.top, args.match))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
