"""Reads the configured tables' definitions from information_schema of every shard.

Runs at proxy start, after DDL sent through the proxy and on
`XAPROXY RELOAD METADATA`; the result is a new `Catalog` handed to the planner
whole. A table whose shards disagree is logged loudly (a WARNING naming the
table, the shards and the first difference).
"""

from __future__ import annotations

import asyncio
import logging

from .. import errors
from ..config import Config
from ..shards.pool import Pools
from .model import Catalog, Column, TableMetadata, TableState, string_key_collation
from .weights import WeightTable, table_query, unsupported_reason

log = logging.getLogger(__name__)

_COLUMNS = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, "
    "COLLATION_NAME, IS_NULLABLE, COLUMN_DEFAULT, IS_GENERATED, EXTRA "
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({schemas}) "
    "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
)
_UNIQUE_KEYS = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME "
    "FROM information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA IN ({schemas}) "
    "ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
)

_Tables = dict[tuple[str, str], TableMetadata]
# a collation's weights never change under its name: read once per process
_weight_tables: dict[str, WeightTable] = {}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "surrogateescape")


def _quoted(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "''") + "'"


def configured_tables(config: Config) -> list[tuple[str, str, tuple[str, ...]]]:
    """(schema, table, shards) of every sharded or broadcast table of the shard map."""
    return [
        (schema.name, table.name, table.shards)
        for schema in config.schemas.values()
        for table in schema.tables.values()
        if table.sharded or table.broadcast
    ]


async def read_catalog(config: Config, pools: Pools) -> Catalog:
    """Every configured table's definition on each shard that holds it, compared."""
    wanted = configured_tables(config)
    by_shard: dict[str, set[str]] = {}
    for schema, _, shards in wanted:
        for shard in shards:
            by_shard.setdefault(shard, set()).add(schema)
    names = list(by_shard)
    results = await asyncio.gather(
        *(_read_shard(pools, shard, sorted(by_shard[shard])) for shard in names)
    )
    read = dict(zip(names, results, strict=True))
    states: list[TableState] = []
    for schema, name, shards in wanted:
        key = (schema.lower(), name.lower())
        per_shard = {s: read[s].get(key) for s in shards if read[s] is not None}
        unread = tuple(s for s in shards if read[s] is None)
        state = TableState(schema, name, shards, per_shard, unread)
        states.append(state)
        if state.problem is not None and not state.absent:
            log.warning(
                "metadata of %s.%s (shards %s) %s: statements that need its definition are "
                "refused until the shards agree and XAPROXY RELOAD METADATA is run",
                schema,
                name,
                ",".join(shards),
                state.problem,
            )
    return Catalog.of(states, await _collation_weights(config, pools, states))


def hash_key_problems(config: Config, catalog: Catalog) -> list[str]:
    """One line per hash table whose string key the proxy cannot place as the server compares."""
    problems = []
    for state in catalog.tables.values():
        schema = config.schema(state.schema)
        table = schema.table(state.name) if schema is not None else None
        if table is None or table.algorithm != "hash" or table.broadcast:
            continue
        collation = string_key_collation(state, table.shard_key or "")
        reason = unsupported_reason(collation) if collation is not None else None
        if reason is not None:
            problems.append(
                f"hash shard key {state.schema}.{state.name}.{table.shard_key}: {reason}; the "
                "proxy cannot place its values as the server compares them, so writes that "
                "need a placement are refused; use a utf8mb4_general_ci, utf8mb4_unicode_ci, "
                "utf8mb4_unicode_520_ci or utf8mb4_bin column, or an integer key"
            )
    return problems


