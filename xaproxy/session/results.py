"""Result sets the proxy builds itself (answers that never reach a shard)."""

from __future__ import annotations

from ..protocol import wire
from ..protocol.binary import make_row_converter
from ..protocol.constants import FieldType, Status
from ..protocol.stream import PacketStream


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
    out.write(wire.lenenc_int(len(columns)))
    for column in columns:
        out.write(column.encode())
    if not deprecate_eof:
        out.write(wire.eof_packet(status))
    convert = make_row_converter([(c.type, c.flags) for c in columns]) if binary else None
    for row in rows:
        payload = wire.text_row(row)
        out.write(convert(payload) if convert else payload)
    out.write(wire.end_of_rows(status, 0, deprecate_eof))


def column_for(name: str, value: object) -> wire.ColumnDef:
    """A column definition fitting a value the proxy computed."""
    if isinstance(value, (bool, int)):
        return wire.ColumnDef(
            name, type=FieldType.LONGLONG, charset=63, length=21, flags=0x80 | 0x01
        )
    if value is None:
        return wire.ColumnDef(name, type=FieldType.NULL, charset=63, length=0)
    return wire.ColumnDef(name, type=FieldType.VAR_STRING, length=max(64, len(str(value)) * 4))
