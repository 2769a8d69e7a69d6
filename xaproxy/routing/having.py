"""HAVING of a fan-out SELECT as a Python predicate over merged rows (decoded keys).

SQL's three-valued logic is kept: a comparison with NULL is unknown (None),
NOT unknown is unknown, and only a true condition keeps the group. A string
literal compared with a column is passed through that column's key decoder
(when the merge offers `row.decode_as`), so it compares by the collation.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from .. import errors
from .keys import literal_value

Row = list[object]
Predicate = Callable[[Row], bool | None]
# a value's getter, the column it reads (None for a literal), the literal (or _NO_LITERAL)
Value = tuple[Callable[[Row], object], int | None, object]
# resolves a column or an aggregate of the HAVING clause to its result position
Locate = Callable[[exp.Expression], int]

_NO_LITERAL = object()

_COMPARISONS: dict[type, Callable[[object, object], bool]] = {
    exp.EQ: lambda x, y: x == y,
    exp.NEQ: lambda x, y: x != y,
    exp.GT: lambda x, y: x > y,
    exp.GTE: lambda x, y: x >= y,
    exp.LT: lambda x, y: x < y,
    exp.LTE: lambda x, y: x <= y,
}


def compile_having(node: exp.Expression, locate: Locate) -> Callable[[Row], bool]:
    """The predicate keeping a merged row when `node` is true for it."""
    condition = _compile_bool(node, locate)
    return lambda row: condition(row) is True


def _compile_value(n: exp.Expression, locate: Locate) -> Value:
    if isinstance(n, exp.Paren):
        return _compile_value(n.this, locate)
    found, value = literal_value(n)
    if found:
        return (lambda row, v=value: v), None, value
    if isinstance(n, (exp.Column, exp.AggFunc)):
        position = locate(n)
        return (lambda row, p=position: row[p]), position, _NO_LITERAL
    raise errors.not_supported("this HAVING clause over several shards")


def _compile_bool(n: exp.Expression, locate: Locate) -> Predicate:
    if isinstance(n, exp.Paren):
        return _compile_bool(n.this, locate)
    if isinstance(n, exp.And):
        return _both(_compile_bool(n.this, locate), _compile_bool(n.expression, locate))
    if isinstance(n, exp.Or):
        return _either(_compile_bool(n.this, locate), _compile_bool(n.expression, locate))
    if isinstance(n, exp.Not):
        inner = _compile_bool(n.this, locate)
        return lambda row: None if (x := inner(row)) is None else not x
    if isinstance(n, exp.Is) and isinstance(n.expression, exp.Null):
        value = _compile_value(n.this, locate)[0]
        return lambda row: value(row) is None
    compare = _COMPARISONS.get(type(n))
    if compare is not None:
        return _comparison(
            _compile_value(n.this, locate), _compile_value(n.expression, locate), compare
        )
    raise errors.not_supported("this HAVING clause over several shards")


def _both(a: Predicate, b: Predicate) -> Predicate:
    def both(row: Row) -> bool | None:
        x = a(row)
        if x is False:
            return False
        y = b(row)
        if y is False:
            return False
        return None if x is None or y is None else True

    return both


def _either(a: Predicate, b: Predicate) -> Predicate:
    def either(row: Row) -> bool | None:
        x = a(row)
        if x is True:
            return True
        y = b(row)
        if y is True:
            return True
        return None if x is None or y is None else False

    return either


def _comparison(left: Value, right: Value, compare: Callable[[object, object], bool]) -> Predicate:
    left_fn, left_col, left_lit = left
    right_fn, right_col, right_lit = right

    def check(row: Row) -> bool | None:
        x, y = left_fn(row), right_fn(row)
        if x is None or y is None:
            return None
        if isinstance(x, str) and isinstance(y, str):
            if left_col is not None and isinstance(right_lit, str):
                y = _literal_key(row, left_col, right_lit)
            elif right_col is not None and isinstance(left_lit, str):
                x = _literal_key(row, right_col, left_lit)
        x, y = _coerce(x, y)
        try:
            return bool(compare(x, y))
        except TypeError:
            return False

    return check


def _literal_key(row: Row, column: int, literal: str) -> object:
    decode_as = getattr(row, "decode_as", None)
    if decode_as is None:
        return literal
    try:
        return decode_as(column, literal)
    except (ValueError, ArithmeticError, UnicodeError):
        return literal


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
