"""Decides which shard(s) a parsed statement runs on, and what each shard is sent.

The shard map is the DBA's YAML: a table listed as sharded or broadcast is
placed by it, any other table of a schema lives on the schema's default shard.
A plan never guesses: a statement the proxy cannot place safely is refused
with an error that says why, never run somewhere it could give a wrong answer.
"""

from __future__ import annotations

import decimal
import functools
import itertools
import re
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp
from sqlglot.tokens import TokenType

from .. import errors
from ..analysis import Kind, Statement, analyze
from ..analysis.parse import Parsed, parse
from ..config import Config, SchemaConfig, TableConfig
from ..metadata.model import Catalog, TableMetadata
from . import key_templates, plan, sharding
from .fanout import (
    FanoutRewrite,
    calc_found_rows,
    named_query,
    rewrite_fanout_select,
    rewrite_fanout_union,
    union_branches,
)
from .fanout_plans import FanoutPlans
from .keycolumn import KeyColumn, key_column, place_string
from .keys import (
    KeyAnalysis,
    PlanDependent,
    ambiguous_for_hashing,
    bind_placeholders,
    compared_fraction,
    effective_kind,
    key_kind,
    literal_value,
    refuse_plan_dependent_fractions,
    shards_for_condition,
)
from .load_route import route_load_data
from .mariadb_sql import mariadb_sql, regenerates_itself
from .merge_collations import (
    MERGEABLE,
    Collations,
    check_having_conversions,
    check_merge_collations,
)
from .plan import Everywhere, MergeRead, Plan, ScatterWrite, SplitInsert
from .table_copies import read_from_copies, table_copy
from .textsplit import insert_select_spans, insert_tuple_spans
from .volatile import STATEMENT_CONSTANT, volatile_expression, volatile_spans

SYSTEM_SCHEMAS = frozenset({"information_schema", "performance_schema", "mysql", "sys"})

_UNCOUNTABLE_STEPS = (plan.Group, plan.Having, plan.Distinct)
_WRITE_NODES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Merge,
)
_DDL_NODES = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
_DDL_COMMANDS = ("ALTER", "RENAME", "CREATE", "DROP", "TRUNCATE", "ANALYZE", "OPTIMIZE", "REPAIR")


# Statement kinds the proxy answers itself, with no shard asked (session/statements.py has
# a handler for each; LOCAL_SELECT is a SELECT of session values the session evaluates).
ANSWERED_LOCALLY = frozenset(
    {
        Kind.BEGIN,
        Kind.COMMIT,
        Kind.ROLLBACK,
        Kind.SAVEPOINT,
        Kind.SET,
        Kind.USE,
        Kind.SHOW_DATABASES,
        Kind.SHOW_TABLES,
        Kind.SHOW_SESSION_STATUS,
        Kind.SHOW_WARNINGS,
        Kind.SHOW_ERRORS,
        Kind.SHOW_WARNING_COUNT,
        Kind.SHOW_ERROR_COUNT,
        Kind.SHOW_PROCESSLIST,
        Kind.XA,
        Kind.KILL,
        Kind.CREATE_DATABASE,
        Kind.DROP_DATABASE,
        Kind.PROXY,
        Kind.EMPTY,
        Kind.COMMENT,
        Kind.LOCAL_SELECT,
    }
)


def local_plan(kind: Kind, sql: str) -> Plan | None:
    """The `Local` plan of a statement the proxy answers itself, else None (it is routed)."""
    if kind in ANSWERED_LOCALLY:
        return Plan(sql, plan.Local(f"answered by xaproxy: {kind.value}"), static=True)
    return None


_SHAPE_CACHE_SIZE = 4096
_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")


@dataclass(slots=True)
class _Placed:
    """A table occurrence in a statement, with where the shard map puts it."""

    node: exp.Table
    schema: SchemaConfig | None
    config: TableConfig | None
    alias: str
    shards: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Shape:
    ast: exp.Expression
    pins: bool
    placed: list[_Placed]


@dataclass(frozen=True, slots=True)
class _InsertShape:
    """What the planner read off an INSERT before placing its rows."""

    target: _Placed
    table: TableConfig
    spans: Any
    verb: str
    columns: list[str]
    column_list: str | None  # the column list the proxy writes when the client gave none
    key: str
    auto: str
    append_auto: bool  # the auto-increment column is not given: the proxy appends it
    auto_at: int | None
    key_at: int | None


@dataclass(slots=True)
class _PlacedRows:
    generated: list[int] = field(default_factory=list)
    edits: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, text) in sql
    by_shard: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # each row's shard, in the client's order


def _value_count_mismatch(shape: _InsertShape, index: int, has_items: bool) -> errors.ProxyError:
    table = shape.table
    if not has_items and shape.columns:
        return errors.not_supported(
            f"an empty VALUES () row in {shape.verb} into sharded table '{table.name}': "
            f"shard key '{table.shard_key}' would take its default",
            "give the shard key",
        )
    message = f"Column count doesn't match value count at row {index + 1}"
    if shape.column_list is not None:
        message += (
            f" (xaproxy read {len(shape.columns)} columns of '{table.name}' from the "
            "shards; if the table changed without going through this proxy, run "
            "XAPROXY RELOAD METADATA)"
        )
    return errors.ProxyError(1136, "21S01", message)


class IdGenerator:
    """Snowflake-style ids: milliseconds since 2024, a node number from proxy_id, a sequence.

    41 bits of time, 10 bits of node and 12 bits of sequence keep ids positive
    BIGINTs, increasing per proxy and unique across proxies whose proxy_id hashes
    to different nodes (the node is CRC-32(proxy_id) mod 1024; check-config warns
    about nothing, so give proxies distinct ids).
    """

    _EPOCH_MS = 1704067200000

    def __init__(self, proxy_id: str) -> None:
        self.node = zlib.crc32(proxy_id.encode()) % 1024
        self._last_ms = 0
        self._sequence = 0

    def next_ids(self, count: int) -> list[int]:
        ids = []
        for _ in range(count):
            now = int(time.time() * 1000) - self._EPOCH_MS
            if now <= self._last_ms:
                now = self._last_ms
                self._sequence += 1
                if self._sequence >= 4096:
                    now += 1
                    self._sequence = 0
            else:
                self._sequence = 0
            self._last_ms = now
            ids.append((now << 22) | (self.node << 12) | self._sequence)
        return ids


