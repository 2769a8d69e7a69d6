"""Copying a table a cross-shard join reads whole onto the join's shards (plan.CopiedTable).

The rows are read from every shard holding the table, within the bounds of
the plan's bounds (max_copy_rows per table, max_copy_mb per statement), and written into a temporary table on each shard
connection of the join. A copy lives only while its statement runs: it is dropped
before the answer goes out, and a connection whose copy could not be dropped is
closed, never given to another statement (it would read the copy, not the table).
"""

from __future__ import annotations

import asyncio
import time

from .. import errors
from ..routing.plan import CopiedTable, MergeRead, Plan
from ..shards.backend import Backend
from .cursor import Cursor

# bytes of values per INSERT that writes a copy (well under any max_allowed_packet)
_INSERT_BYTES = 256 << 10
_TEMPORAL_TEXT = frozenset(b"0123456789-:. ")
# what CREATE TEMPORARY TABLE ... LIKE answers where a copy cannot be made: a READ ONLY
# transaction, a partitioned table, FULLTEXT indexes, an option temporary tables lack
_CANNOT_BE_TEMPORARY = frozenset({1792, 1562, 1214, 1478, 1796})
_ACCESS_DENIED = 1044


class CopyRefused(errors.ProxyError):
    """A copy the proxy will not make: the statement is refused, its connections are in step."""


def _refused(what: str, hint: str) -> CopyRefused:
    return errors.not_supported(what, hint, CopyRefused)


def _too_big(copy: CopiedTable) -> CopyRefused:
    bound = f"over {copy.max_rows} rows or {copy.max_bytes / (1 << 20):g} MiB"
    if copy.reason:
        return _refused(
            f"{copy.reason} (xaproxy answers it on one shard over copies of the sharded "
            f"tables it reads, and {copy.table} holds {bound})",
            "add the shard key to the WHERE clause, or split the query",
        )
    return _refused(
        f"a join that copies sharded table {copy.table} to every shard of the join, when it "
        f"holds {bound}",
        "join sharded tables on their shard keys (one binding group), or add the other "
        "table's shard key to the WHERE clause",
    )


# tables found too big to copy, refused without reading them until then (monotonic time)
_TOO_BIG_UNTIL: dict[str, float] = {}
_TOO_BIG_MEMORY_S = 30.0


async def _refuse_what_is_known_too_big(copy: CopiedTable, sources: list[Backend]) -> None:
    """A table found too big lately, or that the shards' estimates say is well over the
    bounds, is refused before any of its rows are read (reading it to the bound would
    cost as much each time)."""
    until = _TOO_BIG_UNTIL.get(copy.table)
    if until is not None and time.monotonic() < until:
        raise _too_big(copy)
    rows = length = 0
    for answer in await _gather([b.query_rows(copy.size) for b in sources]):
        for estimated_rows, data_length in answer:
            rows += int(estimated_rows or 0)
            length += int(data_length or 0)
    if rows > 2 * copy.max_rows or length > 4 * copy.max_bytes:
        raise _remembered_too_big(copy)


def _remembered_too_big(copy: CopiedTable) -> CopyRefused:
    _TOO_BIG_UNTIL[copy.table] = time.monotonic() + _TOO_BIG_MEMORY_S
    if len(_TOO_BIG_UNTIL) > 10_000:
        _TOO_BIG_UNTIL.clear()
    return _too_big(copy)


async def _read_rows(backend: Backend, copy: CopiedTable, budget: list[int]) -> list[list]:
    """The table's rows on one shard (their text), within the statement's budget."""
    rows = await backend.query_rows_within(copy.read, budget, copy.max_rows)
    if rows is None:
        raise _remembered_too_big(copy)
    return rows


def _writer(kind: str):
    if kind == "digits":
        return lambda value: value
    if kind == "double":
        return lambda value: value if b"e" in value.lower() else value + b"e0"
    if kind == "quoted":

        def temporal(value: bytes) -> bytes:
            if not set(value) <= _TEMPORAL_TEXT:
                raise errors.ProxyError(1105, "HY000", f"unexpected temporal text {value!r}")
            return b"'" + value + b"'"

        return temporal
    if kind == "unixtime":
        # 0 is the zero TIMESTAMP (the epoch itself cannot be stored)
        return lambda value: value if value == b"0" else b"FROM_UNIXTIME(" + value + b")"
    charset = kind.partition(":")[2].encode()
    introducer = b"_" + charset + b" " if charset else b""
    return lambda value: introducer + b"X'" + value + b"'"


