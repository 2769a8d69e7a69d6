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
        number = _leading_integer(value)
    else:
        raise _refused()
    if number < 0 or number > MAX_UNSIGNED_BIGINT:
        return MAX_UNSIGNED_BIGINT
    return number


def _leading_integer(value: bytes | bytearray | memoryview | str) -> int:
    """A string's leading integer as MariaDB reads it for a LIMIT (`' 3abc'` is 3)."""
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    match = _LEADING_INTEGER.match(raw)
    assert match is not None  # the pattern matches the empty prefix
    sign, digits = match.groups()
    number = int(digits or b"0")
    return -number if sign == b"-" else number


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


_MAX_SIGNED_BIGINT = 2**63 - 1


def _incorrect_arguments() -> errors.ProxyError:
    return errors.ProxyError(1210, "HY000", "Incorrect arguments to EXECUTE")


def using_limit_count(value: object) -> int:
    """The row count or offset MariaDB makes of a user variable (or a literal) given to
    `EXECUTE ... USING` for a LIMIT marker. Its rules are not COM_STMT_EXECUTE's
    (measured on MariaDB 10.11, compared in tests/integration/test_result_fidelity.py):
    a negative value is an error (1210) instead of no limit; a DOUBLE is truncated
    toward zero and one of 2^63 or more is an error; a string's leading integer of 2^63
    or more is an error; an unsigned integer is taken as it is. A DECIMAL past the
    signed range (MariaDB warns, 1916) is refused."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 2.0**63:
            raise _incorrect_arguments()
        number = math.trunc(value)
    elif isinstance(value, Decimal):
        number = int(value.to_integral_value(rounding=ROUND_HALF_UP))
        if number > _MAX_SIGNED_BIGINT:
            raise errors.not_supported(
                "a DECIMAL LIMIT value past 2^63 - 1 in EXECUTE ... USING over several shards",
                "pass the row count as an integer",
            )
    elif isinstance(value, bytes | str):
        number = _leading_integer(value)
        if number > _MAX_SIGNED_BIGINT:
            raise _incorrect_arguments()
    else:
        raise _refused()
    if number < 0:
        raise _incorrect_arguments()
    return number