class Planner:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.first_shard = next(iter(config.shards))
        self.all_shards = tuple(config.shards)
        self.ids = IdGenerator(config.proxy_id)
        self._params: list[object] | None = None
        self._remember = True
        self._sql = ""
        self._ast: exp.Expression | None = None
        self._returning = False
        self._fanout_plans = FanoutPlans()
        self._shapes: OrderedDict[tuple[int, str | None], _Shape] = OrderedDict()
        # the shards' table definitions; replaced whole by the session layer on each reload
        self.metadata = Catalog()

    def default_shard(self, database: str | None) -> str:
        schema = self.config.schema(database) if database else None
        return schema.default_shard if schema else self.first_shard

    # --- entry point --------------------------------------------------------------

    def plan(
        self,
        kind: Kind,
        parsed: Parsed,
        sql: str,
        database: str | None,
        params: list[object] | None,
    ) -> Plan:
        """The plan of any statement: `Local` when the proxy answers it, else routed.

        For one-off planning (XAPROXY EXPLAIN, golden cases): nothing is remembered.
        """
        local = local_plan(kind, sql)
        if local is not None:
            return local
        return self.route(parsed, sql, database, params, remember=False)

    def route(
        self,
        parsed: Parsed,
        sql: str,
        database: str | None,
        params: list[object] | None = None,
        *,
        remember: bool = True,
    ) -> Plan:
        """`params` bind the :pN placeholders of a template (literal-normalized or prepared).

        `remember`: `parsed` is a cached template, so per-template work may be kept for
        the next statement of the same shape (False for one-off trees, e.g. huge ones).
        """
        self._params = params
        self._remember = remember
        self._sql = sql
        ast = parsed.ast
        verb = "INSERT"
        if _is_replace(ast):
            ast = _replace_as_insert(str(ast.expression.this)) or ast
            verb = "REPLACE"
        self._ast = ast
        self._returning = (
            isinstance(ast, (exp.Insert, exp.Delete)) and ast.args.get("returning") is not None
        )
        if ast is None or isinstance(ast, exp.Command):
            return self._route_opaque(parsed, sql, database)
        write = isinstance(ast, _WRITE_NODES)
        ddl = isinstance(ast, _DDL_NODES)
        if remember:
            pins, placed = self._shape(ast, database)
        else:
            pins, placed = _pins_session(ast), self._place_tables(ast, database)
        if not any(
            p.config is not None and (p.config.sharded or p.config.broadcast) for p in placed
        ):
            return self._route_plain(placed, database, write, ddl, pins)
        if ddl:
            _refuse_stored_definition(ast, placed)
            return self._route_ddl(placed)
        if isinstance(ast, exp.Insert):
            try:
                return self._route_insert(ast, sql, placed, verb)
            except _VolatileRefusal as refusal:
                return self._evaluated_once(ast, sql, refusal)
        if isinstance(ast, (exp.Update, exp.Delete)):
            try:
                return self._route_update_delete(ast, placed)
            except _VolatileRefusal as refusal:
                return self._evaluated_once(ast, sql, refusal)
        if isinstance(ast, (exp.Select, exp.Union)):
            try:
                if isinstance(ast, exp.Select):
                    return self._route_select(ast, sql, placed)
                return self._route_union(ast, placed)
            except errors.ProxyError as refusal:
                return self._gathered(ast, sql, placed, refusal)
        if isinstance(ast, (exp.Intersect, exp.Except)):
            what = f"{type(ast).__name__.upper()} over several shards"
            return self._gathered(ast, sql, placed, errors.not_supported(what))
        if isinstance(ast, exp.Describe):
            return self._route_describe(ast, placed)
        raise errors.not_supported(
            f"{type(ast).__name__.upper()} statements on sharded or broadcast tables"
        )

    def _route_describe(self, ast: exp.Describe, placed: list[_Placed]) -> Plan:
        """DESCRIBE of a table: every shard holds the same definition, one copy answers.

        EXPLAIN of a statement over several shards would show one shard's plan as the
        whole one: refused, with the proxy's own EXPLAIN named.
        """
        if isinstance(ast.this, exp.Table) and len(placed) == 1:
            return Plan(self._sql, plan.Route(placed[0].shards[0], why="one copy describes"))
        raise errors.not_supported(
            "EXPLAIN of a statement on sharded or broadcast tables",
            "XAPROXY EXPLAIN <statement> shows the proxy's plan; EXPLAIN it on a shard "
            "directly with the text XAPROXY EXPLAIN prints for that shard",
        )

    def describe_shard(self, parsed: Parsed, sql: str, database: str | None) -> str:
        """A shard that can describe a statement's result columns (at PREPARE, before values)."""
        ast = parsed.ast
        if _is_replace(ast):
            ast = _replace_as_insert(str(ast.expression.this)) or ast
        if ast is None or isinstance(ast, exp.Command):
            return self._route_opaque(parsed, sql, database).shards[0]
        placed = self._place_tables(ast, database)
        return placed[0].shards[0] if placed else self.default_shard(database)

    def key_parameter(
        self, parsed: Parsed, database: str | None
    ) -> tuple[TableConfig, KeyColumn, int] | None:
        """For a template placed by `key = :pN` alone (key_templates.py): the table, what
        the shards say its key column is (as the planner reads it now), and N."""
        ast = parsed.ast
        if ast is None:
            return None
        try:
            placed = self._place_tables(ast, database)
        except errors.ProxyError:
            return None
        if len(placed) != 1 or placed[0].config is None or not placed[0].config.sharded:
            return None
        index = key_templates.key_parameter(ast, placed[0].node, placed[0].config)
        if index is None:
            return None
        return placed[0].config, self._key_column(placed[0]), index

    # --- table placement ------------------------------------------------------------

    def _shape(self, ast: exp.Expression, database: str | None) -> tuple[bool, list[_Placed]]:
        """Whether `ast` pins the session, and its tables placed; once per template and db."""
        key = (id(ast), database)
        shape = self._shapes.get(key)
        if shape is None or shape.ast is not ast:  # ids are reused once a tree is freed
            shape = _Shape(ast, _pins_session(ast), self._place_tables(ast, database))
            self._shapes[key] = shape
            if len(self._shapes) > _SHAPE_CACHE_SIZE:
                self._shapes.popitem(last=False)
        return shape.pins, shape.placed

    def _place_tables(self, ast: exp.Expression, database: str | None) -> list[_Placed]:
        ctes = {cte.alias_or_name.lower() for cte in ast.find_all(exp.CTE)}
        # `DELETE a FROM t AS a JOIN ...`: the names before FROM refer to tables after it
        named = (
            {id(t) for t in ast.args.get("tables") or ()} if isinstance(ast, exp.Delete) else set()
        )
        placed: list[_Placed] = []
        for table in ast.find_all(exp.Table):
            name = table.name
            if not name or (not table.db and name.lower() in ctes) or id(table) in named:
                continue
            if isinstance(table.this, exp.Parameter):  # SELECT ... INTO @variable
                continue
            db = table.db or database
            if db is None:
                raise errors.no_database_selected()
            if db.lower() in SYSTEM_SCHEMAS:
                placed.append(_Placed(table, None, None, table.alias_or_name, (self.first_shard,)))
                continue
            schema = self.config.schema(db)
            if schema is None:
                raise errors.unknown_database(db)
            config = schema.table(name)
            shards = config.shards if config is not None else (schema.default_shard,)
            placed.append(_Placed(table, schema, config, table.alias_or_name, shards))
        return placed

    def _route_plain(
        self, placed: list[_Placed], database: str | None, write: bool, ddl: bool, pins: bool
    ) -> Plan:
        shards: list[str] = []
        for p in placed:
            if p.shards[0] not in shards:
                shards.append(p.shards[0])
        if not shards:
            shards.append(self.default_shard(database))
        if len(shards) > 1:
            raise errors.not_supported(
                f"a statement that joins tables living on different shards ({', '.join(shards)})",
                "unsharded tables of a statement must share a default shard",
            )
        why = "unsharded tables" if placed else "no table: the default shard"
        root = plan.Route(shards[0], write=write, implicit_commit=ddl, pins_session=pins, why=why)
        return Plan(self._sql, root, static=True)

    def _route_ddl(self, placed: list[_Placed]) -> Plan:
        shards = sharding.union((p.shards for p in placed), self.all_shards)
        if len(shards) == 1:
            root = plan.Route(shards[0], write=True, implicit_commit=True, why="DDL")
            return Plan(self._sql, root)
        return Plan(self._sql, Everywhere(shards))

    def _on_shards(self, shards: tuple[str, ...], why: str, *, copies: bool = False) -> Plan:
        """A write on `shards`: relayed from one, or run on all of them."""
        if len(shards) == 1:
            return Plan(self._sql, plan.Route(shards[0], write=True, why=why))
        self._refuse_volatile("a write that runs on several shards")
        return Plan(self._sql, ScatterWrite(shards, copies=copies, returning=self._returning))

    def _refuse_volatile(self, what: str) -> None:
        """Each shard would evaluate RAND(), NOW(), UUID() ... itself: the values would differ."""
        name = volatile_expression(self._ast) if self._ast is not None else None
        if name is not None:
            raise errors.not_supported(
                f"{name} in {what}: each shard would evaluate it and write a different value",
                "compute the value in the application and write it as a literal",
                _VolatileRefusal,
            )

    def _evaluated_once(self, ast: exp.Expression, sql: str, refusal: errors.ProxyError) -> Plan:
        """A write whose NOW(), UUID(), RAND() ... each shard would evaluate: each
        occurrence is evaluated once first (plan.OnceEvaluated). In an INSERT ... VALUES /
        SET any such call with constant arguments; in an UPDATE/DELETE only the clock's
        (NOW(), CURDATE(), ...: MariaDB's value for the whole statement). Refused: column
        arguments, RAND()/UUID()/SYSDATE() per row (an UPDATE's, or in ON DUPLICATE KEY
        UPDATE), RETURNING."""
        spans = volatile_spans(sql)
        if isinstance(ast, exp.Insert):
            conflict = ast.args.get("conflict")
            per_row = conflict is not None and volatile_expression(conflict) in _PER_ROW
            allowed = isinstance(ast.expression, exp.Values | type(None)) and not per_row
        else:
            allowed = all(_call_name(sql[a:b]) in STATEMENT_CONSTANT for a, b in spans or ())
        if not spans or not allowed or self._returning:
            raise refusal
        pieces = [sql[: spans[0][0]]]
        for (_, end), (start, _) in itertools.pairwise(spans):
            pieces.append(sql[end:start])
        pieces.append(sql[spans[-1][1] :])
        select = "SELECT " + ", ".join(sql[a:b] for a, b in spans)
        return Plan(sql, plan.OnceEvaluated(select, tuple(pieces)))

    # --- writes ---------------------------------------------------------------------

    def _target(self, placed: list[_Placed], what: str) -> _Placed:
        targets = [
            p for p in placed if p.config is not None and (p.config.sharded or p.config.broadcast)
        ]
        if len({(p.schema.name if p.schema else "", p.node.name.lower()) for p in targets}) > 1:
            raise errors.not_supported(
                f"{what} that touches several sharded or broadcast tables",
                "write to one sharded table per statement",
            )
        return targets[0]

    def _route_insert(
        self, ast: exp.Insert, sql: str, placed: list[_Placed], verb: str = "INSERT"
    ) -> Plan:
        if isinstance(ast.expression, (exp.Select, exp.Union, exp.Subquery)):
            return self._route_insert_select(ast, sql, placed, verb)
        target = self._target(placed, "an INSERT" if verb == "INSERT" else "a REPLACE")
        table = target.config
        assert table is not None
        if len(placed) > 1:
            raise errors.not_supported(
                f"{verb} ... SELECT into a sharded or broadcast table",
                "select the rows first and insert them with VALUES",
            )
        if table.broadcast:
            return self._on_shards(table.shards, "broadcast table", copies=True)
        values = ast.expression
        spans = insert_tuple_spans(sql)
        if (
            not isinstance(values, exp.Values)
            or spans is None
            or len(spans.tuples) != len(values.expressions)
            or ast.find(exp.Partition) is not None
        ):
            raise errors.not_supported(
                f"{verb} into sharded table '{table.name}' other than with VALUES rows or "
                "SET assignments (INSERT ... SELECT, PARTITION (...), ...)",
                "write the rows as VALUES (...) or SET col = value, ...",
            )
        if verb == "REPLACE":
            self._check_replace(target)
        shape = self._insert_shape(ast, target, spans, verb)
        rows = self._place_insert_rows(shape, values, sql)
        return self._insert_plan(shape, rows, sql)

    def _route_insert_select(
        self, ast: exp.Insert, sql: str, placed: list[_Placed], verb: str
    ) -> Plan:
        """INSERT ... SELECT with a sharded or broadcast table on either side: the rows are
        read by a SELECT of their own, then inserted as VALUES (plan.InsertSelect)."""
        what = f"{verb} ... SELECT"
        if self._returning or ast.find(exp.Partition) is not None:
            construct = what + (" ... RETURNING" if self._returning else " with PARTITION (...)")
            raise errors.not_supported(
                f"{construct} over sharded or broadcast tables",
                "select the rows first and insert them with VALUES",
            )
        spans = insert_select_spans(sql)
        schema_node = ast.this
        table_node = schema_node.this if isinstance(schema_node, exp.Schema) else schema_node
        target = next((p for p in placed if p.node is table_node), None)
        if spans is None or target is None:
            raise errors.not_supported(
                f"{what} written other than `INSERT INTO t [(columns)] SELECT ...`",
                "select the rows first and insert them with VALUES",
            )
        conflict = ast.args.get("conflict")
        if conflict is not None and any(
            assignment.expression.find(exp.Column) is not None
            for assignment in conflict.expressions
            if isinstance(assignment, exp.EQ)
        ):
            raise errors.not_supported(
                f"a column on the right of ON DUPLICATE KEY UPDATE in {what} over sharded or "
                "broadcast tables (MariaDB reads it from the SELECT's tables)",
                "use VALUES(column) for the value the row would have inserted",
            )
        named = (
            [c.name for c in schema_node.expressions]
            if isinstance(schema_node, exp.Schema)
            else None
        )
        head = sql[: spans.select_start].rstrip()
        table = target.config
        types: tuple[str, ...] = ()
        if table is not None and (table.sharded or table.broadcast):
            if verb == "REPLACE" and table.sharded:
                self._check_replace(target)
            definition = self._definition(target, f"{what} into '{table.name}'")
            if named is None:
                named = [c.name for c in definition.insert_columns]
                head += " (" + ", ".join(_identifier(n) for n in named) + ")"
            types = tuple(_column_type(definition, n) for n in named)
        elif named is not None:
            types = ("",) * len(named)
        tail = sql[spans.tail_start :].strip()
        root = plan.InsertSelect(
            table.name if table is not None else table_node.name,
            head,
            sql[spans.select_start : spans.select_end],
            " " + tail if tail else "",
            types,
            target.shards if table is None else table.shards,
            _duplicates_rule(ast, verb),
        )
        return Plan(sql, root)

    def _insert_shape(
        self, ast: exp.Insert, target: _Placed, spans: Any, verb: str
    ) -> _InsertShape:
        """The columns an INSERT gives, where its key and auto-increment values are."""
        table = target.config
        assert table is not None
        schema_node = ast.this
        named = (
            [c.name for c in schema_node.expressions]
            if isinstance(schema_node, exp.Schema)
            else None
        )
        key = (table.shard_key or "").lower()
        auto = (table.auto_increment or "").lower()
        column_list: str | None = None  # the column list the proxy writes for the client
        if named is None:
            definition = self._definition(
                target, f"{verb} into '{table.name}' without a column list"
            )
            named = [c.name for c in definition.insert_columns]
            listed = named + (
                [table.auto_increment] if auto and auto not in _lowered(named) else []
            )
            column_list = "(" + ", ".join(_identifier(n) for n in listed) + ") "
        columns = _lowered(named)
        conflict = ast.args.get("conflict")
        if conflict is not None:
            for assignment in conflict.expressions:
                if isinstance(assignment, exp.EQ) and assignment.this.name.lower() == key:
                    raise _shard_key_change(table)
        append_auto = bool(auto) and auto not in columns
        key_at = columns.index(key) if key in columns else None
        if key_at is None and not (append_auto and auto == key):
            raise self._missing_key(target)
        return _InsertShape(
            target=target,
            table=table,
            spans=spans,
            verb=verb,
            columns=columns,
            column_list=column_list,
            key=key,
            auto=auto,
            append_auto=append_auto,
            auto_at=columns.index(auto) if auto and not append_auto else None,
            key_at=key_at,
        )

    def _place_insert_rows(self, shape: _InsertShape, values: exp.Values, sql: str) -> _PlacedRows:
        """Each row's shard, and the ids the proxy generates with the text edits they need."""
        table, spans, verb, columns = shape.table, shape.spans, shape.verb, shape.columns
        rows = _PlacedRows()
        for index, row in enumerate(values.expressions):
            items = row.expressions
            if len(items) != len(columns):
                raise _value_count_mismatch(shape, index, bool(items))
            row_id: int | None = None
            auto_at = shape.auto_at
            if shape.append_auto or (
                auto_at is not None
                and self._generates(shape.target, items[auto_at], sql, spans.items[index][auto_at])
            ):
                row_id = self.ids.next_ids(1)[0]
                rows.generated.append(row_id)
                if shape.append_auto:
                    at = spans.tuples[index][1] - (0 if spans.set_form else 1)
                    text = f", {_identifier(table.auto_increment or '')} = {row_id}"
                    if not spans.set_form:
                        text = f"{', ' if items else ''}{row_id}"
                    rows.edits.append((at, at, text))
                else:
                    assert auto_at is not None
                    rows.edits.append((*spans.items[index][auto_at], str(row_id)))
            if shape.key_at is None or (row_id is not None and shape.auto == shape.key):
                key_value: object = row_id
            else:
                key_value = self._row_key(table, items[shape.key_at], verb)
            shard = self._place(shape.target, key_value)
            rows.by_shard.setdefault(shard, []).append(spans.tuples[index])
            rows.order.append(shard)
        return rows

    def _insert_plan(self, shape: _InsertShape, rows: _PlacedRows, sql: str) -> Plan:
        """One shard's text relayed, or each shard's rows as its own INSERT."""
        table, spans, edits, by_shard = shape.table, shape.spans, rows.edits, rows.by_shard
        ids = tuple(rows.generated)
        order = tuple(rows.order)
        rule = _duplicates_rule(self._ast, shape.verb)
        if spans.set_form:
            (shard,) = by_shard
            if not edits:
                return Plan(sql, plan.Route(shard, write=True, why="shard key"))
            return Plan(
                sql,
                SplitInsert(table.name, ((shard, _edited(sql, 0, len(sql), edits)),), ids, order),
            )
        head = sql[: spans.values_end]
        if shape.column_list is not None:
            head = (
                sql[: spans.values_start]
                + shape.column_list
                + sql[spans.values_start : spans.values_end]
            )
        elif shape.append_auto:
            close = spans.columns_close
            separator = ", " if shape.columns else ""
            head = (
                sql[:close] + f"{separator}{_identifier(table.auto_increment or '')}" + head[close:]
            )
        tail = sql[spans.tail_start :]
        tail = " " + tail if tail.strip() else ""
        shards = tuple(s for s in table.shards if s in by_shard)
        if len(shards) == 1 and shape.column_list is None and not edits:
            return Plan(sql, plan.Route(shards[0], write=True, why="shard key"))
        if len(shards) > 1:
            self._refuse_volatile(
                f"{'an INSERT' if shape.verb == 'INSERT' else 'a REPLACE'} whose rows go to "
                "several shards"
            )
        texts = tuple(
            (
                shard,
                head
                + " "
                + ", ".join(_edited(sql, start, end, edits) for start, end in by_shard[shard])
                + tail,
            )
            for shard in shards
        )
        return Plan(sql, SplitInsert(table.name, texts, ids, order, self._returning, rule))

    def _definition(self, target: _Placed, what: str) -> TableMetadata:
        """The table's definition as every shard holding it has it, or a refusal saying why not."""
        table = target.config
        assert table is not None and target.schema is not None
        name = f"{target.schema.name}.{table.name}"
        state = self.metadata.table(target.schema.name, table.name)
        definition = state.definition if state is not None else None
        if definition is not None:
            return definition
        if state is None or state.absent:
            why = (
                f"xaproxy has not read the definition of '{name}' from the shards "
                "(it was created or changed without going through this proxy)"
            )
            raise errors.not_supported(f"{what}: {why}", "run XAPROXY RELOAD METADATA")
        raise errors.not_supported(
            f"{what}: the definition of '{name}' {state.problem}",
            "make the table the same on every shard, then run XAPROXY RELOAD METADATA",
        )

    def _generates(
        self, target: _Placed, value: exp.Expression, sql: str, span: tuple[int, int]
    ) -> bool:
        """True when the auto-increment column's value asks for a new id (DEFAULT, or NULL there).

        The proxy generates it: a shard's own AUTO_INCREMENT would hand out ids that
        other shards hand out too. A value the shard would replace by its own id
        (0, or an expression) is refused.
        """
        table = target.config
        assert table is not None
        if isinstance(value, exp.Var) and value.name.upper() == "DEFAULT":
            return True
        found, literal = literal_value(value, self._params)
        if found and literal is not None and _nonzero_integer(literal):
            return False
        column = table.auto_increment or ""
        given = sql[span[0] : span[1]]
        definition = self._definition(target, f"value {given} for auto-increment column '{column}'")
        shard_column = definition.column(column)
        if shard_column is None or not shard_column.auto_increment:
            return False  # the shard stores what it is given, as one server would
        if found and literal is None:
            return True  # NULL into an AUTO_INCREMENT column: a new id
        raise errors.not_supported(
            f"value {given} for auto-increment column "
            f"'{table.name}.{column}': each shard would generate its own id for it",
            "omit the column or write DEFAULT (or NULL) to have xaproxy generate the id",
        )

    def _missing_key(self, target: _Placed) -> errors.ProxyError:
        table = target.config
        assert table is not None and target.schema is not None
        state = self.metadata.table(target.schema.name, table.name)
        definition = state.definition if state is not None else None
        column = definition.column(table.shard_key or "") if definition is not None else None
        if column is not None and (column.default is not None or column.nullable):
            return errors.not_supported(
                f"an INSERT into '{table.name}' that leaves shard key '{table.shard_key}' to its "
                "default",
                "give the shard key in every row",
            )
        return errors.ProxyError(
            1364,
            "HY000",
            f"Field '{table.shard_key}' doesn't have a default value: the shard key of "
            f"'{table.name}' must be given in every INSERT",
        )

    def _check_replace(self, target: _Placed) -> None:
        """REPLACE deletes the rows it conflicts with: they must live on the new row's shard."""
        table = target.config
        assert table is not None
        definition = self._definition(target, f"REPLACE into sharded table '{table.name}'")
        key = (table.shard_key or "").lower()
        for unique in definition.all_unique_keys:
            if key not in _lowered(list(unique)):
                raise errors.not_supported(
                    f"REPLACE into sharded table '{table.name}': its unique key "
                    f"({', '.join(unique)}) does not contain shard key '{table.shard_key}', so "
                    "the row it replaces may live on another shard",
                    "DELETE the old row by its key and INSERT the new one",
                )

    def _key_column(self, target: _Placed) -> KeyColumn:
        table = target.config
        assert table is not None and target.schema is not None
        return key_column(table, target.schema.name, self.metadata, key_kind(table))

    def _place(self, target: _Placed, key_value: object) -> str:
        """The shard of a new row: where the server's comparison of its key will look for it."""
        table = target.config
        assert table is not None
        column = self._key_column(target)
        if table.algorithm == "hash" and column.kind == "string" and key_value is not None:
            return place_string(table, column, key_value)
        if table.algorithm == "hash" and column.kind is None and not column.known:
            # the column may be a string one: its values are placed by their collation weight
            raise errors.not_supported(
                f"an INSERT into hash table '{table.name}': {column.problem}",
                "run XAPROXY RELOAD METADATA (or declare key_type: integer in the shard map)",
            )
        _check_hashable(table, key_value)
        _check_stored_as_given(table, key_value, effective_kind(table, column))
        return sharding.shard_for(table, key_value)

    def _row_key(self, table: TableConfig, value: exp.Expression, verb: str = "INSERT") -> object:
        """The shard key value of one VALUES row (a literal, or a bound parameter)."""
        if isinstance(value, exp.Var) and value.name.upper() == "DEFAULT":
            raise errors.not_supported(
                f"DEFAULT for shard key '{table.name}.{table.shard_key}' in {verb}: the proxy "
                "places a row by the key it is given",
                "give the shard key",
            )
        found, key_value = literal_value(value, self._params)
        if not found:
            raise errors.not_supported(
                f"a computed shard key value in {verb} into '{table.name}'",
                "give the shard key as a literal",
            )
        return key_value

    def _route_update_delete(self, ast: exp.Expression, placed: list[_Placed]) -> Plan:
        what = "an UPDATE" if isinstance(ast, exp.Update) else "a DELETE"
        target = self._write_target(ast, placed, what)
        table = target.config
        if table is None:  # an unsharded table reading broadcast copies: its shard runs it
            for other in placed:
                if other is not target:
                    self._check_companion(other, target.shards, target)
            return Plan(self._sql, plan.Route(target.shards[0], write=True, why="unsharded table"))
        if isinstance(ast, exp.Update):
            for assignment in ast.expressions:
                if (
                    isinstance(assignment, exp.EQ)
                    and table.sharded
                    and assignment.this.name.lower() == (table.shard_key or "").lower()
                ):
                    raise _shard_key_change(table)
        others = [p for p in placed if p is not target]
        if table.broadcast:
            if others:
                raise errors.not_supported(
                    f"{what} of broadcast table '{table.name}' that reads other tables"
                )
            return self._on_shards(table.shards, "broadcast table", copies=True)
        shards = self._sharded_shards(ast, [target])
        for other in others:
            self._check_companion(other, shards, target)
        if len(shards) > 1 and (ast.args.get("order") or ast.args.get("limit")):
            return self._ordered_write(ast, target, shards, what, bool(others))
        return self._on_shards(shards, "shard key")

    def _write_target(self, ast: exp.Expression, placed: list[_Placed], what: str) -> _Placed:
        """The table an UPDATE/DELETE changes. Beside one sharded (or unsharded) table it
        may read broadcast tables (a join, a subquery): every shard has their whole copy,
        so each changes its own rows exactly as one server would; only that table may
        change, and an UPDATE's SET columns must be known to be its."""
        listed = [
            p for p in placed if p.config is not None and (p.config.sharded or p.config.broadcast)
        ]
        owners = [p for p in placed if p.config is None or p.config.sharded]
        if len(owners) != 1 or not listed or listed == owners:
            return self._target(placed, what)
        target = owners[0]
        copies = [p for p in listed if p is not target]
        names = {target.alias.lower(), target.node.name.lower()}
        if isinstance(ast, exp.Update):
            for assignment in ast.expressions:
                column = assignment.this if isinstance(assignment, exp.EQ) else None
                if not isinstance(column, exp.Column):
                    raise errors.not_supported(f"this SET of {what} that reads broadcast tables")
                if column.table:
                    if column.table.lower() not in names:
                        raise _changes_a_copy(what, column.table)
                elif any(self._has_column(p, column.name) for p in copies):
                    raise errors.not_supported(
                        f"SET {column.name} = ... in {what} that joins broadcast tables "
                        "(the column may be theirs)",
                        f"qualify it: SET {target.alias}.{column.name} = ...",
                    )
        else:
            deleted = ast.args.get("tables") or [ast.this]
            for table in deleted:
                if table.name.lower() not in names:
                    raise _changes_a_copy(what, table.name)
        return target

    def _has_column(self, p: _Placed, name: str) -> bool:
        """Whether the table's metadata has the column (True when it is not known)."""
        state = (
            self.metadata.table(p.schema.name, p.config.name)
            if p.schema is not None and p.config is not None
            else None
        )
        definition = state.definition if state is not None else None
        return definition is None or definition.column(name) is not None

    def _ordered_write(
        self, ast: exp.Expression, target: _Placed, shards: tuple[str, ...], what: str,
        reads_others: bool,
    ) -> Plan:  # fmt: skip
        """UPDATE/DELETE ... ORDER BY ... LIMIT over several shards: the primary keys of the
        rows it changes are read first (in that order, ties by the key, locked), then
        written by key, in one transaction (plan.OrderedWrite)."""
        table = target.config
        assert table is not None
        construct = f"{what} with ORDER BY or LIMIT over several shards"
        if reads_others or _has_nested_select(ast):
            raise errors.not_supported(
                f"{construct} that reads other tables", "add the shard key to the WHERE clause"
            )
        self._refuse_volatile(f"{what} that runs on several shards")
        definition = self._definition(target, construct)
        if not definition.primary_key:
            raise errors.not_supported(
                f"{construct} of a table without a primary key",
                "add the shard key to the WHERE clause",
            )
        bound = bind_placeholders(ast, self._params).copy()
        alias = target.alias
        keys = [exp.column(k, table=alias, quoted=True) for k in definition.primary_key]
        read = exp.select(*(k.copy() for k in keys)).from_(bound.this.copy())
        where = bound.args.get("where")
        if where is not None:
            read.set("where", where.copy())
        order = bound.args.get("order")
        ordering = [o.copy() for o in order.expressions] if order is not None else []
        read = read.order_by(*ordering, *(k.copy() for k in keys))
        limit = bound.args.get("limit")
        if limit is not None:
            read.set("limit", limit.copy())
        read.set("locks", [exp.Lock(update=True)])
        mark = exp.column(plan.KEYS_MARK)
        # the rows read are locked (FOR UPDATE) until the transaction ends: their keys
        # alone name them, and the WHERE is not evaluated twice (MariaDB fails a strict
        # UPDATE whose WHERE warns on a row found by key, and only warns in a scan)
        bound.set("where", exp.Where(this=mark))
        bound.set("order", None)
        bound.set("limit", None)
        write = mariadb_sql(bound)
        if write.count(plan.KEYS_MARK) != 1 or plan.KEYS_MARK in self._sql:
            raise errors.not_supported(construct)
        key_list = ", ".join(k.sql("mysql") for k in keys)
        root = plan.OrderedWrite(
            table.name,
            "UPDATE" if isinstance(ast, exp.Update) else "DELETE",
            mariadb_sql(read),
            write,
            f"({key_list})" if len(keys) > 1 else key_list,
            shards,
            limit is not None and limit.expression.name == "0",
        )
        return Plan(self._sql, root)

    # --- reads ----------------------------------------------------------------------

    def _route_select(self, ast: exp.Select, sql: str, placed: list[_Placed]) -> Plan:
        sharded = [p for p in placed if p.config is not None and p.config.sharded]
        locks = bool(ast.args.get("locks"))
        if not sharded:
            # only broadcast (and maybe unsharded) tables: one shard answers
            root = plan.Route(self._broadcast_reader(placed), why="broadcast copy")
            return Plan(sql, root)
        sharded, copied = self._join_anchor(ast, sharded)
        shards = self._sharded_shards(ast, sharded)
        for other in placed:
            if other.config is None or not other.config.sharded:
                self._check_companion(other, shards, sharded[0])
        if len(shards) == 1 and not copied:
            return Plan(sql, plan.Route(shards[0], write=locks, why="shard key"))
        if _has_nested_select(ast) and not _subqueries_read_copies(ast, placed):
            raise errors.not_supported(
                "subqueries in a SELECT that spans several shards (other than in WHERE over "
                "broadcast tables)",
                "add the shard key to the WHERE clause or split the query",
            )
        keep = None if copied else self._keep_unmatched(ast, sharded, placed)
        collations = self._collations(placed)
        check_merge_collations(ast, collations, self._weighable)
        check_having_conversions(ast, collations)
        unmatched = None
        copies = self._copies(ast, copied, shards)
        if copies:
            bound = bind_placeholders(ast, self._params)
            nodes = [(p.node, number) for number, p in enumerate(copied, 1)]
            rewrite = rewrite_fanout_select(read_from_copies(bound, ast, nodes), sql)
        elif keep is not None:
            rewrite, unmatched = _unmatched_rewrite(
                bind_placeholders(ast, self._params).copy(), sql, keep, shards[0]
            )
        elif self._remember:
            rewrite = self._fanout_plans.rewrite(ast, sql, self._params)
        else:
            rewrite = rewrite_fanout_select(bind_placeholders(ast, self._params), sql)
        calc = calc_found_rows(ast)
        if calc and any(isinstance(step, _UNCOUNTABLE_STEPS) for step in rewrite.steps):
            # the shards' FOUND_ROWS() count their own rows, not the merged groups
            raise errors.not_supported(
                "SQL_CALC_FOUND_ROWS with GROUP BY, DISTINCT or aggregates in a SELECT that "
                "spans several shards",
                "run SELECT COUNT(*) of the same query for the total",
            )
        root = MergeRead(
            shards,
            rewrite.sql,
            rewrite.steps,
            rewrite.column_overrides,
            locks,
            calc,
            self._weighed(rewrite.columns, collations),
            unmatched,
            copies=copies,
        )
        return Plan(sql, root)

    def _gathered(
        self, ast: exp.Query, sql: str, placed: list[_Placed], refusal: errors.ProxyError
    ) -> Plan:
        """A SELECT the shards cannot answer in parts (a subquery, a window, a merge the
        proxy does not compute exactly ...), answered by one shard over copies of its
        sharded tables (plan.CopiedTable): MariaDB itself computes it over all the rows,
        within the copies' bounds. `refusal` stands when that is not one server's answer
        either: a locking read, SELECT ... INTO, a comparison MariaDB answers by plan, a
        column named with its database, no shard holding every table."""
        if refusal.code != errors.NOT_SUPPORTED or isinstance(refusal, PlanDependent):
            raise refusal
        reason = refusal.message.split(";")[0].removeprefix("xaproxy does not support ")
        if ast.find(exp.Lock, exp.Into, exp.PropertyEQ) is not None or ast.args.get("locks"):
            raise refusal  # locks nothing; INTO and `@v :=` write where the copies are
        fraction = compared_fraction(ast, self._params)
        if fraction is not None:
            raise errors.not_supported(
                f"{reason}, with a column compared with the fraction {fraction} (MariaDB answers that by "
                "plan: no copy of the tables gives its answer)",
                "compare with an integer, or with ROUND()/FLOOR() of the value",
            )
        if any(column.args.get("db") for column in ast.find_all(exp.Column)):
            raise refusal
        sharded = [p for p in placed if p.config is not None and p.config.sharded]
        if not self.config.max_copy_mb:
            raise refusal
        bound = bind_placeholders(ast, self._params)
        if not regenerates_itself(bound):
            raise refusal  # the text written from the tree would be another statement
        holding = set(self.all_shards)
        for p in placed:
            holding &= set(p.shards)
        if not sharded or not holding:
            raise refusal
        defaults = [p.schema.default_shard for p in placed if p.schema is not None]
        shard = next(s for s in (*defaults, *self.all_shards) if s in holding)
        numbers: dict[tuple[str, str], int] = {}
        copies: list[plan.CopiedTable] = []
        for p in sharded:
            assert p.config is not None and p.schema is not None
            key = (p.schema.name, p.config.name)
            if key not in numbers:
                numbers[key] = len(copies) + 1
                try:
                    definition = self._definition(p, reason)
                except errors.ProxyError:
                    raise refusal from None
                copies.append(
                    table_copy(definition, p.shards, numbers[key], reason, self._bounds, reason)
                )
        nodes = [
            (p.node, numbers[(p.schema.name, p.config.name)])
            for p in sharded
            if p.schema is not None and p.config is not None
        ]
        text = mariadb_sql(named_query(read_from_copies(bound, ast, nodes), sql))
        calc = isinstance(ast, exp.Select) and calc_found_rows(ast)
        if not calc and "SQL_CALC_FOUND_ROWS" in text.upper():
            raise refusal  # a UNION's: FOUND_ROWS() would not be noted
        root = MergeRead((shard,), text, calc_found_rows=calc, copies=tuple(copies))
        return Plan(sql, root)

    def _join_anchor(
        self, ast: exp.Select, sharded: list[_Placed]
    ) -> tuple[list[_Placed], list[_Placed]]:
        """The sharded tables a SELECT reads where they are (one group joined on its shard
        keys) and those it reads from a copy of the whole table (plan.CopiedTable): none
        when all are joined on their keys. The group is the first whose copies are not
        kept rows of an outer join and exist on every shard the group is read from."""
        try:
            self._check_binding(ast, sharded)
            return sharded, []
        except errors.ProxyError as refusal:
            unbound = refusal
        root = _scope_root(ast)
        if not self.config.max_copy_mb:
            raise unbound
        if ast.args.get("locks") or any(_scope_of(p.node) is not root for p in sharded):
            raise unbound  # a locking read of copies would lock nothing
        if any(column.args.get("db") for column in ast.find_all(exp.Column)):
            raise unbound  # `db.t.c` would not name the copy, read under t's alias
        for anchor in sharded:
            group = [
                anchor,
                *(p for p in sharded if p is not anchor and self._bound(ast, anchor, p)),
            ]
            copied = [p for p in sharded if not any(p is g for g in group)]
            try:
                _check_outer_joins(ast, group)
                shards = self._sharded_shards(ast, group)
            except errors.ProxyError:
                continue
            if all(set(shards) <= set(p.shards) for p in copied):
                return group, copied
        raise unbound

    def _copies(
        self, ast: exp.Select, copied: list[_Placed], shards: tuple[str, ...]
    ) -> tuple[plan.CopiedTable, ...]:
        if not copied:
            return ()
        names = ", ".join(sorted({f"'{p.node.name}'" for p in copied}))
        construct = f"a join of sharded table(s) {names} without their shard key"
        return tuple(
            table_copy(self._definition(p, construct), p.shards, number, construct, self._bounds)
            for number, p in enumerate(copied, 1)
        )

    @property
    def _bounds(self) -> tuple[int, int]:
        """What one statement may copy: rows of a table, bytes of all its copies."""
        return self.config.max_copy_rows, self.config.max_copy_mb << 20

    def _keep_unmatched(
        self, ast: exp.Select, sharded: list[_Placed], placed: list[_Placed]
    ) -> tuple[str, str, str, str] | None:
        """(b, b key, a, a key) of `b LEFT JOIN a ON ...` (or `a RIGHT JOIN b`) where b is
        a broadcast table with a one-column integer primary key and a a sharded table
        with a primary key: its NULL-extended rows can be kept exactly (KeepUnmatched).
        None when no outer join keeps broadcast rows; other such joins are refused."""
        try:
            _check_outer_joins(ast, sharded)
            return None
        except errors.ProxyError as refusal:
            found = self._unmatched_shape(ast, placed)
            if found is None:
                raise refusal from None
            return found

    def _unmatched_shape(
        self, ast: exp.Select, placed: list[_Placed]
    ) -> tuple[str, str, str, str] | None:
        joins = ast.args.get("joins") or []
        source = ast.args.get("from_")
        if len(joins) != 1 or source is None or ast.args.get("locks"):
            return None
        join = joins[0]
        side = (join.side or "").upper()
        if join.args.get("on") is None or join.args.get("using") or side not in ("LEFT", "RIGHT"):
            return None
        kept, optional = (source.this, join.this) if side == "LEFT" else (join.this, source.this)
        by_node = {id(p.node): p for p in placed}
        b, a = by_node.get(id(kept)), by_node.get(id(optional))
        if b is None or a is None or b.config is None or a.config is None:
            return None
        if not b.config.broadcast or not a.config.sharded:
            return None
        what = "an outer join that keeps a broadcast table's rows"
        b_def, a_def = self._definition(b, what), self._definition(a, what)
        if len(b_def.primary_key) != 1 or not a_def.primary_key:
            return None
        b_key = b_def.column(b_def.primary_key[0])
        if b_key is None or "int" not in b_key.type.lower():
            return None
        return b.alias, b_key.name, a.alias, a_def.primary_key[0]

    def _weighable(self, collation: str) -> bool:
        """The shards gave the proxy this collation's weight table (metadata/weights.py)."""
        return collation.lower() in self.metadata.weights

    def _weighed(
        self, columns: tuple[tuple[int, exp.Column], ...], collations: Collations
    ) -> tuple[tuple[int, object], ...]:
        """The positions whose column has a collation merged by its server weights."""
        weighed = []
        for position, column in columns:
            found = {c.lower() for c in collations(column.table.lower(), column.name.lower())}
            if len(found) == 1:
                (collation,) = found
                if collation not in MERGEABLE and collation in self.metadata.weights:
                    weighed.append((position, self.metadata.weights[collation]))
        return tuple(weighed)

    def _collations(self, placed: list[_Placed]) -> Collations:
        """(qualifier, column) -> the collations the shards' metadata gives that column."""

        def collations(qualifier: str, name: str) -> list[str]:
            found = []
            for p in placed:
                if qualifier and qualifier not in (p.alias.lower(), p.node.name.lower()):
                    continue
                if p.schema is None or p.config is None:
                    continue
                state = self.metadata.table(p.schema.name, p.config.name)
                definition = state.definition if state is not None else None
                column = definition.column(name) if definition is not None else None
                if column is not None and column.collation:
                    found.append(column.collation)
            return found

        return collations

    def _route_union(self, ast: exp.Union, placed: list[_Placed]) -> Plan:
        """A UNION whose every branch reads sharded rows: each shard runs the whole union
        over its own rows (a row lives on one shard, so no branch row comes back twice);
        the shards the branches narrow to together answer it."""
        sharded = [p for p in placed if p.config is not None and p.config.sharded]
        if not sharded:
            return Plan(self._sql, plan.Route(self._broadcast_reader(placed), why="broadcast copy"))
        branches = union_branches(ast)
        of_branch: dict[int, list[_Placed]] = {id(b): [] for b in branches}
        for p in placed:
            scope = _scope_of(p.node)
            if scope is None or id(scope) not in of_branch:
                raise errors.not_supported(
                    "subqueries in a UNION that spans several shards",
                    "add the shard key to the WHERE clause of every branch or split the query",
                )
            of_branch[id(scope)].append(p)
        wanted: set[str] = set()
        unsharded_branches = 0
        for branch in branches:
            mine = of_branch[id(branch)]
            mine_sharded = [p for p in mine if p.config is not None and p.config.sharded]
            if not mine_sharded:
                unsharded_branches += 1  # fine where one shard runs the whole union
                continue
            if _has_nested_select(branch):
                raise errors.not_supported(
                    "subqueries in a UNION that spans several shards",
                    "add the shard key to the WHERE clause of every branch or split the query",
                )
            self._check_binding(branch, mine_sharded)
            _check_outer_joins(branch, mine_sharded)
            wanted.update(self._sharded_shards(branch, mine_sharded))
        shards = tuple(s for s in self.all_shards if s in wanted)
        if unsharded_branches and len(shards) > 1:
            raise errors.not_supported(
                "a UNION branch that reads no sharded table, in a UNION over several "
                "shards (every shard would return its rows)",
                "run that SELECT separately",
            )
        for p in placed:
            if p.config is not None and p.config.sharded:
                if not set(shards) <= set(p.config.shards):
                    raise errors.not_supported(
                        f"a UNION over sharded tables placed on different shards ('{p.node.name}' "
                        f"is not on {', '.join(s for s in shards if s not in p.config.shards)})",
                        "run the SELECTs separately",
                    )
            else:
                self._check_companion(p, shards, sharded[0])
        if len(shards) == 1:
            return Plan(self._sql, plan.Route(shards[0], why="shard key"))
        rewrite = rewrite_fanout_union(bind_placeholders(ast, self._params), self._sql)
        self._check_union_collations(branches, of_branch, rewrite)
        return Plan(self._sql, MergeRead(shards, rewrite.sql, rewrite.steps))

    def _check_union_collations(
        self,
        branches: list[exp.Select],
        of_branch: dict[int, list[_Placed]],
        rewrite: FanoutRewrite,
    ) -> None:
        """Each branch's columns the merge compares (sort keys; every column of a UNION)
        must have a collation the merge reproduces."""
        ordinals = [
            exp.Ordered(this=exp.Literal.number(k.column + 1)) for k in rewrite.spec.order_by
        ]
        for branch in branches:
            probe = branch.copy()
            probe.set("order", exp.Order(expressions=ordinals) if ordinals else None)
            check_merge_collations(probe, self._collations(of_branch[id(branch)]))

    def _broadcast_reader(self, placed: list[_Placed]) -> str:
        candidates: set[str] | None = None
        for p in placed:
            candidates = set(p.shards) if candidates is None else candidates & set(p.shards)
        if not candidates:
            raise errors.not_supported(
                "a statement whose tables have no shard in common",
                "unsharded tables can join broadcast tables only on their default shard",
            )
        defaults = [p.schema.default_shard for p in placed if p.schema is not None]
        for shard in defaults:
            if shard in candidates:
                return shard
        return next(s for s in self.all_shards if s in candidates)

    def _sharded_shards(self, ast: exp.Expression, sharded: list[_Placed]) -> tuple[str, ...]:
        first = sharded[0].config
        assert first is not None
        # only tables of the statement's own FROM narrow it: a derived table's, a CTE's or a
        # subquery's column named like a shard key is another column
        outer = [p for p in sharded if _scope_of(p.node) is _scope_root(ast)]
        analysis = KeyAnalysis(
            {p.alias.lower(): p.config for p in outer if p.config is not None},
            {p.node.name.lower(): p.config for p in outer if p.config is not None},
            self._params,
            {id(p.config): self._key_column(p) for p in outer if p.config is not None},
        )
        where = ast.args.get("where")
        if len(first.shards) > 1:
            for clause in (where, *(j.args.get("on") for j in ast.args.get("joins") or ())):
                if clause is not None:
                    refuse_plan_dependent_fractions(clause, analysis)
        shards = shards_for_condition(where.this, analysis, first) if where is not None else None
        for join in ast.args.get("joins") or ():
            on = join.args.get("on")
            if on is not None and join.side in ("", None) and shards is None:
                shards = shards_for_condition(on, analysis, first)
        if shards is None:
            return first.shards
        return shards or first.shards[:1]  # no row can match: any one shard answers that

    def _check_binding(self, ast: exp.Expression, sharded: list[_Placed]) -> None:
        if len(sharded) < 2:
            return
        first = sharded[0]
        for other in sharded[1:]:
            a, b = first.config, other.config
            assert a is not None and b is not None
            if not self._bound(ast, first, other):
                raise errors.not_supported(
                    f"a cross-shard join of '{a.name}' and '{b.name}'",
                    "join sharded tables only when they are in one binding group and the join "
                    "condition equates their shard keys",
                )

    @staticmethod
    def _bound(ast: exp.Expression, first: _Placed, other: _Placed) -> bool:
        """The two tables' rows that join live on the same shard."""
        a, b = first.config, other.config
        assert a is not None and b is not None
        same_group = a is b or (a.binding is not None and a.binding == b.binding)
        return same_group and _joined_on_keys(ast, first, other)

    def _check_companion(self, other: _Placed, shards: tuple[str, ...], target: _Placed) -> None:
        """A broadcast or unsharded table joined with sharded rows must exist on every shard used."""
        if other.config is not None and other.config.sharded:
            return
        missing = [s for s in shards if s not in other.shards]
        if missing:
            raise errors.not_supported(
                f"a cross-shard join: table '{other.node.name}' is not on shard(s) "
                f"{', '.join(missing)} where '{target.node.name}' rows live",
                "make the table broadcast, or filter the sharded table by its shard key",
            )

    # --- statements sqlglot could not parse -------------------------------------------

    def _route_opaque(self, parsed: Parsed, sql: str, database: str | None) -> Plan:
        loads = analyze(sql)
        if loads.kind is Kind.LOAD_DATA_LOCAL:
            return route_load_data(self.config, loads, database, self.default_shard)
        schema = self.config.schema(database) if database else None
        if database and schema is None and database.lower() not in SYSTEM_SCHEMAS:
            raise errors.unknown_database(database)
        if schema is not None and _has_placed_tables(schema):
            statement = analyze(sql)
            describes = statement.kind is Kind.SHOW or _describes_a_table(statement)
            for table in schema.tables.values():
                placed = table.sharded or table.broadcast
                if describes and placed and table.name.lower() in statement.names:
                    return Plan(sql, plan.Route(table.shards[0], why="one copy describes"))
            if statement.kind is Kind.ROUTINE_DDL:
                _refuse_stored_program_on_placed_tables(statement, schema)
            elif parsed.ast is None:
                raise errors.parse_error(
                    f"{parsed.error}; statements in schema '{schema.name}' must be parseable "
                    "so the proxy can route them"
                )
            for table in schema.tables.values():
                if (table.sharded or table.broadcast) and table.name.lower() in statement.names:
                    if statement.kind is Kind.REPLACE:
                        raise errors.not_supported(
                            f"REPLACE into sharded or broadcast table '{schema.name}.{table.name}'",
                            "use INSERT ... ON DUPLICATE KEY UPDATE",
                        )
                    raise errors.not_supported(
                        f"this statement on sharded or broadcast table '{schema.name}.{table.name}'"
                    )
        statement = analyze(sql)
        ddl = statement.verb in _DDL_COMMANDS
        # PREPARE: the statement lives in the shard connection, EXECUTE must find it there.
        pins = (
            statement.kind in (Kind.LOCK_TABLES, Kind.PREPARE) or "GET_LOCK" in statement.functions
        )
        # A statement not parsed writes unless it is surely a read (REPLACE, CALL, ... are
        # parsed as commands): a branch not marked as a writer is not committed with the rest.
        root = plan.Route(
            self.default_shard(database),
            write=ddl or not statement.is_read,
            implicit_commit=ddl,
            pins_session=pins,
            why="not parsed: the default shard",
        )
        return Plan(sql, root)


