"""Encoding and decoding of the protocol's basic values and of generic packets.

Everything here is a pure function over bytes, so the same code serves the
client side (packets the proxy builds) and the backend side (packets the proxy
inspects while forwarding).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from .. import errors
from .constants import EOF_HEADER, ERR_HEADER, OK_HEADER, FieldType, Status

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_OK_TAIL = struct.Struct("<HH")
_STATE_CHANGED = Status.SESSION_STATE_CHANGED
_FIXED_FIELDS = 12  # of a column definition, after their length byte (0x0c)


def lenenc_int(n: int) -> bytes:
    if n < 0xFB:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def lenenc_bytes(b: bytes) -> bytes:
    return lenenc_int(len(b)) + b


def read_lenenc_int(buf: bytes | memoryview, pos: int) -> tuple[int | None, int]:
    """Returns (value, next position); value is None for the NULL marker 0xFB."""
    try:
        first = buf[pos]
        if first < 0xFB:
            return first, pos + 1
        if first == 0xFB:
            return None, pos + 1
        if first == 0xFC:
            end = pos + 3
        elif first == 0xFD:
            end = pos + 4
        elif first == 0xFE:
            end = pos + 9
        else:
            raise errors.malformed_packet("invalid length-encoded integer")
        if end > len(buf):
            raise errors.malformed_packet("truncated length-encoded integer")
        return int.from_bytes(buf[pos + 1 : end], "little"), end
    except IndexError:
        raise errors.malformed_packet("truncated length-encoded integer")


def read_lenenc_bytes(buf: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    length, pos = read_lenenc_int(buf, pos)
    if length is None:
        return None, pos
    end = pos + length
    if end > len(buf):
        raise errors.malformed_packet("truncated length-encoded string")
    return bytes(buf[pos:end]), end


def read_nul_bytes(buf: bytes | memoryview, pos: int) -> tuple[bytes, int]:
    end = bytes(buf[pos:]).find(b"\0")
    if end < 0:
        raise errors.malformed_packet("missing NUL terminator")
    return bytes(buf[pos : pos + end]), pos + end + 1


# --- packets the proxy sends -------------------------------------------------


def ok_packet(
    status: int,
    affected_rows: int = 0,
    last_insert_id: int = 0,
    warnings: int = 0,
    info: bytes = b"",
    header: int = OK_HEADER,
    state: bytes = b"",
) -> bytes:
    """`info`: the message as MariaDB frames it (length-prefixed, absent when empty);
    `state`: session-state changes for a client that negotiated CLIENT_SESSION_TRACK
    (then the message is always there, empty or not)."""
    if state:
        status |= _STATE_CHANGED
        info = (info or b"\x00") + lenenc_bytes(state)
    body = (
        bytes((header,))
        + lenenc_int(affected_rows)
        + lenenc_int(last_insert_id)
        + _OK_TAIL.pack(status, warnings)
    )
    return body + info if info else body


def ok_reply(status: int, ok: OkInfo, session_track: bool) -> bytes:
    """A shard's OK passed on to the client with the session's status. Shard
    connections track session state: the changes a shard reports go to a client that
    negotiated CLIENT_SESSION_TRACK as they are, and are cut for any other."""
    info = ok.info
    if ok.status & _STATE_CHANGED and session_track:
        status |= _STATE_CHANGED
    else:
        status &= ~_STATE_CHANGED
        if ok.status & _STATE_CHANGED:
            info = ok_message(info)
    return ok_packet(status, ok.affected_rows, ok.last_insert_id, ok.warnings, info)


def end_of_rows_tracked(
    status: int,
    warnings: int,
    deprecate_eof: bool,
    session_track: bool,
    changed: bool,
    state: bytes,
) -> bytes:
    """end_of_rows after shards that reported session-state changes (`changed`; `state`
    when their framing carried them): passed on to a client that tracks them, in its
    framing (an old EOF has room for the status bit only, as MariaDB sends it)."""
    status &= ~_STATE_CHANGED
    if not (session_track and changed):
        return end_of_rows(status, warnings, deprecate_eof)
    status |= _STATE_CHANGED
    if not deprecate_eof or not state:
        return end_of_rows(status, warnings, deprecate_eof)
    return ok_packet(status, warnings=warnings, header=EOF_HEADER, state=state)


def ok_message(info: bytes) -> bytes:
    """The message of an OK's info (as framed, b"" when empty), without state changes."""
    if not info:
        return b""
    length, pos = read_lenenc_int(info, 0)
    return bytes(info[: pos + length]) if length else b""


