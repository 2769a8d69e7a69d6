"""The binary (prepared-statement) protocol, spoken to clients over a text backend.

Clients prepare statements and execute them with COM_STMT_EXECUTE, sending the
parameters in binary form. The proxy runs each execution on the backend as a
plain COM_QUERY with the parameters inlined as SQL literals, and turns the text
result rows it gets back into binary result rows. This module holds the pure
functions for the three steps:

* :func:`parse_execute` / :func:`decode_params` read the COM_STMT_EXECUTE packet;
* :func:`sql_literal` / :func:`inline_params` build the text query;
* :func:`make_row_converter` / :func:`text_row_to_binary` convert result rows.

Everything that reads client or backend bytes raises only
:func:`errors.malformed_packet` (a :class:`errors.ProxyError`) on bad input.
"""

from __future__ import annotations

import datetime
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from .. import errors
from . import wire
from .constants import STRING_TYPES, ColumnFlag, FieldType
from .wire import read_lenenc_int

__all__ = [
    "ExecuteRequest",
    "LiteralStyle",
    "decode_params",
    "inline_params",
    "make_row_converter",
    "parse_execute",
    "sql_literal",
    "statement_id_of",
    "text_row_to_binary",
]

_EXECUTE_HEAD = struct.Struct("<IBI")  # statement id, cursor flags, iteration count
_U32 = struct.Struct("<I")
_DATE = struct.Struct("<HBB")
_DATETIME = struct.Struct("<HBBBBB")
_DATETIME_MICRO = struct.Struct("<HBBBBBI")
_TIME = struct.Struct("<BIBBB")
_TIME_MICRO = struct.Struct("<BIBBBI")

UNSIGNED_PARAM_FLAG = 0x80  # in the flag byte that follows each parameter type


def _truncated(what: str) -> errors.ProxyError:
    return errors.malformed_packet(f"truncated {what}")


# --- COM_STMT_EXECUTE --------------------------------------------------------


@dataclass(slots=True)
class ExecuteRequest:
    statement_id: int
    flags: int  # cursor flags
    # (FieldType, unsigned) per parameter; None when new-params-bound was 0 and the
    # caller must use the types remembered from the previous execution.
    param_types: list[tuple[int, bool]] | None
    null_bitmap: bytes
    raw_values: memoryview | bytes  # the parameter values, after the types


def statement_id_of(payload: bytes | memoryview) -> int:
    """The statement id that starts COM_STMT_EXECUTE/CLOSE/RESET/SEND_LONG_DATA.

    ``payload`` excludes the command byte. MariaDB clients may send 0xFFFFFFFF to
    mean "the statement prepared last"; that is the caller's business.
    """
    if len(payload) < 4:
        raise _truncated("statement id")
    return _U32.unpack_from(payload, 0)[0]


def parse_execute(payload: bytes | memoryview, param_count: int) -> ExecuteRequest:
    """Splits a COM_STMT_EXECUTE payload (without the command byte) into its parts."""
    size = len(payload)
    if size < _EXECUTE_HEAD.size:
        raise _truncated("COM_STMT_EXECUTE header")
    statement_id, flags, _iterations = _EXECUTE_HEAD.unpack_from(payload, 0)
    view = memoryview(payload)
    pos = _EXECUTE_HEAD.size
    if param_count <= 0:
        return ExecuteRequest(statement_id, flags, [], b"", view[pos:])
    bitmap_end = pos + (param_count + 7) // 8
    if bitmap_end + 1 > size:
        raise _truncated("COM_STMT_EXECUTE parameter NULL bitmap")
    null_bitmap = bytes(view[pos:bitmap_end])
    pos = bitmap_end + 1
    param_types: list[tuple[int, bool]] | None = None
    if payload[bitmap_end]:  # new-params-bound; the server treats any non-zero as set
        types_end = pos + 2 * param_count
        if types_end > size:
            raise _truncated("COM_STMT_EXECUTE parameter types")
        raw = view[pos:types_end]
        param_types = [
            (raw[i], bool(raw[i + 1] & UNSIGNED_PARAM_FLAG)) for i in range(0, 2 * param_count, 2)
        ]
        pos = types_end
    return ExecuteRequest(statement_id, flags, param_types, null_bitmap, view[pos:])


