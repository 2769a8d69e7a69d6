"""A statement's plan: the original text and a tree of primitives the executor runs.

The planner decides everything before a statement runs: which shards, what each
is sent, how their answers are merged (column layout, hidden helper columns,
COUNT DISTINCT regrouping, star expansion expressed without knowing its width).
The executor dispatches on the root primitive's type and never changes a plan.

Primitives (each a small frozen dataclass that describes itself):

* `Route`: one shard, the text unchanged (or rewritten); the result is relayed.
* `SplitInsert`: an INSERT whose rows were split per shard; one text per shard,
  ids the proxy generated for the auto-increment column.
* `InsertSelect`: an INSERT ... SELECT whose rows are read first, then inserted as VALUES.
* `OrderedWrite`: UPDATE/DELETE ... ORDER BY ... LIMIT over several shards: the keys of
  the rows it changes are read first, then written by key.
* `LoadStaged`: LOAD DATA LOCAL into a sharded or broadcast table: the file is loaded
  into a temporary table on one shard, its rows then inserted as VALUES.
* `OnceEvaluated`: an INSERT whose NOW(), UUID() ... are evaluated once before it runs.
* `Everywhere`: DDL on every shard holding the table, each committing on its own.
* `ScatterWrite`: UPDATE/DELETE/broadcast writes on several shards in the
  transaction; affected rows summed, or taken from one copy for broadcast tables.
* `MergeRead`: a SELECT every shard runs (rewritten), merged by its steps:
  `Group`, `Having`, `Sort`, `Distinct`, `Limit`, `DropHidden`, in that order; a
  sharded table it joins without the shard key is first copied to those shards
  (`CopiedTable`).
* `Local`: answered by the proxy itself (SET, SHOW, @@variables, admin).

The executor dispatches on the root's type. `Plan` also answers what the
transaction layer asks of any plan (`shards`, `write`, `implicit_commit`,
`pins_session`, `sql_for`); those are views of the tree, never separate state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .merge_spec import Aggregate, MergeSpec, SortKey

__all__ = [
    "Aggregate",
    "Distinct",
    "DropHidden",
    "Everywhere",
    "Group",
    "Having",
    "InsertSelect",
    "Limit",
    "LoadStaged",
    "Local",
    "MergeRead",
    "MergeSpec",
    "MergeStep",
    "OnceEvaluated",
    "OrderedWrite",
    "Plan",
    "Primitive",
    "Route",
    "ScatterWrite",
    "Sort",
    "SortKey",
    "SplitInsert",
]


def column_ref(position: int) -> str:
    """`#2` for the third column of a shard row, `#-1` for its last one."""
    return f"#{position}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shard_list(shards: tuple[str, ...]) -> str:
    return ",".join(shards)


# --- primitives that run statements ---------------------------------------------------------


class Primitive:
    """A node of a plan. `describe()` gives its lines, children indented below it."""

    __slots__ = ()

    @property
    def shards(self) -> tuple[str, ...]:
        raise NotImplementedError

    def text_for(self, shard: str, original: str) -> str:
        """The statement text `shard` is sent (the client's text unless rewritten)."""
        return original

    def describe(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Route(Primitive):
    """One shard runs the statement and its answer is relayed packet by packet.

    `sql` None: the client's text goes unchanged. `implicit_commit`: DDL, MySQL
    commits the open transaction first. `pins_session`: LOCK TABLES, temporary
    tables, GET_LOCK, PREPARE keep the shard connection for the session. `why`
    says how the shard was chosen (for EXPLAIN).
    """

    shard: str
    sql: str | None = None
    write: bool = False
    implicit_commit: bool = False
    pins_session: bool = False
    why: str = ""

    @property
    def shards(self) -> tuple[str, ...]:
        return (self.shard,)

    def text_for(self, shard: str, original: str) -> str:
        return self.sql if self.sql is not None else original

    def describe(self) -> list[str]:
        flags = [
            name
            for name, on in (
                ("write", self.write),
                ("implicit_commit", self.implicit_commit),
                ("pins_session", self.pins_session),
            )
            if on
        ]
        line = f"Route shard={self.shard}"
        if flags:
            line += " " + " ".join(flags)
        if self.why:
            line += f" ({self.why})"
        if self.sql is not None:
            line += f" sql={_quoted(self.sql)}"
        return [line]


@dataclass(frozen=True, slots=True)
class SplitInsert(Primitive):
    """An INSERT whose rows were split by shard key: each shard gets its own rows.

    `texts` pairs a shard with its INSERT text, in shard order. `generated_ids`:
    ids the proxy generated for the auto-increment column, in the client's row
    order, none for rows that gave their own id (the first is the client's
    LAST_INSERT_ID()). `row_shards`: each client row's shard in the client's order
    (RETURNING rows are put back in that order, the OK info counts each shard's rows).
    `duplicates`: how a shard's one-row OK (which has no info text) counts duplicates:
    "insert", "ignore", "replace" or "update" (ON DUPLICATE KEY UPDATE).
    """

    table: str
    texts: tuple[tuple[str, str], ...]
    generated_ids: tuple[int, ...] = ()
    row_shards: tuple[str, ...] = ()
    returning: bool = False
    duplicates: str = "insert"

    @property
    def shards(self) -> tuple[str, ...]:
        return tuple(shard for shard, _ in self.texts)

    def text_for(self, shard: str, original: str) -> str:
        for name, text in self.texts:
            if name == shard:
                return text
        raise KeyError(shard)

    def describe(self) -> list[str]:
        line = f"SplitInsert table={self.table} shards={_shard_list(self.shards)}"
        if self.generated_ids:
            line += f" generated_ids={len(self.generated_ids)}"
        if self.returning:
            line += " returning=values order"
        return [line] + [f"  {shard}: {text}" for shard, text in self.texts]


@dataclass(frozen=True, slots=True)
class InsertSelect(Primitive):
    """INSERT ... SELECT whose rows cross shards: read first, then written as VALUES.

    The session runs `select` as a statement of its own (planned like any SELECT, so
    its rows may merge several shards), holds the rows within a bound, writes each value
    back as a literal of its own type and runs `head VALUES (...), ...tail` as a client's
    INSERT: split by shard key, in the session's transaction (session/insert_select.py).
    `column_types`: the target columns' types from the table metadata, in `head`'s order.
    """

    table: str
    head: str  # `INSERT [IGNORE] INTO t (a, b)`, the column list from metadata when omitted
    select: str  # the client's SELECT text
    tail: str  # ` ON DUPLICATE KEY UPDATE ...` as written, or ""
    column_types: tuple[str, ...]
    targets: tuple[str, ...]
    duplicates: str = "insert"  # as SplitInsert.duplicates
    write: bool = True

    @property
    def verb(self) -> str:
        return "REPLACE" if self.duplicates == "replace" else "INSERT"

    @property
    def shards(self) -> tuple[str, ...]:
        return self.targets

    def describe(self) -> list[str]:
        return [
            f"InsertSelect table={self.table} shards={_shard_list(self.targets)}",
            f"  read: {self.select}",
            f"  write: {self.head} VALUES <the rows read>{self.tail}",
        ]


@dataclass(frozen=True, slots=True)
class LoadStaged(Primitive):
    """LOAD DATA|XML LOCAL INFILE into a sharded or broadcast table: one shard loads the
    client's file into a temporary table of the target's columns (`staging`: MariaDB
    reads the file, converts the fields and evaluates the SET clause as it would for the
    table itself), then its rows are read back in order and inserted as VALUES, planned
    like a client's INSERT (split by shard key, ids generated), all in one transaction
    (session/load_data.py). `columns`: the column list as written (None: every column);
    `duplicates`: "insert" (LOCAL skips duplicates), "ignore" or "replace"."""

    database: str
    table: str
    targets: tuple[str, ...]
    staging: str
    duplicates: str
    columns: tuple[str, ...] | None
    set_targets: tuple[str, ...]
    load_head: str  # the client's text before the table name
    load_middle: str  # between the table name and the column list (or where it goes)
    load_list: str  # the column list as written ("" when there is none)
    load_tail: str  # after the column list
    variables: tuple[str, ...] = ()  # user variables it names (lower case): they live there
    write: bool = True

    @property
    def shards(self) -> tuple[str, ...]:
        return self.targets

    def describe(self) -> list[str]:
        columns = "every column" if self.columns is None else ", ".join(self.columns)
        if self.set_targets:
            columns += "; SET " + ", ".join(self.set_targets)
        verb = {"insert": "INSERT IGNORE", "ignore": "INSERT IGNORE"}.get(
            self.duplicates, "REPLACE"
        )
        return [
            f"LoadStaged table={self.database}.{self.table} shards={_shard_list(self.targets)}",
            f"  stage: the file into a temporary table on {self.staging} ({columns})",
            f"  write: {verb} INTO {self.table} VALUES <the rows staged, in file order>",
        ]


@dataclass(frozen=True, slots=True)
class OnceEvaluated(Primitive):
    """An INSERT whose NOW(), UUID(), RAND() ... would be evaluated by every shard it runs
    on: `select` (`SELECT NOW(), UUID()`) evaluates each occurrence once, and the session
    runs `pieces` joined by those values, as literals of their types, as the statement
    (session/volatile_values.py)."""

    select: str
    pieces: tuple[str, ...]  # the client's text around each occurrence

    @property
    def shards(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> list[str]:
        return [f"OnceEvaluated {self.select}", "  then: " + "?".join(self.pieces)]


KEYS_MARK = "__xaproxy_keys__"


@dataclass(frozen=True, slots=True)
class OrderedWrite(Primitive):
    """UPDATE/DELETE ... ORDER BY ... LIMIT over several shards: keys first, then the write.

    The session runs `read` (`SELECT <primary key> ... ORDER BY ..., <primary key> LIMIT n
    FOR UPDATE`, merged across shards like any SELECT), then `write` (the statement
    with `WHERE KEYS_MARK` for its WHERE, ORDER BY and LIMIT; KEYS_MARK stands for
    `(<primary key>) IN (<the keys read>)`)
    in one transaction, so exactly the first n rows in that order change, as on one
    server (session/ordered_write.py).
    """

    table: str
    verb: str  # UPDATE | DELETE
    read: str
    write: str
    keys: str  # `(a, b)` or `a`: the primary key as the IN list compares it
    targets: tuple[str, ...]
    nothing: bool = False  # LIMIT 0: MariaDB answers a bare OK without reading anything

    @property
    def shards(self) -> tuple[str, ...]:
        return self.targets

    def describe(self) -> list[str]:
        return [
            f"OrderedWrite {self.verb} table={self.table} shards={_shard_list(self.targets)}",
            f"  read: {self.read}",
            f"  write: {self.write}",
        ]


@dataclass(frozen=True, slots=True)
class Everywhere(Primitive):
    """DDL sent to every shard holding the table, each committing on its own.

    Not atomic across shards (DDL commits implicitly): a failure on one shard
    leaves the others changed, and the error says which.
    """

    targets: tuple[str, ...]
    sql: str | None = None
    pins_session: bool = False

    @property
    def shards(self) -> tuple[str, ...]:
        return self.targets

    def text_for(self, shard: str, original: str) -> str:
        return self.sql if self.sql is not None else original

    def describe(self) -> list[str]:
        return [f"Everywhere shards={_shard_list(self.targets)} implicit_commit"]


@dataclass(frozen=True, slots=True)
class ScatterWrite(Primitive):
    """A write run on several shards inside the transaction.

    `copies`: a broadcast table, every shard changes its own copy of the same
    rows, so the affected-row count is one copy's; otherwise the counts add up.
    `returning`: a DELETE/INSERT ... RETURNING, its rows gathered from every shard
    (one copy's for broadcast tables).
    """

    targets: tuple[str, ...]
    copies: bool = False
    sql: str | None = None
    returning: bool = False

    @property
    def shards(self) -> tuple[str, ...]:
        return self.targets

    def text_for(self, shard: str, original: str) -> str:
        return self.sql if self.sql is not None else original

    def describe(self) -> list[str]:
        count = "one copy" if self.copies else "summed"
        line = f"ScatterWrite shards={_shard_list(self.targets)} affected_rows={count}"
        if self.returning:
            line += f" returning={'one copy' if self.copies else 'shard order'}"
        return [line]


@dataclass(frozen=True, slots=True)
class Local(Primitive):
    """Answered by the proxy itself; no shard is asked. `what` names the kind of answer."""

    what: str

    @property
    def shards(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> list[str]:
        return [f"Local ({self.what})"]


# --- merge steps of a MergeRead ----------------------------------------------------------------


class MergeStep:
    """One step the merge applies to the shards' rows, in the order MergeRead lists them."""

    __slots__ = ()

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Group(MergeStep):
    """Partial rows combined per group (`columns` empty: one group for the whole result).

    A COUNT_DISTINCT aggregate means the shards grouped by (group columns, value)
    and the merge counts the distinct values per group.
    """

    columns: tuple[int, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    # the order the shards sent their partial rows in (their ORDER BY): the merge
    # then combines neighbours and streams; empty: every group is held until the end
    sorted_by: tuple[SortKey, ...] = ()

    def describe(self) -> str:
        by = ", ".join(column_ref(c) for c in self.columns) or "(all rows)"
        parts = [f"Group by {by}"]
        if self.aggregates:
            parts.append("aggregates " + ", ".join(_describe_aggregate(a) for a in self.aggregates))
        if self.sorted_by:
            parts.append(
                "streamed, shards sorted by " + ", ".join(_describe_key(k) for k in self.sorted_by)
            )
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Having(MergeStep):
    """HAVING applied to merged groups (or to rows, when nothing is grouped).

    `predicate` takes a row of decoded keys (positions as in the shard row);
    `condition` is the client's text, for EXPLAIN.
    """

    condition: str
    predicate: object = field(compare=False, repr=False)

    def describe(self) -> str:
        return f"Having {self.condition}"


@dataclass(frozen=True, slots=True)
class Sort(MergeStep):
    """Rows ordered by `keys`; without grouping, a streaming k-way merge of sorted shards."""

    keys: tuple[SortKey, ...]

    def describe(self) -> str:
        return "Sort " + ", ".join(_describe_key(k) for k in self.keys)


@dataclass(frozen=True, slots=True)
class Distinct(MergeStep):
    """Duplicate rows (over the visible columns, by their collations) dropped.

    `adjacent`: the rows arrive sorted by every visible column, so a duplicate
    follows its original and only the previous row is kept.
    """

    adjacent: bool = False

    def describe(self) -> str:
        return "Distinct (adjacent, sorted input)" if self.adjacent else "Distinct"


@dataclass(frozen=True, slots=True)
class Limit(MergeStep):
    """`offset` rows skipped, then at most `count` kept (None: no limit); `ties`: FETCH ...
    WITH TIES, the rows after the last that equal it on the first `ties` sort keys too."""

    count: int | None
    offset: int = 0
    ties: int = 0

    def describe(self) -> str:
        line = f"Limit count={'none' if self.count is None else self.count} offset={self.offset}"
        return line + (" with ties" if self.ties else "")


@dataclass(frozen=True, slots=True)
class ComputedItem:
    """A select item that computes with aggregates, as `COALESCE(SUM(x), 0)`.

    `pieces` are the item's MariaDB text around its aggregates; `partials` the
    shard row positions of the merged aggregates that go between the pieces.
    """

    column: int
    pieces: tuple[str, ...]
    partials: tuple[int, ...]

    def text(self) -> str:
        parts = [self.pieces[0]]
        for partial, piece in zip(self.partials, self.pieces[1:], strict=True):
            parts.append(column_ref(partial) + piece)
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class Compute(MergeStep):
    """Items over aggregates evaluated by one shard over the merged aggregates, after the
    merge: the server's own arithmetic, types and NULL rules, with each merged value
    given back as a literal of its column's exact type. The shards' own rows carry
    `IF(0, item, NULL)` at the item's place: its definition is the item's, and the item
    is never evaluated over a shard's partial aggregates."""

    items: tuple[ComputedItem, ...]

    def describe(self) -> str:
        return "Compute on one shard " + ", ".join(
            f"{column_ref(i.column)} = {i.text()}" for i in self.items
        )


@dataclass(frozen=True, slots=True)
class DropHidden(MergeStep):
    """The helper columns the shards were asked for, at the end of each row, not sent on.

    `columns` are their expressions, for EXPLAIN; there are `len(columns)` of them.
    """

    columns: tuple[str, ...]

    def describe(self) -> str:
        return f"DropHidden {len(self.columns)}: " + ", ".join(self.columns)


def _describe_aggregate(a: Aggregate) -> str:
    text = f"{a.kind}({column_ref(a.column)})"
    if a.kind == "GROUP_CONCAT":
        distinct = " distinct" if a.distinct else ""
        return (
            f"{text} of values {column_ref(a.sum_column)}{distinct} separator "
            f"{a.separator.decode()!r} max_len {column_ref(a.count_column)}"
        )
    if a.sum_column is not None and a.count_column is not None:
        text += f" from sum {column_ref(a.sum_column)} count {column_ref(a.count_column)}"
    if a.value_column is not None:
        text += f" once per value {column_ref(a.value_column)}"
    return text


def _describe_key(k: SortKey) -> str:
    text = column_ref(k.column) + (" desc" if k.descending else " asc")
    text += " nulls " + ("first" if k.nulls_first else "last")
    if k.collation is not None:
        text += f" collate {k.collation}"
    return text


_STEP_ORDER = (Group, Having, Sort, Distinct, Limit, Compute, DropHidden)


UNMATCHED_MARK = "__xaproxy_unmatched__"
# b keys with a match that the first shard may be told to leave out (KeepUnmatched)
UNMATCHED_KEYS_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class KeepUnmatched:
    """An outer join that keeps a broadcast table's rows: `b LEFT JOIN sharded a`.

    Every shard would NULL-extend each b row it has no match for. So `probe` first asks
    every shard for the b keys that have a match there; the shards then run the read
    keeping only matched rows (`sql`), and `first` alone also keeps the NULL-extended
    rows of b keys no shard matched (`first_sql`, with UNMATCHED_MARK standing for
    `key NOT IN (...)`). Together the shards' rows are one server's join rows, each once.
    """

    probe: str
    first: str
    first_sql: str
    key: str  # the b key column, qualified, as MariaDB reads it

    def describe(self) -> str:
        return (
            f"  KeepUnmatched probe: {self.probe}\n  KeepUnmatched {self.first}: {self.first_sql}"
        )


# the name of such a copy on a shard connection, numbered within the statement
COPY_PREFIX = "xaproxy_copy_"


@dataclass(frozen=True, slots=True)
class CopiedTable:
    """A sharded table a SELECT joins without its shard key: read whole from its shards
    (`read`), written into a temporary table of the same definition on every shard of the
    join (`create`, then `insert` + rows), which the statement reads in its place under
    the same alias; dropped before the answer. Each shard then joins its own rows with
    all of the table, as with a broadcast table.

    `literals` say per column how its text becomes a literal again ("digits", "double",
    "quoted", "unixtime", "hex:<charset>"; see execution/copies.py).
    """

    table: str  # the table, qualified, as the shards name it
    name: str  # its real name: the org_table of the result's columns
    copy: str  # the temporary table, qualified
    sources: tuple[str, ...]
    read: str
    insert: str  # up to VALUES
    literals: tuple[str, ...]
    size: str  # the shards' estimate of the table's rows and bytes (information_schema)
    # the statement's bounds on what it copies (max_copy_rows / max_copy_mb), all tables
    max_rows: int
    max_bytes: int
    # the statement is answered from copies because the shards cannot answer it in parts
    # (a refusal's words); too big to copy, it is refused for that
    reason: str = ""

    @property
    def copy_name(self) -> str:
        """The temporary table's own name (unqualified, unquoted)."""
        return self.copy.rpartition(".")[2].strip("`")

    @property
    def create(self) -> str:
        return f"CREATE TEMPORARY TABLE {self.copy} LIKE {self.table}"

    @property
    def drop(self) -> str:
        return f"DROP TEMPORARY TABLE IF EXISTS {self.copy}"

    def describe(self) -> str:
        return (
            f"  CopyTable {self.table} shards={_shard_list(self.sources)} into {self.copy}\n"
            f"    read: {self.read}"
        )


@dataclass(frozen=True, slots=True)
class MergeRead(Primitive):
    """A SELECT every shard in `targets` runs as `sql`, merged into one server's answer.

    `steps` say how (at most one of each, in the order Group, Having, Sort,
    Distinct, Limit, Compute, DropHidden, Compute also before Sort; none: the
    shards' rows one after another).
    `column_overrides` replace the shards' column definitions at a position
    (COUNT DISTINCT: the shards return the counted value, the client a count).
    `write`: a locking read (FOR UPDATE) marks the branches as writers.
    `calc_found_rows`: SQL_CALC_FOUND_ROWS of plain rows; FOUND_ROWS() is the sum of the
    shards' (each counts its rows without the LIMIT).
    `spec` is the same decision in the form execution/merge.py consumes.
    """

    targets: tuple[str, ...]
    sql: str
    steps: tuple[MergeStep, ...] = ()
    column_overrides: tuple[tuple[int, bytes], ...] = ()
    write: bool = False
    calc_found_rows: bool = False
    # (position, WeightTable): string columns merged by their collation's server weights
    weighed: tuple[tuple[int, object], ...] = ()
    unmatched: KeepUnmatched | None = None
    # (shard, text) for shards that run another text than `sql` (KeepUnmatched's first)
    shard_sql: tuple[tuple[str, str], ...] = ()
    copies: tuple[CopiedTable, ...] = ()
    spec: MergeSpec = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Compute runs after Limit, or before Sort when the order or DISTINCT needs its values
        order = [_STEP_ORDER.index(type(step)) for step in self.steps if type(step) is not Compute]
        kinds = [type(step) for step in self.steps]
        if Compute in kinds:
            after = kinds[kinds.index(Compute) + 1 :]
            if kinds.count(Compute) > 1 or Group in after or Having in after:
                raise ValueError(f"merge steps out of order or repeated: {self.steps}")
        if order != sorted(set(order)):
            raise ValueError(f"merge steps out of order or repeated: {self.steps}")
        spec = replace(merge_spec_of(self.steps), weighed=self.weighed)
        object.__setattr__(self, "spec", spec)

    @property
    def shards(self) -> tuple[str, ...]:
        return self.targets

    def text_for(self, shard: str, original: str) -> str:
        for name, text in self.shard_sql:
            if name == shard:
                return text
        return self.sql

    def step(self, kind: type) -> MergeStep | None:
        return next((s for s in self.steps if isinstance(s, kind)), None)

    def describe(self) -> list[str]:
        line = f"MergeRead shards={_shard_list(self.targets)}"
        if self.write:
            line += " write"
        if self.calc_found_rows:
            line += " found_rows=summed"
        lines = [line]
        for copy in self.copies:
            lines += copy.describe().split("\n")
        lines.append(f"  sql: {self.sql}")
        if self.unmatched is not None:
            lines += self.unmatched.describe().split("\n")
        lines += [f"  {step.describe()}" for step in self.steps] or ["  Concatenate"]
        for position, _ in self.column_overrides:
            lines.append(f"  ColumnType {column_ref(position)} COUNT BIGINT")
        for position, table in self.weighed:
            lines.append(f"  Weigh {column_ref(position)} by {table.collation}")
        return lines


def merge_spec_of(steps: tuple[MergeStep, ...]) -> MergeSpec:
    group = next((s for s in steps if isinstance(s, Group)), None)
    having = next((s for s in steps if isinstance(s, Having)), None)
    sort = next((s for s in steps if isinstance(s, Sort)), None)
    limit = next((s for s in steps if isinstance(s, Limit)), None)
    hidden = next((s for s in steps if isinstance(s, DropHidden)), None)
    return MergeSpec(
        hidden=len(hidden.columns) if hidden is not None else 0,
        order_by=sort.keys if sort is not None else (),
        group_by=group.columns if group is not None else (),
        aggregates=group.aggregates if group is not None else (),
        group_order=group.sorted_by if group is not None else (),
        having=having.predicate if having is not None else None,  # type: ignore[arg-type]
        distinct=any(isinstance(s, Distinct) for s in steps),
        distinct_adjacent=any(isinstance(s, Distinct) and s.adjacent for s in steps),
        limit=limit.count if limit is not None else None,
        offset=limit.offset if limit is not None else 0,
        ties=limit.ties if limit is not None else 0,
    )


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """The original statement text and the primitive that runs it.

    `static`: the plan does not depend on the statement's literal values (no
    sharded or broadcast table), so one plan serves every statement of a template;
    such a cached plan keeps the text it was planned for in `sql`, so consumers
    pass the text they run to `sql_for`.
    """

    sql: str
    root: Primitive
    static: bool = False
    # `SET STATEMENT ... FOR `: the plan is the inner statement's (`sql`), each shard's
    # text gets this prefix; the one-shard case sends the client's text as it is
    prefix: str = ""

    def describe(self) -> str:
        """The plan as an indented tree, one primitive or merge step a line."""
        return "\n".join(self.root.describe())

    # --- what the transaction layer asks of any plan ----------------------------------------

    @property
    def shards(self) -> tuple[str, ...]:
        return self.root.shards

    @property
    def write(self) -> bool:
        root = self.root
        if isinstance(root, (SplitInsert, Everywhere, ScatterWrite, OrderedWrite, OnceEvaluated)):
            return True
        return bool(getattr(root, "write", False))

    @property
    def returning(self) -> bool:
        """A multi-shard write whose RETURNING rows the executor gathers."""
        return bool(getattr(self.root, "returning", False))

    @property
    def implicit_commit(self) -> bool:
        root = self.root
        return isinstance(root, Everywhere) or (isinstance(root, Route) and root.implicit_commit)

    @property
    def pins_session(self) -> bool:
        return bool(getattr(self.root, "pins_session", False))

    def sql_for(self, shard: str, original: str | None = None) -> str:
        """The text `shard` is sent for this plan (`original`: the client's text)."""
        if self.prefix:
            return self.prefix + self.root.text_for(shard, self.sql)
        return self.root.text_for(shard, self.sql if original is None else original)


def on_shard(shard: str, why: str) -> Plan:
    """A plan that relays a statement from one named shard, for a statement the session
    sends where the shard map does not place it (SHOW TABLES of a schema it does not list)."""
    return Plan("", Route(shard, why=why), static=True)
