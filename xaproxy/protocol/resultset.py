"""Result sets and statement descriptions the proxy builds itself.

Answers that never reach a shard (local SELECTs, SHOW, XAPROXY commands) and the
COM_STMT_PREPARE_OK reply are made here, in the framing the client negotiated.
"""

from __future__ import annotations

import struct

from . import wire
from .binary import make_row_converter
from .constants import FieldType, Status
from .stream import PacketStream

_PREPARE_OK_HEAD = struct.Struct("<BIHHBH")
_PARAM_DEF = wire.ColumnDef("?", type=FieldType.VAR_STRING, charset=63, length=0).encode()


def write_rows(
    out: PacketStream,
    columns: list[wire.ColumnDef],
    rows: list[list[object]],
    status: int,
    deprecate_eof: bool,
    binary: bool = False,
    more: bool = False,
) -> None:
    if more:
        status |= Status.MORE_RESULTS_EXISTS
    write_columns(out, [column.encode() for column in columns], status, deprecate_eof)
    convert = make_row_converter([(c.type, c.flags) for c in columns]) if binary else None
    for row in rows:
        payload = wire.text_row(row)
        out.write(convert(payload) if convert else payload)
    out.write(wire.end_of_rows(status, 0, deprecate_eof))


def write_columns(
    out: PacketStream, coldefs: list[bytes], status: int, deprecate_eof: bool
) -> None:
    """A result set's head: the column count, the definitions, and EOF unless deprecated."""
    out.write(wire.lenenc_int(len(coldefs)))
    for coldef in coldefs:
        out.write_column(coldef)
    if not deprecate_eof:
        out.write(wire.eof_packet(status))


def column_for(name: str, value: object) -> wire.ColumnDef:
    """A column definition fitting a value the proxy computed."""
    if isinstance(value, (bool, int)):
        return wire.ColumnDef(
            name, type=FieldType.LONGLONG, charset=63, length=21, flags=0x80 | 0x01
        )
    if value is None:
        return wire.ColumnDef(name, type=FieldType.NULL, charset=63, length=0)
    return wire.ColumnDef(name, type=FieldType.VAR_STRING, length=max(64, len(str(value)) * 4))


def write_prepare_ok(
    out: PacketStream,
    statement_id: int,
    columns: list[bytes],
    params: int,
    status: int,
    deprecate_eof: bool,
) -> None:
    """COM_STMT_PREPARE_OK, its parameter definitions and its column definitions."""
    out.write(_PREPARE_OK_HEAD.pack(0, statement_id, len(columns), params, 0, 0))
    if params:
        for _ in range(params):
            out.write_column(_PARAM_DEF)
        if not deprecate_eof:
            out.write(wire.eof_packet(status))
    if columns:
        for coldef in columns:
            out.write_column(coldef)
        if not deprecate_eof:
            out.write(wire.eof_packet(status))


def parse_prepare_ok(payload: bytes) -> tuple[int, int, int]:
    """(statement id, columns, params) of a shard's COM_STMT_PREPARE_OK."""
    _, statement_id, columns, params = struct.unpack_from("<BIHH", payload, 0)
    return statement_id, columns, params