# Each decoder takes (buffer, position, unsigned) and returns (value, next position).
_ParamDecoder = Callable[[memoryview | bytes, int, bool], tuple[object, int]]


def _int_decoder(fmt: str) -> _ParamDecoder:
    signed = struct.Struct("<" + fmt.lower())
    unsigned = struct.Struct("<" + fmt.upper())
    size = signed.size

    def decode(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
        if pos + size > len(buf):
            raise _truncated("integer parameter")
        st = unsigned if is_unsigned else signed
        return st.unpack_from(buf, pos)[0], pos + size

    return decode


def _float_decoder(fmt: str) -> _ParamDecoder:
    st = struct.Struct(fmt)
    size = st.size

    def decode(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
        if pos + size > len(buf):
            raise _truncated("floating-point parameter")
        return st.unpack_from(buf, pos)[0], pos + size

    return decode


def _decode_string(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
    length, pos = read_lenenc_int(buf, pos)
    if length is None:
        raise errors.malformed_packet("NULL marker in a string parameter's length")
    end = pos + length
    if end > len(buf):
        raise _truncated("string parameter")
    return bytes(buf[pos:end]), end


def _decode_null(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
    return None, pos


def _read_temporal(buf: memoryview | bytes, pos: int) -> tuple[tuple[int, ...], int]:
    """(year, month, day, hour, minute, second, micro) of a binary DATE/DATETIME value."""
    if pos >= len(buf):
        raise _truncated("date parameter")
    length = buf[pos]
    start = pos + 1
    end = start + length
    if end > len(buf):
        raise _truncated("date parameter")
    if length == 0:
        return (0, 0, 0, 0, 0, 0, 0), end
    if length == 4:
        return (*_DATE.unpack_from(buf, start), 0, 0, 0, 0), end
    if length == 7:
        return (*_DATETIME.unpack_from(buf, start), 0), end
    if length == 11:
        return _DATETIME_MICRO.unpack_from(buf, start), end
    raise errors.malformed_packet(f"date parameter of length {length}")


def _decode_date(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
    (year, month, day, *_), end = _read_temporal(buf, pos)
    try:
        return datetime.date(year, month, day), end
    except ValueError:
        # Zero dates and dates with zero parts are valid MySQL values Python
        # cannot hold; pass them on as text and let the server judge them.
        return b"%04d-%02d-%02d" % (year, month, day), end


def _decode_datetime(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
    parts, end = _read_temporal(buf, pos)
    if parts[6] > 999_999:
        # no datetime has them; a 4-byte field may say 2^32 - 1 (Python's datetime overflows)
        raise errors.malformed_packet("datetime parameter with microseconds over 999999")
    try:
        return datetime.datetime(*parts), end
    except ValueError:
        text = b"%04d-%02d-%02d %02d:%02d:%02d" % parts[:6]
        if parts[6]:
            text += b".%06d" % parts[6]
        return text, end


def _decode_time(buf: memoryview | bytes, pos: int, is_unsigned: bool) -> tuple[object, int]:
    if pos >= len(buf):
        raise _truncated("time parameter")
    length = buf[pos]
    start = pos + 1
    end = start + length
    if end > len(buf):
        raise _truncated("time parameter")
    if length == 0:
        return datetime.timedelta(0), end
    if length == 8:
        negative, days, hours, minutes, seconds = _TIME.unpack_from(buf, start)
        micro = 0
    elif length == 12:
        negative, days, hours, minutes, seconds, micro = _TIME_MICRO.unpack_from(buf, start)
    else:
        raise errors.malformed_packet(f"time parameter of length {length}")
    try:
        value = datetime.timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds, microseconds=micro
        )
    except OverflowError:
        raise errors.malformed_packet("time parameter out of range")
    return (-value if negative else value), end


_PARAM_DECODERS: dict[int, _ParamDecoder] = {
    FieldType.TINY: _int_decoder("b"),
    FieldType.SHORT: _int_decoder("h"),
    FieldType.YEAR: _int_decoder("h"),
    FieldType.LONG: _int_decoder("i"),
    FieldType.INT24: _int_decoder("i"),
    FieldType.LONGLONG: _int_decoder("q"),
    FieldType.FLOAT: _float_decoder("<f"),
    FieldType.DOUBLE: _float_decoder("<d"),
    FieldType.NULL: _decode_null,
    FieldType.DATE: _decode_date,
    FieldType.DATETIME: _decode_datetime,
    FieldType.TIMESTAMP: _decode_datetime,
    FieldType.TIME: _decode_time,
}
for _string_type in (
    FieldType.DECIMAL,
    FieldType.NEWDECIMAL,
    *STRING_TYPES,
    FieldType.ENUM,
    FieldType.SET,
    FieldType.BIT,
    FieldType.GEOMETRY,
):
    _PARAM_DECODERS[_string_type] = _decode_string
# Plain-int keys make lookups by the raw type byte as cheap as possible.
_PARAM_DECODERS = {int(k): v for k, v in _PARAM_DECODERS.items()}


def decode_params(
    req: ExecuteRequest,
    param_types: list[tuple[int, bool]],
    long_data: dict[int, bytes],
) -> list[object]:
    """The parameter values of an execution, as Python values (see sql_literal).

    A parameter sent earlier with COM_STMT_SEND_LONG_DATA takes that value (as
    bytes, even if the NULL bit is set, as the server does) and has no bytes in
    ``raw_values``.
    """
    count = len(param_types)
    bitmap = req.null_bitmap
    if len(bitmap) != (count + 7) // 8:
        raise errors.malformed_packet(f"NULL bitmap of {len(bitmap)} bytes for {count} parameters")
    buf = req.raw_values
    pos = 0
    values: list[object] = []
    append = values.append
    decoders = _PARAM_DECODERS
    try:
        for i, (ftype, unsigned) in enumerate(param_types):
            if long_data and i in long_data:
                append(long_data[i])
                continue
            if bitmap[i >> 3] & (1 << (i & 7)):
                append(None)
                continue
            decoder = decoders.get(ftype)
            if decoder is None:
                raise errors.malformed_packet(f"unknown type 0x{ftype:02x} of parameter {i + 1}")
            value, pos = decoder(buf, pos, unsigned)
            append(value)
    except (struct.error, IndexError):
        raise _truncated("parameter values")
    return values


# --- SQL literals --------------------------------------------------------------


_BACKSLASH_ESCAPES = {
    0x00: b"\\0",
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x5C: b"\\\\",
    0x27: b"\\'",
    0x22: b'\\"',
    0x1A: b"\\Z",
}
_NEEDS_BACKSLASH_ESCAPE = re.compile(rb"[\x00\n\r\\'\"\x1a]")


def _escape_bytes(value: bytes, backslash_escapes: bool) -> bytes:
    if not backslash_escapes:
        return value.replace(b"'", b"''")
    if _NEEDS_BACKSLASH_ESCAPE.search(value) is None:
        return value
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\x00", b"\\0")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"'", b"\\'")
        .replace(b'"', b'\\"')
        .replace(b"\x1a", b"\\Z")
    )


# Character sets in which the second byte of a two-byte character may be 0x5C
# ('\\'): escaping byte by byte would split such characters, so the escaper must
# copy whole characters, as mysql_real_escape_string() does. The values are the
# byte ranges of (lead bytes, trail bytes).
_MULTIBYTE_CHARSETS: dict[str, tuple[bytes, bytes]] = {
    "big5": (rb"\xa1-\xf9", rb"\x40-\x7e\xa1-\xfe"),
    "gbk": (rb"\x81-\xfe", rb"\x40-\x7e\x80-\xfe"),
    "gb18030": (rb"\x81-\xfe", rb"\x40-\x7e\x80-\xfe"),
    "sjis": (rb"\x81-\x9f\xe0-\xfc", rb"\x40-\x7e\x80-\xfc"),
    "cp932": (rb"\x81-\x9f\xe0-\xfc", rb"\x40-\x7e\x80-\xfc"),
}


def _multibyte_pattern(charset: str) -> re.Pattern[bytes]:
    """Matches, left to right: (1) runs of whole characters, to copy; (2) bytes to
    escape; (3) a lead byte without its trail byte."""
    lead, trail = _MULTIBYTE_CHARSETS[charset]
    char = b"[" + lead + b"][" + trail + b"]"
    if charset == "gb18030":
        char = b"[" + lead + rb"][\x30-\x39][" + lead + rb"][\x30-\x39]|" + char
    return re.compile(b"(?:" + char + rb")+|([\x00\n\r\\'\"\x1a])|([" + lead + b"])")


_MULTIBYTE_PATTERNS = {charset: _multibyte_pattern(charset) for charset in _MULTIBYTE_CHARSETS}


def _escape_multibyte_match(m: re.Match[bytes]) -> bytes:
    if m.lastindex is None:  # whole characters
        return m.group()
    if m.lastindex == 1:
        return _BACKSLASH_ESCAPES[m.group()[0]]
    # A lead byte without its trail byte: escape it too, or the backslash put before
    # a quote could complete the character (0xBF 0x27 -> 0xBF 0x5C 0x27 would read
    # as one GBK character and a closing quote).
    return b"\\" + m.group()


def _escape_multibyte(value: bytes, charset: str) -> bytes:
    """Backslash escaping that never splits a character of ``charset``.

    (Without backslash escapes only the quote is doubled, and 0x27 is never part
    of a multi-byte character, so plain doubling is already safe.)
    """
    return _MULTIBYTE_PATTERNS[charset].sub(_escape_multibyte_match, value)


def _illegal_double(value: object) -> errors.ProxyError:
    # ER_ILLEGAL_VALUE_FOR_TYPE: MySQL has no literal (and no column value) for these.
    return errors.ProxyError(1367, "22007", f"Illegal double '{value}' value found during parsing")


def _time_text(sign: str, total_micro: int) -> bytes:
    seconds, micro = divmod(total_micro, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = b"%s%02d:%02d:%02d" % (sign.encode(), hours, minutes, seconds)
    if micro:
        text += b".%06d" % micro
    return text


def sql_literal(value: object, backslash_escapes: bool = True, charset: str | None = None) -> bytes:
    """The SQL literal for a parameter value, as bytes in the client's character set.

    ``backslash_escapes`` is False when the backend session's sql_mode has
    NO_BACKSLASH_ESCAPES. ``charset`` is the MySQL name of the connection's
    character_set_client; it only matters for big5, gbk, gb18030, sjis and cp932,
    whose characters may contain the byte of a backslash.
    """
    if value is None:
        return b"NULL"
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _illegal_double(value)
        text = repr(value)
        # Without an exponent MySQL would read the literal as DECIMAL, not DOUBLE.
        if "e" not in text:
            text += "e0"
        return text.encode("ascii")
    if isinstance(value, bytes | bytearray | memoryview | str):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        mb = charset.lower() if charset else None
        if backslash_escapes and mb in _MULTIBYTE_CHARSETS and not raw.isascii():
            return b"'" + _escape_multibyte(raw, mb) + b"'"
        return b"'" + _escape_bytes(raw, backslash_escapes) + b"'"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _illegal_double(value)
        return format(value, "f").encode("ascii")
    if isinstance(value, datetime.datetime):
        text = b"'%04d-%02d-%02d %02d:%02d:%02d" % (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
        )
        if value.microsecond:
            text += b".%06d" % value.microsecond
        return text + b"'"
    if isinstance(value, datetime.date):
        return b"'%04d-%02d-%02d'" % (value.year, value.month, value.day)
    if isinstance(value, datetime.timedelta):
        total = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
        if total < 0:
            return b"'" + _time_text("-", -total) + b"'"
        return b"'" + _time_text("", total) + b"'"
    if isinstance(value, datetime.time):
        total = (
            (value.hour * 60 + value.minute) * 60 + value.second
        ) * 1_000_000 + value.microsecond
        return b"'" + _time_text("", total) + b"'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class LiteralStyle:
    """How a session's literals must be written (follows its sql_mode and charset)."""

    backslash_escapes: bool = True  # False under sql_mode NO_BACKSLASH_ESCAPES
    charset: str | None = None  # character_set_client; see sql_literal

    def literal(self, value: object) -> bytes:
        return sql_literal(value, self.backslash_escapes, self.charset)


def inline_params(sql: bytes, placeholder_offsets: list[int], literals: list[bytes]) -> bytes:
    """``sql`` with the '?' at each (ascending) byte offset replaced by its literal.

    A mismatch between offsets, literals and ``sql`` is a bug of the caller and
    raises ValueError.
    """
    if len(placeholder_offsets) != len(literals):
        raise ValueError(f"{len(placeholder_offsets)} placeholders but {len(literals)} literals")
    parts: list[bytes] = []
    start = 0
    for offset, literal in zip(placeholder_offsets, literals, strict=True):
        if offset < start or offset >= len(sql) or sql[offset] != 0x3F:  # '?'
            raise ValueError(f"no placeholder at byte offset {offset}")
        parts.append(sql[start:offset])
        parts.append(literal)
        start = offset + 1
    parts.append(sql[start:])
    return b"".join(parts)


# --- result rows: text protocol -> binary protocol ---------------------------


_DATETIME_TEXT = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?"
)
_TIME_TEXT = re.compile(rb"(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")


def _micro(fraction: bytes | None) -> int:
    if not fraction:
        return 0
    return int(fraction) * 10 ** (6 - len(fraction))


def _encode_datetime(text: bytes) -> bytes:
    m = _DATETIME_TEXT.fullmatch(text)
    if m is None:
        raise errors.malformed_packet(f"unreadable date value {text[:40]!r}")
    year, month, day, hour, minute, second, fraction = m.groups()
    y, mo, d = int(year), int(month), int(day)
    micro = _micro(fraction) if fraction else 0
    if hour is not None:
        h, mi, s = int(hour), int(minute), int(second)
    else:
        h = mi = s = 0
    if micro:
        return b"\x0b" + _DATETIME_MICRO.pack(y, mo, d, h, mi, s, micro)
    if h or mi or s:
        return b"\x07" + _DATETIME.pack(y, mo, d, h, mi, s)
    if y or mo or d:
        return b"\x04" + _DATE.pack(y, mo, d)
    return b"\x00"


def _encode_time(text: bytes) -> bytes:
    m = _TIME_TEXT.fullmatch(text)
    if m is None:
        raise errors.malformed_packet(f"unreadable time value {text[:40]!r}")
    sign, hour, minute, second, fraction = m.groups()
    days, h = divmod(int(hour), 24)
    mi, s = int(minute), int(second)
    micro = _micro(fraction)
    negative = 1 if sign else 0
    if micro:
        return b"\x0c" + _TIME_MICRO.pack(negative, days, h, mi, s, micro)
    if days or h or mi or s:
        return b"\x08" + _TIME.pack(negative, days, h, mi, s)
    return b"\x00"


def _int_encoder(fmt: str) -> Callable[[bytes], bytes]:
    pack = struct.Struct("<" + fmt).pack

    def encode(text: bytes) -> bytes:
        return pack(int(text))

    return encode


def _float_encoder(fmt: str) -> Callable[[bytes], bytes]:
    pack = struct.Struct("<" + fmt).pack

    def encode(text: bytes) -> bytes:
        return pack(float(text))

    return encode


_INT_FORMATS = {
    FieldType.TINY: "b",
    FieldType.SHORT: "h",
    FieldType.YEAR: "h",
    FieldType.LONG: "i",
    FieldType.INT24: "i",
    FieldType.LONGLONG: "q",
}
_COLUMN_ENCODERS: dict[tuple[int, bool], Callable[[bytes], bytes]] = {}
for _ftype, _fmt in _INT_FORMATS.items():
    _COLUMN_ENCODERS[int(_ftype), False] = _int_encoder(_fmt)
    _COLUMN_ENCODERS[int(_ftype), True] = _int_encoder(_fmt.upper())
for _ftype, _encoder in (
    (FieldType.FLOAT, _float_encoder("f")),
    (FieldType.DOUBLE, _float_encoder("d")),
    (FieldType.DATE, _encode_datetime),
    (FieldType.DATETIME, _encode_datetime),
    (FieldType.TIMESTAMP, _encode_datetime),
    (FieldType.TIME, _encode_time),
):
    _COLUMN_ENCODERS[int(_ftype), False] = _encoder
    _COLUMN_ENCODERS[int(_ftype), True] = _encoder


def _column_encoder(ftype: int, flags: int) -> Callable[[bytes], bytes] | None:
    """The encoder of one column's text values, or None to copy the lenenc string."""
    return _COLUMN_ENCODERS.get((int(ftype), bool(flags & ColumnFlag.UNSIGNED)))


_FULL_DECIMALS = 31


def text_is_short_of_value(coldef: bytes) -> bool:
    """A column whose text rows (what make_row_converter reads) hold fewer digits than its
    binary value: a FLOAT (16777216 prints as 16777200), a DOUBLE expression printed with
    fixed decimals (VARIANCE() shows 4). A DOUBLE(m,d) column itself stores its value
    rounded to those decimals: its text is its value."""
    ftype = wire.column_type_and_flags(coldef)[0]
    if ftype == FieldType.FLOAT:
        return True
    return (
        ftype == FieldType.DOUBLE
        and wire.column_decimals(coldef) != _FULL_DECIMALS
        and not wire.column_org_name(coldef)
    )


def make_row_converter(
    column_types: list[tuple[int, int]],
) -> Callable[[bytes | memoryview], bytes]:
    """A function converting one text result row into a binary result row.

    ``column_types`` holds (FieldType, ColumnFlag flags) per column, from the
    column definitions. Build the converter once per result set.
    """
    # Per column: its encoder (None: copy the lenenc string), and the byte index and
    # mask of its NULL bit (column i is bit i + 2 of the bitmap).
    columns = tuple(
        (_column_encoder(ftype, flags), (i + 2) >> 3, 1 << ((i + 2) & 7))
        for i, (ftype, flags) in enumerate(column_types)
    )
    column_count = len(columns)
    bitmap_size = (column_count + 7 + 2) // 8
    no_nulls = bytes(bitmap_size)

    def convert(row: bytes | memoryview) -> bytes:
        if not isinstance(row, bytes):
            row = bytes(row)
        size = len(row)
        bitmap = None
        parts: list[bytes] = [b"\x00", no_nulls]
        append = parts.append
        pos = 0
        try:
            for encoder, null_byte, null_mask in columns:
                first = row[pos]
                if first < 0xFB:
                    start = pos + 1
                    end = start + first
                elif first == 0xFB:
                    if bitmap is None:
                        bitmap = parts[1] = bytearray(bitmap_size)
                    bitmap[null_byte] |= null_mask
                    pos += 1
                    continue
                elif first == 0xFC:
                    start = pos + 3
                    end = start + (row[pos + 1] | row[pos + 2] << 8)
                elif first == 0xFD:
                    start = pos + 4
                    end = start + int.from_bytes(row[pos + 1 : start], "little")
                elif first == 0xFE:
                    start = pos + 9
                    end = start + int.from_bytes(row[pos + 1 : start], "little")
                else:
                    raise errors.malformed_packet("invalid length in a text result row")
                if end > size:
                    raise _truncated("text result row")
                if encoder is None:
                    append(row[pos:end])  # lenenc strings are the same in both protocols
                else:
                    append(encoder(row[start:end]))
                pos = end
        except IndexError:
            raise _truncated("text result row")
        except (ValueError, OverflowError, struct.error):
            raise errors.malformed_packet("unreadable value in a text result row")
        if pos != size:
            raise errors.malformed_packet(f"text result row longer than its {column_count} columns")
        return b"".join(parts)

    return convert


def text_row_to_binary(
    row_payload: bytes | memoryview, column_types: list[tuple[int, int]]
) -> bytes:
    """Converts one text result row; prefer make_row_converter for whole result sets."""
    return make_row_converter(column_types)(row_payload)
