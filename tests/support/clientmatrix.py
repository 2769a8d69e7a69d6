"""Run one client script against MariaDB directly and through the proxy, and compare.

The promise of the proxy is that an unchanged application behaves as on one
MariaDB. The only honest test of that is the application's own client library,
run twice: once against a plain MariaDB and once through the proxy. A client
script (tests/clients/<language>/...) prints a transcript, one JSON object per
line, each with a ``step`` label and what the client saw (rows, error code and
message, affected rows, last insert id). This module runs the script, parses the
transcript and finds the first step where the two runs differ.

Scripts read where to connect from the environment (``XAP_HOST``, ``XAP_PORT``,
``XAP_USER``, ``XAP_PASSWORD``, ``XAP_DATABASE``), which schema layout they run
on (``XAP_SCHEMA``: ``unsharded`` or ``sharded``; a script may skip steps the
sharded layout refuses, identically in both runs) and a scratch directory of
their own (``XAP_WORKDIR``). They never learn whether the server is the proxy.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A script that hangs (a proxy that never answers) is stopped and reported, not waited for.
SCRIPT_TIMEOUT_S = 240


@dataclass(frozen=True)
class Endpoint:
    """Where a script connects: a MariaDB server or the proxy, and the database to use."""

    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True)
class ClientScript:
    """How to run one client's script; ``sharded`` says whether it runs on the sharded layout."""

    name: str
    command: tuple[str, ...]
    cwd: Path
    sharded: bool = True
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Transcript:
    """What one run of a script printed, and how it ended."""

    steps: list[dict[str, Any]]
    returncode: int | None
    stderr: str
    command: Sequence[str]

    def describe(self) -> str:
        """The run's end and the tail of its stderr, for failure messages."""
        tail = "\n".join(self.stderr.splitlines()[-30:])
        return f"command: {' '.join(self.command)}\nexit: {self.returncode}\nstderr tail:\n{tail}"


class ScriptError(AssertionError):
    """The direct run of a script failed: the script is wrong, not the proxy."""


def parse_transcript(stdout: str) -> list[dict[str, Any]]:
    """One step per non-empty stdout line; a line that is not a JSON step is kept as ``raw``."""
    steps: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            step = json.loads(line)
        except ValueError:
            step = None
        if not isinstance(step, dict) or "step" not in step:
            step = {"step": "(not a transcript line)", "raw": line}
        steps.append(step)
    return steps


def run_script(script: ClientScript, endpoint: Endpoint, schema: str, workdir: Path) -> Transcript:
    """Runs ``script`` against ``endpoint``; its exit is appended as a final ``exit`` step.

    A non-zero exit or a timeout is part of the transcript (so a proxy that makes a
    client crash shows as a difference at the step where it happened), stderr is kept
    for the failure message but never compared (it holds timings and paths).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(script.env)
    env.update(
        {
            "XAP_HOST": endpoint.host,
            "XAP_PORT": str(endpoint.port),
            "XAP_USER": endpoint.user,
            "XAP_PASSWORD": endpoint.password,
            "XAP_DATABASE": endpoint.database,
            "XAP_SCHEMA": schema,
            "XAP_WORKDIR": str(workdir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    try:
        proc = subprocess.run(
            script.command,
            cwd=script.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=SCRIPT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        steps = parse_transcript(out or "")
        steps.append({"step": "exit", "timeout_s": SCRIPT_TIMEOUT_S})
        return _kept(Transcript(steps, None, err or "", script.command), workdir)
    steps = parse_transcript(proc.stdout)
    steps.append({"step": "exit", "code": proc.returncode})
    return _kept(Transcript(steps, proc.returncode, proc.stderr, script.command), workdir)


def _kept(transcript: Transcript, workdir: Path) -> Transcript:
    """Writes the transcript next to the run's scratch files, for a look after a failure."""
    with open(workdir / "transcript.jsonl", "w", encoding="utf-8") as out:
        for step in transcript.steps:
            out.write(json.dumps(step, ensure_ascii=False, sort_keys=True) + "\n")
    (workdir / "stderr.txt").write_text(transcript.stderr, encoding="utf-8")
    return transcript