_STORED_KINDS = frozenset({"VIEW", "FUNCTION", "PROCEDURE", "TRIGGER", "EVENT"})


def _refuse_stored_definition(ast: exp.Expression, placed: list[_Placed]) -> None:
    """A view or stored program over a sharded or broadcast table would be read (or
    written through) where its name is placed, the default shard: one shard's rows, one
    broadcast copy. It is refused; tables of the shard map are queried directly."""
    if not isinstance(ast, exp.Create):
        return
    kind = str(ast.args.get("kind") or "").upper()
    source = ast.expression if kind == "TABLE" else None
    if isinstance(source, exp.Query):
        # CREATE TABLE ... AS SELECT: each shard would copy its own rows into its copy
        sources = {id(t) for t in source.find_all(exp.Table)}
        placed = [p for p in placed if id(p.node) in sources]
    elif kind not in _STORED_KINDS:
        return
    for p in placed:
        if p.config is not None and (p.config.sharded or p.config.broadcast):
            why = (
                "each shard would copy only its own rows"
                if kind == "TABLE"
                else "it would be read or run on one shard, over that shard's rows only"
            )
            raise errors.not_supported(
                f"CREATE {kind} over sharded or broadcast table '{p.config.name}' ({why})",
                "query the table itself, or keep views, stored programs and tables made from "
                "a SELECT to unsharded tables",
            )


