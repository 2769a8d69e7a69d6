"""Rewriting a SELECT that every shard runs, and deciding how to merge the answers.

Each shard gets the same query with helper columns appended (sort keys,
group keys, SUM and COUNT for AVG, aggregates used by HAVING), LIMIT widened
to offset+count, and HAVING removed; the merge steps (plan.Group, Sort, ...)
tell the merge engine how to put the partial answers together so the client
sees one server's answer. Each clause has its own rule below; they share one
`_Rewrite` that holds the select list and the helper columns found so far.

Positions are fixed here, never at run time: with a `*` in the select list
(whose width only the shards know), everything after the star, helper
columns included, is counted from the row's end (negative positions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from sqlglot import exp

from .. import errors
from ..analysis.spans import select_item_texts
from ..protocol.constants import MAX_UNSIGNED_BIGINT
from ..protocol.resultset import column_for
from .having import compile_having
from .keys import literal_value
from .mariadb_sql import mariadb_sql
from .merge_spec import Aggregate, MergeSpec, SortKey
from .plan import (
    Compute,
    ComputedItem,
    Distinct,
    DropHidden,
    Group,
    Having,
    Limit,
    MergeStep,
    Sort,
    merge_spec_of,
)
from .volatile import volatile_expression


def _mariadb_text(query: exp.Expression) -> str:
    """The query as MariaDB 10.11 reads it: sqlglot writes a shared lock as FOR SHARE,
    which MariaDB does not know; it is LOCK IN SHARE MODE there (always last)."""
    locks = query.args.get("locks") or []
    if len(locks) != 1:
        return mariadb_sql(query)
    lock = locks[0]
    if lock.args.get("update") or lock.args.get("key") or lock.expressions:
        return mariadb_sql(query)
    if lock.args.get("wait") is not None:
        return mariadb_sql(query)
    bare = query.copy()
    bare.set("locks", None)
    return mariadb_sql(bare) + " LOCK IN SHARE MODE"


_AGGREGATES = {
    exp.Count: "COUNT",
    exp.Sum: "SUM",
    exp.Min: "MIN",
    exp.Max: "MAX",
    exp.Avg: "AVG",
    exp.BitwiseOrAgg: "BIT_OR",
    exp.BitwiseAndAgg: "BIT_AND",
    exp.BitwiseXorAgg: "BIT_XOR",
    exp.GroupConcat: "GROUP_CONCAT",
}
# MariaDB aggregates sqlglot leaves as plain function calls: the merge knows none of them
_UNTYPED_AGGREGATE_NAMES = frozenset(
    {
        "STD",
        "STDDEV",
        "STDDEV_POP",
        "STDDEV_SAMP",
        "VARIANCE",
        "VAR_POP",
        "VAR_SAMP",
        "JSON_ARRAYAGG",
        "JSON_OBJECTAGG",
        "GROUP_CONCAT",
        "BIT_OR",
        "BIT_AND",
        "BIT_XOR",
        "ANY_VALUE",
        "PERCENTILE_CONT",
        "PERCENTILE_DISC",
        "MEDIAN",
    }
)


@dataclass(slots=True)
class FanoutRewrite:
    """What every shard runs, and the merge steps over the answers."""

    sql: str
    steps: tuple[MergeStep, ...]
    column_overrides: tuple[tuple[int, bytes], ...] = ()
    # shard row positions that hold a table column's own value (the column, MIN/MAX of it,
    # a COUNT(DISTINCT)'s value): the planner gives those the column's collation rules
    columns: tuple[tuple[int, exp.Column], ...] = ()

    @property
    def spec(self) -> MergeSpec:
        return merge_spec_of(self.steps)


@dataclass(slots=True)
class _Rewrite:
    """The state the rules share: the client's items, the shard's items, helper columns."""

    query: exp.Select
    items: list[exp.Expression]
    names: list[str | None] = field(default_factory=list)  # alias or column name per item
    new_items: list[exp.Expression] = field(default_factory=list)
    hidden: list[exp.Expression] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    count_distinct: list[int] = field(default_factory=list)
    # (position, "SUM_DISTINCT" | "AVG_DISTINCT") of SUM(DISTINCT x) / AVG(DISTINCT x)
    distinct_sums: list[tuple[int, str]] = field(default_factory=list)
    value_column: int | None = None  # the x of the DISTINCT aggregates, when there are any
    group_concat: list[int] = field(default_factory=list)
    concat_key: SortKey | None = None  # a GROUP_CONCAT's value column, in its ORDER BY direction
    group_columns: list[int] = field(default_factory=list)
    order_keys: list[SortKey] = field(default_factory=list)
    having: Having | None = None
    computed: list[int] = field(default_factory=list)  # items that compute with aggregates
    computed_items: list[ComputedItem] = field(default_factory=list)
    compute_first: bool = False  # ORDER BY a computed item: compute, then sort and limit
    with_ties: bool = False  # FETCH ... WITH TIES: rows tied with the last one come too
    shard_limit: int | None = None  # the LIMIT each shard gets (offset + count)

    @property
    def visible(self) -> int:
        return len(self.items)

    def add_hidden(self, node: exp.Expression) -> int:
        position = self.visible + len(self.hidden)
        self.hidden.append(exp.alias_(node, f"__xa{len(self.hidden)}", quoted=False))
        return position


def rewrite_fanout_select(ast: exp.Select, sql: str) -> FanoutRewrite:
    """The shard query and merge steps for a SELECT that spans several shards."""
    _refuse_unmergeable(ast, sql)
    query = ast.copy()
    state = _Rewrite(query, list(query.expressions))
    _select_items(state, sql)
    _avg_partials(state)
    _computed_partials(state)
    _group_by(state)
    _distinct_regroup(state)
    _group_concat_regroup(state)
    _having(state)
    _order_by(state)
    _check_computed_uses(state)
    grouped = bool(state.group_columns) or bool(state.aggregates)
    if grouped and query.args.get("order") is not None:
        query.set("order", None)
    limit, offset = _limit(state, grouped)
    query.set("expressions", state.new_items + state.hidden)
    star = _star_index(state.items)
    _check_star(state, star)
    shard_order = _shard_order(state, grouped) if star is None else ()
    if shard_order:
        query.set("order", _ordinal_order(shard_order))
    place = _placement(star, state.visible + len(state.hidden))
    text = _mariadb_text(query)
    if state.with_ties and state.shard_limit is not None:
        # the shards keep their own ties: every row of the answer is among them
        text = text.replace(
            f"LIMIT {_TIES_MARK}", f"FETCH FIRST {state.shard_limit} ROWS WITH TIES", 1
        )
    return FanoutRewrite(
        text,
        _steps(state, place, limit, offset, shard_order),
        _count_distinct_columns(state, place),
        _plain_columns(state.new_items + state.hidden, place),
    )


def _plain_columns(items: list[exp.Expression], place) -> tuple[tuple[int, exp.Column], ...]:
    found = []
    for index, item in enumerate(items):
        node = _unaliased(item)
        if isinstance(node, (exp.Min, exp.Max)):
            node = node.this
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            found.append((place(index), node))
    return tuple(found)


# --- the rules, one clause each ------------------------------------------------------------


def _refuse_unmergeable(ast: exp.Select, sql: str) -> None:
    """Only the aggregates the merge knows pass: any other one is refused, never passed through.

    A shard's partial of an unknown aggregate cannot be combined into the
    server's answer (one row per shard, or one shard's value, would come back).
    """
    for node in ast.walk():
        name = _unknown_aggregate_name(node, sql)
        if name is not None:
            raise errors.not_supported(
                f"aggregate {name}() in a SELECT that spans several shards (the merge "
                "combines only COUNT, SUM, MIN, MAX, AVG, BIT_OR/BIT_AND/BIT_XOR and "
                "GROUP_CONCAT(x ORDER BY x))",
                "add the shard key to the WHERE clause so one shard answers, or select the "
                "rows and aggregate in the application",
            )
    if any(isinstance(n, exp.Window) for n in ast.walk()):
        raise errors.not_supported("window functions in a SELECT that spans several shards")
    if ast.args.get("group") and ast.args["group"].args.get("rollup"):
        raise errors.not_supported("WITH ROLLUP in a SELECT that spans several shards")


def calc_found_rows(ast: exp.Select) -> bool:
    """SELECT SQL_CALC_FOUND_ROWS: FOUND_ROWS() then counts the rows without the LIMIT."""
    modifiers = ast.args.get("operation_modifiers") or []
    return any(
        isinstance(m, exp.Var) and m.name.upper() == "SQL_CALC_FOUND_ROWS" for m in modifiers
    )


def _select_items(state: _Rewrite, sql: str) -> None:
    """Names every item as the client would see it; COUNT(DISTINCT x) becomes x."""
    texts = select_item_texts(sql)  # without the select options: MySQL does not name after them
    for index, item in enumerate(state.items):
        inner = _unaliased(item)
        alias = item.alias if isinstance(item, exp.Alias) else None
        kind = _aggregate_kind(inner)
        computed = kind is None and any(_aggregate_kind(n) for n in inner.walk() if n is not inner)
        if computed:
            _check_computable(inner, sql)
            state.computed.append(index)
        if not isinstance(item, exp.Alias) and not isinstance(inner, (exp.Column, exp.Star)):
            # keep the column named exactly as the client wrote it
            text = texts[index] if index < len(texts) else inner.sql("mysql")
            text = _literal_column_name(inner, text)
            item = exp.alias_(inner.copy(), text, quoted=True)
            alias = text
        state.names.append(
            alias if alias is not None else (inner.name if isinstance(inner, exp.Column) else None)
        )
        if computed:
            # the item's own definition, never evaluated over a shard's partial aggregates
            guarded = exp.If(this=exp.false(), true=inner.copy(), false=exp.null())
            item = exp.alias_(guarded, alias, quoted=True)
        if kind == "COUNT_DISTINCT":
            state.count_distinct.append(index)
            distinct_arg = inner.this.expressions
            if len(distinct_arg) != 1:
                raise errors.not_supported("COUNT(DISTINCT a, b) over several shards")
            item = exp.alias_(distinct_arg[0].copy(), alias or "c", quoted=True)
        state.new_items.append(item)
        if kind == "GROUP_CONCAT":
            state.group_concat.append(index)
        elif kind in _DISTINCT_SUMS:
            state.distinct_sums.append((index, kind))
        elif kind is not None and kind != "COUNT_DISTINCT":
            state.aggregates.append(Aggregate(kind, index))


def _avg_partials(state: _Rewrite) -> None:
    """AVG: each shard also sends SUM and COUNT of the argument."""
    for position, aggregate in enumerate(state.aggregates):
        if aggregate.kind == "AVG":
            argument = _unaliased(state.items[aggregate.column]).this
            sum_col = state.add_hidden(exp.Sum(this=argument.copy()))
            count_col = state.add_hidden(exp.Count(this=argument.copy()))
            state.aggregates[position] = Aggregate("AVG", aggregate.column, sum_col, count_col)


_COMPUTABLE_KINDS = frozenset({"COUNT", "SUM", "MIN", "MAX", "AVG", "BIT_OR", "BIT_AND", "BIT_XOR"})
_PARTIAL_MARK = "__xaproxy_partial_"
_PARTIAL_REF = re.compile(_PARTIAL_MARK + r"(\d+)")


def _check_computable(item: exp.Expression, sql: str) -> None:
    """An item over aggregates one shard can compute from the merged aggregates alone:
    every column inside an aggregate the merge combines, nothing that reads state the
    computing shard may not share (subqueries, variables) or that differs per call."""
    hint = "select the aggregates alone and compute with them in the application"
    what = "an expression around an aggregate in a SELECT that spans several shards"
    for node in item.walk():
        kind = _aggregate_kind(node)
        if kind is not None and kind not in _COMPUTABLE_KINDS:
            raise errors.not_supported(f"{what}, around {kind.replace('_', '(')}", hint)
        if isinstance(node, (exp.Subquery, exp.Select, exp.Parameter, exp.SessionParameter)):
            raise errors.not_supported(f"{what}, with a subquery or a variable", hint)
        if isinstance(node, exp.Column) and not any(
            _aggregate_kind(a) for a in _ancestors(node, item)
        ):
            raise errors.not_supported(f"{what}, with a column outside the aggregates", hint)
    volatile = volatile_expression(item)
    if volatile is not None:
        raise errors.not_supported(f"{what}, with {volatile}", hint)
    if _PARTIAL_MARK in sql:
        raise errors.not_supported(f"{what}, naming {_PARTIAL_MARK}", hint)


def _ancestors(node: exp.Expression, top: exp.Expression):
    parent = node.parent
    while parent is not None and node is not top:
        yield parent
        if parent is top:
            return
        node, parent = parent, parent.parent


def _computed_partials(state: _Rewrite) -> None:
    """Each aggregate of a computed item gets a column the merge combines (a visible one
    when the select list has the same aggregate), and the item a text to fill in."""
    known: dict[str, int] = {}  # one helper column per aggregate, however often used
    for index in state.computed:
        item = _unaliased(state.items[index]).copy()
        positions = []
        for node in [n for n in item.walk() if _aggregate_kind(n)]:
            text = node.sql("mysql")
            if text not in known:
                known[text] = _aggregate_position(state, node, _aggregate_kind(node))
            positions.append(known[text])
            node.replace(exp.column(f"{_PARTIAL_MARK}{len(positions) - 1}"))
        text = mariadb_sql(item)
        pieces = _PARTIAL_REF.split(text)
        state.computed_items.append(
            ComputedItem(
                index,
                tuple(pieces[0::2]),
                tuple(positions[int(k)] for k in pieces[1::2]),
            )
        )


def _check_computed_uses(state: _Rewrite) -> None:
    """A computed item's value exists only after the merge: ORDER BY one then runs after
    the computing (over the held rows); HAVING by one and DISTINCT are refused."""
    if not state.computed:
        return
    if {k.column for k in state.order_keys} & set(state.computed):
        state.compute_first = True
    if state.query.args.get("distinct"):
        # MariaDB 10.11 itself answers SELECT DISTINCT CONCAT(COUNT(*), 'x') ... GROUP BY g
        # with one row: no merge can follow it
        raise errors.not_supported(
            "SELECT DISTINCT with an item that computes with aggregates, over several shards"
        )
    if _star_index(state.items) is not None:
        raise errors.not_supported(
            "SELECT * with an item that computes with aggregates, over several shards"
        )


def _group_by(state: _Rewrite) -> None:
    group = state.query.args.get("group")
    for expression in group.expressions if group is not None else ():
        position = _resolve(state, expression, ordinal=True, clause="group statement")
        state.group_columns.append(position)


_DISTINCT_SUMS = frozenset({"SUM_DISTINCT", "AVG_DISTINCT"})


def _distinct_regroup(state: _Rewrite) -> None:
    """COUNT/SUM/AVG(DISTINCT x): shards return one row per (group, x, y, ...) for every
    argument x, y of a DISTINCT aggregate; the merge counts or adds each value once per
    group, however many shards and partial rows hold it. The first argument arrives
    sorted inside a group (only the last value is kept), the others are remembered."""
    if not state.count_distinct and not state.distinct_sums:
        return
    values: dict[str, int] = {}  # each argument's text -> the shard row position holding it
    arguments: list[exp.Expression] = []

    def value_position(argument: exp.Expression, position: int | None) -> int:
        text = argument.sql("mysql").lower()
        if text not in values:
            values[text] = position if position is not None else state.add_hidden(argument.copy())
            arguments.append(argument)
        return values[text]

    counted = []
    for index in state.count_distinct:
        value_position(_unaliased(state.items[index]).this.expressions[0], index)
        counted.append(Aggregate("COUNT_DISTINCT", index))  # the item itself becomes x
    state.aggregates[:0] = counted
    for index, kind in state.distinct_sums:
        distinct = _unaliased(state.items[index]).this
        if len(distinct.expressions) != 1:
            raise errors.not_supported("SUM/AVG(DISTINCT a, b) over several shards")
        value_expr = distinct.expressions[0]
        value_column = value_position(value_expr, None)
        if kind == "SUM_DISTINCT":
            aggregate = Aggregate("SUM", index, distinct=True, value_column=value_column)
        else:
            once = exp.Distinct(expressions=[value_expr.copy()])
            sum_col = state.add_hidden(exp.Sum(this=once.copy()))
            count_col = state.add_hidden(exp.Count(this=once))
            aggregate = Aggregate(
                "AVG", index, sum_col, count_col, distinct=True, value_column=value_column
            )
        state.aggregates.append(aggregate)
    group = state.query.args.get("group")
    new_group = [e.copy() for e in (group.expressions if group is not None else [])]
    new_group += [argument.copy() for argument in arguments]
    state.query.set("group", exp.Group(expressions=new_group))
    # the other aggregates combine the finer (group, values) partials just as well
    state.value_column = values[arguments[0].sql("mysql").lower()]


def _group_concat_regroup(state: _Rewrite) -> None:
    """Shards return one row per (group, value) with its GROUP_CONCAT; the merge joins them.

    The value and the shard session's group_concat_max_len ride as helper
    columns; the shards sort by the value in the GROUP_CONCAT's direction.
    """
    if not state.group_concat:
        return
    if len(state.group_concat) > 1 or state.value_column is not None:
        raise errors.not_supported(
            "GROUP_CONCAT() with another GROUP_CONCAT() or a DISTINCT aggregate in one SELECT "
            "that spans several shards",
            "run one query per GROUP_CONCAT()",
        )
    index = state.group_concat[0]
    node = _unaliased(state.items[index])
    value, distinct, descending, separator = _group_concat_parts(node)
    value_column = state.add_hidden(value.copy())
    limit_column = state.add_hidden(exp.var("@@SESSION.group_concat_max_len"))
    group = state.query.args.get("group")
    new_group = [e.copy() for e in (group.expressions if group is not None else [])]
    new_group.append(value.copy())
    state.query.set("group", exp.Group(expressions=new_group))
    state.concat_key = SortKey(value_column, descending)
    state.aggregates.insert(
        0, Aggregate("GROUP_CONCAT", index, value_column, limit_column, separator, distinct)
    )


def _group_concat_parts(node: exp.Expression) -> tuple[exp.Column, bool, bool, bytes]:
    """(value, DISTINCT, descending, separator) of a GROUP_CONCAT the merge joins exactly.

    Exact means MariaDB's order is fixed: ORDER BY the concatenated column
    itself (ties are then equal values), one plain column, an ASCII separator.
    """
    hint = (
        "add ORDER BY inside GROUP_CONCAT by the concatenated column itself, as in "
        "GROUP_CONCAT(name ORDER BY name), or add the shard key to the WHERE clause"
    )
    order = node.this
    if not isinstance(order, exp.Order) or len(order.expressions) != 1:
        raise errors.not_supported(
            "GROUP_CONCAT() without ORDER BY its own column in a SELECT that spans several "
            "shards (the concatenation order would differ)",
            hint,
        )
    argument = order.this
    distinct = isinstance(argument, exp.Distinct)
    values = argument.expressions if distinct else [argument]
    ordered = order.expressions[0]
    if len(values) != 1 or not isinstance(values[0], exp.Column) or ordered.this != values[0]:
        raise errors.not_supported(
            "GROUP_CONCAT() over anything but one column ordered by itself, in a SELECT "
            "that spans several shards",
            hint,
        )
    separator = node.args.get("separator")
    if separator is None:
        text = ","
    elif isinstance(separator, exp.Literal) and separator.is_string and separator.this.isascii():
        text = separator.this
    else:
        raise errors.not_supported(
            "a GROUP_CONCAT() SEPARATOR other than an ASCII string in a SELECT that spans "
            "several shards",
        )
    return values[0], distinct, bool(ordered.args.get("desc")), text.encode()


def _having(state: _Rewrite) -> None:
    having = state.query.args.get("having")
    if having is None:
        return
    if (
        not state.group_columns
        and not state.aggregates
        and not any(_aggregate_kind(n) for n in having.walk())
    ):
        return  # without grouping HAVING filters rows: each shard applies it, before LIMIT

    def locate(node: exp.Expression) -> int:
        kind = _aggregate_kind(node)
        if kind is not None:
            return _aggregate_position(state, node, kind)
        if isinstance(node, exp.Column):
            position = _resolve(state, node)
            if position in state.computed:
                raise errors.not_supported(
                    "HAVING by an item that computes with aggregates, over several shards",
                    "write the condition over the aggregates themselves",
                )
            return position
        raise errors.not_supported("this HAVING clause over several shards")

    predicate = compile_having(having.this, locate)
    state.having = Having(having.this.sql("mysql"), predicate)
    state.query.set("having", None)


def _order_by(state: _Rewrite) -> None:
    order = state.query.args.get("order")
    for ordered in order.expressions if order is not None else ():
        node = ordered.this
        kind = _aggregate_kind(node)
        if kind is not None:
            # an aggregate the select list may not hold: its partials must be combined too
            position = _aggregate_position(state, node, kind)
        elif (found := _item_position(state, node)) in state.computed:
            position = found  # ORDER BY the computed item's own text
        else:
            _refuse_nested_aggregate(node, "ORDER BY")
            position = _resolve(state, node, ordinal=True)
        state.order_keys.append(SortKey(position, bool(ordered.args.get("desc"))))


def _limit(state: _Rewrite, grouped: bool) -> tuple[int | None, int]:
    """The client's LIMIT for the merge; the shards get offset+count (or no limit)."""
    query = state.query
    limit_node = query.args.get("limit")
    offset_node = query.args.get("offset")
    if isinstance(limit_node, exp.Fetch):
        limit = _fetch_count(state, limit_node)
    else:
        limit = _int_literal(limit_node.expression) if limit_node is not None else None
    offset = _int_literal(offset_node.expression) if offset_node is not None else 0
    query.set("offset", None)
    if grouped or (query.args.get("distinct") and state.hidden):
        # DISTINCT over visible and helper columns keeps rows the merge then folds
        # together: a shard's first offset+limit rows may hold too few distinct ones
        query.set("limit", None)
    elif limit is not None:
        # MariaDB reads LIMIT as unsigned 64-bit: past that, every row is "all rows"
        shard_limit = min((offset or 0) + limit, MAX_UNSIGNED_BIGINT)
        count = exp.Var(this=_TIES_MARK) if state.with_ties else exp.Literal.number(shard_limit)
        query.set("limit", exp.Limit(expression=count))
        state.shard_limit = shard_limit
    return limit, offset or 0


