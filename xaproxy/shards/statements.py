"""Prepared statements held on one shard connection, for native COM_STMT_EXECUTE.

A client's prepared statement is prepared on a shard connection the first time it
executes there, and kept, keyed by its text and the connection's database and
settings (names resolve, and SQL modes parse, as they were at prepare). The cache
is bounded: the least recently used statement is closed on the shard
(COM_STMT_CLOSE) when it is evicted; the server forgets them all on
COM_RESET_CONNECTION and with the connection, so the cache goes with them.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import wire
from ..protocol.constants import Command
from ..protocol.resultset import parse_prepare_ok

if TYPE_CHECKING:
    from .backend import Backend

# Per connection: the pool's connections times this must stay below the shard's
# max_prepared_stmt_count (16382 by default), which is server-wide.
CACHE_LIMIT = 64

_U32 = struct.Struct("<I")
_TOO_MANY_STATEMENTS = 1461  # ER_MAX_PREPARED_STMT_COUNT_REACHED

StatementKey = tuple[str | None, tuple[str, ...], str]


@dataclass(slots=True)
class ShardStatement:
    """The shard's id of a statement and what it has been told about its parameters."""

    id: int
    params: int
    # the parameter types last sent for it (new-params-bound = 1), b"" before any
    types: bytes = b""


class StatementCache:
    """Statements prepared on one connection, least recently used first."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: OrderedDict[StatementKey, ShardStatement] = OrderedDict()

    def get(self, key: StatementKey) -> ShardStatement | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def add(self, key: StatementKey, entry: ShardStatement) -> ShardStatement | None:
        """Keeps `entry`; returns the statement evicted to make room (to close), if any."""
        self._entries[key] = entry
        if len(self._entries) > CACHE_LIMIT:
            return self._entries.popitem(last=False)[1]
        return None

    def forget(self, key: StatementKey) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def drain(self) -> list[ShardStatement]:
        """Forgets every statement and returns them (to close on the shard)."""
        entries = list(self._entries.values())
        self._entries.clear()
        return entries

    def __len__(self) -> int:
        return len(self._entries)


async def prepared_on(backend: Backend, sql: str) -> ShardStatement:
    """The shard statement for `sql` on `backend`, prepared there now if it is not yet.

    A shard error (the text no longer prepares, e.g. after ALTER TABLE) is raised as
    the BackendError MariaDB would answer the execute with.
    """
    cache = backend.statements
    key = (backend.database, backend.settings, sql)
    entry = cache.get(key)
    if entry is not None:
        return entry
    first = await _prepare(backend, sql)
    if wire.is_err(first) and wire.parse_err(first).code == _TOO_MANY_STATEMENTS and len(cache):
        # the shard's max_prepared_stmt_count is server-wide: give this connection's back
        for held in cache.drain():
            await backend.send(Command.STMT_CLOSE, _U32.pack(held.id))
        first = await _prepare(backend, sql)
    if wire.is_err(first):
        raise wire.parse_err(first)
    statement_id, columns, params = parse_prepare_ok(first)
    for _ in range(params):
        await backend.read()
    if params and not backend.deprecate_eof:
        await backend.read()
    for _ in range(columns):
        await backend.read()
    if columns and not backend.deprecate_eof:
        await backend.read()
    entry = ShardStatement(statement_id, params)
    evicted = cache.add(key, entry)
    if evicted is not None:
        await backend.send(Command.STMT_CLOSE, _U32.pack(evicted.id))  # no reply
    return entry


async def _prepare(backend: Backend, sql: str) -> bytes:
    await backend.send(Command.STMT_PREPARE, sql.encode("utf-8", "surrogateescape"))
    return await backend.read()
