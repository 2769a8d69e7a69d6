"""Raw text-protocol values turned into Python keys that order as MySQL orders them.

The merge engine compares values that came from different shards; each shard
already sorted, grouped or deduplicated by the server's rules for the column's
type and collation, so the proxy must reproduce exactly those rules or the merged
answer differs from what one server holding all rows would return.

Numbers become int, Decimal or float; DATE/DATETIME/TIMESTAMP stay text (their
fixed format orders correctly); TIME becomes signed microseconds; binary strings
stay bytes. Character strings become opaque str keys:

* case and accent insensitive collations use utf8mb4_general_ci's weights: one
  weight per BMP character (the table below was measured with WEIGHT_STRING on
  MariaDB 10.11, every BMP code point), U+FFFD for characters beyond the BMP;
  a plain column of another collation whose weight table the shards gave
  (unicode_ci, unicode_520_ci) is weighed by that table (weight_decoder); the
  planner refuses merges on other collations;
* ``_bin`` collations compare code points;
* both are PAD SPACE: compared as if the shorter string were padded with spaces,
  so 'a' = 'a  ' and 'a\\t' < 'a' (a tab sorts below the padding). The key is
  built so that plain str comparison gives exactly that order (see _pad_space).

A string key is not the value's text: a HAVING predicate that compares a string
column with a literal must pass the literal through the same decoder.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal

from asyncmy.charset import charset_by_id

from .. import errors
from ..metadata.weights import WeightTable
from ..protocol import wire
from ..protocol.constants import BINARY_COLLATION, ColumnFlag, FieldType

Decoder = Callable[[bytes | None], object]

_INTEGER_TYPES = frozenset(
    {
        FieldType.TINY,
        FieldType.SHORT,
        FieldType.LONG,
        FieldType.LONGLONG,
        FieldType.INT24,
        FieldType.YEAR,
    }
)
_DECIMAL_TYPES = frozenset({FieldType.DECIMAL, FieldType.NEWDECIMAL})
_FLOAT_TYPES = frozenset({FieldType.FLOAT, FieldType.DOUBLE})
_FIXED_TEXT_TYPES = frozenset(
    {
        FieldType.DATE,
        FieldType.NEWDATE,
        FieldType.DATETIME,
        FieldType.DATETIME2,
        FieldType.TIMESTAMP,
        FieldType.TIMESTAMP2,
    }
)
_TIME_TYPES = frozenset({FieldType.TIME, FieldType.TIME2})
_OPAQUE_TYPES = frozenset({FieldType.BIT, FieldType.GEOMETRY, FieldType.NULL})


# --- raw rows -------------------------------------------------------------------


def split_row(payload: bytes, ncols: int) -> list[bytes | None]:
    """The raw values of a text-protocol row (None for SQL NULL)."""
    values: list[bytes | None] = []
    pos = 0
    for _ in range(ncols):
        value, pos = wire.read_lenenc_bytes(payload, pos)
        values.append(value)
    return values


join_row = wire.raw_text_row  # a merged row back to a text-protocol payload


# --- utf8mb4_general_ci weights ---------------------------------------------------

# Code point ranges whose general_ci weight differs from the code point (measured on
# MariaDB 10.11). Inside them the weight is the character with its accents removed
# and upper-cased (_unaccented_upper); _GENERAL_CI_EXCEPTIONS lists the few where
# the server's table says otherwise. Every other BMP character weighs its code point.
_GENERAL_CI_RANGES = (
    (0x0061, 0x017F), (0x0183, 0x0199), (0x01A0, 0x0233), (0x0253, 0x025B),
    (0x0260, 0x0260), (0x0263, 0x0263), (0x0268, 0x0269), (0x026F, 0x026F),
    (0x0272, 0x0275), (0x0280, 0x0280), (0x0283, 0x0283), (0x0288, 0x0288),
    (0x028A, 0x028B), (0x0292, 0x0292), (0x0345, 0x0345), (0x0386, 0x0386),
    (0x0388, 0x03D6), (0x03DB, 0x03F2), (0x0400, 0x040E), (0x0430, 0x0481),
    (0x048D, 0x04C4), (0x04C8, 0x04C8), (0x04CC, 0x04CC), (0x04D0, 0x04F5),
    (0x04F8, 0x04F9), (0x0561, 0x0586), (0x1E00, 0x1EF9), (0x1F00, 0x1FBA),
    (0x1FBC, 0x1FBE), (0x1FC2, 0x1FC8), (0x1FCA, 0x1FCA), (0x1FCC, 0x1FCC),
    (0x1FD0, 0x1FD2), (0x1FD6, 0x1FDA), (0x1FE0, 0x1FE2), (0x1FE4, 0x1FEA),
    (0x1FEC, 0x1FEC), (0x1FF2, 0x1FF8), (0x1FFA, 0x1FFA), (0x1FFC, 0x1FFC),
    (0x2170, 0x217F), (0x24D0, 0x24E9), (0xFF41, 0xFF5A),
)  # fmt: skip
_GENERAL_CI_EXCEPTIONS = {
    0x00DF: 0x0053, 0x03F2: 0x03A3, 0x0439: 0x0419, 0x1F71: 0x1FBB, 0x1F73: 0x1FC9,
    0x1F75: 0x1FCB, 0x1F77: 0x1FDB, 0x1F79: 0x1FF9, 0x1F7B: 0x1FEB, 0x1F7D: 0x1FFB,
}  # fmt: skip
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")
_REPLACEMENT = "\ufffd"  # general_ci weighs every supplementary character as U+FFFD


def _unaccented_upper(cp: int) -> int:
    char = chr(cp)
    base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
    upper = (base or char).upper()
    return ord(upper) if len(upper) == 1 else cp


def _general_ci_table() -> dict[int, int]:
    table: dict[int, int] = {}
    for start, end in _GENERAL_CI_RANGES:
        for cp in range(start, end + 1):
            weight = _unaccented_upper(cp)
            if weight != cp:
                table[cp] = weight
    table.update(_GENERAL_CI_EXCEPTIONS)
    return table


_GENERAL_CI = _general_ci_table()


def general_ci_weights(text: str) -> str:
    """One character per utf8mb4_general_ci weight of `text` (no padding rule applied)."""
    if text.isascii():
        return text.upper()
    weighted = text.translate(_GENERAL_CI)
    if max(weighted) > "\uffff":
        weighted = _BEYOND_BMP.sub(_REPLACEMENT, weighted)
    return weighted


# --- PAD SPACE ------------------------------------------------------------------------

# A PAD SPACE comparison treats the end of a string as endless spaces. The key
# splits the (right-trimmed) string into tokens "k spaces then one non-space
# character d" and encodes them so str order is token order:
#   d < ' '          -> '\x01' chr(k) d        (below the padding; more spaces first is higher)
#   end of string    -> '\x02'
#   d > ' ', k > 0   -> '\x03' chr(MAX - k) d  (more spaces first is lower)
#   d > ' ', k == 0  -> d                       (d >= '!' sorts above every marker)
_END = "\x02"
_MAX_RUN = 0x10FFFF  # runs of spaces longer than this compare as this long


@functools.cache
def _padding_patterns(space: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(a token "k spaces then one other character", any character at or below the space)."""
    quoted = re.escape(space)
    return re.compile(f"({quoted}*)([^{quoted}])"), re.compile(f"[\x00-{quoted}]")