_TIES_MARK = "__xaproxy_ties__"


def _fetch_count(state: _Rewrite, fetch: exp.Fetch) -> int | None:
    """FETCH FIRST/NEXT n ROWS ONLY is a LIMIT; WITH TIES a LIMIT that also keeps the
    rows tied with the last (by the ORDER BY); PERCENT is refused."""
    options = fetch.args.get("limit_options")
    if options is not None and options.args.get("with_ties"):
        if not state.order_keys:
            raise errors.ProxyError(
                4180, "HY000", "FETCH ... WITH TIES requires ORDER BY clause to be present"
            )
        if state.query.args.get("distinct") or state.computed:
            raise errors.not_supported(
                "FETCH ... WITH TIES with DISTINCT or an item that computes with aggregates, "
                "in a SELECT that spans several shards",
                "use ORDER BY ... LIMIT with a count large enough, or add the shard key",
            )
        state.with_ties = True
    if options is not None and options.args.get("percent"):
        raise errors.not_supported("FETCH ... PERCENT in a SELECT that spans several shards")
    count = fetch.args.get("count")
    return 1 if count is None else _int_literal(count)


def _check_star(state: _Rewrite, star: int | None) -> None:
    if star is None:
        return
    if state.having is not None:
        raise errors.not_supported("SELECT * with HAVING over several shards")


