"""What the shards say a configured table looks like, as immutable plain data.

The reader (reader.py) builds a `Catalog` from information_schema of every shard;
the planner only ever sees such a snapshot, so routing never talks to a shard.
A table whose definitions differ between the shards holding it, or that some of
them lack or could not be asked about, has no usable definition: the planner
refuses what would depend on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .weights import WeightTable


@dataclass(frozen=True, slots=True)
class Column:
    """One column as information_schema.COLUMNS describes it."""

    name: str
    type: str  # COLUMN_TYPE, e.g. "bigint(20) unsigned", "varchar(100)"
    charset: str | None
    collation: str | None
    nullable: bool
    default: str | None  # COLUMN_DEFAULT as the server gives it ('abc' quoted, NULL, expressions)
    generated: bool  # VIRTUAL or STORED generated column
    auto_increment: bool  # AUTO_INCREMENT on the shard itself
    invisible: bool  # MariaDB INVISIBLE: not part of an INSERT without a column list

    def describe(self) -> str:
        parts = [self.type]
        if self.collation:
            parts.append(f"collate {self.collation}")
        parts.append("null" if self.nullable else "not null")
        if self.default is not None:
            parts.append(f"default {self.default}")
        if self.generated:
            parts.append("generated")
        if self.auto_increment:
            parts.append("auto_increment")
        if self.invisible:
            parts.append("invisible")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class TableMetadata:
    """A table's columns in order, its primary key and its other unique keys."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()  # other UNIQUE indexes, by index name

    def column(self, name: str) -> Column | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)

    @property
    def insert_columns(self) -> tuple[Column, ...]:
        """The columns an INSERT without a column list assigns, in order (invisible ones not)."""
        return tuple(c for c in self.columns if not c.invisible)

    @property
    def auto_increment(self) -> str | None:
        """The shard-side AUTO_INCREMENT column, if any."""
        return next((c.name for c in self.columns if c.auto_increment), None)

    @property
    def all_unique_keys(self) -> tuple[tuple[str, ...], ...]:
        keys = (self.primary_key,) if self.primary_key else ()
        return keys + self.unique_keys

    def first_difference(self, other: TableMetadata) -> str | None:
        """The first way `other` differs from this definition, in words; None if equal."""
        if len(self.columns) != len(other.columns):
            return f"{len(self.columns)} columns vs {len(other.columns)}"
        for index, (mine, theirs) in enumerate(zip(self.columns, other.columns, strict=True)):
            if mine.name.lower() != theirs.name.lower():
                return f"column {index + 1} is '{mine.name}' vs '{theirs.name}'"
            if mine != theirs:
                return f"column '{mine.name}': {mine.describe()} vs {theirs.describe()}"
        if self.primary_key != other.primary_key:
            return (
                f"primary key ({', '.join(self.primary_key)}) vs ({', '.join(other.primary_key)})"
            )
        if self.unique_keys != other.unique_keys:
            return f"unique keys {_keys(self.unique_keys)} vs {_keys(other.unique_keys)}"
        return None


def _keys(keys: tuple[tuple[str, ...], ...]) -> str:
    return "[" + ", ".join("(" + ", ".join(k) + ")" for k in keys) + "]"


@dataclass(frozen=True, slots=True)
class TableState:
    """One configured table after a read: its definition, or why there is none to use.

    `per_shard` holds what each shard that answered said (None: the table is absent
    there); shards that could not be asked are in `unread`.
    """

    schema: str
    name: str
    shards: tuple[str, ...]
    per_shard: dict[str, TableMetadata | None] = field(hash=False)
    unread: tuple[str, ...] = ()

    @property
    def definition(self) -> TableMetadata | None:
        """The one definition every shard holding the table agrees on; None otherwise."""
        if self.problem is not None:
            return None
        return self.per_shard[self.shards[0]]

    @property
    def absent(self) -> bool:
        """No shard has the table (fine: it may be created later through the proxy)."""
        return not self.unread and all(v is None for v in self.per_shard.values())

    @property
    def problem(self) -> str | None:
        """Why there is no usable definition, in words; None when there is one."""
        if self.unread:
            return f"could not be read from {', '.join(self.unread)}"
        if self.absent:
            return "is absent on every shard"
        missing = [s for s in self.shards if self.per_shard.get(s) is None]
        if missing:
            present = next(s for s in self.shards if s not in missing)
            return f"exists on {present} but is absent on {', '.join(missing)}"
        first = self.shards[0]
        reference = self.per_shard[first]
        assert reference is not None
        for shard in self.shards[1:]:
            other = self.per_shard[shard]
            assert other is not None
            difference = reference.first_difference(other)
            if difference is not None:
                return f"differs between {first} and {shard}: {difference}"
        return None


_STRING_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")


def string_key_collation(state: TableState, key: str) -> str | None:
    """The collation of a table's shard-key column when it is a character string column."""
    definition = state.definition
    column = definition.column(key) if definition is not None else None
    if column is None or column.type.split("(")[0].strip().lower() not in _STRING_TYPES:
        return None
    return column.collation


@dataclass(frozen=True, slots=True)
class Catalog:
    """A snapshot of every configured table's state; replaced whole on each reload."""

    tables: dict[tuple[str, str], TableState] = field(default_factory=dict, hash=False)
    read_at: float | None = None  # time.time() of the read; None: never read
    # collation name (lower case) -> its weights, for the string keys of hash tables
    weights: dict[str, WeightTable] = field(default_factory=dict, hash=False)

    def table(self, schema: str, name: str) -> TableState | None:
        return self.tables.get((schema.lower(), name.lower()))

    @staticmethod
    def of(states: list[TableState], weights: dict[str, WeightTable] | None = None) -> Catalog:
        return Catalog(
            {(s.schema.lower(), s.name.lower()): s for s in states}, time.time(), weights or {}
        )
