"""Collation weights of string shard keys, so values the server finds equal share a shard.

A hash table places a string key by the weight of its value under the key
column's collation (what WEIGHT_STRING() gives), not by its text: 'José' and
'jose' are one value under utf8mb4_general_ci and must land on one shard, or a
lookup misses the row and a second copy of a primary key fits on another shard.

The weights come from the server itself: one query per collation reads the
weight of every BMP character (SEQUENCE engine, seq_0_to_65535). A string's
weight is the concatenation of its characters' weights only for collations
without contractions; measured on MariaDB 10.11 (every pair of a character
below U+2000 with a combining mark, Thai, Lao, Hangul jamo and kana sound
mark), that holds for the general, unicode (UCA 4.0.0) and unicode_520 (UCA
5.2.0) collations and the _bin ones, and fails for the uca1400 ones ('L' +
U+00B7 is one contraction), which are therefore refused for hash keys. A
collation's weights never change under its name (MariaDB adds new names for
new tables), so placement is stable across servers and proxy releases.

PAD SPACE collations compare as if the shorter string were padded with
spaces: trailing weights equal to the space's weight (a space, or a NO-BREAK
SPACE under the UCA collations) are dropped before hashing.
"""

from __future__ import annotations

from dataclasses import dataclass

# character sets whose SQL text the proxy reads as the client sent it (utf8mb4 text)
_CHARSETS = ("utf8mb4", "utf8mb3", "utf8")
# collation names, without the character set prefix, whose weights concatenate per character
_PER_CHARACTER = frozenset(
    {
        "general_ci",
        "general_nopad_ci",
        "unicode_ci",
        "unicode_nopad_ci",
        "unicode_520_ci",
        "unicode_520_nopad_ci",
        "bin",
        "nopad_bin",
    }
)
# beyond the BMP: general_ci and unicode_ci give every character the weight 0xFFFD; the others
# give real weights the BMP table does not hold, so such values are not placed
_BEYOND_BMP_AS_FFFD = frozenset(
    {"general_ci", "general_nopad_ci", "unicode_ci", "unicode_nopad_ci"}
)

TABLE_QUERY = (
    "SELECT seq, WEIGHT_STRING(CONVERT(CHAR(seq USING utf32) USING {charset}) COLLATE {collation})"
    " FROM {schema}.seq_0_to_65535 WHERE seq NOT BETWEEN 55296 AND 57343"
)


def _suffix(collation: str) -> tuple[str, str] | None:
    """(charset, rest) of a collation name such as utf8mb4_unicode_ci; None if not utf8."""
    for charset in _CHARSETS:
        if collation.startswith(charset + "_"):
            return charset, collation[len(charset) + 1 :]
    return None


def unsupported_reason(collation: str | None) -> str | None:
    """Why the proxy cannot weigh strings of `collation` exactly; None when it can."""
    if collation is None:
        return "the column has no collation"
    parts = _suffix(collation.lower())
    if parts is None:
        return f"collation {collation} is not a utf8mb4/utf8mb3 collation"
    if parts[1] not in _PER_CHARACTER:
        return (
            f"collation {collation} weighs some character sequences as one (contractions) or "
            "is not one the proxy has verified"
        )
    return None


def table_query(collation: str, schema: str) -> str:
    """The query that reads every BMP character's weight under `collation`.

    The SEQUENCE engine's tables exist in every database; the configured one is
    named because a pooled connection has no current database.
    """
    parts = _suffix(collation.lower())
    assert parts is not None
    charset = "utf8mb3" if parts[0] == "utf8" else parts[0]
    quoted = "`" + schema.replace("`", "``") + "`"
    return TABLE_QUERY.format(charset=charset, collation=collation, schema=quoted)


@dataclass(frozen=True, slots=True)
class WeightTable:
    """Every BMP character's weight under one collation, as the server gave it."""

    collation: str
    weights: dict[int, bytes]  # code point -> weight bytes (b"" for an ignorable character)
    unit: int  # bytes per weight (2 for general/UCA, 3 for _bin)
    pad_space: bool
    beyond_bmp: bytes | None  # the weight of any supplementary character, None: not known
    code_points: bool = False  # utf8mb4 _bin: every character weighs its code point

    @staticmethod
    def of(collation: str, rows: list[tuple[int, bytes | None]]) -> WeightTable | None:
        """A table from the rows of `table_query`; None when the server's answer is unusable."""
        weights = {int(cp): bytes(w) for cp, w in rows if w is not None}
        space = weights.get(0x20)
        if len(weights) != 65536 - 2048 or not space:
            return None
        name = collation.lower()
        charset, rest = _suffix(name) or ("", "")
        wide = charset == "utf8mb4" and rest in _BEYOND_BMP_AS_FFFD
        beyond = b"\xff\xfd" if wide else None  # the weight 0xFFFD, not U+FFFD's own weight
        code_points = charset == "utf8mb4" and rest in ("bin", "nopad_bin") and len(space) == 3
        return WeightTable(name, weights, len(space), "nopad" not in rest, beyond, code_points)

    def key(self, text: str) -> bytes | None:
        """The weight string the server compares `text` by, trailing padding removed.

        None when the text has a character the table cannot weigh (beyond the
        BMP where the collation has real weights there, or a lone surrogate).
        """
        parts = []
        weights = self.weights
        for char in text:
            weight = weights.get(ord(char))
            if weight is None:
                if ord(char) <= 0xFFFF:
                    return None
                if self.code_points:
                    weight = ord(char).to_bytes(self.unit, "big")
                elif self.beyond_bmp is None:
                    return None
                else:
                    weight = self.beyond_bmp
            parts.append(weight)
        key = b"".join(parts)
        if self.pad_space:
            space = weights[0x20]
            while key.endswith(space) and (len(key) - len(space)) % self.unit == 0:
                key = key[: -len(space)]
        return key
