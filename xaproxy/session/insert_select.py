"""INSERT ... SELECT across shards: the rows are read by a SELECT of their own, then inserted.

MariaDB reads a SELECT's rows and inserts them in one statement. When either side spans
shards the proxy does the same in two steps (plan.InsertSelect): the SELECT is planned
and run as a client's SELECT would be (so it may merge several shards), its result held
(at most steps.HELD_LIMIT bytes; past it nothing is written and the statement is refused),
every value written back as a literal of its own type, and the INSERT ... VALUES made of
them planned and run as a client's: split by shard key, ids generated, one transaction
across its shards. The reply is MariaDB's for an INSERT ... SELECT
(`Records: n  Duplicates: d  Warnings: w`).

In a transaction both steps are the transaction's. In autocommit the read is a statement
of its own just before the write, as any read across shards sees each shard at its own
moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import errors
from ..execution.scatter import one_row_duplicates
from ..protocol import wire
from ..protocol.binary import LiteralStyle
from ..routing.plan import InsertSelect
from . import reply, steps
from .row_literals import literal_writer
from .state import SessionState


async def run(s: SessionState, root: InsertSelect, more: bool, runner: steps.Runner) -> None:
    """Reads the SELECT's rows, inserts them as VALUES, answers as MariaDB's INSERT ... SELECT."""
    coldefs, rows = await steps.read_rows(
        s,
        root.select,
        runner,
        ("an" if root.verb == "INSERT" else "a") + f" {root.verb} ... SELECT",
        escalate=root.duplicates != "ignore",
    )
    read_warnings = list(s.warnings)
    if root.column_types and len(coldefs) != len(root.column_types):
        raise errors.ProxyError(1136, "21S01", "Column count doesn't match value count at row 1")
    types = root.column_types or ("",) * len(coldefs)
    style = LiteralStyle(not s.no_backslash_escapes, s.client_charset)
    writers = [
        literal_writer(c, wire.column_name(c), t, style, f"{root.verb} ... SELECT")
        for c, t in zip(coldefs, types, strict=True)
    ]
    tuples = [
        b"("
        + b", ".join(b"NULL" if v is None else w(v) for v, w in zip(row, writers, strict=True))
        + b")"
        for row in rows
    ]
    del rows
    written = _Written()
    if tuples:
        runs = steps.batches(tuples)
        async with steps.as_one_statement(s, len(runs) > 1) as commit_warnings:
            written = await _insert_batches(s, root, runs, runner)
        written.warnings += len(commit_warnings)
    warnings = len(read_warnings) + written.warnings
    s.warnings = read_warnings + (s.warnings if tuples else [])
    info = f"Records: {len(tuples)}  Duplicates: {written.duplicates}  Warnings: {warnings}"
    reply.ok(s, more, written.affected, warnings, insert_id=written.insert_id, info=info)


@dataclass(slots=True)
class _Written:
    affected: int = 0
    duplicates: int = 0
    warnings: int = 0
    insert_id: int = 0


async def _insert_batches(
    s: SessionState, root: InsertSelect, runs: list[list[bytes]], runner: steps.Runner
) -> _Written:
    written = _Written()
    for batch in runs:
        values = b", ".join(batch).decode("utf-8", "surrogateescape")
        text = f"{root.head} VALUES {values}{root.tail}"
        ok = steps.written(await steps.run_held(s, text, runner))
        written.affected += ok.affected_rows
        written.warnings += ok.warnings
        written.duplicates += _duplicates(ok, len(batch), root.duplicates)
        written.insert_id = written.insert_id or ok.last_insert_id
    if written.insert_id:
        s.last_insert_id = written.insert_id  # the first row's, as MariaDB's
    return written


_DUPLICATES = re.compile(rb"Duplicates: (\d+)")


def _duplicates(ok: wire.OkInfo, rows: int, rule: str) -> int:
    """The Duplicates of the INSERT's info (a one-row INSERT's OK has none)."""
    found = _DUPLICATES.search(ok.info)
    if found is not None:
        return int(found.group(1))
    return one_row_duplicates(rule, ok.affected_rows) if rows == 1 else 0
