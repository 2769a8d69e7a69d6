"""Select items over aggregates (`COALESCE(SUM(x), 0)`, `SUM(a) / COUNT(*)`), computed by
one shard over the merged aggregates.

The proxy does not reimplement MariaDB's arithmetic: after the merge, one shard
connection of the statement (same session state, so the same div_precision_increment,
sql_mode and character sets) evaluates each item with every merged aggregate given
back as a literal of the aggregate's exact type (`CAST(v AS DECIMAL(p,s))`, wrapped
in `IF(1, ..., NULL)` where the aggregate may be NULL, so nullability propagates as
it does from the aggregate). Many rows go in one `SELECT ... UNION ALL SELECT ...`.
The item's type, length and decimals are the shards' own (they run `IF(0, item,
NULL)`), its NOT NULL flag is the computing query's. A query that reads no table
and raises no warning leaves a connection's warnings as they were (MariaDB keeps
them), so the shard's own warnings of the merged read survive.
"""

from __future__ import annotations

import re
import struct

from .. import errors
from ..protocol import wire
from ..protocol.constants import ColumnFlag, FieldType
from ..routing.plan import Compute
from ..shards.backend import Backend

Row = list[bytes | None]

# rows and bytes of SQL per computing query
BATCH_ROWS = 256
BATCH_BYTES = 256 * 1024

_INTEGERS = frozenset(
    {FieldType.TINY, FieldType.SHORT, FieldType.INT24, FieldType.LONG, FieldType.LONGLONG}
)
_NOT_FIXED_DEC = 31
_NUMBER = re.compile(rb"-?[0-9]+(\.[0-9]+)?")
_DOUBLE = re.compile(rb"-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?")
_TEMPORAL = re.compile(rb"-?[0-9]{1,4}[-0-9: .]*")


class _Partial:
    """How one merged aggregate is written back as a literal of its own type."""

    __slots__ = ("cast", "nullable", "pattern")

    def __init__(self, coldef: bytes) -> None:
        ftype, flags, _ = wire.column_type_and_flags(coldef)
        decimals = wire.column_decimals(coldef)
        self.nullable = not flags & ColumnFlag.NOT_NULL
        self.pattern = _NUMBER
        if ftype in _INTEGERS:
            self.cast = "UNSIGNED" if flags & ColumnFlag.UNSIGNED else "SIGNED"
        elif ftype == FieldType.NEWDECIMAL:
            _, length = wire.column_charset_and_length(coldef)
            signed = 0 if flags & ColumnFlag.UNSIGNED else 1
            precision = length - signed - (1 if decimals else 0)
            self.cast = f"DECIMAL({min(max(precision, decimals, 1), 65)},{decimals})"
        elif ftype == FieldType.DOUBLE and decimals == _NOT_FIXED_DEC:
            self.cast, self.pattern = "DOUBLE", _DOUBLE
        elif ftype in (FieldType.DATE, FieldType.NEWDATE):
            self.cast, self.pattern = "DATE", _TEMPORAL
        elif ftype in (FieldType.DATETIME, FieldType.DATETIME2):
            self.cast, self.pattern = f"DATETIME({decimals})", _TEMPORAL
        elif ftype in (FieldType.TIME, FieldType.TIME2):
            self.cast, self.pattern = f"TIME({decimals})", _TEMPORAL
        else:
            raise errors.not_supported(
                "an expression around an aggregate of a string, TIMESTAMP, FLOAT or other "
                f"non-numeric type (column type {ftype}) in a SELECT that spans several shards",
                "select the aggregate alone and compute with it in the application",
            )

    def literal(self, value: bytes | None) -> str:
        if value is None:
            text = "NULL"
        elif self.pattern.fullmatch(value) and not value.startswith(b"0000-00-00"):
            text = "'" + value.decode("ascii") + "'"
        else:
            raise errors.not_supported(
                f"an expression around an aggregate whose merged value {value[:40]!r} "
                "cannot be written back exactly"
            )
        cast = f"CAST({text} AS {self.cast})"
        return f"IF(1, {cast}, NULL)" if self.nullable else cast


def partials_of(step: Compute, coldefs: list[bytes]) -> dict[int, _Partial]:
    """The literal writer of every aggregate the items use; refuses types it cannot write."""
    return {p: _Partial(coldefs[p]) for item in step.items for p in item.partials}


def _item_sql(item, row: Row, partials: dict[int, _Partial], empty: bool) -> str:
    parts = [item.pieces[0]]
    for position, piece in zip(item.partials, item.pieces[1:], strict=True):
        partial = partials[position]
        value = None if empty and partial.nullable else (b"0" if empty else row[position])
        parts.append(partial.literal(value))
        parts.append(piece)
    return "".join(parts)


def _batch_sql(step: Compute, rows: list[Row], partials: dict[int, _Partial]) -> str:
    if not rows:  # the definitions only
        items = ", ".join(_item_sql(i, [], partials, True) for i in step.items)
        return f"SELECT 0, {items} FROM DUAL WHERE 0"
    selects = [
        f"SELECT {n}, " + ", ".join(_item_sql(i, row, partials, False) for i in step.items)
        for n, row in enumerate(rows)
    ]
    return " UNION ALL ".join(selects) + " ORDER BY 1"


def _batches(step: Compute, rows: list[Row], partials: dict[int, _Partial]):
    start = 0
    while True:
        end, size = start, 0
        while end < len(rows) and end - start < BATCH_ROWS and size < BATCH_BYTES:
            size += sum(len(v) for v in rows[end] if v is not None)
            end += 1
        yield rows[start:end], _batch_sql(step, rows[start:end], partials)
        if end >= len(rows):
            return
        start = end


async def compute_items(
    backend: Backend, step: Compute, rows: list[Row], partials: dict[int, _Partial]
) -> tuple[list[int], int]:
    """Fills in every computed item of `rows` (in place); returns each item's column flags
    as MariaDB gives them and the warnings the computing raised."""
    flags: list[int] = []
    warnings = 0
    for batch, sql in _batches(step, rows, partials):
        coldefs, values = await backend.query_table(sql)
        warnings += backend.warnings
        if not flags:
            flags = [wire.column_type_and_flags(c)[1] for c in coldefs[1:]]
        if len(values) != len(batch):
            raise errors.BackendError(1105, "HY000", "xaproxy: computing select items failed")
        for row, computed in zip(batch, values, strict=True):
            for item, value in zip(step.items, computed[1:], strict=True):
                row[item.column] = value
    return flags, warnings


def with_flags(coldef: bytes, flags: int) -> bytes:
    """The definition with its NOT NULL flag as in `flags` (the rest is the shard's)."""
    at = wire.fixed_fields(coldef) + 7  # after charset(2) length(4) type(1)
    (own,) = struct.unpack_from("<H", coldef, at)
    own = (own & ~ColumnFlag.NOT_NULL) | (flags & ColumnFlag.NOT_NULL)
    return coldef[:at] + struct.pack("<H", own) + coldef[at + 2 :]
