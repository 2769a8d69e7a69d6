"""Row images for AT mode: taken from the shard, stored in the undo log, written back exactly.

Values are kept as the raw bytes of MySQL's text protocol (hex in the undo log),
with each column's type. Images are always read with character_set_results=utf8mb4
(IMAGE_READ), whatever the client set with SET NAMES, so that the proxy's own
recovery connections read the same bytes. Written back, a value becomes a quoted
string (which MySQL converts to the column's type exactly: DECIMAL, DATETIME(6),
JSON, unsigned BIGINT), a `_utf8mb4 X'..'` literal for text (no escaping, so
NO_BACKSLASH_ESCAPES and the connection's character set do not matter) or, for
binary columns, an X'..' literal; comparing images compares those same bytes,
which the same server formats identically.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..protocol import wire
from ..protocol.constants import FieldType

_BINARY_CHARSET = 63
_BINARY_TYPES = {
    FieldType.TINY_BLOB,
    FieldType.MEDIUM_BLOB,
    FieldType.LONG_BLOB,
    FieldType.BLOB,
    FieldType.STRING,
    FieldType.VAR_STRING,
    FieldType.VARCHAR,
    FieldType.BIT,
    FieldType.GEOMETRY,
}

Row = list[bytes | None]

# Every image read (before, after, and the current rows compensation compares)
# gets the same result character set, whoever's connection runs it.
IMAGE_READ = "SET STATEMENT character_set_results = utf8mb4 FOR "

# Text that needs no quoting care: numbers, dates, times.
_PLAIN = re.compile(rb"[-+0-9.eE: ]*")


@dataclass(slots=True)
class Column:
    name: str
    type: int
    charset: int
    generated: bool = False  # a VIRTUAL/STORED generated column: compared, never written back

    @property
    def binary(self) -> bool:
        return (
            self.type == FieldType.BIT
            or self.type == FieldType.GEOMETRY
            or (self.charset == _BINARY_CHARSET and self.type in _BINARY_TYPES)
        )


def columns_of(coldefs: list[bytes]) -> list[Column]:
    result = []
    for coldef in coldefs:
        ftype, _flags, charset = wire.column_type_and_flags(coldef)
        result.append(
            Column(wire.column_org_name(coldef) or wire.column_name(coldef), ftype, charset)
        )
    return result


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value: bytes | None, column: Column, backslash_escapes: bool = True) -> str:
    """`value` (text-protocol bytes) as an SQL literal for `column`."""
    if value is None:
        return "NULL"
    if column.binary:
        return f"X'{value.hex()}'"
    if _PLAIN.fullmatch(value):
        return "'" + value.decode("ascii") + "'"
    # Text as hex with an introducer: exact whatever the connection's character
    # set and sql_mode (NO_BACKSLASH_ESCAPES); MySQL converts it to the column's type.
    return f"_utf8mb4 X'{value.hex()}'"


@dataclass(slots=True)
class StatementImage:
    """What one write statement changed in one table of one branch."""

    table: str  # `db`.`table`
    kind: str  # INSERT | UPDATE | DELETE
    columns: list[Column]
    primary_key: list[str]
    before: list[Row] = field(default_factory=list)
    after: list[Row] = field(default_factory=list)
    # The session time zone the images were read in, for tables with TIMESTAMP columns:
    # their text depends on it, so comparing and writing back use the same one.
    time_zone: str | None = None

    def read_prefix(self) -> str:
        """SET STATEMENT for reading rows to compare with this image."""
        if self.time_zone is None:
            return IMAGE_READ
        return IMAGE_READ.replace(" FOR ", f", time_zone = {_quote_plain(self.time_zone)} FOR ")

    def write_prefix(self) -> str:
        """SET STATEMENT for writing this image's values back."""
        if self.time_zone is None:
            return ""
        return f"SET STATEMENT time_zone = {_quote_plain(self.time_zone)} FOR "

    def key_of(self, row: Row) -> tuple:
        names = [c.name.lower() for c in self.columns]
        return tuple(row[names.index(k.lower())] for k in self.primary_key)

    def lock_keys(self) -> list[str]:
        """Global lock keys `db.table:pk`, one per changed row."""
        keys = []
        for row in self.before + self.after:
            pk = ",".join((v or b"").hex() for v in self.key_of(row))
            key = f"{self.table}:{pk}"
            if key not in keys:
                keys.append(key)
        return keys

    def to_json(self) -> dict:
        return {
            "table": self.table,
            "kind": self.kind,
            "columns": [[c.name, c.type, c.charset, c.generated] for c in self.columns],
            "pk": self.primary_key,
            "before": [[None if v is None else v.hex() for v in row] for row in self.before],
            "after": [[None if v is None else v.hex() for v in row] for row in self.after],
            **({"tz": self.time_zone} if self.time_zone is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> StatementImage:
        return cls(
            data["table"],
            data["kind"],
            [Column(*column) for column in data["columns"]],
            list(data["pk"]),
            [[None if v is None else bytes.fromhex(v) for v in row] for row in data["before"]],
            [[None if v is None else bytes.fromhex(v) for v in row] for row in data["after"]],
            data.get("tz"),
        )


def _quote_plain(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def encode_undo(images: list[StatementImage]) -> bytes:
    return json.dumps([i.to_json() for i in images], separators=(",", ":")).encode()


def decode_undo(blob: bytes) -> list[StatementImage]:
    return [StatementImage.from_json(d) for d in json.loads(blob)]


def where_pk(image: StatementImage, rows: list[Row]) -> str:
    """`(pk1, pk2) IN ((...), (...))` selecting exactly `rows`."""
    index = {c.name.lower(): i for i, c in enumerate(image.columns)}
    columns = [image.columns[index[k.lower()]] for k in image.primary_key]
    names = ", ".join(quote_identifier(c.name) for c in columns)
    tuples = []
    for row in rows:
        values = ", ".join(literal(row[index[c.name.lower()]], c) for c in columns)
        tuples.append(f"({values})")
    return f"({names}) IN ({', '.join(tuples)})"


def undo_statements(image: StatementImage) -> list[str]:
    """SQL that puts the before image back, assuming the rows equal the after image.

    An UPDATE is undone by UPDATEs by primary key (not delete + insert, which would
    fire ON DELETE cascades), an INSERT by a DELETE, a DELETE by an INSERT.
    Generated columns are computed by the server again, never written.
    """
    prefix = image.write_prefix()
    if image.kind == "INSERT":
        statements = (
            [f"DELETE FROM {image.table} WHERE {where_pk(image, image.after)}"]
            if image.after
            else []
        )
    elif image.kind == "DELETE":
        statements = [_insert(image, image.before)] if image.before else []
    else:
        statements = [_update(image, row) for row in image.before]
    return [prefix + statement for statement in statements]


def restore_statements(image: StatementImage, current: list[Row]) -> list[str]:
    """SQL that makes the rows equal the before image, whatever they hold now (operator's RESTORE)."""
    now = {image.key_of(r): r for r in current}
    before = {image.key_of(r): r for r in image.before}
    statements = []
    gone = [r for k, r in now.items() if k not in before]
    if gone:
        statements.append(f"DELETE FROM {image.table} WHERE {where_pk(image, gone)}")
    missing = [r for k, r in before.items() if k not in now]
    if missing:
        statements.append(_insert(image, missing))
    statements.extend(_update(image, r) for k, r in before.items() if k in now and now[k] != r)
    return [image.write_prefix() + statement for statement in statements]


def _insert(image: StatementImage, rows: list[Row]) -> str:
    written = [i for i, c in enumerate(image.columns) if not c.generated]
    names = ", ".join(quote_identifier(image.columns[i].name) for i in written)
    values = ", ".join(
        "(" + ", ".join(literal(row[i], image.columns[i]) for i in written) + ")" for row in rows
    )
    return f"INSERT INTO {image.table} ({names}) VALUES {values}"


def _update(image: StatementImage, row: Row) -> str:
    assignments = ", ".join(
        f"{quote_identifier(c.name)} = {literal(v, c)}"
        for v, c in zip(row, image.columns, strict=True)
        if not c.generated
    )
    return f"UPDATE {image.table} SET {assignments} WHERE {where_pk(image, [row])}"