def pad_space_key(weights: str, space: str = " ") -> str:
    """A key whose str order is PAD SPACE order of the weight strings; `space` is the
    space's weight (general_ci: ' '; the UCA collations: U+0209)."""
    weights = weights.rstrip(space)
    tokens, at_or_below = _padding_patterns(space)
    if at_or_below.search(weights) is None:  # the common case, scanned in C
        return weights + _END

    def encode(match: re.Match[str]) -> str:
        run = min(len(match.group(1)), _MAX_RUN)
        char = match.group(2)
        if char < space:
            return "\x01" + chr(run) + char
        if run == 0:
            return char
        return "\x03" + chr(_MAX_RUN - run) + char

    return tokens.sub(encode, weights) + _END


# --- decoders ---------------------------------------------------------------------------


def _time_microseconds(text: bytes) -> int:
    """'-838:59:59.000001' -> signed microseconds."""
    negative = text.startswith(b"-")
    clock, _, fraction = text.lstrip(b"-").partition(b".")
    parts = [int(p) for p in clock.split(b":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts[-3:]
    micros = int(fraction.ljust(6, b"0")[:6]) if fraction else 0
    total = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros
    return -total if negative else total


def _string_decoder(charset: int, flags: int) -> Decoder:
    try:
        info = charset_by_id(charset)
        collation, encoding = info.collation, info.encoding
    except KeyError:  # a collation asyncmy does not know (MariaDB's newer ids)
        collation, encoding = "", "utf8"
    if charset == BINARY_COLLATION or encoding == "binary":
        return lambda v: v
    # Result sets carry the connection's collation id; a _bin column shows as
    # the BINARY flag on that id (utf8mb4_bin arrives as 45 + BINARY).
    binary_order = bool(flags & ColumnFlag.BINARY) or collation.endswith("_bin")
    no_pad = "nopad" in collation

    def decode(v: bytes | None) -> object:
        if v is None:
            return None
        text = v.decode(encoding, "surrogateescape")
        weights = text if binary_order else general_ci_weights(text)
        return weights if no_pad else pad_space_key(weights)

    return decode


def weight_decoder(coldef: bytes, table: WeightTable) -> Decoder:
    """Keys of a string column by the server's own weights of its collation (read from
    the shard: utf8mb4_unicode_ci, unicode_520_ci, ...), PAD SPACE as that collation
    pads. A value with a character the table cannot weigh ends the merge (1235)."""
    _, _, charset = wire.column_type_and_flags(coldef)
    try:
        encoding = charset_by_id(charset).encoding
    except KeyError:
        encoding = "utf8"
    space = table.weights[0x20]
    space_char = space.decode("utf-16-be", "surrogatepass") if table.unit == 2 else ""
    if len(space_char) != 1:
        raise ValueError(f"merge: weights of {table.collation} are not 2 bytes each")

    def decode(v: bytes | None) -> object:
        if v is None:
            return None
        key = table.key(v.decode(encoding, "surrogateescape"))
        if key is None:
            raise errors.MergeAborted(
                1235,
                "42000",
                f"xaproxy does not support merging a {table.collation} value with a "
                "character whose weight it does not know over several shards; add the shard "
                "key to the WHERE clause so one shard answers",
            )
        weights = key.decode("utf-16-be", "surrogatepass")
        return pad_space_key(weights, space_char) if table.pad_space else weights

    return decode


def make_key_decoder(coldef: bytes) -> Decoder:
    """A function from one column's raw text value to a key ordered as MySQL orders it.

    NULL stays None; the caller decides where NULLs sort.
    """
    ftype, flags, charset = wire.column_type_and_flags(coldef)
    if ftype in _INTEGER_TYPES:
        return lambda v: None if v is None else int(v)
    if ftype in _DECIMAL_TYPES:
        return lambda v: None if v is None else Decimal(v.decode("ascii"))
    if ftype in _FLOAT_TYPES:
        return lambda v: None if v is None else float(v)
    if ftype in _FIXED_TEXT_TYPES:
        return lambda v: None if v is None else v.decode("ascii")
    if ftype in _TIME_TYPES:
        return lambda v: None if v is None else _time_microseconds(v)
    if ftype in _OPAQUE_TYPES:
        return lambda v: v
    return _string_decoder(charset, flags)


# --- sort order helpers -------------------------------------------------------------------


class Descending:
    """Wraps a key so that it sorts in reverse (for ORDER BY ... DESC)."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and self.key == other.key

    def __lt__(self, other: Descending) -> bool:
        return other.key < self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Descending({self.key!r})"


def null_low(key: object) -> tuple[bool, object]:
    """MySQL's NULL order: NULL below every value (first ascending, last descending)."""
    return (key is not None, key)


def order_key(key: object, descending: bool) -> object:
    """The sortable form of one decoded value under ORDER BY ... [DESC]."""
    low = null_low(key)
    return Descending(low) if descending else low
