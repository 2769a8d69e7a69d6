"""Finding shard-key values in a WHERE clause.

The analysis is conservative: a condition narrows the shards only when it
certainly restricts the key (equality, IN, OR of those, ranges for `range`
tables); anything it does not understand means "every shard".
"""

from __future__ import annotations

import datetime
import decimal
import re
from dataclasses import dataclass

from sqlglot import exp

from .. import errors
from ..config import TableConfig
from . import sharding
from .keycolumn import KeyColumn, hash_shard_of_weight, weight_key

Shards = tuple[str, ...] | None  # None: not narrowed, every shard of the table


@dataclass(slots=True)
class KeyAnalysis:
    by_alias: dict[str, TableConfig]
    by_name: dict[str, TableConfig]
    params: list[object] | None = None  # values of a template's :pN placeholders
    columns: dict[int, KeyColumn] | None = None  # id(table config) -> its key column

    def column_of(self, table: TableConfig) -> KeyColumn | None:
        """What the shards say the table's key column is; None when the planner did not ask."""
        return None if self.columns is None else self.columns.get(id(table))

    def key_table(self, column: exp.Expression) -> TableConfig | None:
        """The sharded table whose shard key `column` is, if it is one."""
        if not isinstance(column, exp.Column):
            return None
        name = column.name.lower()
        qualifier = column.table.lower()
        if qualifier:
            table = self.by_alias.get(qualifier) or self.by_name.get(qualifier)
            return table if table is not None and (table.shard_key or "").lower() == name else None
        matches = [t for t in self.by_alias.values() if (t.shard_key or "").lower() == name]
        return matches[0] if matches else None


