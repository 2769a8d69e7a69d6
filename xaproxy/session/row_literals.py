"""Values of a result column written back as SQL literals that MariaDB stores exactly.

A row read as text (INSERT ... SELECT, the keys of an UPDATE ... ORDER BY ... LIMIT) is
written back into a statement. Each value becomes a literal of its own type, so MariaDB
converts it into the target column as it would convert the selected value: integers and
DECIMAL as written, DOUBLE with an exponent, DATE/TIME/DATETIME as typed literals,
strings quoted in the session's character set (or in hex with their own character set's
introducer). Types whose text is not their value (FLOAT, BIT, TIMESTAMP, geometry) are
refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from asyncmy.charset import charset_by_id

from .. import errors
from ..protocol import wire
from ..protocol.binary import LiteralStyle
from ..protocol.constants import STRING_TYPES, ColumnFlag, FieldType

_BINARY_CHARSET = 63

_INTEGERS = frozenset(
    {FieldType.TINY, FieldType.SHORT, FieldType.LONG, FieldType.LONGLONG, FieldType.INT24}
)
_DECIMALS = frozenset({FieldType.DECIMAL, FieldType.NEWDECIMAL})
_TEMPORALS = {
    FieldType.DATE: "DATE",
    FieldType.NEWDATE: "DATE",
    FieldType.DATETIME: "TIMESTAMP",  # MariaDB's TIMESTAMP'...' literal is a DATETIME
    FieldType.TIME: "TIME",
}
_NUMERIC_TARGET = re.compile(
    r"(tinyint|smallint|mediumint|int|bigint|decimal|numeric|float|double|real|bit|bool|year)\b"
)
_STRING_TARGET = re.compile(
    r"(char|varchar|tinytext|text|mediumtext|longtext|enum|set|json|binary|varbinary"
    r"|tinyblob|blob|mediumblob|longblob)\b"
)


def _refused(what: str, statement: str, fix: str) -> errors.ProxyError:
    return errors.not_supported(f"{what} in {statement} over sharded or broadcast tables", fix)


def literal_writer(
    coldef: bytes, name: str, target_type: str, style: LiteralStyle, statement: str
) -> Callable[[bytes], bytes]:
    """How a value of this result column is written as a literal that MariaDB stores into
    a column of `target_type` exactly as it stores the selected value; refused when the
    proxy cannot say (FLOAT, BIT, TIMESTAMP, ...). A string in the session's character
    set is a plain quoted literal (the planner reads a shard key from it), any other in
    hex with its character set's introducer."""
    ftype, flags, charset = wire.column_type_and_flags(coldef)
    target = target_type.lower()
    numeric_target = _NUMERIC_TARGET.match(target) is not None
    if ftype in _INTEGERS or ftype == FieldType.YEAR:
        if (flags & ColumnFlag.ZEROFILL or ftype == FieldType.YEAR) and not numeric_target:
            raise _refused(
                f"ZEROFILL or YEAR column '{name}' into a column that is not a number",
                statement,
                "select CAST(column AS CHAR) for its text",
            )
        return _digits
    if ftype in _DECIMALS:
        return _digits
    if ftype == FieldType.DOUBLE:
        return _double
    if ftype == FieldType.FLOAT:
        # even into a FLOAT column: MariaDB prints 16777216 as 16777200
        raise _refused(
            f"FLOAT column '{name}' (its text is shorter than its value)",
            statement,
            "select CAST(column AS DOUBLE)",
        )
    if ftype == FieldType.NULL:
        return _digits
    temporal = _TEMPORALS.get(ftype)
    if temporal is not None:
        prefix = temporal.encode()
        return lambda value: prefix + b"'" + value + b"'"
    if ftype in STRING_TYPES:
        if flags & (ColumnFlag.ENUM | ColumnFlag.SET) and _STRING_TARGET.match(target) is None:
            raise _refused(
                f"ENUM or SET column '{name}' into a column that is not a string "
                "(MariaDB stores its index)",
                statement,
                "select column + 0 for the index, or insert into a string column",
            )
        introducer = (
            b"_binary" if charset == _BINARY_CHARSET else _introducer(charset, name, statement)
        )
        if introducer[1:].decode() == style.charset:
            return style.literal
        return lambda value: introducer + b" X'" + value.hex().encode() + b"'"
    kinds = {FieldType.TIMESTAMP: "TIMESTAMP", FieldType.BIT: "BIT", FieldType.GEOMETRY: "geometry"}
    raise _refused(
        f"{kinds.get(FieldType(ftype), 'this type of')} column '{name}'",
        statement,
        "select it converted (CAST(column AS DATETIME|UNSIGNED|...))",
    )


def _introducer(collation: int, name: str, statement: str) -> bytes:
    try:
        charset = charset_by_id(collation).name
    except Exception:
        raise _refused(
            f"column '{name}' of character set {collation}",
            statement,
            "select it CONVERTed to utf8mb4",
        ) from None
    return b"_" + (b"utf8mb3" if charset == "utf8" else charset.encode())


def _digits(value: bytes) -> bytes:
    return value


def _double(value: bytes) -> bytes:
    return value if b"e" in value.lower() else value + b"e0"