def _refuse_stored_program_on_placed_tables(statement: Statement, schema: SchemaConfig) -> None:
    """A procedure, function, trigger or event lives on one shard and runs there: one that
    names a sharded or broadcast table would read or change that shard's rows only.
    One that names none lives on the schema's default shard, as its unsharded tables do."""
    for table in schema.tables.values():
        if (table.sharded or table.broadcast) and table.name.lower() in statement.names:
            raise errors.not_supported(
                f"{statement.verb} of a stored program that names sharded or broadcast table "
                f"'{schema.name}.{table.name}' (it would run on one shard, over that shard's "
                "rows only)",
                "run its statements from the application, or keep the program to unsharded tables",
            )


def _describes_a_table(statement: Statement) -> bool:
    """DESCRIBE t [column] / EXPLAIN t: the word after the verb names a table, not a statement."""
    tokens = statement.tokens
    return (
        statement.kind is Kind.EXPLAIN
        and len(tokens) >= 2
        and tokens[1].token_type in (TokenType.VAR, TokenType.IDENTIFIER)
    )


def _lowered(names: list[str]) -> list[str]:
    return [n.lower() for n in names]


def _identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _edited(sql: str, start: int, end: int, edits: list[tuple[int, int, str]]) -> str:
    """`sql[start:end]` with the edits that fall inside it applied."""
    pieces = []
    at = start
    for begin, finish, text in sorted(e for e in edits if start <= e[0] and e[1] <= end):
        pieces.append(sql[at:begin])
        pieces.append(text)
        at = finish
    pieces.append(sql[at:end])
    return "".join(pieces)


