"""What the shard-key column is, from the shards' metadata, and how a value of it is placed.

The column's type and collation decide what the server compares: a string
column compared with a number compares as numbers ('11abc' and 'x' equal 11
and 0), an integer column with a string compares with the string's numeric
value, and strings compare by the collation's weights ('jose' = 'José' under
_ci). A hash key on a string column is therefore placed, and looked up, by the
weight of its value (metadata/weights.py); an integer key by its decimal
digits. Where the proxy does not know the column, or cannot weigh its
collation exactly, a string key is not placed (the write is refused) and a
lookup scatters.
"""

from __future__ import annotations

import decimal
import zlib
from dataclasses import dataclass

from .. import errors
from ..config import TableConfig
from ..metadata.model import Catalog, string_key_collation
from ..metadata.weights import WeightTable, unsupported_reason

_INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")


@dataclass(frozen=True, slots=True)
class KeyColumn:
    """The shard-key column as far as routing needs it."""

    kind: str | None  # "integer", "string", None: neither, or not known
    known: bool  # the shards' definition was read (else `kind` is the shard map's word)
    weights: WeightTable | None = None  # a string column whose collation the proxy weighs
    problem: str | None = None  # why a string value of a hash key cannot be placed


def key_column(
    table: TableConfig, schema: str, catalog: Catalog, config_kind: str | None
) -> KeyColumn:
    """The key column of `table` as the catalog describes it (the shard map's kind if unread)."""
    state = catalog.table(schema, table.name)
    definition = state.definition if state is not None else None
    column = definition.column(table.shard_key or "") if definition is not None else None
    if state is None or column is None:
        return KeyColumn(
            config_kind,
            False,
            problem=(
                f"xaproxy has not read the definition of '{schema}.{table.name}' from the "
                "shards, so it does not know the key column's type and collation"
            ),
        )
    base = column.type.split("(")[0].split(" ")[0].strip().lower()
    if base in _INTEGER_TYPES:
        return KeyColumn("integer", True)
    collation = string_key_collation(state, table.shard_key or "")
    if collation is None:
        return KeyColumn(None, True)
    reason = unsupported_reason(collation)
    weights = catalog.weights.get(collation.lower()) if reason is None else None
    if weights is None and reason is None:
        reason = f"the weights of collation {collation} could not be read from the shards"
    return KeyColumn("string", True, weights, reason)


def string_value(value: object) -> str | None:
    """The text a string column stores for a literal (numbers as MariaDB writes them)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        text = str(value)
        # 1e3 is a DOUBLE the column stores as '1000': not placed from this text
        return None if "E" in text.upper() else text
    return None


def weight_key(column: KeyColumn, value: object) -> bytes | None:
    """The collation weight a string key value is placed by; None when it cannot be computed."""
    text = string_value(value)
    if text is None or column.weights is None:
        return None
    return column.weights.key(text)


def hash_shard_of_weight(table: TableConfig, weight: bytes) -> str:
    """The shard of a string hash key, from its collation weight."""
    return table.shards[zlib.crc32(weight) % len(table.shards)]


def place_string(table: TableConfig, column: KeyColumn, value: object) -> str:
    """The shard of a row whose string hash key is `value`, or a refusal saying why not."""
    weight = weight_key(column, value)
    if weight is not None:
        return hash_shard_of_weight(table, weight)
    why = column.problem or (
        f"value {value!r} has a character the proxy cannot weigh under the column's collation"
    )
    raise errors.not_supported(
        f"placing a row of hash table '{table.name}' by string key '{table.shard_key}': {why}",
        "run XAPROXY RELOAD METADATA if the table changed; otherwise use an integer key or a "
        "utf8mb4_general_ci, utf8mb4_unicode_ci, utf8mb4_unicode_520_ci or utf8mb4_bin column",
    )
