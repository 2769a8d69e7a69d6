"""Merging the result sets of a SELECT that ran on several shards into one server's answer.

The planner rewrites a fan-out SELECT so that every shard returns partial
results plus hidden helper columns, and describes in a MergeSpec how to put
them together. This module does that, working on raw text-protocol rows so
values that pass through untouched keep the exact bytes the shard sent:

* ORDER BY alone: a streaming k-way merge of the shards' sorted streams;
* nothing to order or group: the shards' streams one after another;
* GROUP BY / aggregates: partial rows combined per group, then HAVING,
  ORDER BY (or the group columns ascending, as MariaDB sorts GROUP BY output),
  DISTINCT, OFFSET/LIMIT. When the shards sorted their groups (spec.group_order,
  the planner's ORDER BY of the group columns) the merge is a k-way merge that
  combines neighbours and streams; otherwise every group is held to the end.
* DISTINCT on rows sorted by every visible column: only the previous row is kept.

Memory: what a merge holds beyond one row per shard (groups, DISTINCT keys, rows
waiting for a sort) is charged to a MergeBudget; past it the statement ends with
1038. Fairness: every _YIELD_EVERY rows the merge yields to the event loop, so
other sessions' statements run while a large fan-out streams.

Combined aggregates are printed as the server prints them (see _Number).
"""

from __future__ import annotations

import asyncio
import datetime
import heapq
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import replace
from decimal import ROUND_HALF_UP, Context, Decimal

from .. import errors
from ..protocol import wire
from ..protocol.constants import FieldType
from ..routing.merge_spec import AGGREGATE_KINDS, BITWISE_KINDS, Aggregate, MergeSpec, SortKey
from .sortkeys import (
    Decoder,
    join_row,
    make_key_decoder,
    null_low,
    order_key,
    split_row,
    weight_decoder,
)

# --- memory and fairness ---------------------------------------------------------------------

_YIELD_EVERY = 64  # rows between two yields to the event loop (a point query needs a few turns)
_SORT_RUN = 2048  # rows sorted in one go when a merge must sort what it holds
_OBJECT_BYTES = 48  # what Python spends per held value beyond its bytes (object, pointer)
_ROW_BYTES = 160  # per held row or group: its list, tuple and dict or heap entry