def _nonzero_integer(value: object) -> bool:
    """An integer other than 0 (an AUTO_INCREMENT column stores it as given)."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return value != 0
    if isinstance(value, decimal.Decimal):
        return value == value.to_integral_value() and value != 0
    if isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return bool(_INTEGER_TEXT.match(text)) and int(text) != 0
    return False


def _duplicates_rule(ast: exp.Expression | None, verb: str) -> str:
    """How MariaDB counts an INSERT's "Duplicates" (see plan.SplitInsert.duplicates)."""
    if verb == "REPLACE":
        return "replace"
    if ast is not None and ast.args.get("ignore"):
        return "ignore"
    if ast is not None and ast.args.get("conflict") is not None:
        return "update"
    return "insert"


def _is_replace(ast: exp.Expression | None) -> bool:
    return (
        isinstance(ast, exp.Command)
        and str(ast.this).upper() == "REPLACE"
        and isinstance(ast.expression, exp.Literal)
    )


@functools.lru_cache(maxsize=1024)
def _replace_as_insert(rest: str) -> exp.Insert | None:
    """`REPLACE <rest>` parsed as `INSERT <rest>`: the same syntax, another conflict rule."""
    ast = parse("INSERT " + rest).ast
    return ast if isinstance(ast, exp.Insert) else None


