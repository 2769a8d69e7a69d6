"""Unit tests of the fan-out merge engine (xaproxy.execution.merge) and its sort keys.

Pure: no server. Expected outputs written as literals were observed on
MariaDB 10.11 (number formats, collation order, NULL order, GROUP BY order).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xaproxy import errors
from xaproxy.execution.merge import (
    MergeBudget,
    decimal_average,
    decimal_text,
    double_text,
    merge,
)
from xaproxy.execution.sortkeys import (
    join_row,
    make_key_decoder,
    null_low,
    order_key,
    split_row,
)
from xaproxy.protocol import wire
from xaproxy.protocol.constants import ColumnFlag, FieldType
from xaproxy.protocol.wire import column_decimals
from xaproxy.routing.merge_spec import Aggregate, MergeSpec, SortKey

BIN = ColumnFlag.BINARY

# --- column definitions as MariaDB sends them -------------------------------------------------


def coldef(
    ftype: int, charset: int = 63, flags: int = BIN, decimals: int = 0, name: str = "c"
) -> bytes:
    return wire.ColumnDef(
        name, type=ftype, charset=charset, flags=flags, decimals=decimals
    ).encode()


INT = coldef(FieldType.LONG)
UINT = coldef(FieldType.LONGLONG, flags=BIN | ColumnFlag.UNSIGNED)
BIGINT = coldef(FieldType.LONGLONG)
COUNT = coldef(FieldType.LONGLONG, flags=BIN | ColumnFlag.NOT_NULL)
DEC2 = coldef(FieldType.NEWDECIMAL, decimals=2)
SUM_INT = coldef(FieldType.NEWDECIMAL, flags=0, decimals=0)  # SUM(int_col)
SUM_DEC2 = coldef(FieldType.NEWDECIMAL, flags=0, decimals=2)  # SUM(decimal(10,2))
AVG_INT = coldef(FieldType.NEWDECIMAL, decimals=4)  # AVG(int_col)
AVG_DEC2 = coldef(FieldType.NEWDECIMAL, decimals=6)  # AVG(decimal(10,2))
DOUBLE = coldef(FieldType.DOUBLE, decimals=31)  # DOUBLE, SUM(double), AVG(double)
DOUBLE_2 = coldef(FieldType.DOUBLE, decimals=2)  # SUM(double(10,2))
DOUBLE_6 = coldef(FieldType.DOUBLE, decimals=6)  # AVG(double(10,2))
FLOAT = coldef(FieldType.FLOAT, decimals=31)
CI = coldef(FieldType.VAR_STRING, charset=45, flags=0)  # varchar utf8mb4_general_ci
BIN_STR = coldef(FieldType.VAR_STRING, charset=45, flags=BIN)  # utf8mb4_bin arrives like this
BIN_ID = coldef(FieldType.VAR_STRING, charset=46, flags=0)  # ... or with its own id
VARBINARY = coldef(FieldType.VAR_STRING, charset=63, flags=BIN)
DATETIME = coldef(FieldType.DATETIME)
DATE = coldef(FieldType.DATE)
TIME = coldef(FieldType.TIME)
YEAR = coldef(FieldType.YEAR, flags=BIN | ColumnFlag.UNSIGNED)


# --- running merges ---------------------------------------------------------------------------


class Shard:
    """An async row stream that counts how many rows the merge pulled from it."""

    def __init__(self, rows: Iterable[list[object]]) -> None:
        self._rows = iter(rows)
        self.pulled = 0

    def __aiter__(self) -> Shard:
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0)
        try:
            row = next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None
        self.pulled += 1
        return wire.text_row(row)


def run(
    spec: MergeSpec, coldefs: list[bytes], shards: list[list[list[object]]] | list[Shard]
) -> list[list[str | None]]:
    """The merged rows, decoded as text (None for NULL)."""
    streams = [s if isinstance(s, Shard) else Shard(s) for s in shards]

    async def collect() -> list[bytes]:
        return [payload async for payload in merge(spec, coldefs, streams)]

    payloads = asyncio.run(collect())
    return [
        [None if v is None else v.decode() for v in split_row(p, _visible(spec, coldefs))]
        for p in payloads
    ]


def _visible(spec: MergeSpec, coldefs: list[bytes]) -> int:
    return spec.visible if spec.visible is not None else len(coldefs) - spec.hidden


def column(rows: list[list[str | None]], index: int = 0) -> list[str | None]:
    return [r[index] for r in rows]


# --- raw rows ---------------------------------------------------------------------------------


def test_split_and_join_rows_round_trip() -> None:
    values = [b"1", None, b"", b"x" * 300, "é".encode()]
    payload = join_row(values)
    assert payload == wire.text_row([1, None, b"", b"x" * 300, "é"])
    assert split_row(payload, 5) == values


# --- sort keys --------------------------------------------------------------------------------


def decode(cd: bytes, *values: str | bytes | None) -> list[object]:
    key = make_key_decoder(cd)
    return [key(v.encode() if isinstance(v, str) else v) for v in values]


def test_numeric_keys() -> None:
    assert decode(INT, "-5", "12", None) == [-5, 12, None]
    assert decode(UINT, "18446744073709551615") == [2**64 - 1]
    assert decode(DEC2, "1.50", "-0.00") == [Decimal("1.5"), Decimal(0)]
    assert decode(DOUBLE, "1e15", "-0", "0.1") == [1e15, 0.0, 0.1]
    assert decode(FLOAT, "1.5") == [1.5]
    assert decode(YEAR, "2155") == [2155]
    assert decode(coldef(FieldType.LONG, flags=BIN | ColumnFlag.ZEROFILL), "0007") == [7]


def test_temporal_keys() -> None:
    assert decode(DATETIME, "2020-01-02 03:04:05") == ["2020-01-02 03:04:05"]
    assert decode(DATE, "0000-00-00", "2021-12-31") == ["0000-00-00", "2021-12-31"]
    times = decode(TIME, "-01:00:00", "00:00:01.5", "838:59:59", "-838:59:59.000001", "00:00:00")
    assert times == [-3_600_000_000, 1_500_000, 3_020_399_000_000, -3_020_399_000_001, 0]
    assert sorted(times) == [times[3], times[0], times[4], times[1], times[2]]


def test_binary_strings_compare_bytes_without_padding() -> None:
    a, upper_a, a_space, empty = decode(VARBINARY, b"a", b"A", b"a ", b"")
    assert a == b"a" and upper_a < a < a_space and empty < a
    assert decode(coldef(FieldType.BLOB, charset=63), b"\x00\xff") == [b"\x00\xff"]


def test_general_ci_is_case_and_accent_insensitive_with_pad_space() -> None:
    key = make_key_decoder(CI)
    assert key(b"abc") == key(b"ABC") == key("Ábç".encode()) == key(b"abc   ")
    assert key("ß".encode()) == key(b"s")
    assert key("😀".encode()) == key("😁".encode()) == key("\ufffd".encode())
    assert key(b"a") < key(b"a b") < key(b"a!") < key(b"ab")
    assert key(b"a\t") < key(b"a")  # a tab sorts below the space padding
    assert key(b"a \t") < key(b"a") < key(b"a  b") < key(b"a b")
    assert key(b"") == key(b"   ")
    assert key(None) is None


def test_bin_collations_compare_code_points_with_pad_space() -> None:
    for cd in (BIN_STR, BIN_ID):
        key = make_key_decoder(cd)
        assert key(b"A") < key(b"B") < key(b"a")
        assert key(b"a") == key(b"a  ") != key(b"A")
        assert key(b"a\t") < key(b"a")


# Words and their DENSE_RANK() OVER (ORDER BY w) on MariaDB 10.11, for a utf8mb4_general_ci
# column and a utf8mb4_bin column: the keys must reproduce every tie and every inequality.
WORDS = [
    "a", "A", "b", "B", "á", "Ä", "ab", "aB", "a ", "a\t", "a\tb", "a b", "a  b", "a!", "z",
    "é", "E", "ß", "s", "SS", "ss", "\U0001f600", "\U0001f601", "\ufffd", "\uffff", "", " ",
    "Ω", "ω", "ǅ", "ǆ", "a\n", "İ", "\u0131", "i", "I", "ﬁ", "Ⅻ", "ⅻ", "\uff5a", "\uff3a",
    "æ", "Æ", "ø", "o", "ά", "Ά", "\u03b1", "ё", "\u0435", "й", "и",
    "\x00", "a\x00", "Å", "å", "ÿ", "Ÿ", "y",
]  # fmt: skip
GENERAL_CI_RANKS = [
    7, 7, 12, 12, 7, 7, 11, 11, 7, 4, 5, 9, 8, 10, 19, 13, 13, 16, 16, 17, 17, 31, 31, 31, 32,
    2, 2, 24, 24, 22, 22, 6, 14, 14, 14, 14, 29, 28, 28, 30, 30, 20, 20, 21, 15, 23, 23, 23,
    25, 25, 27, 26, 1, 3, 7, 7, 18, 18, 18,
]  # fmt: skip
BIN_RANKS = [
    12, 3, 18, 4, 29, 25, 17, 16, 12, 9, 10, 14, 13, 15, 24, 32, 5, 28, 21, 7, 22, 56, 57, 54,
    55, 2, 2, 41, 44, 38, 39, 11, 35, 36, 19, 6, 51, 49, 50, 53, 52, 31, 27, 33, 20, 42, 40,
    43, 48, 45, 47, 46, 1, 8, 26, 30, 34, 37, 23,
]  # fmt: skip


@pytest.mark.parametrize(
    ("cd", "ranks"), [(CI, GENERAL_CI_RANKS), (BIN_STR, BIN_RANKS), (BIN_ID, BIN_RANKS)]
)
def test_string_keys_order_exactly_as_mariadb(cd: bytes, ranks: list[int]) -> None:
    keys = decode(cd, *WORDS)
    for (k1, r1), (k2, r2) in itertools.product(zip(keys, ranks, strict=True), repeat=2):
        assert (k1 < k2) == (r1 < r2) and (k1 == k2) == (r1 == r2)


def test_latin1_text_is_decoded_with_its_charset() -> None:
    latin1 = coldef(FieldType.VAR_STRING, charset=8, flags=0)
    assert decode(latin1, "é".encode("cp1252")) == decode(CI, "E")


def test_null_order_helpers() -> None:
    values = [3, None, 1]
    assert sorted(values, key=lambda v: order_key(v, False)) == [None, 1, 3]
    assert sorted(values, key=lambda v: order_key(v, True)) == [3, 1, None]
    assert null_low(None) < null_low(-(10**30))


# --- MySQL number formats ---------------------------------------------------------------------

# (double, what MariaDB prints for SUM/AVG of it), observed on 10.11
DOUBLE_TEXTS = [
    (0.0, "0"),
    (1.0, "1"),
    (-1.0, "-1"),
    (0.1, "0.1"),
    (0.1 + 0.2, "0.30000000000000004"),
    ((0.1 + 0.2) / 2, "0.15000000000000002"),
    (1 / 3, "0.3333333333333333"),
    (1e14, "100000000000000"),
    (99999999999999.9, "99999999999999.9"),
    (1e15, "1e15"),
    (1.5e16, "1.5e16"),
    (-9.99e15, "-9.99e15"),
    (9999999999999998.0, "9.999999999999998e15"),
    (1234567890123456.8, "1234567890123456.8"),
    (12345678901234567.0, "1.2345678901234568e16"),
    (2.0**53, "9.007199254740992e15"),
    (123456.789, "123456.789"),
    (1e-5, "0.00001"),
    (1e-7, "0.0000001"),
    (1.2345678901234567e-14, "0.000000000000012345678901234567"),
    (1e-15, "0.000000000000001"),
    (1.5e-15, "0.0000000000000015"),
    (1e-16, "1e-16"),
    (1.5e-100, "1.5e-100"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e308"),
    (3.6000000834465027, "3.6000000834465027"),
    (-3.0589983033553536e-29, "-3.0589983033553536e-29"),
]


@pytest.mark.parametrize(("value", "text"), DOUBLE_TEXTS)
def test_double_text_matches_mariadb(value: float, text: str) -> None:
    assert double_text(value) == text
    assert float(text) == value


def test_double_text_with_fixed_decimals() -> None:
    assert double_text(0.125, 7) == "0.1250000"
    assert double_text(2.51, 2) == "2.51"
    assert double_text(-3.33e-7, 6) == "-0.000000"  # a DOUBLE keeps the sign, as the server


def test_decimal_text_and_average() -> None:
    assert decimal_text(Decimal("7.5"), 2) == "7.50"
    assert decimal_text(Decimal("-0.0000001"), 6) == "0.000000"  # DECIMAL never prints -0
    assert decimal_text(Decimal("12345678901234567890123456789012345.5"), 0) == (
        "12345678901234567890123456789012346"
    )
    assert decimal_average(Decimal(1), 32, 4) == Decimal("0.0313")  # half away from zero
    assert decimal_average(Decimal(-1), 32, 4) == Decimal("-0.0313")
    assert decimal_average(Decimal(1), 20000, 4) == Decimal("0.0001")
    assert decimal_average(Decimal("0.003333"), 32, 10) == Decimal("0.0001041563")
    assert decimal_average(Decimal(5), 3, 4) == Decimal("1.6667")


def test_column_decimals() -> None:
    assert column_decimals(AVG_INT) == 4
    assert column_decimals(DOUBLE) == 31


# --- ORDER BY: streaming merge ----------------------------------------------------------------


def test_order_by_int_ascending_puts_nulls_first() -> None:
    shards = [[[None], [1], [5]], [[None], [2], [4]], [[3]]]
    rows = run(MergeSpec(1, (SortKey(0, False),)), [INT], shards)
    assert column(rows) == [None, None, "1", "2", "3", "4", "5"]


def test_order_by_descending_puts_nulls_last() -> None:
    shards = [[[5], [1], [None]], [[4], [2]], [[None]]]
    rows = run(MergeSpec(1, (SortKey(0, True),)), [INT], shards)
    assert column(rows) == ["5", "4", "2", "1", None, None]


def test_order_by_decimal_and_double_compare_numerically() -> None:
    rows = run(MergeSpec(1, (SortKey(0, False),)), [DEC2], [[["-10.00"], ["9.50"]], [["2.00"]]])
    assert column(rows) == ["-10.00", "2.00", "9.50"]
    rows = run(MergeSpec(1, (SortKey(0, False),)), [DOUBLE], [[["1e-5"], ["1e15"]], [["2.5"]]])
    assert column(rows) == ["1e-5", "2.5", "1e15"]


def test_order_by_several_keys_mixed_directions() -> None:
    spec = MergeSpec(3, (SortKey(0, False), SortKey(1, True), SortKey(2, False)))
    shards = [
        [["a", 3, "x"], ["a", 1, "z"], ["b", None, "a"]],
        [[None, 9, "q"], ["A", 3, "w"], ["b", 2, "b"]],
    ]
    rows = run(spec, [CI, INT, CI], shards)
    assert rows == [
        [None, "9", "q"],
        ["A", "3", "w"],
        ["a", "3", "x"],
        ["a", "1", "z"],
        ["b", "2", "b"],
        ["b", None, "a"],
    ]


def test_case_insensitive_ties_stay_together_and_lower_shard_wins() -> None:
    shards = [[["a"], ["B"]], [["A"], ["b"]], [["á"], ["c"]]]
    rows = run(MergeSpec(1, (SortKey(0, False),)), [CI], shards)
    assert column(rows) == ["a", "A", "á", "B", "b", "c"]
    rows = run(MergeSpec(1, (SortKey(0, False),)), [BIN_STR], [[["A"], ["a"]], [["B"], ["b"]]])
    assert column(rows) == ["A", "B", "a", "b"]


def test_order_by_temporal_columns() -> None:
    spec = MergeSpec(2, (SortKey(0, False), SortKey(1, True)))
    shards = [
        [["-01:00:00", "2020-01-01"], ["10:00:00", "2021-01-01"]],
        [[None, None], ["-01:00:00", "2022-01-01"], ["100:00:00", None]],
    ]
    rows = run(spec, [TIME, DATE], shards)
    assert rows == [
        [None, None],
        ["-01:00:00", "2022-01-01"],
        ["-01:00:00", "2020-01-01"],
        ["10:00:00", "2021-01-01"],
        ["100:00:00", None],
    ]


def test_order_by_hidden_column_is_not_sent() -> None:
    spec = MergeSpec(1, (SortKey(1, True),))
    rows = run(spec, [CI, INT], [[["x", 3], ["y", 1]], [["z", 2]]])
    assert rows == [["x"], ["z"], ["y"]]


def test_positions_counted_from_the_row_end_fit_any_star_width() -> None:
    # SELECT * ... ORDER BY b: the planner cannot know the star's width, so the hidden
    # sort key is the last column (-1) and everything but the last column is shown
    spec = MergeSpec(order_by=(SortKey(-1, True),), hidden=1)
    rows = run(spec, [CI, INT, INT], [[["x", 1, 3], ["y", 2, 1]], [["z", 3, 2]]])
    assert rows == [["x", "1"], ["z", "3"], ["y", "2"]]
    rows = run(spec, [INT, INT], [[[1, 3], [2, 1]], [[3, 2]]])
    assert rows == [["1"], ["3"], ["2"]]


def test_order_by_limit_offset_across_shards() -> None:
    spec = MergeSpec(1, (SortKey(0, False),), limit=3, offset=2)
    shards = [[[1], [4], [7]], [[2], [5], [8]], [[3], [6], [9]]]
    assert column(run(spec, [INT], shards)) == ["3", "4", "5"]


def test_order_by_stops_reading_after_limit() -> None:
    def endless(start: int, step: int) -> Shard:
        return Shard([n] for n in itertools.count(start, step))

    shards = [endless(0, 3), endless(1, 3), endless(2, 3)]
    rows = run(MergeSpec(1, (SortKey(0, False),), limit=5, offset=2), [INT], shards)
    assert column(rows) == ["2", "3", "4", "5", "6"]
    # one row of look-ahead per shard at most: never the whole (endless) streams
    assert sum(s.pulled for s in shards) <= 7 + len(shards)


def test_order_by_with_empty_shards_and_one_shard() -> None:
    spec = MergeSpec(1, (SortKey(0, False),))
    assert column(run(spec, [INT], [[], [[2], [3]], []])) == ["2", "3"]
    assert column(run(spec, [INT], [[[1], [2]]])) == ["1", "2"]
    assert run(spec, [INT], [[], []]) == []
    assert run(spec, [INT], []) == []


# --- no ORDER BY: concatenation ---------------------------------------------------------------


def test_concatenation_in_shard_order_with_offset_and_limit() -> None:
    shards = [[[1], [2]], [], [[3], [4], [5]], [[6]]]
    assert column(run(MergeSpec(1), [INT], shards)) == ["1", "2", "3", "4", "5", "6"]
    spec = MergeSpec(1, limit=3, offset=1)
    assert column(run(spec, [INT], shards)) == ["2", "3", "4"]
    assert column(run(MergeSpec(1, offset=5), [INT], shards)) == ["6"]
    assert run(MergeSpec(1, offset=9), [INT], shards) == []


def test_concatenation_stops_reading_after_limit() -> None:
    first, second = Shard([[1], [2]]), Shard([n] for n in itertools.count(3))
    rows = run(MergeSpec(1, limit=3), [INT], [first, second])
    assert column(rows) == ["1", "2", "3"] and second.pulled == 1


def test_limit_zero_reads_nothing() -> None:
    shard = Shard([[1]])
    assert run(MergeSpec(1, (SortKey(0, False),), limit=0), [INT], [shard]) == []
    assert shard.pulled == 0


def test_concatenation_passes_payloads_unchanged_and_drops_hidden_columns() -> None:
    assert run(MergeSpec(2), [INT, CI], [[[1, None]], [[2, "b"]]]) == [["1", None], ["2", "b"]]
    assert run(MergeSpec(1), [INT, CI], [[[1, "a"]], [[2, "b"]]]) == [["1"], ["2"]]


# --- DISTINCT without grouping ----------------------------------------------------------------


def test_distinct_keeps_first_occurrence_by_collation() -> None:
    shards = [[["a", 1], ["b", 1]], [["A  ", 1], ["c", 2], ["b", 2]]]
    rows = run(MergeSpec(2, distinct=True), [CI, INT], shards)
    assert rows == [["a", "1"], ["b", "1"], ["c", "2"], ["b", "2"]]


def test_distinct_ignores_hidden_columns() -> None:
    rows = run(MergeSpec(1, distinct=True), [INT, INT], [[[1, 1], [1, 2]], [[2, 3], [1, 4]]])
    assert column(rows) == ["1", "2"]


def test_distinct_with_order_by_not_covering_every_column() -> None:
    # ordered by the first column only, duplicates of the pair are not adjacent
    spec = MergeSpec(2, (SortKey(0, False),), distinct=True, limit=3)
    shards = [[[1, "x"], [1, "y"], [2, "x"]], [[1, "X"], [2, "z"]]]
    rows = run(spec, [INT, CI], shards)
    assert rows == [["1", "x"], ["1", "y"], ["2", "x"]]


def test_having_without_grouping_filters_rows() -> None:
    spec = MergeSpec(1, (SortKey(0, False),), having=lambda r: r[1] > 1)
    rows = run(spec, [INT, INT], [[[1, 5], [3, 0]], [[2, 2]]])
    assert column(rows) == ["1", "2"]


# --- GROUP BY and aggregates ------------------------------------------------------------------


def test_group_by_combines_every_aggregate() -> None:
    # SELECT g, COUNT(*), SUM(i), MIN(s), MAX(s), AVG(i), SUM(d), MIN(i), plain
    #   shards add SUM(i), COUNT(i) for the AVG at columns 9, 10
    coldefs = [INT, COUNT, SUM_INT, CI, CI, AVG_INT, SUM_DEC2, INT, CI, SUM_INT, COUNT]
    spec = MergeSpec(
        9,
        group_by=(0,),
        aggregates=(
            Aggregate("COUNT", 1),
            Aggregate("SUM", 2),
            Aggregate("MIN", 3),
            Aggregate("MAX", 4),
            Aggregate("AVG", 5, sum_column=9, count_column=10),
            Aggregate("SUM", 6),
            Aggregate("MIN", 7),
        ),
    )
    shards = [
        [
            [1, 2, 3, "b", "b", "1.5000", "1.25", 1, "first", 3, 2],
            [2, 1, None, None, None, None, None, None, "two", None, 0],
        ],
        [
            [1, 3, 7, "A", "C", "2.3333", "-0.25", -4, "later", 7, 3],
            [2, 4, None, "x", "X", None, None, None, "ignored", None, 0],
            [None, 1, 10, "n", "n", "10.0000", "0.10", 10, "null", 10, 1],
        ],
    ]
    rows = run(spec, coldefs, shards)
    assert rows == [
        [None, "1", "10", "n", "n", "10.0000", "0.10", "10", "null"],
        ["1", "5", "10", "A", "C", "2.0000", "1.00", "-4", "first"],
        ["2", "5", None, "x", "X", None, None, None, "two"],
    ]


def test_min_max_keep_the_winners_raw_text() -> None:
    spec = MergeSpec(
        2, aggregates=(Aggregate("MIN", 0), Aggregate("MAX", 1))
    )  # SELECT MIN(s), MAX(d)
    shards = [[["b ", "9.50"]], [["á", "10.00"]], [[None, None]]]
    assert run(spec, [CI, DEC2], shards) == [["á", "10.00"]]
    shards = [[["B", "1e15"]], [["a", "9.5"]]]
    assert run(spec, [BIN_STR, DOUBLE], shards) == [["B", "1e15"]]


def test_sum_formats() -> None:
    spec = MergeSpec(3, aggregates=tuple(Aggregate("SUM", c) for c in range(3)))
    coldefs = [SUM_INT, SUM_DEC2, DOUBLE]
    shards = [
        [["9223372036854775807", "0.10", "0.1"]],
        [["9223372036854775807", "-1.05", "0.2"]],
        [[None, None, None]],
    ]
    assert run(spec, coldefs, shards) == [["18446744073709551614", "-0.95", "0.30000000000000004"]]
    assert run(spec, coldefs, [[[None, None, None]], []]) == [[None, None, None]]
    spec = MergeSpec(1, aggregates=(Aggregate("SUM", 0),))
    assert run(spec, [DOUBLE_2], [[["0.25"]], [["0.11"]]]) == [["0.36"]]


def avg_spec(*extra: Aggregate) -> MergeSpec:
    # SELECT AVG(x) -> shard columns: AVG(x), SUM(x), COUNT(x)
    return MergeSpec(1, aggregates=(Aggregate("AVG", 0, sum_column=1, count_column=2), *extra))


def test_avg_of_integers_is_decimal_with_four_places() -> None:
    assert run(avg_spec(), [AVG_INT, SUM_INT, COUNT], [[["2.0000", 2, 1]], [["3.0000", 3, 1]]]) == [
        ["2.5000"]
    ]
    # 1/32 = 0.03125 rounds half away from zero, as MariaDB
    shards = [[["0.0625", 1, 16]], [["0.0000", 0, 16]]]
    assert run(avg_spec(), [AVG_INT, SUM_INT, COUNT], shards) == [["0.0313"]]
    shards = [[["-0.0625", -1, 16]], [["0.0000", 0, 16]]]
    assert run(avg_spec(), [AVG_INT, SUM_INT, COUNT], shards) == [["-0.0313"]]
    shards = [[["0.3333", 1, 3]], [["0.5000", 1, 2], ["1.0000", 1, 1]]]
    assert run(avg_spec(), [AVG_INT, SUM_INT, COUNT], shards) == [["0.5000"]]


def test_avg_of_decimals_keeps_scale_plus_four_and_never_prints_minus_zero() -> None:
    shards = [[["-0.010000", "-0.01", 1]], [["0.000000", "0.00", 29999]]]
    assert run(avg_spec(), [AVG_DEC2, SUM_DEC2, COUNT], shards) == [["0.000000"]]
    shards = [[["1.250000", "2.50", 2]], [["3.330000", "3.33", 1]]]
    assert run(avg_spec(), [AVG_DEC2, SUM_DEC2, COUNT], shards) == [["1.943333"]]


def test_avg_of_doubles() -> None:
    shards = [[["0.1", "0.1", 1]], [["0.2", "0.2", 1]]]
    assert run(avg_spec(), [DOUBLE, DOUBLE, COUNT], shards) == [["0.15000000000000002"]]
    shards = [[["2.5", "2.5", 1]], [["0.01", "0.01", 1]]]
    assert run(avg_spec(), [DOUBLE_6, DOUBLE_2, COUNT], shards) == [["1.255000"]]


def test_avg_is_null_when_no_values() -> None:
    shards = [[[None, None, 0]], [[None, None, 0]]]
    assert run(avg_spec(), [AVG_INT, SUM_INT, COUNT], shards) == [[None]]


def test_aggregates_without_group_by_give_one_row() -> None:
    spec = MergeSpec(
        4,
        aggregates=(
            Aggregate("COUNT", 0),
            Aggregate("SUM", 1),
            Aggregate("MAX", 2),
            Aggregate("AVG", 3, 4, 5),
        ),
    )
    coldefs = [COUNT, SUM_INT, CI, AVG_INT, SUM_INT, COUNT]
    shards = [
        [[2, 5, "b", "2.5000", 5, 2]],
        [[0, None, None, None, None, 0]],
        [[1, 1, "C", "1", 1, 1]],
    ]
    assert run(spec, coldefs, shards) == [["3", "6", "C", "2.0000"]]


def test_aggregates_over_nothing_answer_like_an_empty_table() -> None:
    # SELECT COUNT(*), SUM(i), AVG(i), MIN(s), COUNT(DISTINCT s), plain FROM empty
    spec = MergeSpec(
        6,
        aggregates=(
            Aggregate("COUNT", 0),
            Aggregate("SUM", 1),
            Aggregate("AVG", 2, 6, 7),
            Aggregate("MIN", 3),
            Aggregate("COUNT_DISTINCT", 4),
        ),
    )
    coldefs = [COUNT, SUM_INT, AVG_INT, CI, CI, INT, SUM_INT, COUNT]
    expected = [["0", None, None, None, "0", None]]
    assert run(spec, coldefs, [[], []]) == expected
    assert run(spec, coldefs, []) == expected
    with_group = MergeSpec(2, group_by=(0,), aggregates=(Aggregate("COUNT", 1),))
    assert run(with_group, [INT, COUNT], [[], []]) == []


def test_group_by_without_order_by_sorts_by_group_columns_nulls_first() -> None:
    spec = MergeSpec(3, group_by=(0, 1), aggregates=(Aggregate("COUNT", 2),))
    shards = [
        [["b", 2, 1], ["a", None, 1], [None, 1, 1]],
        [["B", 2, 4], ["a", 1, 1], ["A", None, 2]],
    ]
    rows = run(spec, [CI, INT, COUNT], shards)
    assert rows == [[None, "1", "1"], ["a", None, "3"], ["a", "1", "1"], ["b", "2", "5"]]


def test_group_by_hidden_column() -> None:
    # SELECT COUNT(*) FROM t GROUP BY g: the group column travels hidden
    spec = MergeSpec(1, group_by=(1,), aggregates=(Aggregate("COUNT", 0),))
    rows = run(spec, [COUNT, INT], [[[2, 3], [1, 1]], [[4, 1], [1, 2]]])
    assert column(rows) == ["5", "1", "2"]


def test_group_by_with_order_by_aggregate_and_limit() -> None:
    spec = MergeSpec(
        2,
        (SortKey(1, True), SortKey(0, False)),
        group_by=(0,),
        aggregates=(Aggregate("SUM", 1),),
        limit=2,
        offset=1,
    )
    shards = [[["a", 5], ["b", 1], ["c", 2]], [["b", 4], ["d", 7], ["c", 3]]]
    rows = run(spec, [CI, SUM_INT], shards)
    assert rows == [["a", "5"], ["b", "5"]]  # d 7, a 5, b 5, c 5 -> skip d


def test_having_sees_merged_keys_including_hidden_aggregates() -> None:
    # SELECT g, COUNT(*) FROM t GROUP BY g HAVING SUM(x) > 10 AND g <> 'b'
    key = make_key_decoder(CI)
    spec = MergeSpec(
        2,
        group_by=(0,),
        aggregates=(Aggregate("COUNT", 1), Aggregate("SUM", 2)),
        having=lambda r: r[2] is not None and r[2] > 10 and r[0] != key(b"b"),
    )
    shards = [[["a", 1, 6], ["b", 1, 20], ["c", 1, 6]], [["A", 2, 6], ["B", 1, 1], ["c", 1, 4]]]
    assert run(spec, [CI, COUNT, SUM_INT], shards) == [["a", "3"]]


def test_having_receives_numbers_for_aggregate_columns() -> None:
    seen: list[list[object]] = []

    def having(row: list[object]) -> bool:
        seen.append(row)
        return True

    spec = MergeSpec(
        3,
        group_by=(0,),
        aggregates=(Aggregate("COUNT", 1), Aggregate("AVG", 2, 3, 4)),
        having=having,
    )
    run(
        spec,
        [INT, COUNT, AVG_INT, SUM_INT, COUNT],
        [[[1, 2, "1.5000", 3, 2]], [[1, 1, "3.0000", 3, 1]]],
    )
    assert seen == [[1, 3, Decimal("2.0000"), Decimal(6), 3]]


def test_distinct_after_grouping() -> None:
    # SELECT DISTINCT COUNT(*) FROM t GROUP BY g ORDER BY 1
    spec = MergeSpec(
        1,
        (SortKey(0, False),),
        group_by=(1,),
        aggregates=(Aggregate("COUNT", 0),),
        distinct=True,
    )
    shards = [[[1, "a"], [2, "b"]], [[1, "c"], [1, "d"], [1, "B"]]]
    assert column(run(spec, [COUNT, CI], shards)) == ["1", "3"]


def test_count_distinct_per_group_by_collation() -> None:
    # SELECT g, COUNT(DISTINCT s) FROM t GROUP BY g; shards: SELECT g, s ... GROUP BY g, s
    spec = MergeSpec(2, group_by=(0,), aggregates=(Aggregate("COUNT_DISTINCT", 1),))
    shards = [
        [[1, "a"], [1, "b"], [2, None]],
        [[1, "A "], [1, "c"], [2, "x"], [3, None]],
    ]
    assert run(spec, [INT, CI], shards) == [["1", "3"], ["2", "1"], ["3", "0"]]


def test_count_distinct_without_group_by_and_ordered_by_count() -> None:
    spec = MergeSpec(1, aggregates=(Aggregate("COUNT_DISTINCT", 0),))
    assert run(spec, [BIN_STR], [[["a"], ["A"]], [["a "], ["b"]]]) == [["3"]]
    assert run(spec, [VARBINARY], [[[b"a"], [b"A"]], [[b"a "], [b"b"]]]) == [["4"]]
    # ORDER BY the count compares counts, not the counted values' collation
    spec = MergeSpec(
        2,
        (SortKey(1, True),),
        group_by=(0,),
        aggregates=(Aggregate("COUNT_DISTINCT", 1),),
    )
    shards = [[[1, "z"], [2, "a"], [2, "b"]], [[2, "c"], [3, "y"], [3, "x"]]]
    assert run(spec, [INT, CI], shards) == [["2", "3"], ["3", "2"], ["1", "1"]]


# --- spec errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        MergeSpec(3),
        MergeSpec(0),
        MergeSpec(1, (SortKey(2, False),)),
        MergeSpec(1, group_by=(5,)),
        MergeSpec(1, aggregates=(Aggregate("MEDIAN", 0),)),
        MergeSpec(1, aggregates=(Aggregate("AVG", 0),)),
        MergeSpec(1, limit=-1),
    ],
)
def test_specs_that_do_not_fit_the_columns_are_refused(spec: MergeSpec) -> None:
    with pytest.raises(ValueError):
        run(spec, [INT, INT], [[[1, 2]]])


# --- properties -------------------------------------------------------------------------------

WORD = st.text(alphabet="aAbB ", max_size=4)
ROW = st.tuples(st.one_of(st.none(), st.integers(-3, 3)), st.one_of(st.none(), WORD))


def model_key(value: object) -> object:
    """An independent model of MySQL's order for the generated values.

    Ints and NULL-first; strings of letters and spaces under general_ci PAD SPACE
    compare as upper-cased, right-trimmed strings.
    """
    if isinstance(value, str):
        return value.upper().rstrip(" ")
    return value


def model_row_key(row: tuple[object, ...], order: list[tuple[int, bool]]) -> tuple[object, ...]:
    return tuple(order_key(model_key(row[c]), desc) for c, desc in order)


def as_text(value: object) -> str | None:
    return None if value is None else str(value)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(ROW, max_size=40),
    shard_count=st.integers(1, 4),
    placement=st.randoms(use_true_random=False),
    order=st.lists(st.tuples(st.integers(0, 1), st.booleans()), min_size=1, max_size=2),
    limit=st.one_of(st.none(), st.integers(0, 10)),
    offset=st.integers(0, 5),
)
def test_property_ordered_merge_equals_sorting_everything(
    rows: list[tuple[object, object]],
    shard_count: int,
    placement: random.Random,
    order: list[tuple[int, bool]],
    limit: int | None,
    offset: int,
) -> None:
    shards: list[list[tuple[object, object]]] = [[] for _ in range(shard_count)]
    for row in rows:
        shards[placement.randrange(shard_count)].append(row)
    for shard in shards:
        shard.sort(key=lambda r: model_row_key(r, order))
    spec = MergeSpec(2, tuple(SortKey(c, d) for c, d in order), limit=limit, offset=offset)
    merged = run(spec, [INT, CI], [[list(r) for r in s] for s in shards])

    everything = sorted(rows, key=lambda r: model_row_key(r, order))
    window = everything[offset : None if limit is None else offset + limit]
    # ties may come in any order: compare the keys in sequence, the rows as a multiset
    parsed = [(None if i is None else int(i), s) for i, s in merged]
    assert [model_row_key(r, order) for r in parsed] == [model_row_key(r, order) for r in window]
    if limit is None and offset == 0:
        assert sorted(map(repr, parsed)) == sorted(map(repr, rows))


def partial_aggregates(rows: list[tuple[int | None, int | None, str | None]]) -> list[list[object]]:
    """What a shard sends for: SELECT g, COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v), AVG(v),
    MIN(s), MAX(s), [hidden] SUM(v), COUNT(v) FROM t GROUP BY g."""
    groups: dict[object, list[tuple[int | None, int | None, str | None]]] = {}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    out = []
    for g, members in groups.items():
        values = [v for _, v, _ in members if v is not None]
        words = [s for _, _, s in members if s is not None]
        avg = (
            None
            if not values
            else decimal_text(decimal_average(Decimal(sum(values)), len(values), 4), 4)
        )
        out.append(
            [
                g,
                len(members),
                len(values),
                sum(values) if values else None,
                min(values, default=None),
                max(values, default=None),
                avg,
                min(words, key=model_key, default=None),
                max(words, key=model_key, default=None),
                sum(values) if values else None,
                len(values),
            ]
        )
    return out


GROUP_ROW = st.tuples(
    st.one_of(st.none(), st.integers(0, 3)),
    st.one_of(st.none(), st.integers(-(10**12), 10**12)),
    st.one_of(st.none(), WORD),
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(GROUP_ROW, max_size=40),
    shard_count=st.integers(1, 4),
    placement=st.randoms(use_true_random=False),
    grouped=st.booleans(),
    shards_sorted=st.booleans(),
)
def test_property_grouped_aggregates_equal_aggregating_everything(
    rows: list[tuple[int | None, int | None, str | None]],
    shard_count: int,
    placement: random.Random,
    grouped: bool,
    shards_sorted: bool,
) -> None:
    """Also when the shards sort their groups (ORDER BY the group column): streamed merge."""
    if not grouped:
        rows = [(0, v, s) for _, v, s in rows]  # one group; the shard query has no GROUP BY
    shards: list[list[tuple[int | None, int | None, str | None]]] = [[] for _ in range(shard_count)]
    for row in rows:
        shards[placement.randrange(shard_count)].append(row)
    coldefs = [INT, COUNT, COUNT, SUM_INT, BIGINT, BIGINT, AVG_INT, CI, CI, SUM_INT, COUNT]
    spec = MergeSpec(
        9,
        group_by=(0,) if grouped else (),
        aggregates=(
            Aggregate("COUNT", 1),
            Aggregate("COUNT", 2),
            Aggregate("SUM", 3),
            Aggregate("MIN", 4),
            Aggregate("MAX", 5),
            Aggregate("AVG", 6, 9, 10),
            Aggregate("MIN", 7),
            Aggregate("MAX", 8),
        ),
        group_order=(SortKey(0, False),) if shards_sorted and grouped else (),
    )
    partials = [partial_aggregates(s) for s in shards]
    if shards_sorted:
        for partial in partials:
            partial.sort(key=lambda r: null_low(r[0]))
    merged = run(spec, coldefs, partials)

    expected = sorted(partial_aggregates(rows), key=lambda r: null_low(r[0]))
    if not grouped and not rows:
        expected = [[None, 0, 0, None, None, None, None, None, None]]
    assert len(merged) == len(expected)
    for got, want in zip(merged, expected, strict=True):
        # MIN/MAX of strings: any value of the winning collation class
        assert got[:7] == [as_text(v) for v in want[:7]]
        assert [model_key(v) for v in got[7:9]] == [model_key(v) for v in want[7:9]]


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 2), st.one_of(st.none(), WORD)), max_size=30),
    shard_count=st.integers(1, 4),
    placement=st.randoms(use_true_random=False),
    shards_sorted=st.booleans(),
)
def test_property_count_distinct_equals_counting_everything(
    rows: list[tuple[int, str | None]],
    shard_count: int,
    placement: random.Random,
    shards_sorted: bool,
) -> None:
    """Also with the shards' rows sorted by (group, value): distinct values counted as changes."""
    shards: list[dict[tuple[int, object], list[object]]] = [{} for _ in range(shard_count)]
    for g, s in rows:
        # each shard: SELECT g, s FROM t GROUP BY g, s (one row per collation class)
        shards[placement.randrange(shard_count)].setdefault((g, model_key(s)), [g, s])
    spec = MergeSpec(
        2,
        group_by=(0,),
        aggregates=(Aggregate("COUNT_DISTINCT", 1),),
        group_order=(SortKey(0, False), SortKey(1, False)) if shards_sorted else (),
    )
    partials = [list(s.values()) for s in shards]
    if shards_sorted:
        for partial in partials:
            partial.sort(key=lambda r: (r[0], null_low(model_key(r[1]))))
    merged = run(spec, [INT, CI], partials)
    expected = {}
    for g, s in rows:
        expected.setdefault(g, set())
        if s is not None:
            expected[g].add(model_key(s))
    assert merged == [[str(g), str(len(expected[g]))] for g in sorted(expected)]


