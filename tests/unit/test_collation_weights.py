"""Collation weights for hash placement, and the merge's collation check, without a server.

The weight tables here are synthetic (the real ones are read from the shards and
compared with WEIGHT_STRING in tests/integration/test_exact_keys.py); they prove
the padding, beyond-the-BMP and refusal rules.
"""

from __future__ import annotations

import pytest
from sqlglot import parse_one

from xaproxy import errors
from xaproxy.metadata.weights import WeightTable, unsupported_reason
from xaproxy.routing.merge_collations import check_merge_collations


def table(collation: str, unit: int = 2) -> WeightTable:
    rows = []
    for cp in range(65536):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        if cp == 0:
            weight = b""  # an ignorable character
        elif cp == 0xA0:
            weight = (0x20).to_bytes(unit, "big")  # weighs as a space, like NBSP under UCA
        else:
            weight = ord(char.upper()[0]).to_bytes(unit, "big")
        rows.append((cp, weight))
    made = WeightTable.of(collation, rows)
    assert made is not None
    return made


def test_trailing_space_weights_are_dropped_under_pad_space_only() -> None:
    pad = table("utf8mb4_general_ci")
    assert pad.key("abc") == pad.key("ABC  ") == pad.key("abc\u00a0") == pad.key("a\x00bc")
    assert pad.key("abc\t") != pad.key("abc")
    nopad = table("utf8mb4_general_nopad_ci")
    assert nopad.key("abc ") != nopad.key("abc")


def test_characters_beyond_the_bmp_weigh_0xfffd_or_are_not_placed() -> None:
    assert table("utf8mb4_unicode_ci").key("a\U0001f600") == b"\x00A\xff\xfd"
    assert table("utf8mb4_unicode_520_ci").key("a\U0001f600") is None
    assert table("utf8mb3_general_ci").key("\U0001f600") is None
    binary = table("utf8mb4_bin", unit=3)
    assert binary.key("\U0001f600") == b"\x01\xf6\x00"


def test_an_incomplete_answer_from_the_server_gives_no_table() -> None:
    assert WeightTable.of("utf8mb4_general_ci", [(0x20, b"\x00 ")]) is None


@pytest.mark.parametrize(
    ("collation", "supported"),
    [
        ("utf8mb4_general_ci", True),
        ("utf8mb4_unicode_ci", True),
        ("utf8mb4_unicode_520_ci", True),
        ("utf8mb4_unicode_520_nopad_ci", True),
        ("utf8mb4_bin", True),
        ("utf8mb3_general_ci", True),
        ("utf8mb4_uca1400_ai_ci", False),
        ("utf8mb4_german2_ci", False),
        ("latin1_swedish_ci", False),
        (None, False),
    ],
)
def test_only_collations_weighed_per_character_are_supported(
    collation: str | None, supported: bool
) -> None:
    assert (unsupported_reason(collation) is None) is supported


COLLATIONS = {"name": "utf8mb4_unicode_ci", "code": "utf8mb4_general_ci", "k": "utf8mb4_bin"}


def collations(qualifier: str, name: str) -> list[str]:
    return [COLLATIONS[name]] if name in COLLATIONS else []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM t ORDER BY name",
        "SELECT name, COUNT(*) FROM t GROUP BY 1",
        "SELECT DISTINCT name FROM t",
        "SELECT MIN(name) FROM t",
        "SELECT COUNT(DISTINCT name) FROM t",
        "SELECT UPPER(name) AS u FROM t ORDER BY u",
        "SELECT code FROM t GROUP BY code HAVING MAX(name) > 'a'",
    ],
)
def test_merges_on_a_collation_the_merge_does_not_reproduce_are_refused(sql: str) -> None:
    with pytest.raises(errors.ProxyError) as raised:
        check_merge_collations(parse_one(sql, read="mysql"), collations)
    assert "utf8mb4_unicode_ci" in raised.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM t",
        "SELECT name FROM t ORDER BY code, k",
        "SELECT name FROM t ORDER BY name COLLATE utf8mb4_general_ci",
        "SELECT code, COUNT(*), SUM(n) FROM t GROUP BY code",
        "SELECT MAX(k) FROM t WHERE name = 'x'",
    ],
)
def test_merges_on_general_ci_and_binary_columns_pass(sql: str) -> None:
    check_merge_collations(parse_one(sql, read="mysql"), collations)