async def _collation_weights(
    config: Config, pools: Pools, states: list[TableState]
) -> dict[str, WeightTable]:
    """The weight tables of the collations of hash tables' string keys and of sharded
    tables' string columns, read from a shard (once per collation and process)."""
    for problem in hash_key_problems(config, Catalog.of(states)):
        log.error("%s", problem)
    weights: dict[str, WeightTable] = {}
    for state in states:
        schema = config.schema(state.schema)
        table = schema.table(state.name) if schema is not None else None
        if table is None or table.broadcast:
            continue
        wanted = []
        if table.algorithm == "hash":
            wanted.append(string_key_collation(state, table.shard_key or ""))
        definition = state.definition
        # the merge of a fan-out SELECT orders, groups and deduplicates a plain column of
        # another collation than general_ci/_bin by these weights too
        for column in definition.columns if definition is not None else ():
            if column.collation and not column.collation.lower().endswith(_MODELLED):
                wanted.append(column.collation)
        for collation in wanted:
            if collation is None or unsupported_reason(collation) is not None:
                continue
            name = collation.lower()
            if name not in _weight_tables:
                found = await _read_weights(pools, state.shards[0], state.schema, collation)
                if found is None:
                    continue
                _weight_tables[name] = found
            weights[name] = _weight_tables[name]
    return weights


_MODELLED = ("_general_ci", "_bin")  # the merge's own rules (execution/sortkeys.py)


async def _read_weights(
    pools: Pools, shard: str, schema: str, collation: str
) -> WeightTable | None:
    try:
        backend = await pools.acquire(shard, urgent=True)
    except errors.ProxyError as exc:
        log.warning("metadata: weights of %s not read from %s: %s", collation, shard, exc.message)
        return None
    try:
        rows = await backend.query_rows(table_query(collation, schema))
    except errors.ProxyError as exc:
        log.warning("metadata: weights of %s not read from %s: %s", collation, shard, exc.message)
        return None
    except BaseException:
        backend.usable = False
        raise
    finally:
        pools.release(backend)
    table = WeightTable.of(collation, [(int(cp or b"0"), w) for cp, w in rows])
    if table is None:
        log.warning("metadata: %s answered no usable weight table for %s", shard, collation)
    return table


async def _read_shard(pools: Pools, shard: str, schemas: list[str]) -> _Tables | None:
    """The definitions of every table of `schemas` on `shard`; None if it cannot be asked."""
    listed = ", ".join(_quoted(s) for s in schemas)
    try:
        backend = await pools.acquire(shard, urgent=True)
    except errors.ProxyError as exc:
        log.warning("metadata: shard %s could not be asked: %s", shard, exc.message)
        return None
    try:
        columns = await backend.query_rows(_COLUMNS.format(schemas=listed))
        keys = await backend.query_rows(_UNIQUE_KEYS.format(schemas=listed))
    except errors.ProxyError as exc:
        backend.usable = False
        log.warning("metadata: shard %s could not be read: %s", shard, exc.message)
        return None
    except BaseException:
        backend.usable = False  # cut mid-result: the connection is desynced
        raise
    finally:
        pools.release(backend)
    return _tables(columns, keys)


def _tables(columns: list[list[bytes | None]], keys: list[list[bytes | None]]) -> _Tables:
    found: dict[tuple[str, str], tuple[str, str, list[Column]]] = {}
    for row in columns:
        schema, table, name, type_, charset, collation, nullable, default, generated, extra = (
            _text(v) for v in row
        )
        assert schema is not None and table is not None and name is not None
        extras = (extra or "").lower()
        column = Column(
            name=name,
            type=type_ or "",
            charset=charset,
            collation=collation,
            nullable=nullable == "YES",
            default=default,
            generated=(generated or "NEVER") != "NEVER" or "generated" in extras,
            auto_increment="auto_increment" in extras,
            invisible="invisible" in extras,
        )
        entry = found.setdefault((schema.lower(), table.lower()), (schema, table, []))
        entry[2].append(column)
    unique: dict[tuple[str, str], dict[str, list[str]]] = {}
    for row in keys:
        schema, table, index, name = (_text(v) or "" for v in row)
        unique.setdefault((schema.lower(), table.lower()), {}).setdefault(index, []).append(name)
    tables: _Tables = {}
    for key, (schema, table, cols) in found.items():
        indexes = unique.get(key, {})
        primary = tuple(indexes.pop("PRIMARY", ()))
        others = tuple(tuple(indexes[name]) for name in sorted(indexes))
        tables[key] = TableMetadata(schema, table, tuple(cols), primary, others)
    return tables