def literal_value(node: exp.Expression, params: list[object] | None = None) -> tuple[bool, object]:
    """(True, value) when `node` is a constant the proxy can evaluate."""
    if isinstance(node, exp.Placeholder):
        name = str(node.this or "")
        if params is not None and name.startswith("p") and name[1:].isdigit():
            index = int(name[1:])
            if index < len(params):
                return True, params[index]
        return False, None
    if isinstance(node, exp.Paren):
        return literal_value(node.this, params)
    if isinstance(node, exp.Null):
        return True, None
    if isinstance(node, exp.Boolean):
        return True, int(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return True, node.this
        text = node.this
        try:
            return True, int(text)
        except ValueError:
            try:
                return True, decimal.Decimal(text)
            except decimal.InvalidOperation:
                return False, None
    if isinstance(node, exp.Neg):
        found, value = literal_value(node.this, params)
        if (found and isinstance(value, (int, float))) or (found and hasattr(value, "as_tuple")):
            return True, -value  # type: ignore[operator]
        return False, None
    # CAST(...) converts as MariaDB does (CAST(7.5 AS SIGNED) is 8, CAST('7abc' AS SIGNED)
    # is 7): not evaluated here, so it never narrows
    return False, None


_INTEGER_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


def ambiguous_for_hashing(value: object) -> bool:
    """A value whose equal values (as MySQL compares them) need not share its canonical text.

    An INT key equals '7.0' and '7e0' as well as 7, and a DECIMAL key equals
    7.5 and 7.50; hash and list place by text, so such a literal cannot name one
    shard. (Strings that merely start with digits, like dates, still narrow.)
    """
    if isinstance(value, float):
        return True
    if isinstance(value, decimal.Decimal):
        return value != value.to_integral_value()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if not isinstance(value, str) or _INTEGER_TEXT.match(value):
        return False
    try:
        number = decimal.Decimal(value.strip())
    except (decimal.InvalidOperation, ValueError):
        return False
    return number.is_finite()


def key_kind(table: TableConfig) -> str | None:
    """ "integer" or "string": what the shard map says the key column holds; None: not known.

    mod keys are integers; range bounds and list values show their kind; hash
    keys have one only when the table declares `key_type`.
    """
    if table.key_type is not None:
        return table.key_type
    if table.algorithm == "mod":
        return "integer"
    if table.algorithm == "range":
        samples: list[object] = [b.below for b in table.ranges if b.below is not None]
    elif table.algorithm == "list":
        samples = [v for values in table.values.values() for v in values]
    else:
        return None
    if samples and all(isinstance(v, (int, decimal.Decimal)) for v in samples):
        return "integer"
    if samples and all(isinstance(v, str) for v in samples):
        return "string"
    return None


def collation_safe(text: str) -> bool:
    """A string the proxy's case-folded text compares as every `_ci`/`_bin` collation does.

    Printable ASCII without trailing spaces (PAD SPACE collations ignore them).
    Even such a value can equal a stored accented or full-width one ('jose' =
    'José'), so it narrows only where every stored value is one the shard map
    lists (list tables); hash placement by the collation's weight needs the
    column's collation, which the proxy does not know yet.
    """
    return all(" " <= c <= "~" for c in text) and not text.endswith(" ")


def _narrows(table: TableConfig, value: object, kind: str | None) -> bool:
    """Whether a literal names the shard of every row the server finds equal to it.

    The server compares a string column with a number as numbers ('11abc' and
    'x' equal 11 and 0) and an integer column with a string by the string's
    numeric prefix; a string column compares strings by its collation ('jose'
    equals 'José' under _ci). So: numbers and digit strings narrow integer keys;
    strings narrow list keys whose listed values they are; nothing else narrows.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if kind == "integer":
        if isinstance(value, str):
            return bool(_INTEGER_TEXT.match(value))
        if isinstance(value, (int, decimal.Decimal)):
            return not ambiguous_for_hashing(value)
        return False
    if kind == "string" and table.algorithm == "list":
        return isinstance(value, str) and collation_safe(value)
    return False


def effective_kind(table: TableConfig, column: KeyColumn | None) -> str | None:
    """The key column's kind: the shards' word when read, else the shard map's."""
    if column is not None and column.known:
        return column.kind
    return key_kind(table)


def _orders_as_server(table: TableConfig, value: object, column: KeyColumn | None) -> bool:
    """A range bound the proxy orders as the server does: numbers against numeric bounds.

    Strings order by the column's collation; range bounds are not compared by it.
    """
    if effective_kind(table, column) != "integer" or isinstance(value, bool):
        return False
    if isinstance(value, (int, decimal.Decimal)):
        return True
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    return isinstance(value, str) and bool(_INTEGER_TEXT.match(value))


def key_shard(table: TableConfig, value: object, column: KeyColumn | None) -> Shards:
    """The planner's own rule for `key = value` (prepared templates route by it too)."""
    return _shard_of(table, value, column)


def _shard_of(table: TableConfig, value: object, column: KeyColumn | None) -> Shards:
    """One shard, or None (all) when the value does not map cleanly: MySQL would coerce it."""
    if column is not None and column.kind == "string" and table.algorithm == "hash":
        # a number compares with a string column as numbers: every shard may hold a match
        if not isinstance(value, (str, bytes)):
            return None
        weight = weight_key(column, value)
        return None if weight is None else (hash_shard_of_weight(table, weight),)
    if not _narrows(table, value, effective_kind(table, column)):
        return None
    if table.algorithm in ("hash", "list") and ambiguous_for_hashing(value):
        return None
    try:
        return (sharding.shard_for(table, value),)
    except errors.ProxyError:
        return None


class PlanDependent(errors.ProxyError):
    """A statement whose answer on MariaDB depends on the plan the server picks: no other
    way of running it (merged shards, one shard over copies) is that server's answer."""


def refuse_plan_dependent_fractions(node: exp.Expression, analysis: KeyAnalysis) -> None:
    """An integer key compared for equality with a fraction is refused across shards.

    MariaDB 10.11 answers `int_col = 1.5` by the plan it picks: an index lookup
    rounds the literal (rows with 2), a table scan compares exactly (no row). Shards
    holding fewer rows pick other plans than one server would, so no merge of their
    answers is that server's answer.
    """
    for comparison in node.find_all(exp.EQ, exp.NullSafeEQ, exp.In):
        if isinstance(comparison, exp.In):
            pairs = [(comparison.this, item) for item in comparison.expressions]
        else:
            pairs = [(comparison.this, comparison.expression),
                     (comparison.expression, comparison.this)]  # fmt: skip
        for column, value in pairs:
            keyed = analysis.key_table(column)
            if keyed is None or effective_kind(keyed, analysis.column_of(keyed)) != "integer":
                continue
            found, literal = literal_value(value, analysis.params)
            if found and isinstance(literal, decimal.Decimal) and ambiguous_for_hashing(literal):
                raise errors.not_supported(
                    f"comparing integer shard key '{keyed.name}.{keyed.shard_key}' with the "
                    f"fraction {literal} over several shards (MariaDB answers it by plan: an "
                    "index lookup rounds the fraction, a scan does not)",
                    "compare with an integer, or with ROUND()/FLOOR() of the value",
                    kind=PlanDependent,
                )


def compared_fraction(node: exp.Expression, params: list[object] | None) -> object | None:
    """A fractional number some column is compared with for equality, if any: MariaDB
    answers `int_col = 1.5` by plan (refuse_plan_dependent_fractions), so the statement
    may not be answered another way than the shards' own."""
    for comparison in node.find_all(exp.EQ, exp.NullSafeEQ, exp.In):
        sides = (
            [comparison.this, *comparison.expressions]
            if isinstance(comparison, exp.In)
            else [comparison.this, comparison.expression]
        )
        if not any(isinstance(side, exp.Column) for side in sides):
            continue
        for side in sides:
            literal = literal_value(side, params)[1]
            if isinstance(literal, float) and not literal.is_integer():
                return literal
            if isinstance(literal, decimal.Decimal) and literal != literal.to_integral_value():
                return literal
    return None


def shards_for_condition(node: exp.Expression, analysis: KeyAnalysis, table: TableConfig) -> Shards:
    """Shards of `table` that can hold rows satisfying `node`; None when not narrowed."""
    if isinstance(node, exp.Paren):
        return shards_for_condition(node.this, analysis, table)
    if isinstance(node, exp.And):
        left = shards_for_condition(node.this, analysis, table)
        right = shards_for_condition(node.expression, analysis, table)
        if left is None:
            return right
        if right is None:
            return left
        return tuple(s for s in left if s in right)
    if isinstance(node, exp.Or):
        left = shards_for_condition(node.this, analysis, table)
        right = shards_for_condition(node.expression, analysis, table)
        if left is None or right is None:
            return None
        return sharding.union((left, right), table.shards)
    if isinstance(node, (exp.EQ, exp.NullSafeEQ)):
        for column, value in ((node.this, node.expression), (node.expression, node.this)):
            keyed = analysis.key_table(column)
            if keyed is not None:
                found, literal = literal_value(value, analysis.params)
                if found:
                    if literal is None:
                        # key = NULL is never true; key <=> NULL holds for the rows an
                        # outer join NULL-extends, which every shard can return
                        return None if isinstance(node, exp.NullSafeEQ) else ()
                    return _shard_of(keyed, literal, analysis.column_of(keyed))
        return None
    if isinstance(node, exp.In):
        keyed = analysis.key_table(node.this)
        if keyed is None or node.args.get("query") is not None:
            return None
        shards = []
        for item in node.expressions:
            found, literal = literal_value(item, analysis.params)
            if not found:
                return None
            if literal is not None:
                one = _shard_of(keyed, literal, analysis.column_of(keyed))
                if one is None:
                    return None
                shards.append(one)
        return sharding.union(shards, keyed.shards)
    if isinstance(node, exp.Between):
        keyed = analysis.key_table(node.this)
        if keyed is None or keyed.algorithm != "range":
            return None
        low_found, low = literal_value(node.args["low"], analysis.params)
        high_found, high = literal_value(node.args["high"], analysis.params)
        if not (low_found and high_found):
            return None
        column = analysis.column_of(keyed)
        if not (_orders_as_server(keyed, low, column) and _orders_as_server(keyed, high, column)):
            return None
        return sharding.shards_for_range(keyed, low, True, high, True)
    if isinstance(node, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        for column, value, flipped in (
            (node.this, node.expression, False),
            (node.expression, node.this, True),
        ):
            keyed = analysis.key_table(column)
            if keyed is None or keyed.algorithm != "range":
                continue
            found, literal = literal_value(value, analysis.params)
            if not found or not _orders_as_server(keyed, literal, analysis.column_of(keyed)):
                return None
            lower = isinstance(node, (exp.GT, exp.GTE)) != flipped
            inclusive = isinstance(node, (exp.GTE, exp.LTE))
            if lower:
                return sharding.shards_for_range(keyed, literal, inclusive, None, True)
            return sharding.shards_for_range(keyed, None, True, literal, inclusive)
        return None
    return None


def literal_sql(value: object) -> str:
    """A bound value as MySQL text, exactly as it reads once bound into a tree."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _literal_node(value).sql(dialect="mysql")


def _literal_node(value: object) -> exp.Expression:
    """An SQL literal node for a bound value (prepared-statement parameters included)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Literal.number(int(value))
    if isinstance(value, (int, float, decimal.Decimal)):
        return exp.Literal.number(str(value))
    if isinstance(value, bytes):
        return exp.Literal.string(value.decode("utf-8", "surrogateescape"))
    if isinstance(value, datetime.timedelta):
        total = int(value.total_seconds())
        sign = "-" if total < 0 else ""
        total = abs(total)
        return exp.Literal.string(
            f"{sign}{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
        )
    if isinstance(value, (datetime.date, datetime.datetime)):
        return exp.Literal.string(
            value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
        )
    return exp.Literal.string(str(value))


def bind_placeholders(ast: exp.Expression, params: list[object] | None) -> exp.Expression:
    """A copy of a template's tree with its :pN placeholders replaced by their literals."""
    if not params:
        return ast

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            found, value = literal_value(node, params)
            if found:
                return _literal_node(value)
        return node

    return ast.transform(bind)