class MergeBudget:
    """The bytes one statement's merge may hold (`limit` 0: no limit)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, values: list[bytes | None], what: str) -> None:
        self.used += _cost(values)
        if self.limit and self.used > self.limit:
            raise errors.merge_memory_exceeded(self.limit, what)

    def release(self, rows: Iterable[list[bytes | None]]) -> None:
        self.used -= sum(_cost(values) for values in rows)


def _cost(values: list[bytes | None]) -> int:
    return _ROW_BYTES + sum(_OBJECT_BYTES + len(v) for v in values if v is not None)


async def _pause(count: int) -> None:
    """Lets other sessions run every _YIELD_EVERY rows (count: rows handled so far)."""
    if not count % _YIELD_EVERY:
        await asyncio.sleep(0)


# --- numbers as MySQL prints them ---------------------------------------------------------

_NOT_FIXED_DEC = 31  # a column definition's decimals when a DOUBLE has no fixed scale
_EXACT = Context(prec=1000, rounding=ROUND_HALF_UP)  # plenty for DECIMAL(65) sums
_INTEGER_TYPES = frozenset(
    {FieldType.TINY, FieldType.SHORT, FieldType.LONG, FieldType.LONGLONG, FieldType.INT24}
)
_DECIMAL_TYPES = frozenset({FieldType.DECIMAL, FieldType.NEWDECIMAL})
_FLOAT_TYPES = frozenset({FieldType.FLOAT, FieldType.DOUBLE})


def double_text(value: float, decimals: int = _NOT_FIXED_DEC) -> str:
    """A DOUBLE as MariaDB's text protocol prints it.

    With a fixed scale: that many decimals. Otherwise (decimals 31) the server's
    my_gcvt: the shortest digits that round-trip (Python's repr digits), in plain
    notation when the decimal exponent is in -14..15 or the digits reach past the
    point, else as 1.5e-100 / 1e15. Checked against SUM/AVG/plain DOUBLE output of
    MariaDB 10.11 for ~6000 values of every magnitude.
    """
    if decimals < _NOT_FIXED_DEC:
        return f"{value:.{decimals}f}"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)  # digits before the decimal point
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    count = len(digits)
    sign = "-" if value < 0 else ""
    if point >= -14 and (point <= 15 or count > point):
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= count:
            return sign + digits + "0" * (point - count)
        return f"{sign}{digits[:point]}.{digits[point:]}"
    tail = "." + digits[1:] if count > 1 else ""
    return f"{sign}{digits[0]}{tail}e{point - 1}"


def decimal_text(value: Decimal, scale: int) -> str:
    """A DECIMAL with exactly `scale` decimals, half away from zero, never '-0'."""
    quantum = Decimal(1).scaleb(-scale)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP, context=_EXACT)
    if rounded.is_zero():
        rounded = rounded.copy_abs()
    return f"{rounded:f}"


def decimal_average(total: Decimal, count: int, scale: int) -> Decimal:
    """total / count rounded half away from zero to `scale` decimals, exactly (as MariaDB)."""
    sign, digits, exponent = total.as_tuple()
    numerator = int("".join(map(str, digits)) or "0")
    shift = int(exponent) + scale
    denominator = count
    if shift >= 0:
        numerator *= 10**shift
    else:
        denominator *= 10**-shift
    quotient = (2 * numerator + denominator) // (2 * denominator)
    return Decimal((sign if quotient else 0, tuple(map(int, str(quotient))), -scale))


class _Number:
    """How one numeric result column's values are parsed, added and printed."""

    __slots__ = ("decimals", "kind")

    def __init__(self, coldef: bytes) -> None:
        ftype, _, _ = wire.column_type_and_flags(coldef)
        self.decimals = wire.column_decimals(coldef)
        if ftype in _FLOAT_TYPES:
            self.kind = "double"
        elif ftype in _INTEGER_TYPES:
            self.kind = "integer"
        elif ftype in _DECIMAL_TYPES or self.decimals < _NOT_FIXED_DEC:
            self.kind = "decimal"
        else:
            self.kind = "double"

    def parse(self, raw: bytes) -> object:
        if self.kind == "double":
            return float(raw)
        if self.kind == "integer":
            return int(raw)
        return Decimal(raw.decode("ascii"))

    def add(self, a: object, b: object) -> object:
        if self.kind == "decimal":
            return _EXACT.add(a, b)
        return a + b

    def text(self, value: object) -> bytes:
        if self.kind == "double":
            return double_text(value, self.decimals).encode()
        if self.kind == "integer":
            return str(value).encode()
        return decimal_text(value, self.decimals).encode()

    def average(self, total: object, count: int) -> bytes:
        if self.kind == "double":
            return double_text(float(total) / count, self.decimals).encode()
        scale = self.decimals if self.decimals < _NOT_FIXED_DEC else 4
        return decimal_text(decimal_average(Decimal(total), count, scale), scale).encode()


# --- combining partial aggregates ------------------------------------------------------------


class _Count:
    __slots__ = ("column", "total")

    def __init__(self, column: int) -> None:
        self.column = column
        self.total = 0

    def add(self, values: list[bytes | None]) -> None:
        raw = values[self.column]
        if raw is not None:
            self.total += int(raw)

    def finish(self, out: list[bytes | None]) -> None:
        out[self.column] = str(self.total).encode()


class _Tally:
    """COUNT(DISTINCT x) under _OncePerValue: one for each value of x let through."""

    __slots__ = ("column", "total")

    def __init__(self, column: int) -> None:
        self.column = column
        self.total = 0

    def add(self, values: list[bytes | None]) -> None:
        self.total += 1

    def finish(self, out: list[bytes | None]) -> None:
        out[self.column] = str(self.total).encode()


class _Sum:
    __slots__ = ("column", "number", "total")

    def __init__(self, column: int, number: _Number) -> None:
        self.column = column
        self.number = number
        self.total: object = None

    def add(self, values: list[bytes | None]) -> None:
        raw = values[self.column]
        if raw is not None:
            value = self.number.parse(raw)
            self.total = value if self.total is None else self.number.add(self.total, value)

    def finish(self, out: list[bytes | None]) -> None:
        out[self.column] = None if self.total is None else self.number.text(self.total)


class _OncePerValue:
    """COUNT/SUM/AVG(DISTINCT x) over partials of (group, x): a value of x that several
    shards hold counts once. Sorted partials (x ordered inside the group) need
    only the last value; unsorted ones keep the group's values seen."""

    __slots__ = ("budget", "column", "decode", "inner", "last", "seen")

    _NOTHING = object()

    def __init__(
        self,
        inner: _Accumulator,
        column: int,
        decode: Decoder,
        sorted_values: bool,
        budget: MergeBudget,
    ):
        self.inner = inner
        self.column = column
        self.decode = decode
        self.last: object = self._NOTHING
        self.seen: set[object] | None = None if sorted_values else set()
        self.budget = budget

    def add(self, values: list[bytes | None]) -> None:
        raw = values[self.column]
        if raw is None:
            return  # DISTINCT aggregates skip NULL
        key = self.decode(raw)
        if self.seen is None:
            if key == self.last:
                return
            self.last = key
        elif key in self.seen:
            return
        else:
            self.budget.charge([raw], "DISTINCT values")
            self.seen.add(key)
        self.inner.add(values)

    def finish(self, out: list[bytes | None]) -> None:
        self.inner.finish(out)


class _Extreme:
    """MIN or MAX: the winner by the column's collation/type order, kept as sent."""

    __slots__ = ("best_key", "best_raw", "column", "decode", "maximum")

    def __init__(self, column: int, decode: Decoder, maximum: bool) -> None:
        self.column = column
        self.decode = decode
        self.maximum = maximum
        self.best_key: object = None
        self.best_raw: bytes | None = None

    def add(self, values: list[bytes | None]) -> None:
        raw = values[self.column]
        if raw is None:
            return
        key = self.decode(raw)
        if self.best_raw is None or (key > self.best_key if self.maximum else key < self.best_key):
            self.best_key, self.best_raw = key, raw

    def finish(self, out: list[bytes | None]) -> None:
        out[self.column] = self.best_raw


class _Average:
    """AVG from the shards' SUM and COUNT; also fills those helper columns with the totals."""

    __slots__ = ("agg", "count", "output", "summed", "total")

    def __init__(self, agg: Aggregate, output: _Number, summed: _Number) -> None:
        self.agg = agg
        self.output = output
        self.summed = summed
        self.total: object = None
        self.count = 0

    def add(self, values: list[bytes | None]) -> None:
        count = values[self.agg.count_column]
        if count is not None:
            self.count += int(count)
        raw = values[self.agg.sum_column]
        if raw is not None:
            value = self.summed.parse(raw)
            self.total = value if self.total is None else self.summed.add(self.total, value)

    def finish(self, out: list[bytes | None]) -> None:
        empty = self.total is None or self.count == 0
        out[self.agg.column] = None if empty else self.output.average(self.total, self.count)
        out[self.agg.sum_column] = None if self.total is None else self.summed.text(self.total)
        out[self.agg.count_column] = str(self.count).encode()


class _Bitwise:
    """BIT_OR/BIT_AND/BIT_XOR: the shards' partials combine with the same operator, exactly.

    Each partial is a BIGINT UNSIGNED; a shard without rows sends the operator's
    identity (0, or all ones for BIT_AND), which leaves the total unchanged.
    """

    __slots__ = ("column", "operator", "total")

    _IDENTITY = {"BIT_OR": 0, "BIT_XOR": 0, "BIT_AND": (1 << 64) - 1}

    def __init__(self, column: int, operator: str) -> None:
        self.column = column
        self.operator = operator
        self.total = self._IDENTITY[operator]

    def add(self, values: list[bytes | None]) -> None:
        raw = values[self.column]
        if raw is None:
            return
        value = int(raw)
        if self.operator == "BIT_OR":
            self.total |= value
        elif self.operator == "BIT_AND":
            self.total &= value
        else:
            self.total ^= value

    def finish(self, out: list[bytes | None]) -> None:
        out[self.column] = str(self.total).encode()


class _GroupConcatSorted:
    """GROUP_CONCAT(x ORDER BY x) over (group, x) partials sorted by x: the fragments joined.

    Each fragment is one shard's GROUP_CONCAT over its rows with one x, so the
    fragments in x order are MariaDB's string; with DISTINCT an x another shard
    already sent is skipped. A result that reaches group_concat_max_len (less
    the widest character, as a shard may have cut its fragment) is refused:
    MariaDB would cut it and warn.
    """

    __slots__ = ("agg", "decode", "last", "parts", "size")

    _NOTHING = object()

    def __init__(self, agg: Aggregate, decode: Decoder) -> None:
        self.agg = agg
        self.decode = decode
        self.last: object = self._NOTHING
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, values: list[bytes | None]) -> None:
        agg = self.agg
        fragment = values[agg.column]
        if fragment is None:
            return
        if agg.distinct:
            key = self.decode(values[agg.sum_column])
            if key == self.last:
                return
            self.last = key
        if self.parts:
            self.size += len(agg.separator)
        self.parts.append(fragment)
        self.size += len(fragment)
        limit = int(values[agg.count_column] or b"0")
        if self.size + 4 > limit:
            raise errors.group_concat_too_long(limit)

    def finish(self, out: list[bytes | None]) -> None:
        out[self.agg.column] = self.agg.separator.join(self.parts) if self.parts else None


