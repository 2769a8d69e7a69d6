"""Which shard a shard-key value belongs to, for each algorithm of the shard map.

The functions are deterministic across processes and releases: the same key
always lands on the same shard, whichever proxy instance computes it.

- mod:   the integer key modulo the number of shards, shards in the listed order.
- hash:  CRC-32 of the key's canonical text, modulo the number of shards. The
         canonical text of an integer (or an integer-valued string) is its
         decimal digits; of a date or datetime its ISO text; of any other string
         the string case-folded with trailing spaces removed, because the default
         MySQL collations compare those as equal.
- range: the first bound the key is below; the last bound may be open.
- list:  the shard whose value list holds the key.
"""

from __future__ import annotations

import datetime
import decimal
import re
import zlib
from collections.abc import Iterable

from .. import errors
from ..config import TableConfig

_INTEGER = re.compile(r"^[+-]?\d+$")


def canonical_text(value: object) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    text = str(value)
    stripped = text.strip()
    if _INTEGER.match(stripped):
        return str(int(stripped))
    return text.rstrip(" ").casefold()


def _as_int(table: TableConfig, value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        text = value.decode() if isinstance(value, bytes) else str(value)
        number = decimal.Decimal(text.strip())
        if number == number.to_integral_value():
            return int(number)
    except (decimal.InvalidOperation, UnicodeDecodeError, ValueError):
        pass
    raise errors.ProxyError(
        1366,
        "22007",
        f"shard key {table.name}.{table.shard_key} uses algorithm 'mod' and needs an integer, "
        f"got {value!r}",
    )


def _comparable(bound: object, value: object) -> object:
    if isinstance(bound, (int, float)) and not isinstance(value, (int, float)):
        try:
            return decimal.Decimal(str(value.decode() if isinstance(value, bytes) else value))
        except decimal.InvalidOperation:
            return value
    if isinstance(bound, str) and isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def shard_for(table: TableConfig, value: object) -> str:
    """The shard holding the row whose shard key is `value`."""
    if value is None:
        raise errors.ProxyError(
            1048, "23000", f"shard key {table.name}.{table.shard_key} cannot be NULL"
        )
    algorithm = table.algorithm
    shards = table.shards
    if algorithm == "mod":
        return shards[_as_int(table, value) % len(shards)]
    if algorithm == "hash":
        return shards[
            zlib.crc32(canonical_text(value).encode("utf-8", "surrogateescape")) % len(shards)
        ]
    if algorithm == "range":
        for bound in table.ranges:
            if bound.below is None:
                return bound.shard
            try:
                if _comparable(bound.below, value) < bound.below:
                    return bound.shard
            except TypeError:
                break
        raise errors.ProxyError(
            1526,
            "HY000",
            f"no shard's range holds value {value!r} of {table.name}.{table.shard_key}; "
            "extend the ranges in the shard map",
        )
    if algorithm == "list":
        key = canonical_text(value)
        for shard, values in table.values.items():
            if any(canonical_text(v) == key for v in values):
                return shard
        raise errors.ProxyError(
            1526,
            "HY000",
            f"Table has no partition for value {value!r}: no shard lists it for "
            f"{table.name}.{table.shard_key}",
        )
    raise errors.not_supported(f"sharding algorithm {algorithm!r}")


def shards_for_range(
    table: TableConfig,
    low: object | None,
    low_inclusive: bool,
    high: object | None,
    high_inclusive: bool,
) -> tuple[str, ...]:
    """Shards that may hold keys in the interval; every shard unless `range` narrows it."""
    if table.algorithm != "range":
        return table.shards
    selected: list[str] = []
    previous: object | None = None
    for bound in table.ranges:
        # this shard holds [previous, bound.below)
        lower_ok = True
        upper_ok = True
        try:
            if high is not None and previous is not None:
                upper_ok = (
                    _comparable(previous, high) >= previous
                    if high_inclusive
                    else (_comparable(previous, high) > previous)
                )
            if low is not None and bound.below is not None:
                lower_ok = _comparable(bound.below, low) < bound.below
        except TypeError:
            return table.shards
        if lower_ok and upper_ok and bound.shard not in selected:
            selected.append(bound.shard)
        previous = bound.below
    return tuple(selected)


def union(shard_sets: Iterable[tuple[str, ...]], order: tuple[str, ...]) -> tuple[str, ...]:
    wanted = set()
    for shard_set in shard_sets:
        wanted.update(shard_set)
    return tuple(s for s in order if s in wanted)