def _shard_key_change(table: TableConfig) -> errors.ProxyError:
    return errors.ProxyError(
        1235,
        "42000",
        f"xaproxy does not support changing shard key '{table.name}.{table.shard_key}': "
        "the row would have to move to another shard; delete it and insert it again",
    )


def _check_hashable(table: TableConfig, key_value: object) -> None:
    if table.algorithm in ("hash", "list") and ambiguous_for_hashing(key_value):
        raise errors.ProxyError(
            1235,
            "42000",
            f"xaproxy does not support shard key value {key_value!r} for "
            f"'{table.name}.{table.shard_key}': {table.algorithm} places rows by the key's "
            "canonical text; write the key as an integer or a plain string",
        )


def _check_stored_as_given(table: TableConfig, key_value: object, kind: str | None) -> None:
    """A key the server would convert on storing is placed where the stored value belongs, or refused.

    An INT column stores 99.5 as 100 and '11abc' as 11 (or refuses it): the
    proxy cannot place such a literal by the value it was given.
    """
    if kind != "integer" or table.algorithm == "mod":
        return
    if isinstance(key_value, bytes):
        key_value = key_value.decode("utf-8", "surrogateescape")
    text = str(key_value).strip() if isinstance(key_value, str) else None
    fractional = isinstance(key_value, (float, decimal.Decimal)) and key_value != int(key_value)
    if fractional or (text is not None and not _INTEGER_TEXT.match(text)):
        raise errors.ProxyError(
            1235,
            "42000",
            f"xaproxy does not support shard key value {key_value!r} for "
            f"'{table.name}.{table.shard_key}': the column would store a converted value "
            "the proxy cannot place exactly; write the key as an integer",
        )