_Accumulator = (
    _Count | _Tally | _OncePerValue | _GroupConcatSorted | _Sum | _Extreme | _Average | _Bitwise
)


# --- the plan: decoders and key builders for one merge ----------------------------------------


class _Plan:
    """A MergeSpec checked against the shards' columns, with the decoders it needs."""

    def __init__(self, spec: MergeSpec, coldefs: list[bytes]) -> None:
        self.spec = spec
        self.coldefs = coldefs
        self.ncols = len(coldefs)
        spec = _absolute(spec, self.ncols)
        self.spec = spec
        _check(spec, self.ncols)
        self.grouped = bool(spec.group_by or spec.aggregates)
        self.hidden = spec.visible < self.ncols
        self._decoders: dict[int, Decoder] = {}
        self._weighed = {
            position + self.ncols if position < 0 else position: table
            for position, table in spec.weighed
        }
        self._counted = {a.column for a in spec.aggregates if a.kind == "COUNT_DISTINCT"}
        # SELECT DISTINCT ... AVG(x) ... GROUP BY: MariaDB's DISTINCT compares an AVG by
        # the SUM and COUNT it keeps, not by the average it shows (groups averaging -2
        # from -4/2 and from -6/3 stay two rows; measured on MariaDB 10.11)
        self._averaged = {
            a.column: (a.sum_column, a.count_column)
            for a in spec.aggregates
            if a.kind == "AVG" and not a.distinct and a.sum_column is not None
            if a.count_column is not None
        }
        self.budget = MergeBudget()  # what the merge may hold; merge() sets the statement's

    def decoder(self, column: int) -> Decoder:
        """The key decoder of a shard column."""
        decode = self._decoders.get(column)
        if decode is None:
            table = self._weighed.get(column)
            coldef = self.coldefs[column]
            made = make_key_decoder(coldef) if table is None else weight_decoder(coldef, table)
            decode = self._decoders[column] = made
        return decode

    def output_decoder(self, column: int) -> Decoder:
        """The key decoder of a merged column (a COUNT DISTINCT column holds a count)."""
        if self.grouped and column in self._counted:
            return _count_key
        return self.decoder(column)

    def row_keys(self, values: list[bytes | None]) -> list[object]:
        """The decoded keys a HAVING predicate sees; `decode_as` turns a literal into a key."""
        return _KeyRow(self, [self.output_decoder(c)(v) for c, v in enumerate(values)])

    def distinct_key(self, values: list[bytes | None]) -> tuple[object, ...]:
        averaged = self._averaged
        if not averaged:
            return tuple(self.output_decoder(c)(values[c]) for c in range(self.spec.visible))
        key: list[object] = []
        for c in range(self.spec.visible):
            parts = averaged.get(c)
            if parts is None:
                key.append(self.output_decoder(c)(values[c]))
            else:
                total, count = parts
                key.append((self.decoder(total)(values[total]), values[count]))
        return tuple(key)

    def sort_key(self, values: list[bytes | None]) -> tuple[object, ...]:
        return tuple(
            order_key(self.output_decoder(k.column)(values[k.column]), k.descending)
            for k in self.spec.order_by
        )

    def shard_key(self, keys: tuple[SortKey, ...]) -> Callable[[list[bytes | None]], tuple]:
        """The sort key of a shard row under `keys` (raw shard columns, not merged ones)."""
        decoders = [(k.column, self.decoder(k.column), k.descending) for k in keys]
        return lambda values: tuple(order_key(d(values[c]), desc) for c, d, desc in decoders)

    def accumulators(self, sorted_groups: bool = False) -> list[_Accumulator]:
        """One group's accumulators. `sorted_groups`: the partials come in group_order,
        so the column after the group columns is sorted inside each group."""
        spec = self.spec
        grouping = set(spec.group_by)
        inside = [k.column for k in spec.group_order if k.column not in grouping]
        sorted_value = inside[0] if sorted_groups and inside else None
        made: list[_Accumulator] = []
        for agg in spec.aggregates:
            made.append(self._accumulator(agg, sorted_value))
            if agg.value_column is not None:
                made[-1] = self._once_per_value(made[-1], agg.value_column, sorted_value)
        return made

    def _once_per_value(self, inner: _Accumulator, column: int, sorted_value: int | None):
        decode = self.decoder(column)
        return _OncePerValue(inner, column, decode, column == sorted_value, self.budget)

    def _accumulator(self, agg: Aggregate, sorted_value: int | None) -> _Accumulator:
        column = agg.column
        if agg.kind == "COUNT":
            return _Count(column)
        if agg.kind == "COUNT_DISTINCT":  # `column` holds x itself
            return self._once_per_value(_Tally(column), column, sorted_value)
        if agg.kind == "GROUP_CONCAT":
            if sorted_value != agg.sum_column:
                raise ValueError("merge spec: GROUP_CONCAT needs partials sorted by value")
            return _GroupConcatSorted(agg, self.decoder(agg.sum_column))
        if agg.kind == "SUM":
            return _Sum(column, _Number(self.coldefs[column]))
        if agg.kind in ("MIN", "MAX"):
            return _Extreme(column, self.decoder(column), agg.kind == "MAX")
        if agg.kind in BITWISE_KINDS:
            return _Bitwise(column, agg.kind)
        output = _Number(self.coldefs[column])
        summed = _Number(self.coldefs[agg.sum_column])
        if output.kind == "double":
            summed.kind = "double"  # AVG of doubles divides the double sum
        return _Average(agg, output, summed)