def ok_state(ok: OkInfo) -> bytes:
    """The session-state changes an OK reports (without their length), or b""."""
    if not ok.status & _STATE_CHANGED or not ok.info:
        return b""
    length, pos = read_lenenc_int(ok.info, 0)
    state, _ = read_lenenc_bytes(ok.info, pos + (length or 0))
    return bytes(state or b"")


def schema_state(database: str) -> bytes:
    """The state change `USE database` reports (session_track_schema)."""
    return b"\x01" + lenenc_bytes(lenenc_bytes(database.encode()))


def eof_packet(status: int, warnings: int = 0) -> bytes:
    return bytes((EOF_HEADER,)) + _OK_TAIL.pack(warnings, status)


def err_packet(code: int, sqlstate: str, message: str) -> bytes:
    state = (sqlstate or "HY000").encode("ascii", "replace")[:5].ljust(5, b"0")
    return b"\xff" + _U16.pack(code) + b"#" + state + message.encode("utf-8", "replace")


def end_of_rows(status: int, warnings: int, deprecate_eof: bool) -> bytes:
    """The packet that ends a result set, in the framing the client negotiated."""
    if deprecate_eof:
        return ok_packet(status, warnings=warnings, header=EOF_HEADER)
    return eof_packet(status, warnings)


@dataclass(slots=True)
class ColumnDef:
    """A column definition the proxy makes up itself (for results it answers locally)."""

    name: str
    type: int = FieldType.VAR_STRING
    charset: int = 45
    length: int = 1024
    flags: int = 0
    decimals: int = 0
    table: str = ""
    schema: str = ""

    def encode(self) -> bytes:
        name = self.name.encode()
        return b"".join(
            (
                b"\x03def",
                lenenc_bytes(self.schema.encode()),
                lenenc_bytes(self.table.encode()),
                lenenc_bytes(self.table.encode()),
                lenenc_bytes(name),
                lenenc_bytes(name),
                b"\x0c",
                struct.pack(
                    "<HIBHB", self.charset, self.length, self.type, self.flags, self.decimals
                ),
                b"\x00\x00",
            )
        )


def text_row(values: list[object]) -> bytes:
    parts = []
    for value in values:
        if value is None:
            parts.append(b"\xfb")
        else:
            if isinstance(value, bytes):
                raw = value
            elif isinstance(value, bool):
                raw = b"1" if value else b"0"
            else:
                raw = str(value).encode()
            parts.append(lenenc_int(len(raw)) + raw)
    return b"".join(parts)


def raw_text_row(values: list[bytes | None]) -> bytes:
    """A text-protocol row payload from raw values (None for SQL NULL)."""
    return b"".join(b"\xfb" if v is None else lenenc_int(len(v)) + v for v in values)


# --- packets the proxy reads from shards ------------------------------------


@dataclass(slots=True)
class OkInfo:
    affected_rows: int
    last_insert_id: int
    status: int
    warnings: int
    info: bytes


def parse_ok(payload: bytes | memoryview) -> OkInfo:
    affected, pos = read_lenenc_int(payload, 1)
    insert_id, pos = read_lenenc_int(payload, pos)
    if pos + 4 <= len(payload):
        status, warnings = _OK_TAIL.unpack_from(payload, pos)
        info = bytes(payload[pos + 4 :])
    else:
        status, warnings, info = 0, 0, b""
    return OkInfo(affected or 0, insert_id or 0, status, warnings, info)


def parse_eof(payload: bytes | memoryview) -> tuple[int, int]:
    """Returns (status, warnings) of an old-style EOF packet."""
    if len(payload) >= 5:
        warnings, status = _OK_TAIL.unpack_from(payload, 1)
        return status, warnings
    return 0, 0


def parse_err(payload: bytes | memoryview) -> errors.BackendError:
    code = _U16.unpack_from(payload, 1)[0] if len(payload) >= 3 else 1105
    if len(payload) >= 9 and payload[3] == 0x23:  # '#'
        state = bytes(payload[4:9]).decode("ascii", "replace")
        message = bytes(payload[9:])
    else:
        state, message = "HY000", bytes(payload[3:])
    return errors.BackendError(code, state, message.decode("utf-8", "replace"))


def is_err(payload: bytes | memoryview) -> bool:
    return len(payload) > 0 and payload[0] == ERR_HEADER


def is_eof(payload: bytes | memoryview) -> bool:
    """An old-style EOF packet (rows never start with 0xFE in packets this short)."""
    return len(payload) < 9 and len(payload) > 0 and payload[0] == EOF_HEADER