def test_having_turns_literals_into_the_columns_keys() -> None:
    # HAVING s = 'abc' compares by the collation; a DATETIME equals its date at midnight
    spec = MergeSpec(
        3,
        group_by=(0,),
        aggregates=(Aggregate("COUNT", 2),),
        having=lambda r: r[0] == r.decode_as(0, "abc") and r[1] == r.decode_as(1, "2024-01-05"),
    )
    shards = [
        [["ABC  ", "2024-01-05 00:00:00", 1], ["x", "2024-01-05 00:00:00", 1]],
        [["abc", "2024-01-05 00:00:00", 2], ["abd", "2024-01-05 00:00:00", 1]],
    ]
    assert run(spec, [CI, DATETIME, COUNT], shards) == [["ABC  ", "2024-01-05 00:00:00", "3"]]


def test_bit_aggregates_combine_the_shards_partials_exactly() -> None:
    spec = MergeSpec(
        visible=4,
        group_by=(0,),
        order_by=(SortKey(0, False),),
        aggregates=(Aggregate("BIT_OR", 1), Aggregate("BIT_AND", 2), Aggregate("BIT_XOR", 3)),
    )
    all_ones = str((1 << 64) - 1)
    shards = [
        [[1, 0b0101, 0b0111, 0b0011], [2, 8, 12, 1]],
        [[1, 0b1000, 0b0110, 0b0110]],
        [[2, 0, all_ones, 0]],  # a shard's partial over rows that all are zero
    ]
    rows = run(spec, [INT, UINT, UINT, UINT], shards)
    assert rows == [["1", "13", "6", "5"], ["2", "8", "12", "1"]]