class _KeyRow(list):
    """A merged row's keys; HAVING compares a string literal by the column's collation."""

    __slots__ = ("_plan",)

    def __init__(self, plan: _Plan, keys: list[object]) -> None:
        super().__init__(keys)
        self._plan = plan

    def decode_as(self, column: int, literal: str) -> object:
        """`literal` as the key a value of `column` with that text would have."""
        plan = self._plan
        coldef = plan.coldefs[column]
        if wire.column_type_and_flags(coldef)[0] in _TEMPORAL_TYPES:
            literal = _temporal_text(literal, coldef)
        return plan.output_decoder(column)(literal.encode("utf-8", "surrogateescape"))


_TEMPORAL_TYPES = frozenset(
    {
        FieldType.DATE,
        FieldType.NEWDATE,
        FieldType.DATETIME,
        FieldType.DATETIME2,
        FieldType.TIMESTAMP,
        FieldType.TIMESTAMP2,
    }
)


def _temporal_text(literal: str, coldef: bytes) -> str:
    """A date/time literal printed as the column prints its values, so the texts compare.

    MySQL compares a DATETIME with '2024-01-05' as with '2024-01-05 00:00:00'.
    """
    try:
        moment = datetime.datetime.fromisoformat(literal.strip())
    except ValueError:
        return literal
    ftype = wire.column_type_and_flags(coldef)[0]
    if ftype in (FieldType.DATE, FieldType.NEWDATE):
        if moment.time() != datetime.time():
            return literal
        return f"{moment:%Y-%m-%d}"
    decimals = wire.column_decimals(coldef)
    text = f"{moment:%Y-%m-%d %H:%M:%S}"
    if moment.microsecond and decimals < 6:
        decimals = 6  # longer than the column's text: compares above an equal prefix
    if 0 < decimals <= 6:
        text += "." + f"{moment.microsecond:06d}"[:decimals]
    return text


