"""The session's small answers: OK and locally made result sets, with its status bits."""

from __future__ import annotations

from ..protocol import wire
from ..protocol.constants import Status
from ..protocol.resultset import write_rows
from .state import SessionState

_MORE = int(Status.MORE_RESULTS_EXISTS)


def ok(
    s: SessionState,
    more: bool,
    affected: int = 0,
    warnings: int = 0,
    *,
    insert_id: int = 0,
    info: str = "",
    state: bytes = b"",
) -> None:
    """The OK of a statement the session answers or assembles (`info`: the text MariaDB
    gives INSERT ... SELECT and LOAD DATA, `Records: n ...`; `state`: the session-state
    changes a client that tracks them is told, session/tracking.py)."""
    status = s.status()
    if more:
        status |= _MORE
    tail = wire.lenenc_bytes(info.encode()) if info else b""
    if not s.out.session_track:
        state = b""
    s.out.write(
        wire.ok_packet(status, affected, insert_id, min(warnings, 0xFFFF), tail, state=state)
    )
    s.note_result(affected=affected)


def rows(
    s: SessionState, columns: list[wire.ColumnDef], values: list[list], more: bool, binary: bool
) -> None:
    write_rows(s.out, columns, values, s.status(), s.deprecate_eof, binary, more)
    s.note_result(rows=len(values))