def test_bit_aggregates_over_no_rows_are_the_operators_identity() -> None:
    spec = MergeSpec(
        visible=3,
        aggregates=(Aggregate("BIT_OR", 0), Aggregate("BIT_AND", 1), Aggregate("BIT_XOR", 2)),
    )
    all_ones = str((1 << 64) - 1)
    rows = run(spec, [UINT, UINT, UINT], [[["0", all_ones, "0"]], [["0", all_ones, "0"]]])
    assert rows == [["0", all_ones, "0"]]


# --- bounded memory and fairness ----------------------------------------------------------------


def run_with(
    spec: MergeSpec, coldefs: list[bytes], shards: list[Shard], budget: MergeBudget
) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [payload async for payload in merge(spec, coldefs, shards, budget)]

    return asyncio.run(collect())


def test_groups_the_shards_sorted_stream_and_a_limit_stops_reading() -> None:
    spec = MergeSpec(
        2,
        group_by=(0,),
        aggregates=(Aggregate("COUNT", 1),),
        group_order=(SortKey(0, False),),
        limit=3,
    )
    shards = [Shard([[g, 1] for g in range(0, 2000, 2)]), Shard([[g, 1] for g in range(2000)])]
    merged = run(spec, [INT, COUNT], shards)
    assert merged == [["0", "2"], ["1", "1"], ["2", "2"]]
    assert max(s.pulled for s in shards) < 10  # one group held at a time, not every group