def _count_key(raw: bytes | None) -> object:
    return None if raw is None else int(raw)


def _absolute(spec: MergeSpec, ncols: int) -> MergeSpec:
    """The spec with every column position counted from the row's start.

    The planner counts positions after a `*` from the row's end (negative),
    since only the shards know how many columns the star stands for.
    """

    def at(position: int | None) -> int | None:
        return position + ncols if position is not None and position < 0 else position

    return replace(
        spec,
        visible=spec.visible if spec.visible is not None else ncols - spec.hidden,
        order_by=tuple(replace(k, column=at(k.column)) for k in spec.order_by),
        group_order=tuple(replace(k, column=at(k.column)) for k in spec.group_order),
        group_by=tuple(at(c) for c in spec.group_by),
        aggregates=tuple(
            replace(
                a,
                column=at(a.column),
                sum_column=at(a.sum_column),
                count_column=at(a.count_column),
                value_column=at(a.value_column),
            )
            for a in spec.aggregates
        ),
    )


def _check(spec: MergeSpec, ncols: int) -> None:
    """Refuses a spec that does not fit the shards' columns (a planner bug, not user error)."""

    def column(index: int | None, what: str) -> None:
        if index is None or not 0 <= index < ncols:
            raise ValueError(f"merge spec: {what} column {index} outside the {ncols} shard columns")

    if spec.visible is None or not 0 < spec.visible <= ncols:
        raise ValueError(f"merge spec: {spec.visible} visible columns of {ncols}")
    if spec.offset < 0 or (spec.limit is not None and spec.limit < 0):
        raise ValueError("merge spec: negative OFFSET or LIMIT")
    for key in spec.order_by:
        column(key.column, "ORDER BY")
    for key in spec.group_order:
        column(key.column, "shard ORDER BY")
    for index in spec.group_by:
        column(index, "GROUP BY")
    for agg in spec.aggregates:
        if agg.kind not in AGGREGATE_KINDS:
            raise ValueError(f"merge spec: unknown aggregate {agg.kind!r}")
        column(agg.column, agg.kind)
        if agg.kind in ("AVG", "GROUP_CONCAT"):
            column(agg.sum_column, f"{agg.kind} sum or value")
            column(agg.count_column, f"{agg.kind} count or length limit")
        if agg.value_column is not None:
            column(agg.value_column, f"{agg.kind}(DISTINCT) value")


