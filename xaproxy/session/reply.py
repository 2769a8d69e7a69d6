"""The session's small answers: OK and locally made result sets, with its status bits."""

from __future__ import annotations

from ..protocol import wire
from ..protocol.constants import Status
from ..protocol.resultset import write_rows
from .state import SessionState

_MORE = int(Status.MORE_RESULTS_EXISTS)


def ok(s: SessionState, more: bool, affected: int = 0, warnings: int = 0) -> None:
    status = s.status()
    if more:
        status |= _MORE
    s.out.write(wire.ok_packet(status, affected, 0, warnings))
    s.note_result(affected=affected)


def rows(
    s: SessionState, columns: list[wire.ColumnDef], values: list[list], more: bool, binary: bool
) -> None:
    write_rows(s.out, columns, values, s.status(), s.deprecate_eof, binary, more)
    s.note_result(rows=len(values))
