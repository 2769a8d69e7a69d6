"""Runs a planned statement: one shard relayed, several scattered and merged, DDL everywhere.

Everything about which connection a shard's statement runs on, and about the
transaction around it, is the cursor's (transactions/access.py); the executor only
sends text, relays or collects results, and keeps the session's result state.
"""

from __future__ import annotations

from .. import errors
from ..protocol import wire
from ..protocol.binary import make_row_converter
from ..protocol.constants import Command, Status
from ..routing.planner import Route
from ..shards.backend import Backend
from .cursor import Client, Cursor
from .forward import ResultSummary, forward_result
from .scatter import WriteSummary, scatter_read, scatter_write

_MORE = int(Status.MORE_RESULTS_EXISTS)
_NO_BACKSLASH_ESCAPES = int(Status.NO_BACKSLASH_ESCAPES)


async def run(
    client: Client, cursor: Cursor, sql: str, route: Route, *, more: bool, binary: bool
) -> None:
    """Runs `sql` as `route` says and queues its result (one result, or an error raised).

    The one-shard case is inline: it is the hot path, and every coroutine level
    costs each point select.
    """
    await cursor.check_timeout()
    if route.implicit_commit and client.txn is not None:
        await cursor.end(commit=True)
    if not route.single:
        if route.implicit_commit:
            await run_everywhere(client, cursor, sql, route, more)
        else:
            await run_scattered(client, cursor, sql, route, more=more, binary=binary)
        return
    txn = client.txn
    if txn is None and not client.autocommit and not route.implicit_commit:
        txn = cursor.start(implicit=False)
    shard = route.shards[0]
    backend, borrowed, opening = await cursor.connection(
        shard, route, defer_join=txn is not None and txn.mode == "xa"
    )
    try:
        restore_id = (
            "last_insert_id" in sql.lower() and backend.last_insert_id != client.last_insert_id
        )
        sent = opening is not None and await cursor.open_branch(
            backend, shard, opening, None if restore_id else sql
        )
        if restore_id:
            await backend.execute_ok(f"DO LAST_INSERT_ID({client.last_insert_id})")
            backend.last_insert_id = client.last_insert_id
        if (
            txn is not None
            and txn.mode == "at"
            and await _at_write(client, cursor, backend, route, sql, more)
        ):
            return
        if not sent:
            await backend.send(Command.QUERY, sql.encode("utf-8", "surrogateescape"))
        watch = cursor.lock_wait_watch(backend)
        if watch is None:
            summary = await relay(client, backend, more, binary)
        else:
            async with watch:
                summary = await relay(client, backend, more, binary)
        keep_result_state(client, summary)
        if summary.warnings and summary.error is None:
            await capture_warnings(client, backend)
        if summary.error is not None:
            client.note_error(summary.error)
            await cursor.after_error(summary.error)
    except errors.BackendError as exc:
        await cursor.after_error(exc)
        raise
    except errors.ShardUnavailable:
        backend.usable = False
        await cursor.after_shard_loss(backend)
        raise
    except BaseException:
        backend.usable = False  # the result stream was cut: the connection is desynced
        raise
    finally:
        if borrowed:
            cursor.release(backend)


async def _at_write(
    client: Client, cursor: Cursor, backend: Backend, route: Route, sql: str, more: bool
) -> bool:
    """An AT-mode write is the transaction layer's (it keeps the images); True if it was one."""
    if not (route.write or cursor.at_may_write(sql)) or await cursor.at_locking_read(backend, sql):
        return False
    ok = await cursor.at_write(route.shards[0], backend, sql)
    client.out.write(wire.ok_reply(client.status() | (_MORE if more else 0), ok))
    return True


async def relay(client: Client, backend: Backend, more: bool, binary: bool) -> ResultSummary:
    """Forwards the results of the command just sent on `backend` to the client."""
    return await forward_result(
        backend,
        client.out,
        session_status=client.status(),
        more_follows=more,
        client_deprecate_eof=client.deprecate_eof,
        binary_rows=make_row_converter if binary else None,
    )


def keep_result_state(client: Client, summary: ResultSummary) -> None:
    if summary.last_insert_id:
        client.last_insert_id = summary.last_insert_id
    client.no_backslash_escapes = bool(summary.backend_status & _NO_BACKSLASH_ESCAPES)
    if not summary.warnings:
        client.warnings = []