# --- the order the shards sort in, so the merge streams ------------------------------------


def _shard_order(state: _Rewrite, grouped: bool) -> tuple[SortKey, ...]:
    """The ORDER BY each shard applies so that the merge holds one row per shard, not all.

    Grouped: the group columns (the client's ORDER BY first when it orders by
    group columns only), then a COUNT(DISTINCT x)'s x: equal groups, and equal
    values inside a group, arrive next to each other from every shard.
    DISTINCT without helper columns: the client's ORDER BY, then every other
    selected column: duplicates arrive next to each other. Empty: nothing to gain.
    """
    if grouped:
        columns = list(state.group_columns)
        if state.value_column is not None:
            columns.append(state.value_column)
        if not columns and state.concat_key is None:
            return ()
        # the client's order leads only when it is by group columns: a COUNT(DISTINCT x)'s
        # x first would part a group's rows
        grouping = set(state.group_columns)
        lead = state.order_keys if all(k.column in grouping for k in state.order_keys) else []
    elif state.query.args.get("distinct") and not state.hidden:
        columns = list(range(state.visible))
        lead = state.order_keys
    else:
        return ()
    keys: list[SortKey] = []
    for key in lead:
        if all(k.column != key.column for k in keys):
            keys.append(SortKey(key.column, key.descending))
    for column in columns:
        if all(k.column != column for k in keys):
            keys.append(SortKey(column, False))
    if grouped and state.concat_key is not None:
        keys.append(state.concat_key)  # the value last: a group's fragments come in its order
    return tuple(keys)