def insert_statements(copy: CopiedTable, rows: list[list]) -> list[bytes]:
    """The INSERTs that write `rows` into the copy, about _INSERT_BYTES each."""
    writers = [_writer(kind) for kind in copy.literals]
    head = copy.insert.encode("utf-8", "surrogateescape")
    statements: list[bytes] = []
    tuples: list[bytes] = []
    size = 0
    for row in rows:
        values = b", ".join(
            b"NULL" if value is None else write(value)
            for write, value in zip(writers, row, strict=True)
        )
        tuples.append(b"(" + values + b")")
        size += len(values) + 4
        if size >= _INSERT_BYTES:
            statements.append(head + b", ".join(tuples))
            tuples, size = [], 0
    if tuples:
        statements.append(head + b", ".join(tuples))
    return statements


async def _write_copy(backend: Backend, copy: CopiedTable, statements: list[bytes]) -> None:
    last_insert_id = backend.last_insert_id  # the copy's explicit ids are not the session's
    try:
        for text in statements:
            await backend.execute_ok(text)
    finally:
        backend.last_insert_id = last_insert_id


class Copies:
    """The copies one statement made, on which connections; `drop` removes them all."""

    def __init__(self) -> None:
        self.made: list[tuple[Backend, CopiedTable]] = []
        self.sources: list[Backend] = []  # connections the copies were read on
        self.budget: list[int] = []  # bytes left to all the statement's copies

    async def make(
        self,
        cursor: Cursor,
        route: Plan,
        backends: list[tuple[str, Backend]],
        borrowed: list[Backend],
    ) -> None:
        root = route.root
        assert isinstance(root, MergeRead)
        for copy in root.copies:
            if not self.budget:
                self.budget = [copy.max_bytes]
            rows = await self._read(cursor, route, backends, borrowed, copy)
            statements = insert_statements(copy, rows)
            for _, backend in backends:
                try:
                    await backend.execute_ok(copy.create)
                except errors.BackendError as exc:
                    if exc.code == _ACCESS_DENIED:  # its text names the shard account
                        raise _refused(
                            f"copying sharded table {copy.table} into a temporary table: the "
                            "shard account lacks CREATE TEMPORARY TABLES",
                            "ask the operator to grant it (see the README's shard account)",
                        ) from None
                    if exc.code not in _CANNOT_BE_TEMPORARY:
                        raise
                    raise _refused(
                        f"copying sharded table {copy.table} into a temporary table on the "
                        f"shards that answer the statement ({exc.code}: {exc.message}; a READ "
                        "ONLY transaction or session, a partitioned or FULLTEXT-indexed table "
                        "cannot be copied)",
                        "add the shard key to the WHERE clause, or join on the shard keys",
                    ) from None
                self.made.append((backend, copy))
            # the shards write their copies at once
            try:
                await _gather([_write_copy(b, copy, statements) for _, b in backends])
            except errors.BackendError as exc:
                if exc.code != 1062:
                    raise
                raise _refused(
                    f"a join that copies sharded table {copy.table} to every shard of the "
                    "join, when its shards hold the same value of one of its unique keys",
                    "make the unique keys hold the shard key, or join on the shard keys",
                ) from None

    async def _read(
        self,
        cursor: Cursor,
        route: Plan,
        backends: list[tuple[str, Backend]],
        borrowed: list[Backend],
        copy: CopiedTable,
    ) -> list[list]:
        joined = dict(backends)
        sources: list[Backend] = []
        for shard in copy.sources:
            backend = joined.get(shard)
            if backend is None:
                backend, is_borrowed, _ = await cursor.connection(shard, route, True)
                if is_borrowed:
                    borrowed.append(backend)
            sources.append(backend)
        self.sources += sources
        await _refuse_what_is_known_too_big(copy, sources)
        rows: list[list] = []
        for part in await _gather([_read_rows(b, copy, self.budget) for b in sources]):
            rows.extend(part)
        if len(rows) > copy.max_rows:
            raise _remembered_too_big(copy)
        return rows

    async def drop(self) -> None:
        """Drops every copy; a connection where that fails is closed (as are all the
        connections still holding copies when the statement is cancelled meanwhile)."""
        made, self.made = self.made, []
        for index, (backend, copy) in enumerate(made):
            if backend.broken:
                continue
            try:
                await backend.execute_ok(copy.drop)
            except errors.ProxyError:
                backend.close()
            except BaseException:
                for held, _ in made[index:]:
                    held.close()
                raise

    def abandon(self) -> None:
        """After a failure that may leave a connection mid-answer (a cancelled statement):
        the connections that hold copies or were read for them are closed, so none goes
        back to the pool with a copy or half a result on it."""
        made, self.made = self.made, []
        for backend, _ in made:
            backend.close()
        sources, self.sources = self.sources, []
        for backend in sources:
            backend.close()


async def _gather(calls: list) -> list:
    """Runs the calls at once; every one is awaited to its end (no connection is left
    mid-answer), then the first failure is raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
