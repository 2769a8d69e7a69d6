"""The text of a rewritten syntax tree, spelled so that MariaDB reads what the client wrote.

The fan-out rewrite regenerates a statement from its tree with sqlglot's MySQL
generator, which follows MySQL 8; a few of its spellings fail or change results
on MariaDB (each checked on a 10.11 server by tests/integration/test_regenerated_sql.py):

* `a REGEXP b` / `a RLIKE b` came out as `REGEXP_LIKE(a, b)`, which MariaDB lacks (1305);
* `LOG10(x)` / `LOG2(x)` came out as `LOG(10, x)` / `LOG(2, x)`, which MariaDB computes
  differently (LOG10(2) and LOG(10, 2) differ in the last digits);
* `UTC_DATE()`, `UTC_TIME()`, `UTC_TIMESTAMP()` came out as `... AT TIME ZONE 'UTC'` (1064).

sqlglot's compiled dialect classes cannot be subclassed, so the tree is corrected
before it is generated. Add a case here, and an expression to that test, with
every spelling found to differ.
"""

from __future__ import annotations

from sqlglot import exp

from ..analysis.parse import parse

_UTC = {exp.UtcDate: "UTC_DATE", exp.UtcTime: "UTC_TIME", exp.UtcTimestamp: "UTC_TIMESTAMP"}


def mariadb_sql(node: exp.Expression) -> str:
    """`node` as SQL text for a MariaDB shard (the tree itself is not changed)."""
    return node.copy().transform(_respell).sql(dialect="mysql")


def _respell(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpLike) and node.args.get("flag") is None:
        text = f"({mariadb_sql(node.this)} REGEXP {mariadb_sql(node.expression)})"
        return exp.Var(this=text)
    if isinstance(node, exp.Log) and _log_base_from_name(node):
        return exp.Anonymous(this=f"LOG{node.this.name}", expressions=[node.expression])
    name = _UTC.get(type(node))
    if name is not None:
        args = [a for a in node.args.values() if isinstance(a, exp.Expression)]
        return exp.Anonymous(this=name, expressions=args)
    return node


def _log_base_from_name(node: exp.Log) -> bool:
    """LOG10(x) / LOG2(x): the parser made the base literal itself (it has no place in
    the text), unlike the `10` of LOG(10, x), which came from a token."""
    base = node.this
    return (
        node.args.get("expression") is not None
        and isinstance(base, exp.Literal)
        and "start" not in base.meta
        and base.name in ("2", "10")
    )


def regenerates_itself(node: exp.Expression) -> bool:
    """Whether `mariadb_sql(node)`, parsed again, is `node` itself: the
    MySQL generator silently drops what it cannot write (`FETCH FIRST 10 PERCENT` comes
    out as `LIMIT 10`). A statement run from regenerated text alone (no merge that would
    notice) needs this. Differences that mean nothing are set aside: parentheses (the
    tree's shape already groups), GROUP_CONCAT's default separator written out."""
    again = parse(mariadb_sql(node)).ast
    return again is not None and _canonical(again) == _canonical(node)


def _canonical(node: exp.Expression) -> exp.Expression:
    def plain(part: exp.Expression) -> exp.Expression:
        if isinstance(part, exp.Paren):
            return part.this
        if isinstance(part, exp.GroupConcat) and part.args.get("separator") is None:
            part = part.copy()
            part.set("separator", exp.Literal.string(","))
        return part

    return node.copy().transform(plain)