# --- row sources ---------------------------------------------------------------------------------

_Row = tuple[bytes | None, list[bytes | None] | None]  # (payload as sent, raw values)


async def _concatenated(
    plan: _Plan, shard_rows: Iterable[AsyncIterator[bytes]], split: bool
) -> AsyncIterator[_Row]:
    """Every shard's rows in shard order; values are split only when someone needs them."""
    count = 0
    for stream in shard_rows:
        async for payload in stream:
            yield payload, split_row(payload, plan.ncols) if split else None
            count += 1
            await _pause(count)


async def _ordered(
    plan: _Plan,
    shard_rows: Iterable[AsyncIterator[bytes]],
    key: Callable[[list[bytes | None]], tuple],
    checked: bool = False,
) -> AsyncIterator[_Row]:
    """A k-way merge of streams each sorted by `key`; reads one row ahead per shard.

    Ties go to the lower shard index; the heap never holds two rows of one shard,
    so payloads are never compared. `checked`: a shard row that sorts below the
    one before it (the shard's collation is not the one the proxy models) ends the
    statement instead of giving a wrong grouping or DISTINCT.
    """
    heap: list[tuple[tuple[object, ...], int, bytes, list[bytes | None]]] = []
    streams = [aiter(stream) for stream in shard_rows]

    async def entry(index: int) -> tuple[tuple[object, ...], int, bytes, list[bytes | None]] | None:
        payload = await anext(streams[index], None)
        if payload is None:
            return None
        values = split_row(payload, plan.ncols)
        return key(values), index, payload, values

    for index in range(len(streams)):
        first = await entry(index)
        if first is not None:
            heap.append(first)
    heapq.heapify(heap)
    count = 0
    while heap:
        current, index, payload, values = heap[0]
        yield payload, values
        following = await entry(index)
        if following is None:
            heapq.heappop(heap)
        else:
            if checked and following[0] < current:
                raise errors.merge_order_unknown()
            heapq.heapreplace(heap, following)
        count += 1
        await _pause(count)


class _Group:
    __slots__ = ("accumulators", "values")

    def __init__(self, values: list[bytes | None], accumulators: list[_Accumulator]) -> None:
        self.values = values  # the group's first row: group and plain columns come from it
        self.accumulators = accumulators

    def finish(self, plan: _Plan) -> list[bytes | None] | None:
        """The merged row, or None when HAVING drops it."""
        out = list(self.values)
        for accumulator in self.accumulators:
            accumulator.finish(out)
        having = plan.spec.having
        if having is not None and not having(plan.row_keys(out)):
            return None
        return out


async def _sorted_groups(
    plan: _Plan, shard_rows: Iterable[AsyncIterator[bytes]]
) -> AsyncIterator[_Row]:
    """Groups the shards sent sorted by spec.group_order: neighbours combined, streamed.

    Equal groups are neighbours in the k-way merge, so one group is held at a
    time; the output comes in group_order.
    """
    spec = plan.spec
    group_decoders = [(c, plan.decoder(c)) for c in spec.group_by]
    group: _Group | None = None
    current: tuple[object, ...] = ()
    rows = _ordered(plan, shard_rows, plan.shard_key(spec.group_order), checked=True)
    async with aclosing(rows):
        async for _, values in rows:
            group_key = tuple(decode(values[c]) for c, decode in group_decoders)
            if group is None or group_key != current:
                if group is not None and (out := group.finish(plan)) is not None:
                    yield None, out
                group = _Group(values, plan.accumulators(sorted_groups=True))
                current = group_key
            for accumulator in group.accumulators:
                accumulator.add(values)
    if group is None and not spec.group_by:
        # an aggregate query without GROUP BY answers one row even over no rows
        group = _Group([None] * plan.ncols, plan.accumulators(sorted_groups=True))
    if group is not None and (out := group.finish(plan)) is not None:
        yield None, out