def _ordinal_order(keys: tuple[SortKey, ...]) -> exp.Order:
    """ORDER BY select-list positions: exactly the columns the merge reads, however named."""
    return exp.Order(
        expressions=[
            exp.Ordered(
                this=exp.Literal.number(k.column + 1),
                desc=k.descending,
                nulls_first=not k.descending,
            )
            for k in keys
        ]
    )


# --- the merge steps -----------------------------------------------------------------------


def _placement(star: int | None, width: int):
    """Maps a position in the rewritten select list to one in the shard row.

    Without a star they are the same; with one, positions after it count from
    the row's end, so they hold whatever width the star has.
    """
    if star is None:
        return lambda position: position
    return lambda position: position - width if position > star else position


def _steps(
    state: _Rewrite, place, limit: int | None, offset: int, shard_order: tuple[SortKey, ...]
) -> tuple[MergeStep, ...]:
    steps: list[MergeStep] = []
    grouped = bool(state.group_columns or state.aggregates)
    if grouped:
        steps.append(
            Group(
                tuple(place(c) for c in state.group_columns),
                tuple(_placed_aggregate(a, place) for a in state.aggregates),
                tuple(SortKey(place(k.column), k.descending) for k in shard_order),
            )
        )
    if state.having is not None:
        steps.append(state.having)
    compute = _compute_step(state, place)
    if compute is not None and state.compute_first:
        steps.append(compute)
    order_keys = tuple(state.order_keys)
    sorted_distinct = bool(shard_order) and not grouped
    if sorted_distinct:
        order_keys = shard_order  # the client's keys, then the other columns (ties are free)
    if order_keys:
        steps.append(Sort(tuple(SortKey(place(k.column), k.descending) for k in order_keys)))
    if state.query.args.get("distinct"):
        steps.append(Distinct(sorted_distinct))
    if limit is not None or offset:
        steps.append(Limit(limit, offset, len(order_keys) if state.with_ties else 0))
    if compute is not None and not state.compute_first:
        steps.append(compute)
    if state.hidden:
        steps.append(DropHidden(tuple(h.this.sql("mysql") for h in state.hidden)))
    return tuple(steps)


