"""The data that describes how the answers of a fan-out SELECT are merged.

Routing decides it (which result column holds what, how to order, group and
cut the rows); execution/merge.py only carries it out. Column positions are
indexes into a shard's result row; a negative position counts from the end of
the row (Python's indexing), so a plan over `SELECT *` names its columns without
knowing how many columns the star stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BITWISE_KINDS = frozenset({"BIT_OR", "BIT_AND", "BIT_XOR"})
AGGREGATE_KINDS = frozenset(
    {"COUNT", "SUM", "MIN", "MAX", "AVG", "COUNT_DISTINCT", "GROUP_CONCAT"} | BITWISE_KINDS
)


@dataclass(frozen=True)
class Aggregate:
    """One aggregate output column of the shard rows and how to combine its partials.

    AVG: `column` holds each shard's own AVG (its definition gives the output
    type and decimals), `sum_column`/`count_column` hold SUM(x) and COUNT(x).
    COUNT_DISTINCT: shards grouped by (group columns, x); `column` holds x.
    GROUP_CONCAT(x ORDER BY x): shards grouped by (group columns, x), sorted by
    x inside the group; `column` holds each shard's GROUP_CONCAT of its (group,
    x) rows (its definition is MariaDB's), `sum_column` holds x and
    `count_column` the shard session's group_concat_max_len.
    SUM/AVG with `distinct` (SUM(DISTINCT x), AVG(DISTINCT x)): shards grouped by
    (group columns, x), `value_column` holds x, and a partial counts once per value of x
    however many shards send it (for AVG, `sum_column`/`count_column` hold SUM(DISTINCT
    x) and COUNT(DISTINCT x)).
    """

    kind: str
    column: int
    sum_column: int | None = None
    count_column: int | None = None
    separator: bytes = b","
    distinct: bool = False
    value_column: int | None = None


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY key.

    `collation` None: the column's own, read from the shard's column definition
    (the merge compares as the server does for that type and character set).
    NULLs sort low, as in MariaDB: first ascending, last descending.
    """

    column: int
    descending: bool
    collation: str | None = None

    @property
    def nulls_first(self) -> bool:
        return not self.descending


@dataclass(frozen=True)
class MergeSpec:
    """How to merge shard rows; the client sees the first `visible` columns.

    `visible` None: all but the last `hidden` (the planner's form, exact
    whatever width a `*` has); a number: that many (hand-built specs).
    """

    visible: int | None = None
    order_by: tuple[SortKey, ...] = ()
    group_by: tuple[int, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    # the shards' order of their partial group rows: the group columns (and a
    # COUNT(DISTINCT x)'s x last), so equal groups are neighbours; empty: unsorted
    group_order: tuple[SortKey, ...] = ()
    having: Callable[[list[object]], bool] | None = None
    distinct: bool = False
    # the rows arrive sorted by order_by, which covers every visible column
    distinct_adjacent: bool = False
    limit: int | None = None
    offset: int = 0
    ties: int = 0  # WITH TIES: rows equal to the last on the first `ties` order_by keys
    hidden: int = 0
    # string columns of a collation the merge weighs by the server's own weight table
    # (unicode_ci, ...): (position, WeightTable); others use execution/sortkeys.py's rules
    weighed: tuple[tuple[int, object], ...] = ()
