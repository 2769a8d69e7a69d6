"""Templates whose shard is a function of one parameter: `... WHERE key = ? [AND ...]`.

For such a prepared statement the planner's answer depends on the parameters only
through the shard that parameter's value names (keys.key_shard, the rule the
planner itself applies to the same value), so a plan made once for a shard serves
every later execute whose value names that shard, without planning again.

The shape is recognised conservatively: one sharded table, no joins, subqueries,
unions or CTEs; the WHERE clause's top-level AND has exactly one conjunct that
mentions the shard key, and it is `key = ?` (either side). Anything else is planned
per execute as before.
"""

from __future__ import annotations

from sqlglot import exp

from ..config import TableConfig

_STATEMENTS = (exp.Select, exp.Update, exp.Delete)


def key_parameter(ast: exp.Expression, table: exp.Table, config: TableConfig) -> int | None:
    """The index N of the `:pN` placeholder that alone places `ast`'s rows, or None."""
    if not isinstance(ast, _STATEMENTS) or ast.args.get("joins") or ast.args.get("with"):
        return None
    if any(node is not ast for node in ast.find_all(exp.Select, exp.Union, exp.Subquery)):
        return None
    where = ast.args.get("where")
    key = (config.shard_key or "").lower()
    if where is None or not key:
        return None
    names = {table.name.lower(), table.alias_or_name.lower()}
    found: int | None = None
    for conjunct in _conjuncts(where.this):
        if not any(_is_key(c, key, names) for c in conjunct.find_all(exp.Column)):
            continue
        index = _key_equals_placeholder(conjunct, key, names)
        if index is None or found is not None:
            return None
        found = index
    return found


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _is_key(column: exp.Column, key: str, names: set[str]) -> bool:
    qualifier = column.table.lower()
    return column.name.lower() == key and (not qualifier or qualifier in names)


def _key_equals_placeholder(node: exp.Expression, key: str, names: set[str]) -> int | None:
    if type(node) is not exp.EQ:
        return None
    for column, value in ((node.this, node.expression), (node.expression, node.this)):
        if (
            isinstance(column, exp.Column)
            and _is_key(column, key, names)
            and isinstance(value, exp.Placeholder)
        ):
            name = str(value.this or "")
            if name.startswith("p") and name[1:].isdigit():
                return int(name[1:])
    return None