def _compute_step(state: _Rewrite, place) -> Compute | None:
    if not state.computed_items:
        return None
    return Compute(
        tuple(
            replace(i, column=place(i.column), partials=tuple(map(place, i.partials)))
            for i in state.computed_items
        )
    )


def _placed_aggregate(a: Aggregate, place) -> Aggregate:
    return replace(
        a,
        column=place(a.column),
        sum_column=None if a.sum_column is None else place(a.sum_column),
        count_column=None if a.count_column is None else place(a.count_column),
        value_column=None if a.value_column is None else place(a.value_column),
    )


def _count_distinct_columns(state: _Rewrite, place) -> tuple[tuple[int, bytes], ...]:
    """The client sees a BIGINT count where the shards return the counted value."""
    return tuple(
        (place(position), column_for(state.names[position] or "COUNT(DISTINCT)", 0).encode())
        for position in state.count_distinct
    )  # a count: BIGINT


# --- helpers -----------------------------------------------------------------------------


_MARIADB_NAMES = {
    exp.VariancePop: "VAR_POP",
    exp.Variance: "VARIANCE",
    exp.JSONObjectAgg: "JSON_OBJECTAGG",
    exp.GroupConcat: "GROUP_CONCAT",
}


def _unknown_aggregate_name(node: exp.Expression, sql: str) -> str | None:
    """The name of an aggregate call the merge cannot combine, as the client spelled it, else None.

    sqlglot folds synonyms (STD, STDDEV, STDDEV_POP) into one class whose
    name changes between its releases; the client's own spelling does not.
    """
    if isinstance(node, exp.Anonymous):
        name = str(node.name).upper()
        return name if name in _UNTYPED_AGGREGATE_NAMES else None
    if isinstance(node, exp.AggFunc) and type(node) not in _AGGREGATES:
        return _spelled_name(node, sql) or _MARIADB_NAMES.get(type(node), node.sql_name())
    return None