def test_groups_held_to_the_end_are_charged_to_the_memory_cap() -> None:
    spec = MergeSpec(2, group_by=(0,), aggregates=(Aggregate("COUNT", 1),))
    shards = [Shard([[g, 1] for g in range(5000)]), Shard([[g, 1] for g in range(5000)])]
    with pytest.raises(errors.MergeAborted) as raised:
        run_with(spec, [INT, COUNT], shards, MergeBudget(64 * 1024))
    assert raised.value.code == 1038
    assert "max_merge_memory_mb" in raised.value.message


def test_sorted_groups_need_no_memory_cap() -> None:
    spec = MergeSpec(
        2, group_by=(0,), aggregates=(Aggregate("COUNT", 1),), group_order=(SortKey(0, False),)
    )
    shards = [Shard([[g, 1] for g in range(5000)]), Shard([[g, 1] for g in range(5000)])]
    merged = run_with(spec, [INT, COUNT], shards, MergeBudget(64 * 1024))
    assert len(merged) == 5000


def test_distinct_on_sorted_rows_keeps_only_the_previous_row() -> None:
    spec = MergeSpec(1, order_by=(SortKey(0, False),), distinct=True, distinct_adjacent=True)
    shards = [Shard([[v] for v in range(5000)]), Shard([[v] for v in range(0, 5000, 3)])]
    merged = run_with(spec, [INT], shards, MergeBudget(64 * 1024))
    assert [int(p[1:]) for p in merged] == list(range(5000))


