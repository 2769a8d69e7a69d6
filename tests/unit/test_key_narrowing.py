"""Which key literals narrow a statement to one shard: only those the server compares exactly."""

from __future__ import annotations

import pytest
import sqlglot

from xaproxy.config import TableConfig
from xaproxy.config.model import RangeBound
from xaproxy.routing.keys import KeyAnalysis, collation_safe, key_kind, shards_for_condition

SHARDS = ("s0", "s1", "s2")
HASH_UNTYPED = TableConfig("h", "k", "hash", SHARDS, False)
HASH_INT = TableConfig("hi", "k", "hash", SHARDS, False, key_type="integer")
HASH_STR = TableConfig("hs", "k", "hash", SHARDS, False, key_type="string")
MOD = TableConfig("m", "k", "mod", SHARDS, False)
RANGE = TableConfig(
    "r", "k", "range", SHARDS, False, ranges=(RangeBound("s0", 100), RangeBound("s1", None))
)
LIST_STR = TableConfig("ls", "k", "list", SHARDS, False, values={"s0": ("US",), "s1": ("DE",)})
RANGE_STR = TableConfig(
    "rs", "k", "range", SHARDS, False, ranges=(RangeBound("s0", "m"), RangeBound("s1", None))
)


def narrowed(table: TableConfig, condition: str) -> bool:
    where = sqlglot.parse_one(f"SELECT 1 FROM t WHERE {condition}", read="mysql").args["where"]
    analysis = KeyAnalysis({"t": table}, {"t": table})
    return shards_for_condition(where.this, analysis, table) is not None


def test_key_kinds_come_from_the_shard_map() -> None:
    assert key_kind(MOD) == "integer"
    assert key_kind(RANGE) == "integer"
    assert key_kind(RANGE_STR) == "string"
    assert key_kind(HASH_UNTYPED) is None
    assert key_kind(HASH_STR) == "string"


@pytest.mark.parametrize(
    ("table", "condition", "narrows"),
    [
        (HASH_INT, "k = 7", True),
        (HASH_INT, "k = '7'", True),
        (HASH_INT, "k = '7abc'", False),  # the INT column compares it as 7
        (HASH_INT, "k = 7.5", False),
        (HASH_UNTYPED, "k = 7", False),  # a VARCHAR column equals '7abc' too
        (HASH_UNTYPED, "k = '7'", False),  # a VARCHAR unicode_ci column: full-width 7 equals it
        (HASH_STR, "k = 0", False),  # a VARCHAR column compared with 0: every non-number
        (HASH_STR, "k = 'jose'", False),  # 'José' equals it, hashed elsewhere
        (HASH_STR, "k = 'José'", False),
        (HASH_STR, "k = 'Straße'", False),
        (HASH_STR, "k = 'K\u0131ra'", False),  # dotless i
        (LIST_STR, "k = 'us'", True),  # every stored value is a listed one
        (LIST_STR, "k = 'Üs'", False),
        (LIST_STR, "k = 'us '", False),  # PAD SPACE
        (LIST_STR, "k = 0", False),
        (MOD, "k = 7", True),
        (MOD, "k = '7abc'", False),
        (MOD, "k = CAST('7' AS SIGNED)", False),
        (RANGE, "k = 99.5", False),
        (RANGE, "k < 50", True),
        (RANGE, "k < '50abc'", False),
        (RANGE_STR, "k = 'a'", False),  # code point order is not the collation's
        (RANGE_STR, "k < 'q'", False),
        (HASH_INT, "k <=> NULL", False),  # an outer join's NULL-extended rows match it
        (HASH_INT, "k = NULL", True),  # never true: any one shard answers
    ],
)
def test_a_literal_narrows_only_when_the_server_compares_it_exactly(
    table: TableConfig, condition: str, narrows: bool
) -> None:
    assert narrowed(table, condition) is narrows


def test_collation_safe_strings_are_printable_ascii_without_trailing_spaces() -> None:
    assert collation_safe("Apple-7")
    assert not collation_safe("äpfel")
    assert not collation_safe("a\tb")
    assert not collation_safe("x ")