def _has_placed_tables(schema: SchemaConfig) -> bool:
    return any(t.sharded or t.broadcast for t in schema.tables.values())


def _call_name(text: str) -> str:
    return text.split("(", 1)[0].strip().upper()


class _VolatileRefusal(errors.ProxyError):
    """A refusal of a write whose volatile calls each shard would evaluate itself."""


# volatile calls MariaDB evaluates once per row an ON DUPLICATE KEY UPDATE changes
_PER_ROW = frozenset({"RAND()", "UUID()", "UUID_SHORT()", "SYSDATE()"})


def _changes_a_copy(what: str, name: str) -> errors.ProxyError:
    return errors.not_supported(
        f"{what} that changes broadcast table '{name}' while reading a sharded table (each "
        "copy would change by its shard's rows)",
        "change the broadcast table in a statement of its own",
    )


def _column_type(definition: TableMetadata, name: str) -> str:
    column = definition.column(name)
    return column.type if column is not None else ""


def _unmatched_rewrite(
    ast: exp.Select, sql: str, keep: tuple[str, str, str, str], first: str
) -> tuple[FanoutRewrite, plan.KeepUnmatched]:
    """The fan-out rewrite keeping matched rows only, and the first shard's text that also
    keeps b's NULL-extended rows of keys no shard matched (see plan.KeepUnmatched)."""
    b, b_key, a, a_key = keep
    b_column = exp.column(b_key, table=b, quoted=True)
    matched = exp.column(a_key, table=a, quoted=True).is_(exp.null()).not_()
    join = ast.args["joins"][0]
    source = ast.args["from_"].this
    probe = exp.select(b_column.copy()).distinct().from_(source.copy())
    probe = probe.join(join.this.copy(), on=join.args["on"].copy(), join_type="inner")
    probe = probe.limit(plan.UNMATCHED_KEYS_LIMIT + 1)

    def filtered(condition: exp.Expression) -> exp.Select:
        query = ast.copy()
        where = query.args.get("where")
        query.set("where", exp.Where(this=exp.and_(where.this, condition) if where else condition))
        return query

    rewrite = rewrite_fanout_select(filtered(matched), sql)
    unmatched_mark = exp.column(plan.UNMATCHED_MARK)
    first_rewrite = rewrite_fanout_select(filtered(exp.or_(matched.copy(), unmatched_mark)), sql)
    if first_rewrite.sql.count(plan.UNMATCHED_MARK) != 1 or plan.UNMATCHED_MARK in sql:
        raise errors.not_supported("this outer join that keeps a broadcast table's rows")
    keep_step = plan.KeepUnmatched(
        mariadb_sql(probe), first, first_rewrite.sql, b_column.sql("mysql")
    )
    return rewrite, keep_step