def test_a_shard_order_the_proxy_does_not_reproduce_ends_the_statement() -> None:
    # a shard that sorted 'b' before 'a' (a collation the proxy does not model)
    spec = MergeSpec(
        2, group_by=(0,), aggregates=(Aggregate("COUNT", 1),), group_order=(SortKey(0, False),)
    )
    with pytest.raises(errors.MergeAborted) as raised:
        run(spec, [CI, COUNT], [[["b", 1], ["a", 1]], [["a", 1]]])
    assert raised.value.code == 1235


class ReadyShard(Shard):
    """Rows that are all buffered already: taking one never waits."""

    async def __anext__(self) -> bytes:
        try:
            row = next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None
        self.pulled += 1
        return wire.text_row(row)


@pytest.mark.parametrize(
    "spec",
    [
        MergeSpec(2),
        MergeSpec(2, order_by=(SortKey(0, False),)),
        MergeSpec(2, group_by=(0,), aggregates=(Aggregate("COUNT", 1),)),
        MergeSpec(
            2, group_by=(0,), aggregates=(Aggregate("COUNT", 1),), group_order=(SortKey(0, False),)
        ),
    ],
    ids=["concatenated", "ordered", "grouped", "sorted-groups"],
)
def test_a_merge_lets_other_sessions_run_while_it_streams(spec: MergeSpec) -> None:
    """Another task (a point query of another session) runs while the merge still has rows."""
    rows = 20_000

    async def scenario() -> tuple[int, int]:
        shards = [ReadyShard([[i, 1] for i in range(rows)]) for _ in range(2)]
        seen_by_other: list[int] = []

        async def other_session() -> None:
            seen_by_other.append(sum(s.pulled for s in shards))

        async def consume() -> int:
            count = 0
            async for _ in merge(spec, [INT, COUNT], shards):
                count += 1
            return count

        merging = asyncio.ensure_future(consume())
        await asyncio.sleep(0)  # the merge starts first
        other = asyncio.ensure_future(other_session())
        count = await merging
        await other
        return seen_by_other[0], count

    pulled_when_other_ran, count = asyncio.run(scenario())
    assert count in (rows, 2 * rows)
    assert pulled_when_other_ran < 2 * rows  # it ran before the merge had read everything