async def _grouped(
    plan: _Plan, shard_rows: Iterable[AsyncIterator[bytes]], budget: MergeBudget
) -> AsyncIterator[_Row]:
    """Partial group rows combined, filtered by HAVING and sorted; shards read one after another.

    Every group is held until the last shard row: each is charged to `budget`.
    """
    spec = plan.spec
    group_decoders = [(c, plan.decoder(c)) for c in spec.group_by]
    groups: dict[tuple[object, ...], _Group] = {}
    count = 0
    for stream in shard_rows:
        async for payload in stream:
            values = split_row(payload, plan.ncols)
            group_key = tuple(decode(values[c]) for c, decode in group_decoders)
            group = groups.get(group_key)
            if group is None:
                budget.charge(values, "groups")
                group = groups[group_key] = _Group(values, plan.accumulators())
            for accumulator in group.accumulators:
                accumulator.add(values)
            count += 1
            await _pause(count)
    if not groups and not spec.group_by:
        # an aggregate query without GROUP BY answers one row even over no rows
        groups[()] = _Group([None] * plan.ncols, plan.accumulators())

    merged: list[tuple[tuple[object, ...], list[bytes | None]]] = []
    for group_key, group in groups.items():
        out = group.finish(plan)
        if out is not None:
            merged.append((tuple(null_low(k) for k in group_key), out))
        count += 1
        await _pause(count)
    groups.clear()
    if spec.order_by:
        ordered = await _sort_yielding(merged, lambda item: (plan.sort_key(item[1]), item[0]))
    elif spec.group_by:
        ordered = await _sort_yielding(merged, lambda item: item[0])
    else:
        ordered = iter(merged)
    for _, out in ordered:
        yield None, out
        count += 1
        await _pause(count)


async def _sort_yielding(items: list, key: Callable) -> Iterable:
    """`items` sorted by `key` (stable) in runs of _SORT_RUN, yielding between runs."""
    if len(items) <= _SORT_RUN:
        return sorted(items, key=key)
    runs = []
    for start in range(0, len(items), _SORT_RUN):
        runs.append(sorted(items[start : start + _SORT_RUN], key=key))
        await asyncio.sleep(0)
    items.clear()
    return heapq.merge(*runs, key=key)


async def _sorted_output(
    plan: _Plan, rows: AsyncIterator[_Row], budget: MergeBudget
) -> AsyncIterator[_Row]:
    """Merged rows re-sorted by the client's ORDER BY (stable: ties keep their order).

    With a LIMIT only the first OFFSET+LIMIT rows can be answered: the rows held
    are cut back to those whenever they pass twice that (plus a sort run).
    """
    spec = plan.spec
    # with a LIMIT only the first rows are kept (WITH TIES: all, their ties may follow)
    keep = None if spec.limit is None or spec.ties else spec.offset + spec.limit
    held: list[list[bytes | None]] = []
    async with aclosing(rows):
        async for _, values in rows:
            budget.charge(values, "rows to sort")
            held.append(values)
            if keep is not None and len(held) >= 2 * keep + _SORT_RUN:
                held.sort(key=plan.sort_key)  # stable: earlier rows win ties, as in one sort
                budget.release(held[keep:])
                del held[keep:]
                await asyncio.sleep(0)
    for count, values in enumerate(await _sort_yielding(held, plan.sort_key), 1):
        yield None, values
        await _pause(count)


# VARCHAR, JSON, and ENUM through STRING (0xF7-0xFE: SET, the BLOBs, VAR_STRING)
_TEXT_TYPES = frozenset({FieldType.VARCHAR, FieldType.JSON, *range(FieldType.ENUM, 0xFF)})