def _spelled_name(node: exp.Expression, sql: str) -> str | None:
    """The function name at the node's source offsets, when the parser recorded them."""
    start, end = node.meta.get("start"), node.meta.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    name = sql[start : end + 1]
    return name.upper() if name.replace("_", "").isalpha() else None


def _literal_column_name(node: exp.Expression, text: str) -> str:
    """The column name MariaDB gives an unaliased item: a string literal is named by its value."""
    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    if isinstance(node, exp.National):  # N'abc' is named abc
        return str(node.this)
    if isinstance(node, exp.Introducer) and isinstance(node.expression, exp.Literal):
        literal = node.expression  # _utf8mb4'abc' is named abc; _binary X'41' keeps its text
        return literal.this if literal.is_string else text
    return text


def named_as_written(item: exp.Expression, index: int, texts: list[str]) -> exp.Expression:
    """A select item aliased as MariaDB names it for the client (its text as written, a
    string literal by its value), so the regenerated text keeps the column's name."""
    inner = _unaliased(item)
    if isinstance(item, exp.Alias) or isinstance(inner, (exp.Column, exp.Star)):
        return item
    text = texts[index] if index < len(texts) else inner.sql("mysql")
    return exp.alias_(inner.copy(), _literal_column_name(inner, text), quoted=True)