def _check_outer_joins(ast: exp.Select, sharded: list[_Placed]) -> None:
    """A fan-out outer join whose optional side is sharded must keep sharded rows.

    Rows of a broadcast or unsharded table on the preserved side would come
    back from every shard, NULL-extended where that shard had no match.
    """
    sharded_nodes = {id(p.node) for p in sharded}

    def has_sharded(nodes: list[exp.Expression]) -> bool:
        return any(
            id(table) in sharded_nodes
            for node in nodes
            for table in ([node] if isinstance(node, exp.Table) else node.find_all(exp.Table))
        )

    source = ast.args.get("from_")
    before: list[exp.Expression] = [source.this] if source is not None else []
    for join in ast.args.get("joins") or ():
        side = (join.side or "").upper()
        if side in ("LEFT", "RIGHT", "FULL"):
            preserved, optional = (
                ([join.this], before) if side == "RIGHT" else (before, [join.this])
            )
            if side == "FULL" or (has_sharded(optional) and not has_sharded(preserved)):
                raise errors.not_supported(
                    "an outer join that keeps rows of a broadcast or unsharded table in a SELECT "
                    "that spans several shards",
                    "keep the sharded table's rows, or add the shard key to the WHERE clause",
                )
        before = [*before, join.this]


def _subqueries_read_copies(ast: exp.Select, placed: list[_Placed]) -> bool:
    """Every subquery sits in the WHERE clause and reads only broadcast tables (or none):
    each shard then filters its own rows against the same complete copy, as one server
    filters all of them, so the shards' answers together are the server's."""
    if ast.args.get("with_"):
        return False
    where = ast.args.get("where")
    for node in ast.find_all(exp.Select):
        if node is not ast and (where is None or not _within(node, where)):
            return False
    for p in placed:
        if _scope_of(p.node) is not ast and (p.config is None or not p.config.broadcast):
            return False
    return True


def _within(node: exp.Expression, container: exp.Expression) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is container:
            return True
        parent = parent.parent
    return False


def _has_nested_select(ast: exp.Select) -> bool:
    return any(node is not ast for node in ast.find_all(exp.Select)) or bool(ast.args.get("with_"))


def _scope_of(node: exp.Expression) -> exp.Expression | None:
    """The innermost SELECT (or UNION) holding `node`; None at the statement's top level."""
    return node.find_ancestor(exp.Select, exp.Union)


def _scope_root(ast: exp.Expression) -> exp.Expression | None:
    return ast if isinstance(ast, (exp.Select, exp.Union)) else None


def _conjuncts(ast: exp.Expression) -> list[exp.Expression]:
    """The conditions every result row satisfies: AND-ed terms of WHERE and ON clauses.

    An equality under OR or NOT holds for some rows only, so it never makes a join local.
    """
    terms: list[exp.Expression] = []
    for clause in [*ast.find_all(exp.Where), *(j.args.get("on") for j in ast.find_all(exp.Join))]:
        if clause is None:
            continue
        condition = clause.this if isinstance(clause, exp.Where) else clause
        pending = [condition]
        while pending:
            term = pending.pop()
            if isinstance(term, exp.Paren):
                pending.append(term.this)
            elif isinstance(term, exp.And):
                pending.extend((term.this, term.expression))
            else:
                terms.append(term)
    return terms


def _joined_on_keys(ast: exp.Expression, a: _Placed, b: _Placed) -> bool:
    key_a = (a.config.shard_key or "").lower() if a.config else ""
    key_b = (b.config.shard_key or "").lower() if b.config else ""
    for eq in (t for t in _conjuncts(ast) if isinstance(t, exp.EQ)):
        left, right = eq.this, eq.expression
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        pair = {(left.table.lower(), left.name.lower()), (right.table.lower(), right.name.lower())}
        if pair == {(a.alias.lower(), key_a), (b.alias.lower(), key_b)}:
            return True
    for join in ast.args.get("joins") or ():
        using = join.args.get("using")
        if using and key_a == key_b and any(u.name.lower() == key_a for u in using):
            return True
    return False


def _pins_session(ast: exp.Expression) -> bool:
    if isinstance(ast, exp.Create):
        props = ast.args.get("properties")
        if props and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions):
            return True
    for func in ast.find_all(exp.Anonymous):
        if str(func.this).upper() in ("GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS"):
            return True
    return False
