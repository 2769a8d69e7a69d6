"""Copies of sharded tables a cross-shard join reads whole (plan.CopiedTable).

`SELECT ... FROM a JOIN b ON a.x = b.y` where a and b are sharded by other keys: every
row of a may match rows of b on any shard. The proxy reads all of b, writes it into a
temporary table of b's own definition (`CREATE TEMPORARY TABLE ... LIKE b`) on every
shard of the join, and the statement reads that copy under b's alias. MariaDB then
joins, compares and converts with b's own column types and collations, as one server
holding both tables would.

Each column is read as text that becomes the same value again: numbers and dates as
the server prints them, FLOAT and BIT through `+ 0` (a FLOAT prints shorter than its
value), TIMESTAMP as its epoch (no time zone folds), strings in hex with their
character set. Types without such a text (geometry, ...) are refused.
"""

from __future__ import annotations

import re

from sqlglot import exp

from .. import errors
from ..metadata.model import Column, TableMetadata
from .plan import COPY_PREFIX, CopiedTable

_DIGITS = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
     "dec", "fixed", "year", "bool", "boolean"}
)  # fmt: skip
_DOUBLES = frozenset({"double", "real"})
_TEMPORALS = frozenset({"date", "datetime", "time"})
_STRINGS = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json",
     "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
)  # fmt: skip
# The statement the copy's rows are written by: no AUTO_INCREMENT for a 0, no strict
# conversion (the values came out of the same column type), epochs read in UTC.
_INSERT_SETTINGS = "SET STATEMENT sql_mode='NO_AUTO_VALUE_ON_ZERO', time_zone='+00:00' FOR "


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _column_copy(column: Column, construct: str) -> tuple[str, str]:
    """(the expression that reads the column, how its text is written back)."""
    name = quoted(column.name)
    found = re.match(r"[a-z]+", column.type.lower())
    base = found.group(0) if found else ""
    if base in _DIGITS:
        return name, "digits"
    if base in _DOUBLES:
        return name, "double"
    if base == "float":
        return f"{name} + 0", "double"  # 16777216 prints as 16777200; + 0 is its DOUBLE
    if base == "bit":
        return f"{name} + 0", "digits"
    if base in _TEMPORALS:
        return name, "quoted"
    if base == "timestamp":
        return f"UNIX_TIMESTAMP({name})", "unixtime"
    if base in _STRINGS:
        charset = column.charset or ""
        if charset and not re.fullmatch(r"[a-z0-9_]+", charset):
            raise errors.not_supported(f"{construct}: column '{column.name}' of {charset}")
        return f"HEX({name})", f"hex:{'utf8mb3' if charset == 'utf8' else charset}"
    raise errors.not_supported(
        f"{construct}: column '{column.name}' of type {column.type} cannot be copied exactly",
        "join sharded tables on their shard keys (one binding group)",
    )


def table_copy(
    definition: TableMetadata,
    sources: tuple[str, ...],
    number: int,
    construct: str,
    bounds: tuple[int, int],
    reason: str = "",
) -> CopiedTable:
    """The copy of `definition`'s table named `xaproxy_copy_<number>` in its database,
    within `bounds` (rows of the table, bytes of all the statement's copies)."""
    columns = [c for c in definition.columns if not c.generated]
    reads, literals = zip(*(_column_copy(c, construct) for c in columns), strict=True)
    schema = quoted(definition.schema)
    table = f"{schema}.{quoted(definition.name)}"
    copy = f"{schema}.{quoted(f'{COPY_PREFIX}{number}')}"
    names = ", ".join(quoted(c.name) for c in columns)
    size = (
        "SELECT TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
        f"{_string(definition.schema)} AND TABLE_NAME = {_string(definition.name)}"
    )
    return CopiedTable(
        table,
        definition.name,
        copy,
        sources,
        f"SELECT {', '.join(reads)} FROM {table}",
        f"{_INSERT_SETTINGS}INSERT INTO {copy} ({names}) VALUES ",
        tuple(literals),
        size,
        *bounds,
        reason,
    )


def _string(text: str) -> str:
    """A string literal of `text` (hex: no escaping rules of any sql_mode apply)."""
    return f"CONVERT(X'{text.encode().hex()}' USING utf8mb4)"


def read_from_copies(
    tree: exp.Query, like: exp.Query, nodes: list[tuple[exp.Table, int]]
) -> exp.Query:
    """A copy of `tree` (`like` itself, or its form with bound values: the same shape)
    where each of `nodes` (tables of `like`, with the number of their copy) is read from
    its copy under the name the statement gives it."""
    work = tree.copy()
    tables = zip(map(id, like.find_all(exp.Table)), work.find_all(exp.Table), strict=True)
    in_work = dict(tables)
    for original, number in nodes:
        node = in_work[id(original)]
        if not node.alias:
            node.set("alias", exp.TableAlias(this=exp.to_identifier(node.name, quoted=True)))
        node.set("this", exp.to_identifier(f"{COPY_PREFIX}{number}", quoted=True))
    return work
