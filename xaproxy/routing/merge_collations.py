"""Fan-out merges only on strings whose collation the merge reproduces, else a refusal.

The merge (execution/sortkeys.py) orders, groups and deduplicates strings by
utf8mb4_general_ci's weights or by code point (_bin), and it sees only the
result's column definitions, which carry the connection's collation. A column of
another collation (utf8mb4_unicode_ci finds 'Straße' = 'strasse', general_ci
does not) would be merged by the wrong rules: such a SELECT that spans several
shards is refused when a merge key (GROUP BY, ORDER BY, DISTINCT, MIN/MAX,
COUNT(DISTINCT), GROUP_CONCAT, HAVING) reads such a column, unless the key is the column
itself and the shards gave the proxy its collation's weight table (unicode_ci,
unicode_520_ci: the planner then marks the position, and the merge weighs it by that
table). The collations come from the shards' metadata; `col COLLATE utf8mb4_general_ci`
(or _bin) makes a key mergeable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlglot import exp

from .. import errors

MERGEABLE = frozenset(
    {
        "utf8mb4_general_ci",
        "utf8mb3_general_ci",
        "utf8_general_ci",
        "utf8mb4_bin",
        "utf8mb3_bin",
        "utf8_bin",
        "binary",
    }
)

# (qualifier, column name) -> the collations that column may have (one per candidate table)
Collations = Callable[[str, str], list[str]]


def _merge_keys(ast: exp.Select) -> Iterator[exp.Expression]:
    """Every expression whose string values the merge compares."""
    items = list(ast.expressions)
    group = ast.args.get("group")
    yield from group.expressions if group is not None else ()
    order = ast.args.get("order")
    for ordered in order.expressions if order is not None else ():
        yield ordered.this
    if ast.args.get("distinct") is not None:
        yield from items
    having = ast.args.get("having")
    if having is not None:
        yield having.this
    for node in ast.walk():
        distinct_count = isinstance(node, (exp.Count, exp.Sum, exp.Avg)) and isinstance(
            node.this, exp.Distinct
        )
        if distinct_count or isinstance(node, (exp.Min, exp.Max, exp.GroupConcat)):
            yield node.this  # GROUP_CONCAT: its pieces are ordered and deduplicated by value


def _aliases(ast: exp.Select) -> dict[str, exp.Expression]:
    return {
        item.alias.lower(): item.this for item in ast.expressions if isinstance(item, exp.Alias)
    }


def _columns(node: exp.Expression, aliases: dict[str, exp.Expression]) -> Iterator[exp.Column]:
    """The table columns `node` reads, through select-list aliases and ordinals; not under an
    explicit COLLATE of a mergeable collation."""
    pending = [node]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, exp.Collate) and _collate_name(current) in MERGEABLE:
            continue
        if isinstance(current, exp.Column) and not isinstance(current.this, exp.Star):
            alias = aliases.get(current.name.lower()) if not current.table else None
            if alias is not None and alias is not current:
                pending.append(alias)
            else:
                yield current
            continue
        pending.extend(current.iter_expressions())


def _plain_column(key: exp.Expression, aliases: dict[str, exp.Expression]) -> exp.Column | None:
    """The table column `key` is (through an alias, a select item, COUNT(DISTINCT x)'s x)."""
    if isinstance(key, exp.Alias):
        key = key.this
    if isinstance(key, exp.Distinct) and len(key.expressions) == 1:
        key = key.expressions[0]
    if isinstance(key, exp.Column) and not key.table:
        target = aliases.get(key.name.lower())
        if target is not None and target is not key:
            key = target
    return key if isinstance(key, exp.Column) else None


def _collate_name(node: exp.Collate) -> str:
    target = node.expression
    return (target.name if isinstance(target, (exp.Column, exp.Var, exp.Identifier)) else
            target.sql()).strip("`'\"").lower()  # fmt: skip


def check_merge_collations(
    ast: exp.Select, collations: Collations, weighable: Callable[[str], bool] | None = None
) -> None:
    """Refuses a fan-out SELECT whose merge would compare strings by the wrong collation.

    `weighable`: collations the merge weighs by the server's weight table; a key that is
    such a column itself (not an expression over it) passes."""
    aliases = _aliases(ast)
    items = list(ast.expressions)
    for key in _merge_keys(ast):
        if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
            position = int(key.this) - 1  # ORDER BY 2 / GROUP BY 1: that select item
            if not 0 <= position < len(items):
                continue
            key = items[position]
        plain = _plain_column(key, aliases)
        for column in _columns(key, aliases):
            found = collations(column.table.lower(), column.name.lower())
            # one collation the merge weighs exactly (candidates that disagree: refused)
            weighed = (
                column is plain
                and weighable is not None
                and len({c.lower() for c in found}) == 1
                and weighable(found[0])
            )
            for collation in [] if weighed else found:
                if collation.lower() not in MERGEABLE:
                    raise errors.not_supported(
                        f"merging rows from several shards on column '{column.name}' of "
                        f"collation {collation} (the merge orders and groups strings by "
                        "utf8mb4_general_ci or binary rules only)",
                        "add the shard key to the WHERE clause so one shard answers, or write "
                        f"{column.name} COLLATE utf8mb4_general_ci where that order will do",
                    )


_HAVING_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)


def check_having_conversions(ast: exp.Select, collations: Collations) -> None:
    """Refuses a HAVING the merge would compare in the wrong type: MariaDB compares a
    string with a number as numbers (`k > 0` with k '7abc' is 7 > 0, with a warning per
    row), the merge's predicate (having.py) would compare the string itself."""
    having = ast.args.get("having")
    if having is None:
        return
    aliases = _aliases(ast)
    for node in having.this.walk():
        if not isinstance(node, _HAVING_COMPARISONS):
            continue
        for side, other in ((node.this, node.expression), (node.expression, node.this)):
            if (_is_number(other) and _reads_string(side, collations, aliases)) or (
                _is_unclean_number_text(other) and _is_numeric_aggregate(side, aliases)
            ):
                raise errors.not_supported(
                    f"HAVING {node.sql('mysql')} over several shards: MariaDB compares the "
                    "string with the number as numbers, converting the string by its leading "
                    "digits with a warning",
                    "compare values of one type, or CAST the string to a number",
                )


def _is_unclean_number_text(node: exp.Expression) -> bool:
    """A string literal MariaDB reads as a number only in part ('2abc', ' 3', '')."""
    if not (isinstance(node, exp.Literal) and node.is_string):
        return False
    try:
        float(node.this)
    except ValueError:
        return True
    return node.this != node.this.strip()


def _is_numeric_aggregate(node: exp.Expression, aliases: dict) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column) and not node.table:
        node = aliases.get(node.name.lower(), node)
    return isinstance(node, (exp.Count, exp.Sum, exp.Avg))


def _is_number(node: exp.Expression) -> bool:
    node = node.this if isinstance(node, (exp.Paren, exp.Neg)) else node
    return isinstance(node, exp.Literal) and not node.is_string


def _reads_string(node: exp.Expression, collations: Collations, aliases: dict) -> bool:
    """A group column, or a MIN/MAX of one, that the metadata gives a collation."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column) and not node.table:
        node = aliases.get(node.name.lower(), node)
    if isinstance(node, (exp.Min, exp.Max)):
        node = node.this
    return isinstance(node, exp.Column) and bool(collations(node.table.lower(), node.name.lower()))