def refuse_inexact(spec: MergeSpec, coldefs: list[bytes]) -> None:
    """Refuses, before anything is sent, a merge the shards' column types make inexact:
    SUM/AVG(DISTINCT x) of a string x (MariaDB keeps one of each *number* the strings
    convert to, '1' and '1.0' once; the merge could only keep one of each string)."""
    ncols = len(coldefs)
    for agg in spec.aggregates:
        if agg.distinct and agg.value_column is not None:
            ftype = wire.column_type_and_flags(coldefs[agg.value_column % ncols])[0]
            if ftype in _TEXT_TYPES:
                raise errors.not_supported(
                    f"{agg.kind}(DISTINCT x) of a string x in a SELECT that spans several shards",
                    "cast x to a number in the query (CAST(x AS DECIMAL(...)))",
                )


def before_ordering(spec: MergeSpec) -> MergeSpec:
    """The spec without its ORDER BY, DISTINCT and LIMIT (and keeping helper columns):
    what the merge does before items computed after it are there to sort by."""
    return replace(spec, order_by=(), distinct=False, distinct_adjacent=False, limit=None,
                   offset=0, hidden=0)  # fmt: skip


async def finish_rows(
    spec: MergeSpec, coldefs: list[bytes], rows: list[list[bytes | None]]
) -> list[list[bytes | None]]:
    """ORDER BY, DISTINCT and OFFSET/LIMIT of `spec` over merged rows held in full (each
    column decoded by its shard definition, a COUNT(DISTINCT) as its count)."""
    plan = _Plan(spec, coldefs)
    spec = plan.spec
    if spec.order_by:
        rows = list(await _sort_yielding(rows, plan.sort_key))
    if spec.distinct:
        seen: set[tuple[object, ...]] = set()
        kept = []
        for values in rows:
            key = plan.distinct_key(values)
            if key not in seen:
                seen.add(key)
                kept.append(values)
        rows = kept
    end = None if spec.limit is None else spec.offset + spec.limit
    return rows[spec.offset : end]


# --- the merge -----------------------------------------------------------------------------------


async def merge(
    spec: MergeSpec,
    coldefs: list[bytes],
    shard_rows: list[AsyncIterator[bytes]],
    budget: MergeBudget | None = None,
) -> AsyncIterator[bytes]:
    """The client's row payloads (visible columns only) for one fan-out SELECT.

    Stops reading the shards as soon as OFFSET+LIMIT rows are out (without
    GROUP BY, or with groups the shards sorted); draining or cancelling the
    shard streams is the caller's job.
    """
    plan = _Plan(spec, coldefs)
    spec = plan.spec
    if spec.limit == 0:
        return
    budget = budget if budget is not None else MergeBudget()
    plan.budget = budget
    rows = _source(plan, shard_rows, budget)
    filter_rows = spec.having is not None and not plan.grouped
    seen: set[tuple[object, ...]] | None = set() if spec.distinct else None
    adjacent = spec.distinct_adjacent and not plan.grouped
    previous: object = None
    skip = spec.offset
    remaining = spec.limit
    last: tuple[object, ...] = ()  # WITH TIES: the order keys of the last counted row
    async with aclosing(rows):
        async for payload, values in rows:
            if filter_rows and not spec.having(plan.row_keys(values)):
                continue
            if seen is not None:
                key = plan.distinct_key(values)
                if adjacent:
                    if key == previous:
                        continue
                    previous = key
                elif key in seen:
                    continue
                else:
                    budget.charge(values, "DISTINCT rows")
                    seen.add(key)
            if skip:
                skip -= 1
                continue
            if remaining == 0 and plan.sort_key(values)[: spec.ties] != last:
                return  # WITH TIES: past the count, the first row not tied with the last
            if payload is not None and not plan.hidden:
                yield payload
            else:
                yield join_row(values[: spec.visible])
            if remaining:
                remaining -= 1
                if remaining == 0:
                    if not spec.ties:
                        return
                    last = plan.sort_key(values)[: spec.ties]


def _source(
    plan: _Plan, shard_rows: list[AsyncIterator[bytes]], budget: MergeBudget
) -> AsyncIterator[_Row]:
    """The merged rows before DISTINCT, OFFSET and LIMIT, by what the spec asks."""
    spec = plan.spec
    if plan.grouped and spec.group_order:
        rows = _sorted_groups(plan, shard_rows)
        if spec.order_by and spec.order_by != spec.group_order[: len(spec.order_by)]:
            rows = _sorted_output(plan, rows, budget)
        return rows
    if plan.grouped:
        return _grouped(plan, shard_rows, budget)
    if spec.order_by:
        return _ordered(plan, shard_rows, plan.sort_key, checked=spec.distinct_adjacent)
    split = plan.hidden or spec.distinct or spec.having is not None
    return _concatenated(plan, shard_rows, split)