async def capture_warnings(client: Client, backend: Backend) -> None:
    """Keeps the statement's warnings: the shard connection goes back to the pool."""
    try:
        rows = await backend.query_rows("SHOW WARNINGS")
    except errors.ProxyError:
        return
    client.warnings = [
        (
            (r[0] or b"").decode(),
            int(r[1] or 0),
            (r[2] or b"").decode("utf-8", "replace"),
        )
        for r in rows
    ]


async def _connect_all(
    cursor: Cursor, route: Route, backends: list[tuple[str, Backend]], borrowed: list[Backend]
) -> None:
    for shard in route.shards:
        backend, is_borrowed, _ = await cursor.connection(shard, route, bool(backends))
        backends.append((shard, backend))
        if is_borrowed:
            borrowed.append(backend)
        elif route.write:
            cursor.mark_wrote(shard)


async def run_scattered(
    client: Client, cursor: Cursor, sql: str, route: Route, *, more: bool, binary: bool
) -> None:
    """A statement split over several shards (or rewritten for one): merged or summed."""
    implicit = client.txn is None and client.autocommit and route.write
    if client.txn is None and (not client.autocommit or route.write):
        cursor.start(implicit=implicit)
    backends: list[tuple[str, Backend]] = []
    borrowed: list[Backend] = []
    try:
        await _connect_all(cursor, route, backends, borrowed)
        if route.merge is not None:
            warnings = await scatter_read(
                backends,
                route,
                sql,
                client.out,
                session_status=client.status(),
                more_follows=more,
                client_deprecate_eof=client.deprecate_eof,
                binary=binary,
            )
            client.warnings = [] if not warnings else client.warnings
            return
        if cursor.at_mode():
            summary = sum_writes(await cursor.at_scatter_write(backends, route, sql), route)
        else:
            summary = await scatter_write(backends, route, sql)
    except errors.ShardUnavailable as exc:
        for _, backend in backends:
            if backend.broken:
                backend.usable = False
        if client.txn is not None:
            await cursor.end(commit=False, reason="shard_lost")
        raise exc
    except errors.BackendError as exc:
        if client.txn is not None and (implicit or route.write):
            # part of the statement may have applied on other shards: undo all of it
            await cursor.end(commit=False, reason="statement_failed")
        raise exc
    except BaseException:
        for _, backend in backends:
            backend.usable = False
        raise
    finally:
        for backend in borrowed:
            cursor.release(backend)
    await _answer_write(client, cursor, summary, implicit, more)


async def _answer_write(
    client: Client, cursor: Cursor, summary: WriteSummary, implicit: bool, more: bool
) -> None:
    if summary.last_insert_id:
        client.last_insert_id = summary.last_insert_id
    client.warnings = []
    commit_warnings: list[str] = []
    if implicit:
        commit_warnings = await cursor.end(commit=True)
    status = client.status() | (_MORE if more else 0)
    client.out.write(
        wire.ok_packet(
            status,
            summary.affected_rows,
            summary.last_insert_id,
            summary.warnings + len(commit_warnings),
        )
    )


def sum_writes(results: list[wire.OkInfo], route: Route) -> WriteSummary:
    """One answer for a write every shard ran; a broadcast table's rows counted once."""
    summary = WriteSummary()
    for index, result in enumerate(results):
        if route.copies and index:
            continue  # a broadcast table: every shard changed its copy of the same rows
        summary.affected_rows += result.affected_rows
        summary.warnings += result.warnings
        if result.last_insert_id and not summary.last_insert_id:
            summary.last_insert_id = result.last_insert_id
    if route.generated_ids:
        summary.last_insert_id = route.generated_ids[0]
    return summary


async def run_everywhere(
    client: Client, cursor: Cursor, sql: str, route: Route, more: bool
) -> None:
    """DDL on a sharded or broadcast table: each shard commits it on its own, as MySQL does."""
    backends: list[tuple[str, Backend]] = []
    try:
        for shard in route.shards:
            backend = await cursor.autocommit_connection(shard, bool(backends))
            backends.append((shard, backend))
        summary = await scatter_write(backends, route, sql)
    finally:
        for _, backend in backends:
            cursor.release(backend)
    status = client.status() | (_MORE if more else 0)
    client.out.write(wire.ok_packet(status, summary.affected_rows, 0, summary.warnings))
