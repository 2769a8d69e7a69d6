"""Running one statement on several shards: fan-out reads merged, fan-out writes summed.

All shards get their statement before the proxy waits for any answer, so the
shards work in parallel and the statement costs the slowest shard, not the sum.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from .. import errors
from ..protocol import wire
from ..protocol.binary import make_row_converter
from ..protocol.constants import Command, Status
from ..protocol.resultset import write_columns
from ..protocol.stream import PacketStream
from ..routing.plan import MergeRead, Plan, Primitive, ScatterWrite, SplitInsert
from ..shards.backend import Backend
from .merge import MergeBudget, merge

_FLUSH_BYTES = 256 * 1024


@dataclass(slots=True)
class WriteSummary:
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    backend_status: int = 0


async def _send_all(backends: list[tuple[str, Backend]], route: Plan, sql: str) -> None:
    for shard, backend in backends:
        await backend.send(
            Command.QUERY, route.sql_for(shard, sql).encode("utf-8", "surrogateescape")
        )


async def _settle(
    backends: list[tuple[str, Backend]], reader: Callable[[Backend], Awaitable]
) -> list:
    """Reads every shard's answer, even after a failure, so no connection is left desynced."""
    results = await asyncio.gather(*(reader(b) for _, b in backends), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, errors.ProxyError):
            raise result
    return results


async def scatter_write(backends: list[tuple[str, Backend]], route: Plan, sql: str) -> WriteSummary:
    """Runs a write on every shard; raises the first shard error after all have answered."""
    await _send_all(backends, route, sql)
    results = await _settle(backends, lambda b: b.read_ok())
    failure = next((r for r in results if isinstance(r, errors.ProxyError)), None)
    if failure is not None:
        raise failure
    return summarize_writes(results, route.root)


def summarize_writes(results: list[wire.OkInfo], root: Primitive) -> WriteSummary:
    """One answer for a write every shard ran, as one server would give it.

    A broadcast table's copies changed the same rows, so one copy's count is
    the answer; ids the proxy generated for a split INSERT give LAST_INSERT_ID.
    """
    summary = WriteSummary()
    copies = isinstance(root, ScatterWrite) and root.copies
    for index, result in enumerate(results):
        if not (copies and index):
            summary.affected_rows += result.affected_rows
            summary.warnings += result.warnings
        summary.backend_status = result.status
        if result.last_insert_id and not summary.last_insert_id:
            summary.last_insert_id = result.last_insert_id
    if isinstance(root, SplitInsert) and root.generated_ids:
        summary.last_insert_id = root.generated_ids[0]
    return summary


async def _read_header(backend: Backend) -> list[bytes]:
    """Column definitions of a result set; a shard error is raised."""
    first = await backend.read()
    if wire.is_err(first):
        raise wire.parse_err(first)
    if first[0] == 0x00:
        raise errors.ProxyError(1105, "HY000", "a shard answered a fan-out SELECT without rows")
    count, _ = wire.read_lenenc_int(first, 0)
    coldefs = [await backend.read() for _ in range(count or 0)]
    if not backend.deprecate_eof:
        await backend.read()
    return coldefs


class _ShardRows:
    """The rows of one shard's result set, read on demand."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.done = False
        self.warnings = 0
        self.status = 0

    async def rows(self) -> AsyncIterator[bytes]:
        backend = self.backend
        deprecate_eof = backend.deprecate_eof
        while not self.done:
            payload = await backend.read()
            end = wire.rows_end(payload, deprecate_eof) if payload and payload[0] == 0xFE else None
            if end is not None:
                self.status, self.warnings = end
                backend.status = self.status
                self.done = True
                return
            if wire.is_err(payload):
                self.done = True
                raise wire.parse_err(payload)
            yield payload

    async def drain(self) -> None:
        async for _ in self.rows():
            pass


async def scatter_read(
    backends: list[tuple[str, Backend]],
    route: Plan,
    sql: str,
    out: PacketStream,
    *,
    session_status: int,
    more_follows: bool,
    client_deprecate_eof: bool,
    binary: bool,
    memory_limit: int = 0,
) -> int:
    """Runs a fan-out SELECT and streams the merged result; returns the warning count.

    `memory_limit`: the bytes the merge may hold (0: unlimited); past it the
    client gets 1038 in place of the rest of the result.
    """
    root = route.root
    assert isinstance(root, MergeRead)
    await _send_all(backends, route, sql)
    headers = await _settle(backends, _read_header)
    failure = next((h for h in headers if isinstance(h, errors.ProxyError)), None)
    streams = [_ShardRows(b) for _, b in backends]
    if failure is not None:
        for stream, header in zip(streams, headers, strict=True):
            if not isinstance(header, errors.ProxyError):
                await stream.drain()
        raise failure
    coldefs: list[bytes] = headers[0]
    spec = root.spec
    shown = list(coldefs)
    for position, coldef in root.column_overrides:
        shown[position] = coldef
    visible_defs = shown[: len(shown) - spec.hidden]
    status = session_status | (Status.MORE_RESULTS_EXISTS if more_follows else 0)
    write_columns(out, visible_defs, status, client_deprecate_eof)
    convert = None
    if binary:
        convert = make_row_converter([wire.column_type_and_flags(c)[:2] for c in visible_defs])
    try:
        budget = MergeBudget(memory_limit)
        async for payload in merge(spec, coldefs, [s.rows() for s in streams], budget):
            out.write(convert(payload) if convert is not None else payload)
            if out.pending > _FLUSH_BYTES:
                await out.flush()
    except (errors.BackendError, errors.MergeAborted) as exc:
        for stream in streams:
            if not stream.done:
                await stream.drain()
        out.write(wire.err_packet(exc.code, exc.sqlstate, exc.message))
        return 0
    for stream in streams:
        if not stream.done:
            await stream.drain()
    warnings = sum(s.warnings for s in streams)
    no_backslash = any(s.status & Status.NO_BACKSLASH_ESCAPES for s in streams)
    if no_backslash:
        status |= Status.NO_BACKSLASH_ESCAPES
    out.write(wire.end_of_rows(status, warnings, client_deprecate_eof))
    return warnings
