"""UPDATE/DELETE ... ORDER BY ... LIMIT over several shards: keys first, then the write.

One server changes the first n rows in the statement's order. Across shards the proxy
reads the primary keys of those rows (plan.OrderedWrite's read: merged in order, limited,
FOR UPDATE so no other transaction changes them meanwhile), then runs the statement
without ORDER BY/LIMIT on exactly those keys, all in one transaction (steps.py), and
answers with MariaDB's counts (`Rows matched: m  Changed: c  Warnings: w` for UPDATE).
Ties in the client's order are broken by the primary key.
"""

from __future__ import annotations

import re

from ..protocol import wire
from ..protocol.binary import LiteralStyle
from ..protocol.constants import Status
from ..routing.plan import KEYS_MARK, OrderedWrite
from . import steps
from .row_literals import literal_writer
from .state import SessionState

_MORE = int(Status.MORE_RESULTS_EXISTS)
_MATCHED = re.compile(rb"Rows matched: (\d+)  Changed: (\d+)")


async def run(s: SessionState, root: OrderedWrite, more: bool, runner: steps.Runner) -> None:
    if root.nothing:  # LIMIT 0
        s.out.write(wire.ok_packet(s.status() | (_MORE if more else 0)))
        s.note_result(affected=0)
        return
    statement = f"{root.verb} ... ORDER BY/LIMIT"
    affected = matched = changed = warnings = 0
    async with steps.as_one_statement(s) as commit_warnings:
        coldefs, rows = await steps.read_rows(s, root.read, runner, statement)
        read_warnings = list(s.warnings)
        style = LiteralStyle(not s.no_backslash_escapes, s.client_charset)
        writers = [literal_writer(c, wire.column_name(c), "", style, statement) for c in coldefs]
        keys = [b", ".join(w(v or b"") for v, w in zip(row, writers, strict=True)) for row in rows]
        if len(coldefs) > 1:
            keys = [b"(" + key + b")" for key in keys]
        del rows
        write_warnings: list[tuple[str, int, str]] = []
        for batch in steps.batches(keys) if keys else []:
            listed = b", ".join(batch).decode("utf-8", "surrogateescape")
            text = root.write.replace(KEYS_MARK, f"{root.keys} IN ({listed})", 1)
            ok = steps.written(await steps.run_held(s, text, runner))
            affected += ok.affected_rows
            warnings += ok.warnings
            write_warnings += s.warnings
            found = _MATCHED.search(ok.info)
            if found is not None:
                matched += int(found.group(1))
                changed += int(found.group(2))
    warnings += len(read_warnings) + len(commit_warnings)
    s.warnings = read_warnings + write_warnings
    info = b""
    if root.verb == "UPDATE":
        text = b"Rows matched: %d  Changed: %d  Warnings: %d" % (matched, changed, warnings)
        info = wire.lenenc_bytes(text)
    status = s.status() | (_MORE if more else 0)
    s.out.write(wire.ok_packet(status, affected, 0, min(warnings, 0xFFFF), info))
    s.note_result(affected=affected)
