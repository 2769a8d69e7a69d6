"""Relays one statement's results from a shard to the client.

Rows pass through as the shard sent them (text protocol) or are re-encoded
row by row into the binary protocol for prepared statements; the proxy only
rewrites the framing the client negotiated and the status bits it owns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from .. import errors
from ..protocol import wire
from ..protocol.constants import LOCAL_INFILE_HEADER, SESSION_OWNED_STATUS, Status
from ..protocol.stream import PacketStream
from ..shards.backend import Backend
from .local_file import relay_file

# Flush to the client whenever this much is queued, so large results stream
# with bounded memory instead of piling up in the proxy.
_FLUSH_BYTES = 256 * 1024

RowConverterFactory = Callable[[list[tuple[int, int]]], Callable[[bytes], bytes]]


@dataclass(slots=True)
class ResultSummary:
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    columns: int = 0
    rows: int = 0
    backend_status: int = 0
    error: errors.BackendError | None = None
    ended_with_rows: bool = False  # the last result was a result set (not an OK)
    last_rows: int = 0  # the rows of the last result set
    last_affected: int = 0  # the affected rows of the last OK


async def forward_result(
    backend: Backend,
    out: PacketStream,
    *,
    session_status: int,
    more_follows: bool,
    client_deprecate_eof: bool,
    binary_rows: RowConverterFactory | None = None,
) -> ResultSummary:
    """Forwards every result of the command just sent on `backend`.

    A shard error before any result raises BackendError (nothing was written);
    an error in the middle of a result set is forwarded and reported in the summary.
    """
    summary = ResultSummary()
    first = True
    while True:
        payload = await backend.read()
        if first and payload and payload[0] == LOCAL_INFILE_HEADER:  # LOAD DATA LOCAL
            payload = await relay_file(backend, out, payload)
        if wire.is_err(payload):
            backend.status &= ~Status.MORE_RESULTS_EXISTS
            error = wire.parse_err(payload)
            if first:
                raise error
            out.write(payload)
            summary.error = error
            return summary
        first = False
        if payload[0] == 0x00:
            ok = wire.parse_ok(payload)
            backend.status = ok.status
            summary.affected_rows += ok.affected_rows
            if ok.last_insert_id:
                summary.last_insert_id = ok.last_insert_id
                backend.last_insert_id = ok.last_insert_id
            summary.warnings = ok.warnings
            summary.ended_with_rows = False
            summary.last_affected = ok.affected_rows
            more = bool(ok.status & Status.MORE_RESULTS_EXISTS)
            status = _client_status(ok.status, session_status, more or more_follows)
            out.write(wire.ok_reply(status, ok, out.session_track))
        else:
            more = await _forward_rows(
                backend,
                out,
                payload,
                summary,
                session_status,
                more_follows,
                client_deprecate_eof,
                binary_rows,
            )
            if summary.error is not None:
                return summary
        summary.backend_status = backend.status
        if not more:
            return summary


async def _forward_rows(
    backend: Backend,
    out: PacketStream,
    first: bytes,
    summary: ResultSummary,
    session_status: int,
    more_follows: bool,
    client_deprecate_eof: bool,
    binary_rows: RowConverterFactory | None,
) -> bool:
    count, _ = wire.read_lenenc_int(first, 0)
    count = count or 0
    summary.columns = count
    out.write(first)
    coldefs = []
    for _ in range(count):
        coldef = await backend.read()
        coldefs.append(coldef)
        out.write_column(coldef)
    if not backend.deprecate_eof:
        await backend.read()  # the shard's EOF after the column definitions
    if not client_deprecate_eof:
        out.write(wire.eof_packet(session_status))
    convert = None
    if binary_rows is not None:
        convert = _cached_converter(binary_rows, tuple(coldefs))
    read = backend.read
    rows_end = wire.rows_end
    write = out.write
    deprecate_eof = backend.deprecate_eof
    row_run = backend.row_run if convert is None else None
    rows = 0
    while True:
        if row_run is not None:
            # the rows already received go out as one run of wire bytes
            run, count, next_seq = row_run(out.seq)
            if count:
                out.write_wire(run, next_seq)
                rows += count
                if out.pending > _FLUSH_BYTES:
                    await out.flush()
                continue
        payload = await read()
        head = payload[0] if payload else 0
        end = rows_end(payload, deprecate_eof) if head == 0xFE else None
        if end is not None:
            status, warnings = end
            backend.status = status
            more = bool(status & Status.MORE_RESULTS_EXISTS)
            summary.warnings = warnings
            summary.rows += rows
            summary.ended_with_rows = True
            summary.last_rows = rows
            status = _client_status(status, session_status, more or more_follows)
            if status & Status.SESSION_STATE_CHANGED:
                write(
                    wire.end_of_rows_tracked(
                        status,
                        warnings,
                        client_deprecate_eof,
                        out.session_track,
                        True,
                        wire.ok_state(wire.parse_ok(payload)) if deprecate_eof else b"",
                    )
                )
            else:
                write(wire.end_of_rows(status, warnings, client_deprecate_eof))
            return more
        if head == 0xFF:
            backend.status &= ~Status.MORE_RESULTS_EXISTS
            summary.error = wire.parse_err(payload)
            write(payload)
            return False
        write(convert(payload) if convert is not None else payload)
        rows += 1
        if out.pending > _FLUSH_BYTES:
            await out.flush()


@functools.lru_cache(maxsize=1024)
def _cached_converter(factory: RowConverterFactory, coldefs: tuple[bytes, ...]) -> Callable:
    """Row converters by column definitions: a prepared statement's result repeats them."""
    return factory([wire.column_type_and_flags(c)[:2] for c in coldefs])


def _client_status(backend_status: int, session_status: int, more: bool) -> int:
    status = (backend_status & ~SESSION_OWNED_STATUS) | session_status
    if more:
        status |= Status.MORE_RESULTS_EXISTS
    return status
