"""Rewriting a SELECT that every shard runs, and describing how to merge the answers.

Each shard gets the same query with helper columns appended (sort keys,
group keys, SUM and COUNT for AVG, aggregates used by HAVING), LIMIT widened
to offset+count, and HAVING removed; the MergeSpec tells the merge engine how
to put the partial answers together so the client sees one server's answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from .. import errors
from ..execution.merge import Aggregate, MergeSpec, SortKey
from ..protocol.resultset import column_for
from .keys import literal_value
from .statements import select_item_texts

_AGGREGATES = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Min: "MIN", exp.Max: "MAX", exp.Avg: "AVG"}
# Select options that precede the first item; MySQL does not name the column after them.
_SELECT_OPTIONS = re.compile(
    r"^(?:(?:ALL|DISTINCT|DISTINCTROW|HIGH_PRIORITY|STRAIGHT_JOIN|SQL_SMALL_RESULT|SQL_BIG_RESULT"
    r"|SQL_BUFFER_RESULT|SQL_NO_CACHE|SQL_CACHE|SQL_CALC_FOUND_ROWS)\s+)+",
    re.I,
)
_UNSUPPORTED_AGGREGATES = (exp.GroupConcat, exp.Stddev, exp.Variance, exp.StddevPop, exp.StddevSamp)


@dataclass(slots=True)
class FanoutRewrite:
    sql: str
    spec: MergeSpec
    replacement_columns: tuple[bytes, ...] | None
    star_hidden: int | None = None  # SELECT *: the number of helper columns after the star's


def resolve_star(spec: MergeSpec, columns: int, hidden: int) -> MergeSpec:
    """Fixes column positions once the shards said how many columns `*` stands for."""
    actual_visible = columns - hidden
    delta = actual_visible - spec.visible

    def move(position: int) -> int:
        return position + delta if position >= spec.visible else position

    return replace(
        spec,
        visible=actual_visible,
        order_by=tuple(SortKey(move(k.column), k.descending) for k in spec.order_by),
        group_by=tuple(move(c) for c in spec.group_by),
        aggregates=tuple(
            Aggregate(
                a.kind,
                move(a.column),
                None if a.sum_column is None else move(a.sum_column),
                None if a.count_column is None else move(a.count_column),
            )
            for a in spec.aggregates
        ),
    )


def _aggregate_kind(node: exp.Expression) -> str | None:
    for cls, kind in _AGGREGATES.items():
        if isinstance(node, cls):
            if isinstance(node.this, exp.Distinct):
                if kind == "COUNT":
                    return "COUNT_DISTINCT"
                if kind in ("SUM", "AVG"):
                    # per-shard distinct sums cannot be added: a value on two shards counts twice
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


def rewrite_fanout_select(ast: exp.Select, sql: str) -> FanoutRewrite:
    if any(isinstance(n, _UNSUPPORTED_AGGREGATES) for n in ast.walk()):
        raise errors.not_supported(
            "GROUP_CONCAT, STDDEV or VARIANCE in a SELECT that spans several shards",
            "add the shard key to the WHERE clause",
        )
    if any(isinstance(n, exp.Window) for n in ast.walk()):
        raise errors.not_supported("window functions in a SELECT that spans several shards")
    if ast.args.get("group") and ast.args["group"].args.get("rollup"):
        raise errors.not_supported("WITH ROLLUP in a SELECT that spans several shards")

    query = ast.copy()
    items = list(query.expressions)
    texts = select_item_texts(sql)
    if texts:
        texts[0] = _SELECT_OPTIONS.sub("", texts[0])
    visible = len(items)
    has_star = any(
        isinstance(i, exp.Star) or (isinstance(i, exp.Column) and isinstance(i.this, exp.Star))
        for i in items
    )

    aggregates: list[Aggregate] = []
    count_distinct: list[int] = []
    new_items: list[exp.Expression] = []
    names: list[str | None] = []  # alias (or None) per visible item, for ORDER BY / HAVING lookups
    for index, item in enumerate(items):
        inner = item.this if isinstance(item, exp.Alias) else item
        alias = item.alias if isinstance(item, exp.Alias) else None
        kind = _aggregate_kind(inner)
        if kind is None and any(_aggregate_kind(n) for n in inner.walk() if n is not inner):
            raise errors.not_supported(
                "an expression around an aggregate in a SELECT that spans several shards",
                "select the aggregate alone and compute with it in the application",
            )
        if not isinstance(item, exp.Alias) and not isinstance(inner, (exp.Column, exp.Star)):
            # keep the column named exactly as the client wrote it
            text = texts[index] if index < len(texts) else inner.sql("mysql")
            item = exp.alias_(inner.copy(), text, quoted=True)
            alias = text
        names.append(
            alias if alias is not None else (inner.name if isinstance(inner, exp.Column) else None)
        )
        if kind == "COUNT_DISTINCT":
            count_distinct.append(index)
            distinct_arg = inner.this.expressions
            if len(distinct_arg) != 1:
                raise errors.not_supported("COUNT(DISTINCT a, b) over several shards")
            item = exp.alias_(distinct_arg[0].copy(), alias or "c", quoted=True)
        new_items.append(item)
        if kind is not None and kind != "COUNT_DISTINCT":
            aggregates.append(Aggregate(kind, index))

    hidden: list[exp.Expression] = []

    def add_hidden(node: exp.Expression) -> int:
        position = visible + len(hidden)
        hidden.append(exp.alias_(node, f"__xa{len(hidden)}", quoted=False))
        return position

    # AVG: each shard also sends SUM and COUNT of the argument.
    for position, aggregate in enumerate(aggregates):
        if aggregate.kind == "AVG":
            inner = items[aggregate.column]
            inner = inner.this if isinstance(inner, exp.Alias) else inner
            argument = inner.this
            sum_col = add_hidden(exp.Sum(this=argument.copy()))
            count_col = add_hidden(exp.Count(this=argument.copy()))
            aggregates[position] = Aggregate("AVG", aggregate.column, sum_col, count_col)

    if len(count_distinct) > 1:
        raise errors.not_supported(
            "several COUNT(DISTINCT ...) in one SELECT that spans several shards",
            "run one query per COUNT(DISTINCT ...)",
        )

    group = query.args.get("group")
    group_columns: list[int] = []
    if group is not None:
        for expression in group.expressions:
            position = _resolve(
                expression, items, names, add_hidden, visible,
                ordinal=True, clause="group statement",
            )  # fmt: skip
            group_columns.append(position)
    if count_distinct:
        # shards return one row per (group, value); the merge counts the values
        inner = items[count_distinct[0]]
        inner = inner.this if isinstance(inner, exp.Alias) else inner
        value_expr = inner.this.expressions[0]
        new_group = [e.copy() for e in (group.expressions if group is not None else [])]
        new_group.append(value_expr.copy())
        query.set("group", exp.Group(expressions=new_group))
        # the other aggregates combine the finer (group, value) partials just as well
        aggregates = [Aggregate("COUNT_DISTINCT", count_distinct[0]), *aggregates]

    having_predicate: Callable[[list[object]], bool] | None = None
    having = query.args.get("having")
    if (
        having is not None
        and not group_columns
        and not aggregates
        and not any(_aggregate_kind(n) for n in having.walk())
    ):
        having = None  # without grouping HAVING filters rows: each shard applies it, before LIMIT
    if having is not None:
        having_predicate = _compile_having(
            having.this, items, names, add_hidden, visible, aggregates
        )
        query.set("having", None)

    order_keys: list[SortKey] = []
    order = query.args.get("order")
    if order is not None:
        for ordered in order.expressions:
            node = ordered.this
            kind = _aggregate_kind(node)
            if kind is not None:
                # an aggregate the select list may not hold: its partials must be combined too
                position = _aggregate_position(node, kind, items, add_hidden, aggregates)
            else:
                _refuse_nested_aggregate(node, "ORDER BY")
                position = _resolve(node, items, names, add_hidden, visible, ordinal=True)
            order_keys.append(SortKey(position, bool(ordered.args.get("desc"))))

    grouped = bool(group_columns) or bool(aggregates)
    if grouped and order is not None:
        query.set("order", None)

    limit_node = query.args.get("limit")
    offset_node = query.args.get("offset")
    limit = _int_literal(limit_node.expression) if limit_node is not None else None
    offset = _int_literal(offset_node.expression) if offset_node is not None else 0
    query.set("offset", None)
    if grouped or (query.args.get("distinct") and hidden):
        # DISTINCT over visible and helper columns keeps rows the merge then folds
        # together: a shard's first offset+limit rows may hold too few distinct ones
        query.set("limit", None)
    elif limit is not None:
        query.set("limit", exp.Limit(expression=exp.Literal.number((offset or 0) + limit)))

    query.set("expressions", new_items + hidden)
    spec = MergeSpec(
        visible=visible,
        order_by=tuple(order_keys),
        group_by=tuple(group_columns),
        aggregates=tuple(aggregates),
        having=having_predicate,
        distinct=bool(query.args.get("distinct")),
        limit=limit,
        offset=offset or 0,
    )
    if has_star and visible > 1 and (hidden or order_keys or group_columns):
        raise errors.not_supported(
            "SELECT * mixed with other columns and ORDER BY or GROUP BY over several shards",
            "list the columns you select",
        )
    if has_star and having_predicate is not None:
        raise errors.not_supported("SELECT * with HAVING over several shards")
    replacement = None
    if count_distinct:
        replacement = _count_distinct_columns(items, names, count_distinct[0])
    return FanoutRewrite(
        query.sql(dialect="mysql"), spec, replacement, len(hidden) if has_star else None
    )


def _resolve(
    node: exp.Expression,
    items: list[exp.Expression],
    names: list[str | None],
    add_hidden: Callable[[exp.Expression], int],
    visible: int,
    ordinal: bool = False,
    clause: str = "order clause",
) -> int:
    """The result column holding `node`: a visible item when it is one, else a new hidden one.

    With `ordinal`, an integer literal is a select-list position (ORDER BY 2, GROUP BY 1).
    """
    if ordinal and isinstance(node, exp.Literal) and not node.is_string:
        number = int(node.this)
        if 1 <= number <= visible:
            return number - 1
        raise errors.ProxyError(1054, "42S22", f"Unknown column '{number}' in '{clause}'")
    if isinstance(node, exp.Column) and not node.table:
        for index, name in enumerate(names):
            if name is not None and name.lower() == node.name.lower():
                return index
    wanted = node.sql("mysql").lower()
    for index, item in enumerate(items):
        inner = item.this if isinstance(item, exp.Alias) else item
        if inner.sql("mysql").lower() == wanted:
            return index
    return add_hidden(node.copy())


def _refuse_nested_aggregate(node: exp.Expression, where: str) -> None:
    if any(_aggregate_kind(n) for n in node.walk() if n is not node):
        raise errors.not_supported(
            f"an expression around an aggregate in {where} of a SELECT that spans several shards",
            "select the aggregate alone and compute with it in the application",
        )


def _aggregate_position(
    node: exp.Expression,
    kind: str,
    items: list[exp.Expression],
    add_hidden: Callable[[exp.Expression], int],
    aggregates: list[Aggregate],
) -> int:
    """The column of an aggregate used by HAVING or ORDER BY; a hidden one when not selected."""
    wanted = node.sql("mysql").lower()
    for index, item in enumerate(items):
        inner = item.this if isinstance(item, exp.Alias) else item
        if inner.sql("mysql").lower() == wanted:
            return index
    if kind == "COUNT_DISTINCT":
        raise errors.not_supported(
            "COUNT(DISTINCT ...) in HAVING or ORDER BY without selecting it, over several shards",
            "select it too",
        )
    position = add_hidden(node.copy())
    if kind == "AVG":
        argument = node.this
        sum_col = add_hidden(exp.Sum(this=argument.copy()))
        count_col = add_hidden(exp.Count(this=argument.copy()))
        aggregates.append(Aggregate("AVG", position, sum_col, count_col))
    else:
        aggregates.append(Aggregate(kind, position))
    return position


_NO_LITERAL = object()


def _compile_having(
    node: exp.Expression,
    items: list[exp.Expression],
    names: list[str | None],
    add_hidden: Callable[[exp.Expression], int],
    visible: int,
    aggregates: list[Aggregate],
) -> Callable[[list[object]], bool]:
    """HAVING as a Python predicate over merged rows (decoded keys).

    SQL's three-valued logic is kept: a comparison with NULL is unknown (None),
    NOT unknown is unknown, and only a true condition keeps the group. A string
    literal compared with a column is passed through that column's key decoder
    (when the merge offers `row.decode_as`), so it compares by the collation.
    """

    Value = tuple[Callable[[list[object]], object], int | None, object]

    def compile_value(n: exp.Expression) -> Value:
        if isinstance(n, exp.Paren):
            return compile_value(n.this)
        found, value = literal_value(n)
        if found:
            return (lambda row, v=value: v), None, value
        kind = _aggregate_kind(n)
        if kind is not None:
            position = _aggregate_position(n, kind, items, add_hidden, aggregates)
            return (lambda row, p=position: row[p]), position, _NO_LITERAL
        if isinstance(n, exp.Column):
            position = _resolve(n, items, names, add_hidden, visible)
            return (lambda row, p=position: row[p]), position, _NO_LITERAL
        raise errors.not_supported("this HAVING clause over several shards")

    def literal_key(row: list[object], column: int, literal: str) -> object:
        decode_as = getattr(row, "decode_as", None)
        if decode_as is None:
            return literal
        try:
            return decode_as(column, literal)
        except (ValueError, ArithmeticError, UnicodeError):
            return literal

    Predicate = Callable[[list[object]], bool | None]

    def compile_bool(n: exp.Expression) -> Predicate:
        if isinstance(n, exp.Paren):
            return compile_bool(n.this)
        if isinstance(n, exp.And):
            a, b = compile_bool(n.this), compile_bool(n.expression)

            def both(row: list[object]) -> bool | None:
                x = a(row)
                if x is False:
                    return False
                y = b(row)
                if y is False:
                    return False
                return None if x is None or y is None else True

            return both
        if isinstance(n, exp.Or):
            a, b = compile_bool(n.this), compile_bool(n.expression)

            def either(row: list[object]) -> bool | None:
                x = a(row)
                if x is True:
                    return True
                y = b(row)
                if y is True:
                    return True
                return None if x is None or y is None else False

            return either
        if isinstance(n, exp.Not):
            a = compile_bool(n.this)

            def negated(row: list[object]) -> bool | None:
                x = a(row)
                return None if x is None else not x

            return negated
        if isinstance(n, exp.Is) and isinstance(n.expression, exp.Null):
            value = compile_value(n.this)[0]
            return lambda row: value(row) is None
        comparisons = {
            exp.EQ: lambda x, y: x == y,
            exp.NEQ: lambda x, y: x != y,
            exp.GT: lambda x, y: x > y,
            exp.GTE: lambda x, y: x >= y,
            exp.LT: lambda x, y: x < y,
            exp.LTE: lambda x, y: x <= y,
        }
        for cls, compare in comparisons.items():
            if isinstance(n, cls):
                left_fn, left_col, left_lit = compile_value(n.this)
                right_fn, right_col, right_lit = compile_value(n.expression)

                def check(
                    row,
                    left_fn=left_fn,
                    right_fn=right_fn,
                    left_col=left_col,
                    right_col=right_col,
                    left_lit=left_lit,
                    right_lit=right_lit,
                    compare=compare,
                ) -> bool | None:
                    x, y = left_fn(row), right_fn(row)
                    if x is None or y is None:
                        return None
                    if isinstance(x, str) and isinstance(y, str):
                        if left_col is not None and isinstance(right_lit, str):
                            y = literal_key(row, left_col, right_lit)
                        elif right_col is not None and isinstance(left_lit, str):
                            x = literal_key(row, right_col, left_lit)
                    x, y = _coerce(x, y)
                    try:
                        return bool(compare(x, y))
                    except TypeError:
                        return False

                return check
        raise errors.not_supported("this HAVING clause over several shards")

    condition = compile_bool(node)
    return lambda row: condition(row) is True


def _coerce(x: object, y: object) -> tuple[object, object]:
    numeric = (int, float, Decimal)
    if isinstance(x, numeric) and isinstance(y, str):
        try:
            return Decimal(str(x)), Decimal(y)
        except InvalidOperation:
            return x, y
    if isinstance(y, numeric) and isinstance(x, str):
        try:
            return Decimal(x), Decimal(str(y))
        except InvalidOperation:
            return x, y
    if not (isinstance(x, numeric) and isinstance(y, numeric)):
        return x, y
    if isinstance(x, float) or isinstance(y, float):
        return float(x), float(y)
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return Decimal(str(x)), Decimal(str(y))
    return x, y


def _count_distinct_columns(
    items: list[exp.Expression], names: list[str | None], position: int
) -> tuple[bytes, ...] | None:
    name = names[position] or "COUNT(DISTINCT)"
    return (column_for(name, 0).encode(),)  # a count: BIGINT