# --- GROUP_CONCAT(x ORDER BY x): per-(group, x) pieces joined ----------------------------------


def _concat_spec(distinct: bool, descending: bool = False) -> MergeSpec:
    # shards: SELECT g, GROUP_CONCAT(x ORDER BY x), x, @@group_concat_max_len GROUP BY g, x
    concat = Aggregate("GROUP_CONCAT", 1, 2, 3, b"|", distinct)
    return MergeSpec(
        2,
        group_by=(0,),
        aggregates=(concat,),
        group_order=(SortKey(0, False), SortKey(2, descending)),
    )


def test_group_concat_joins_the_pieces_in_value_order_and_skips_nulls() -> None:
    shards = [
        [[1, "1,1", 1, 100], [1, "3", 3, 100], [2, None, None, 100]],
        [[1, None, None, 100], [1, "2", 2, 100], [1, "3", 3, 100], [3, "9", 9, 100]],
    ]
    rows = run(_concat_spec(False), [INT, CI, INT, UINT], shards)
    assert rows == [["1", "1,1|2|3|3"], ["2", None], ["3", "9"]]


def test_group_concat_distinct_keeps_one_piece_per_value_across_shards() -> None:
    shards = [[[1, "3", 3, 100], [1, "1", 1, 100]], [[1, "3", 3, 100], [1, "2", 2, 100]]]
    rows = run(_concat_spec(True, descending=True), [INT, CI, INT, UINT], shards)
    assert rows == [["1", "3|2|1"]]


def test_group_concat_reaching_group_concat_max_len_is_refused() -> None:
    shards = [[[1, "aaaa", "aaaa", 12]], [[1, "bbbb", "bbbb", 12]]]
    with pytest.raises(errors.MergeAborted) as caught:
        run(_concat_spec(False), [INT, CI, CI, UINT], shards)
    assert caught.value.code == 1235 and "group_concat_max_len (12 bytes)" in caught.value.message
    assert run(_concat_spec(False), [INT, CI, CI, UINT], shards[:1]) == [["1", "aaaa"]]