def named_query(query: exp.Query, sql: str) -> exp.Query:
    """`query` (a copy) with its result columns named as the client's text names them."""
    first: exp.Expression | None = query
    while first is not None and not isinstance(first, exp.Select):
        first = first.this  # the leftmost branch names a UNION's columns
    if first is None:
        return query
    texts = select_item_texts(sql)
    first.set(
        "expressions",
        [named_as_written(item, i, texts) for i, item in enumerate(first.expressions)],
    )
    return query


def _unaliased(item: exp.Expression) -> exp.Expression:
    return item.this if isinstance(item, exp.Alias) else item


def _star_index(items: list[exp.Expression]) -> int | None:
    for index, item in enumerate(items):
        if isinstance(item, exp.Star) or (
            isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
        ):
            return index
    return None


def _aggregate_kind(node: exp.Expression) -> str | None:
    for cls, kind in _AGGREGATES.items():
        if isinstance(node, cls):
            if isinstance(node.this, exp.Distinct):
                if kind in ("COUNT", "SUM", "AVG"):
                    return f"{kind}_DISTINCT"
                if kind == "BIT_XOR":
                    # XOR of each shard's distinct values: a value on two shards cancels out
                    raise errors.not_supported(
                        f"{kind}(DISTINCT ...) in a SELECT that spans several shards",
                        "add the shard key to the WHERE clause",
                    )
            return kind
    return None