@dataclass
class Comparison:
    """The steps where two transcripts differ, split by whether they were expected to."""

    unexpected: list[str]
    unexpected_labels: list[str]
    expected_seen: set[str]
    expected_missing: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.expected_missing


def _dump(step: dict[str, Any] | None) -> str:
    if step is None:
        return "(no such step: the transcript ended before it)"
    return json.dumps(step, indent=1, sort_keys=True, ensure_ascii=False)


def _step_diff(index: int, direct: dict[str, Any] | None, proxied: dict[str, Any] | None) -> str:
    label = (direct or proxied or {}).get("step")
    lines = difflib.unified_diff(
        _dump(direct).splitlines(),
        _dump(proxied).splitlines(),
        fromfile="direct MariaDB",
        tofile="through the proxy",
        lineterm="",
        n=2,
    )
    return f"step #{index} {label!r}:\n" + "\n".join(lines)


def _is_restore(step: dict[str, Any] | None) -> bool:
    """A ``*.restore`` step resets data so one defect does not cascade; its result is not compared."""
    return step is not None and str(step.get("step", "")).endswith(".restore")


def _matching(label: str, patterns: Mapping[str, str]) -> list[str]:
    return [p for p in patterns if fnmatch.fnmatchcase(label, p.removesuffix("+"))]


def compare(
    direct: Sequence[dict[str, Any]],
    proxied: Sequence[dict[str, Any]],
    expected: Mapping[str, str] | None = None,
    unstable: Mapping[str, str] | None = None,
) -> Comparison:
    """Compares step by step, in order.

    ``expected`` maps label patterns (fnmatch) to a known defect: a differing step
    whose label matches is accepted, and a pattern that matches no differing step is
    reported missing, so an entry cannot outlive its defect. A pattern ending in
    ``+`` also accepts every difference after its step (a client that cannot go on,
    such as one that cannot connect). ``unstable`` patterns may differ or not: for
    defects whose outcome depends on which pooled shard connection serves the step.
    """
    expected = dict(expected or {})
    unstable = dict(unstable or {})
    unexpected: list[str] = []
    labels: list[str] = []
    seen: set[str] = set()
    cascading = False
    for index in range(max(len(direct), len(proxied))):
        a = direct[index] if index < len(direct) else None
        b = proxied[index] if index < len(proxied) else None
        if a == b or _is_restore(a) or _is_restore(b):
            continue
        names = {str(step.get("step")) for step in (a, b) if step is not None}
        patterns = sorted({p for name in names for p in _matching(name, expected)})
        if patterns:
            seen.update(patterns)
            cascading = cascading or any(p.endswith("+") for p in patterns)
            continue
        if cascading or any(_matching(name, unstable) for name in names):
            continue
        unexpected.append(_step_diff(index, a, b))
        labels.append(str((a or b or {}).get("step")))
    missing = {p: reason for p, reason in expected.items() if p not in seen}
    return Comparison(unexpected, labels, seen, missing)


def explain(
    name: str,
    comparison: Comparison,
    direct: Transcript,
    proxied: Transcript,
) -> str:
    """A failure message: the first unexpected difference, and expected ones that vanished."""
    parts = [f"client {name}: the transcript through the proxy differs from direct MariaDB"]
    if comparison.unexpected:
        parts.append("first differing step:\n" + comparison.unexpected[0])
        if len(comparison.unexpected) > 1:
            rest = ", ".join(comparison.unexpected_labels[1:])
            parts.append(f"later differing steps: {rest}")
    for pattern, reason in comparison.expected_missing.items():
        parts.append(
            f"expected difference {pattern!r} ({reason}) no longer occurs: "
            "the defect looks fixed, remove its entry from EXPECTED_DIFFERENCES"
        )
    parts.append("direct run:\n" + direct.describe())
    parts.append("proxied run:\n" + proxied.describe())
    return "\n\n".join(parts)
