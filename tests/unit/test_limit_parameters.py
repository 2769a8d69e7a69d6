"""Which `?` markers are a LIMIT's operands, and the integer MariaDB makes of a binding
(the values were measured on MariaDB 10.11 with COM_STMT_EXECUTE; the integration test
tests/integration/test_native_prepared.py compares them with a server)."""

from decimal import Decimal

import pytest

from xaproxy import errors
from xaproxy.analysis.spans import limit_placeholders
from xaproxy.protocol.constants import FieldType
from xaproxy.session.limit_values import limit_count, using_limit_count, with_limit_counts

HUGE = 2**64 - 1


@pytest.mark.parametrize(
    ("sql", "positions"),
    [
        ("SELECT * FROM t WHERE a = ? LIMIT ?", {1}),
        ("SELECT ? FROM t LIMIT ?, ?", {1, 2}),
        ("SELECT * FROM t LIMIT 1, ?", {0}),
        ("SELECT * FROM t LIMIT ? OFFSET ?", {0, 1}),
        ("SELECT * FROM t LIMIT 2 OFFSET ?", {0}),
        ("SELECT * FROM (SELECT * FROM t LIMIT ?) x WHERE y = ?", {0}),
        ("SELECT * FROM t WHERE a IN (?, ?) LIMIT 3", set()),
        ("SELECT 'LIMIT ?', ? FROM t", set()),
        ("SELECT ?, ? LIMIT 1", set()),
    ],
)
def test_limit_markers_are_found_by_their_place_in_the_statement(sql, positions):
    assert limit_placeholders(sql) == frozenset(positions)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (3, 3), (-1, HUGE), (None, 0), (2.5, 2), (3.5, 4), (2.9, 3), (-0.5, 0), (-1.0, HUGE),
        (1e30, HUGE), (Decimal("2.5"), 3), (Decimal("-0.4"), 0), (Decimal("-0.5"), HUGE),
        (b"2.9", 2), (b" 3abc", 3), (b"x", 0), (b"", 0), (b"-0", 0), (b"-1", HUGE),
        (b"99999999999999999999", HUGE),
    ],
)  # fmt: skip
def test_a_bound_limit_value_becomes_the_count_mariadb_uses(value, count):
    assert limit_count(value) == count


def test_a_decimal_parameter_sent_as_text_rounds_as_a_decimal():
    types = [(int(FieldType.NEWDECIMAL), False), (int(FieldType.VAR_STRING), False)]
    assert with_limit_counts([b"2.5", b"2.5"], frozenset({0, 1}), types) == [3, 2]


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (3, 3), (2**64 - 3, 2**64 - 3), (None, 0), (2.5, 2), (2.9, 2), (-0.9, 0),
        (Decimal("2.5"), 3), (Decimal("-0.4"), 0), ("2.9", 2), (" 4abc", 4), ("- 5", 0),
        ("-0", 0), (b"3", 3), ("x", 0),
    ],
)  # fmt: skip
def test_a_user_variable_for_a_limit_marker_becomes_the_count_execute_uses(value, count):
    assert using_limit_count(value) == count


@pytest.mark.parametrize(
    "value", [-1, -1.0, 9.3e18, Decimal("-0.5"), "-1", "-2.9", "9223372036854775808"]
)
def test_a_user_variable_execute_cannot_take_as_a_count_is_its_1210(value):
    with pytest.raises(errors.ProxyError) as refused:
        using_limit_count(value)
    assert refused.value.code == 1210