def is_terminal_ok(payload: bytes | memoryview) -> bool:
    """The 0xFE-headed OK that ends rows under CLIENT_DEPRECATE_EOF."""
    return len(payload) > 0 and payload[0] == EOF_HEADER and len(payload) < 0xFFFFFF


def rows_end(payload: bytes | memoryview, deprecate_eof: bool) -> tuple[int, int] | None:
    """(status, warnings) when `payload` ends a result set's rows, else None.

    The end is an EOF packet (0xFE, under 9 bytes), or under CLIENT_DEPRECATE_EOF an
    0xFE-headed OK; a row can start with 0xFE only as a huge length prefix.
    """
    if deprecate_eof:
        if is_terminal_ok(payload):
            ok = parse_ok(payload)
            return ok.status, ok.warnings
        return None
    if is_eof(payload):
        return parse_eof(payload)
    return None


def fixed_fields(coldef: bytes | memoryview) -> int:
    """Where a column definition's fixed fields (charset, length, type, flags,
    decimals, filler: 12 bytes) start: they end the packet, after the names and
    MariaDB's extended metadata block when the connection carries one."""
    return len(coldef) - _FIXED_FIELDS


def _after_names(coldef: bytes | memoryview) -> int:
    pos = 0
    for _ in range(6):  # catalog, schema, table, org_table, name, org_name
        length, pos = read_lenenc_int(coldef, pos)
        pos += length or 0
    return pos


@functools.lru_cache(maxsize=4096)
def column_for_client(coldef: bytes, extended: bool) -> bytes:
    """The column definition as a client that did (`extended`) or did not negotiate
    MariaDB's extended metadata reads it: the shard's block kept or dropped, an empty
    block added to a definition that has none (the proxy's own, a MySQL shard's)."""
    pos = _after_names(coldef)
    has_block = len(coldef) - pos != 1 + _FIXED_FIELDS  # the 0x0c and the fields
    return _in_form(coldef, pos, has_block, extended)


def field_list_column(coldef: bytes, has_block: bool, extended: bool) -> bytes:
    """A COM_FIELD_LIST definition (a default value may follow its fixed fields, so
    whether it has the block is the connection's to say) in the client's form."""
    return _in_form(coldef, _after_names(coldef), has_block, extended)


def _in_form(coldef: bytes, pos: int, has_block: bool, extended: bool) -> bytes:
    if has_block == extended:
        return coldef
    if extended:
        return coldef[:pos] + b"\x00" + coldef[pos:]
    length, start = read_lenenc_int(coldef, pos)
    return coldef[:pos] + coldef[start + (length or 0) :]


def column_type_and_flags(coldef: bytes | memoryview) -> tuple[int, int, int]:
    """(type, flags, charset) of a column definition packet, for binary row encoding."""
    charset, _length, ftype, flags = struct.unpack_from("<HIBH", coldef, fixed_fields(coldef))
    return ftype, flags, charset


def column_decimals(coldef: bytes | memoryview) -> int:
    """The decimals of a column definition (31: a float printed in full)."""
    return coldef[fixed_fields(coldef) + 9]


def column_charset_and_length(coldef: bytes | memoryview) -> tuple[int, int]:
    """(collation id, length in bytes) of a column definition packet."""
    charset, length = struct.unpack_from("<HI", coldef, fixed_fields(coldef))
    return charset, length


def column_org_name(coldef: bytes | memoryview) -> str:
    """The underlying column name (empty for expressions)."""
    pos = 0
    for _ in range(5):
        length, pos = read_lenenc_int(coldef, pos)
        pos += length or 0
    name, _ = read_lenenc_bytes(coldef, pos)
    return (name or b"").decode("utf-8", "replace")


def with_org_table(coldef: bytes, renames: dict[bytes, bytes]) -> bytes:
    """The column definition with its org_table (the table's real name) renamed by
    `renames` (a statement that read a table's copy shows the table's own name)."""
    pos = 0
    for _ in range(3):  # catalog, schema, table
        length, pos = read_lenenc_int(coldef, pos)
        pos += length or 0
    org_table, end = read_lenenc_bytes(coldef, pos)
    renamed = renames.get(org_table or b"")
    if renamed is None:
        return coldef
    return coldef[:pos] + lenenc_bytes(renamed) + coldef[end:]


def column_name(coldef: bytes | memoryview) -> str:
    pos = 0
    for _ in range(4):
        length, pos = read_lenenc_int(coldef, pos)
        pos += length or 0
    name, _ = read_lenenc_bytes(coldef, pos)
    return (name or b"").decode("utf-8", "replace")


U16 = _U16
U32 = _U32