def _int_literal(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    found, value = literal_value(node)
    if not found or not isinstance(value, int):
        raise errors.not_supported("a non-constant LIMIT in a SELECT that spans several shards")
    return value


def _resolve(
    state: _Rewrite, node: exp.Expression, ordinal: bool = False, clause: str = "order clause"
) -> int:
    """The result column holding `node`: a visible item when it is one, else a new hidden one.

    With `ordinal`, an integer literal is a select-list position (ORDER BY 2, GROUP BY 1).
    """
    if ordinal and isinstance(node, exp.Literal) and not node.is_string:
        number = int(node.this)
        star = _star_index(state.items)
        if star is not None and number > star + 1:
            # the star's width is the shards' to know: position N is not the Nth item
            raise errors.not_supported(
                f"a position ({number}) after a * in the {clause} over several shards",
                "name the column instead of its position",
            )
        if 1 <= number <= state.visible:
            return number - 1
        raise errors.ProxyError(1054, "42S22", f"Unknown column '{number}' in '{clause}'")
    if isinstance(node, exp.Column) and not node.table:
        for index, name in enumerate(state.names):
            if name is not None and name.lower() == node.name.lower():
                return index
    found = _item_position(state, node)
    return found if found is not None else state.add_hidden(node.copy())


def _item_position(state: _Rewrite, node: exp.Expression) -> int | None:
    wanted = node.sql("mysql").lower()
    for index, item in enumerate(state.items):
        if _unaliased(item).sql("mysql").lower() == wanted:
            return index
    return None


def _refuse_nested_aggregate(node: exp.Expression, where: str) -> None:
    if any(_aggregate_kind(n) for n in node.walk() if n is not node):
        raise errors.not_supported(
            f"an expression around an aggregate in {where} of a SELECT that spans several shards",
            "select the aggregate alone and compute with it in the application",
        )


def _aggregate_position(state: _Rewrite, node: exp.Expression, kind: str) -> int:
    """The column of an aggregate used by HAVING or ORDER BY; a hidden one when not selected."""
    found = _item_position(state, node)
    if found is not None:
        return found
    if kind in ("COUNT_DISTINCT", "GROUP_CONCAT") or kind in _DISTINCT_SUMS:
        raise errors.not_supported(
            f"{kind} in HAVING or ORDER BY without selecting it, over several shards",
            "select it too",
        )
    position = state.add_hidden(node.copy())
    if kind == "AVG":
        argument = node.this
        sum_col = state.add_hidden(exp.Sum(this=argument.copy()))
        count_col = state.add_hidden(exp.Count(this=argument.copy()))
        state.aggregates.append(Aggregate("AVG", position, sum_col, count_col))
    else:
        state.aggregates.append(Aggregate(kind, position))
    return position


# --- UNION [ALL] of SELECTs whose rows each live on one shard -------------------------------


def union_branches(ast: exp.Union) -> list[exp.Select]:
    """The SELECTs of `a UNION b UNION c`, left to right.

    Refused: INTERSECT and EXCEPT (a row on one shard against a row on another),
    chains that mix UNION and UNION ALL, parenthesized branches and branches with their
    own ORDER BY or LIMIT; the shards then could not each run the whole chain.
    """
    distinct = bool(ast.args.get("distinct"))
    branches: list[exp.Select] = []

    def walk(node: exp.Expression, top: bool) -> None:
        if isinstance(node, exp.Select):
            branches.append(node)
            return
        if type(node) is not exp.Union:
            what = type(node).__name__.upper()
            raise errors.not_supported(
                f"{'a parenthesized UNION branch' if what == 'SUBQUERY' else what} over several "
                "shards",
                "write the branches without parentheses, or add the shard key to the WHERE clause",
            )
        if bool(node.args.get("distinct")) != distinct:
            raise errors.not_supported(
                "a chain that mixes UNION and UNION ALL over several shards",
                "use one kind of UNION in the chain",
            )
        if node.args.get("with_"):
            raise errors.not_supported(
                "WITH (a CTE) before a UNION over several shards", "write the CTE's SELECT inline"
            )
        if not top and any(node.args.get(k) for k in ("order", "limit", "offset")):
            raise errors.not_supported(
                "ORDER BY or LIMIT of an inner UNION over several shards",
                "apply ORDER BY and LIMIT to the whole UNION",
            )
        walk(node.this, False)
        walk(node.expression, False)

    walk(ast, True)
    return branches


def _check_union_branch(branch: exp.Select, sql: str, distinct: bool) -> None:
    """A branch is run by every shard inside the union: it must need no merge of its own."""
    _refuse_unmergeable(branch, sql)
    clauses = {
        "GROUP BY": branch.args.get("group"),
        "HAVING": branch.args.get("having"),
        "ORDER BY": branch.args.get("order"),
        "LIMIT": branch.args.get("limit") or branch.args.get("offset"),
        "FOR UPDATE / LOCK IN SHARE MODE": branch.args.get("locks"),
        "DISTINCT": branch.args.get("distinct") if not distinct else None,
        "an aggregate": next((n for n in branch.walk() if _aggregate_kind(n)), None),
        "SQL_CALC_FOUND_ROWS": calc_found_rows(branch) or None,
    }
    found = next((name for name, present in clauses.items() if present), None)
    if found is not None:
        raise errors.not_supported(
            f"{found} inside a UNION branch over several shards",
            "apply ORDER BY and LIMIT to the whole UNION, or add the shard key to the WHERE "
            "clause of every branch",
        )


def rewrite_fanout_union(ast: exp.Union, sql: str) -> FanoutRewrite:
    """The shard query and merge steps for a UNION [ALL] whose branches each read rows that
    live on one shard: every shard runs the whole union over its own rows, and the union of
    the shards' answers is the server's answer (UNION: with duplicates dropped across
    shards). The shards sort by the client's ORDER BY (UNION: then by every column, so
    duplicates arrive side by side) and stop at offset+count; the merge does the rest."""
    query = ast.copy()
    branches = union_branches(query)
    distinct = bool(query.args.get("distinct"))
    for branch in branches:
        _check_union_branch(branch, sql, distinct)
    first = branches[0]
    state = _Rewrite(query, list(first.expressions))  # type: ignore[arg-type]
    texts = select_item_texts(sql)  # the first branch's items name the result's columns
    for index, item in enumerate(state.items):
        item = named_as_written(item, index, texts)
        state.new_items.append(item)
        state.names.append(
            item.alias if isinstance(item, exp.Alias) else _column_name(_unaliased(item))
        )
    first.set("expressions", state.new_items)
    order = query.args.get("order")
    for ordered in order.expressions if order is not None else ():
        state.order_keys.append(
            SortKey(_union_column(state, ordered.this), bool(ordered.args.get("desc")))
        )
    if _star_index(state.items) is not None and (state.order_keys or distinct):
        raise errors.not_supported(
            "SELECT * in a UNION with ORDER BY or DISTINCT over several shards",
            "list the columns you select",
        )
    limit, offset = _limit(state, grouped=False)
    keys = list(state.order_keys)
    if distinct:
        keys += [
            SortKey(c, False) for c in range(state.visible) if all(k.column != c for k in keys)
        ]
    query.set("order", _ordinal_order(tuple(keys)) if keys else None)
    steps: list[MergeStep] = []
    if keys:
        steps.append(Sort(tuple(keys)))
    if distinct:
        steps.append(Distinct(adjacent=True))
    if limit is not None or offset:
        steps.append(Limit(limit, offset))
    return FanoutRewrite(mariadb_sql(query), tuple(steps))


def _column_name(node: exp.Expression) -> str | None:
    return node.name if isinstance(node, exp.Column) else None


def _union_column(state: _Rewrite, node: exp.Expression) -> int:
    """A UNION's ORDER BY names a result column (by position or name), nothing else."""
    if isinstance(node, exp.Literal) and not node.is_string:
        return _resolve(state, node, ordinal=True)
    if isinstance(node, exp.Column) and not node.table:
        for index, name in enumerate(state.names):
            if name is not None and name.lower() == node.name.lower():
                return index
    raise errors.not_supported(
        "ORDER BY of a UNION over several shards by other than a result column",
        "order by a column's name or position in the first SELECT",
    )
