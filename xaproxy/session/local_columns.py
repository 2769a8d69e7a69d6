"""Column definitions of the values the proxy answers itself, as MariaDB describes them.

A client sees the column's type, length and flags, not only the value: Connector/J
maps BIGINT UNSIGNED to BigInteger, the mariadb CLI widens a nullable column to fit
NULL, node mysql2 decodes DECIMAL as a string. So `SELECT @@in_transaction` answered
by the proxy must carry what MariaDB 10.11 sends for it (read off the server with
each form below). A form not described here is not answered locally.

>>> [int(c.type) for c in (_number_literal("1", "1"), _number_literal("1000000000", "1000000000"))]
[3, 8]
>>> variable_column("@@autocommit", "autocommit").flags, variable_column("@@in_transaction", "in_transaction").length
(128, 21)
"""

from __future__ import annotations

from sqlglot import exp

from ..protocol import wire
from ..protocol.constants import FieldType

NOT_NULL = 1
UNSIGNED = 32
BINARY = 128
BINARY_COLLATION = 63
NOT_FIXED_DECIMALS = 39  # what MariaDB sends as `decimals` of a string expression

# the characters of the longest value of each string function the proxy answers
_STRING_FUNCTION_CHARS = {
    "DATABASE": 64,
    "SCHEMA": 64,
    "USER": 384,
    "CURRENT_USER": 384,
    "SESSION_USER": 384,
    "SYSTEM_USER": 384,
}

# mbmaxlen of MariaDB 10.11's multi-byte character sets (CHARACTER_SETS.MAXLEN; others: 1)
_MAXLEN = {
    "big5": 2, "cp932": 2, "eucjpms": 3, "euckr": 2, "gb2312": 2, "gbk": 2, "sjis": 2,
    "ucs2": 2, "ujis": 3, "utf16": 4, "utf16le": 4, "utf32": 4, "utf8mb3": 3, "utf8": 3,
    "utf8mb4": 4,
}  # fmt: skip


def maxlen_of(charset: str) -> int:
    """Bytes per character at most in `charset`."""
    return _MAXLEN.get(charset.lower(), 1)


def describe(
    name: str, node: exp.Expression, literal: tuple[int, int], function: tuple[int, int]
) -> wire.ColumnDef | None:
    """The column of one select item the proxy answers (`node` as local.py matched it),
    or None when the form is not described here (then it is not answered locally).

    `literal` and `function`: (collation id, bytes per character) the client sees on a
    string literal and on a string function's value.
    """
    if isinstance(node, exp.Null):
        return wire.ColumnDef(name, FieldType.NULL, BINARY_COLLATION, 0, BINARY)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return _string(name, literal[0], len(node.this) * literal[1], NOT_NULL)
        return _number_literal(name, node.this)
    if isinstance(node, exp.SessionParameter):
        return variable_column(name, node.name.lower())
    if isinstance(node, (exp.CurrentUser, exp.SessionUser)):
        return _string(name, function[0], 384 * function[1], 0)
    if isinstance(node, exp.CurrentSchema):
        return _string(name, function[0], 64 * function[1], 0)
    if isinstance(node, exp.Anonymous):
        return _function(name, str(node.this).upper(), function)
    return None


def _string(name: str, collation: int, length: int, flags: int) -> wire.ColumnDef:
    return wire.ColumnDef(name, FieldType.VAR_STRING, collation, length, flags, NOT_FIXED_DECIMALS)


def variable_column(name: str, variable: str) -> wire.ColumnDef:
    """@@autocommit is a boolean system variable; the others are unsigned counters."""
    if variable == "autocommit":
        return wire.ColumnDef(name, FieldType.LONGLONG, BINARY_COLLATION, 1, BINARY)
    return wire.ColumnDef(name, FieldType.LONGLONG, BINARY_COLLATION, 21, BINARY | UNSIGNED)


def _function(name: str, function: str, charset: tuple[int, int]) -> wire.ColumnDef | None:
    """LAST_INSERT_ID(), CONNECTION_ID(), ROW_COUNT(), FOUND_ROWS() and the account and
    schema functions."""
    flags = NOT_NULL | UNSIGNED | BINARY
    if function == "LAST_INSERT_ID":
        return wire.ColumnDef(name, FieldType.LONGLONG, BINARY_COLLATION, 21, flags)
    if function in ("ROW_COUNT", "FOUND_ROWS"):  # signed: ROW_COUNT() may be -1
        return wire.ColumnDef(name, FieldType.LONGLONG, BINARY_COLLATION, 21, NOT_NULL | BINARY)
    if function == "CONNECTION_ID":
        return wire.ColumnDef(name, FieldType.LONG, BINARY_COLLATION, 10, flags)
    chars = _STRING_FUNCTION_CHARS.get(function)
    if chars is None:
        return None
    return _string(name, charset[0], chars * charset[1], 0)


def _number_literal(name: str, text: str) -> wire.ColumnDef | None:
    """An unsigned integer or decimal literal as written.

    Integers: INT up to 9 digits, BIGINT up to 2^63-1, BIGINT UNSIGNED below 2^64
    (wider ones are DECIMAL: not described). Decimals (`1.50`, `.5`): DECIMAL of the
    digits written. Exponents (`1e3`) are not described: their text is the server's.
    """
    flags = NOT_NULL | BINARY
    if text.isdigit():
        value = int(text)
        if len(text) <= 9:
            return wire.ColumnDef(name, FieldType.LONG, BINARY_COLLATION, len(text), flags)
        if value < 2**63:
            return wire.ColumnDef(name, FieldType.LONGLONG, BINARY_COLLATION, len(text), flags)
        if value < 2**64:
            return wire.ColumnDef(
                name, FieldType.LONGLONG, BINARY_COLLATION, len(text), flags | UNSIGNED
            )
        return None
    whole, dot, fraction = text.partition(".")
    digits = len(whole) + len(fraction)
    if dot and (whole.isdigit() or not whole) and fraction.isdigit() and digits <= 65:
        # the length counts a sign and the point
        return wire.ColumnDef(
            name, FieldType.NEWDECIMAL, BINARY_COLLATION, digits + 2, flags, len(fraction)
        )
    return None
