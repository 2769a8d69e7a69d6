"""Bound values of `LIMIT ?` in COM_STMT_EXECUTE, made into row counts as MariaDB does.

MariaDB accepts any parameter type for a LIMIT marker and reads it as an unsigned
64-bit integer (measured on MariaDB 10.11, and compared with it in
tests/integration/test_native_prepared.py): an integer as it is, a negative one
wrapped to a huge count; a DOUBLE rounded half to even; a DECIMAL rounded half away
from zero; a string by its leading integer (`' 3abc'` is 3, `'2.9'` is 2, `'x'` is
0); NULL as 0. A negative or out-of-range result is a count of 2^64 - 1 or near it;
no result has that many rows, so the proxy uses 2^64 - 1 for all of them. The proxy
needs the integer itself when the statement spans several shards (the merge applies
the LIMIT); a value of another type is refused.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .. import errors
from ..protocol.constants import MAX_UNSIGNED_BIGINT, FieldType

_LEADING_INTEGER = re.compile(rb"[ \t\n\r\v\f]*([+-]?)([0-9]*)")


def limit_count(value: object) -> int:
    """The row count or offset MariaDB makes of one bound LIMIT parameter."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = round(value) if math.isfinite(value) else MAX_UNSIGNED_BIGINT
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise _refused()
        number = int(value.to_integral_value(rounding=ROUND_HALF_UP))
    elif isinstance(value, bytes | bytearray | memoryview | str):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        match = _LEADING_INTEGER.match(raw)
        assert match is not None  # the pattern matches the empty prefix
        sign, digits = match.groups()
        number = int(digits or b"0")
        if sign == b"-":
            number = -number
    else:
        raise _refused()
    if number < 0 or number > MAX_UNSIGNED_BIGINT:
        return MAX_UNSIGNED_BIGINT
    return number


def _refused() -> errors.ProxyError:
    return errors.not_supported(
        "this LIMIT parameter value in a SELECT that spans several shards",
        "bind the row count as an integer",
    )


_DECIMAL_TYPES = frozenset({int(FieldType.DECIMAL), int(FieldType.NEWDECIMAL)})


def _as_decimal(value: object) -> object:
    """A DECIMAL parameter arrives as its text: MariaDB reads it as a decimal number."""
    if not isinstance(value, bytes | str):
        return value
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise _refused() from None


def with_limit_counts(
    values: list[object], positions: frozenset[int], types: list[tuple[int, bool]] | None
) -> list[object]:
    """`values` with the LIMIT parameters at `positions` replaced by their integers
    (`types`: each parameter's (field type, unsigned) as the client bound it)."""
    if not positions:
        return values
    converted = list(values)
    for i in positions:
        value = values[i]
        if types is not None and types[i][0] in _DECIMAL_TYPES:
            value = _as_decimal(value)
        converted[i] = limit_count(value)
    return converted
