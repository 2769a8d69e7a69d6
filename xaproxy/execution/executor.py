"""Runs a plan by the type of its root primitive: one shard relayed, several merged or summed.

`Route` is relayed from its shard packet by packet; `MergeRead` runs on every
target and is merged; `ScatterWrite` and `SplitInsert` run in the transaction on
every target and their counts are summed; `Everywhere` is DDL each shard commits
itself. A `Local` plan never gets here: the session answers it.

Everything about which connection a shard's statement runs on, and about the
transaction around it, is the cursor's (transactions/access.py); the executor only
sends text, relays or collects results, and keeps the session's result state.
"""

from __future__ import annotations

import contextlib
import logging
import re

from .. import errors
from ..protocol import wire
from ..protocol.binary import make_row_converter
from ..protocol.constants import Command, Status
from ..protocol.resultset import write_columns
from ..routing.plan import Everywhere, MergeRead, Plan, Route, ScatterWrite, SplitInsert
from ..shards.backend import Backend, warning_tuples
from .copies import Copies, CopyRefused
from .cursor import Client, Cursor
from .forward import ResultSummary, forward_result
from .native import NativeExecute
from .scatter import (
    ReadSummary,
    WriteSummary,
    refuse_short_doubles,
    scatter_read,
    scatter_returning,
    scatter_write,
    summarize_writes,
    with_unmatched,
)

log = logging.getLogger(__name__)

_MORE = int(Status.MORE_RESULTS_EXISTS)
_IN_TRANS = int(Status.IN_TRANS)
_NO_BACKSLASH_ESCAPES = int(Status.NO_BACKSLASH_ESCAPES)


async def run(
    client: Client,
    cursor: Cursor,
    sql: str,
    route: Plan,
    *,
    more: bool,
    binary: bool,
    native: NativeExecute | None = None,
) -> None:
    """Runs `sql` as the plan `route` says and queues its result (one result, or an error raised).

    `Route` is inline: the hot path, where every coroutine level costs each point select.
    `native`: an execute forwarded to the shard's own prepared statement (`sql` is its text).
    """
    await cursor.check_timeout()
    root = route.root
    if route.implicit_commit and client.txn is not None:
        await cursor.end(commit=True)
    if type(root) is not Route or root.sql is not None:
        await _run_on_several(client, cursor, sql, route, more=more, binary=binary)
        return
    txn = client.txn
    if txn is None and not client.autocommit and not root.implicit_commit:
        txn = cursor.start(implicit=False)
    # AT mode: an autocommit write or locking read is a one-statement AT transaction, so
    # that it respects other transactions' global locks (and a write keeps its images)
    implicit_at = txn is None and not root.implicit_commit and cursor.at_autocommit(sql, route)
    if implicit_at:
        txn = cursor.start(implicit=True)
    shard = root.shard
    backend, borrowed, opening = await cursor.connection(
        shard, route, defer_join=txn is not None and txn.mode == "xa"
    )
    try:
        # Another session's LAST_INSERT_ID(x) may have set the pooled connection's value
        # unseen (its OK carries no id): a statement reading it always gets the session's.
        restore_id = "last_insert_id" in sql.lower()
        sent = opening is not None and await cursor.open_branch(
            backend, shard, opening, None if restore_id or native is not None else sql
        )
        if restore_id:
            await backend.execute_ok(f"DO LAST_INSERT_ID({client.last_insert_id})")
            backend.last_insert_id = client.last_insert_id
        if (
            txn is not None
            and txn.mode == "at"
            and await _at_write(client, cursor, backend, route, sql, more, implicit_at)
        ):
            return
        if native is not None:
            await native.send(backend)
            binary = False  # the shard's rows are binary already: relayed as they are
        elif not sent:
            await backend.send(Command.QUERY, sql.encode("utf-8", "surrogateescape"))
        # an implicit transaction ends before the reply is read: not IN_TRANS
        status = client.status() & ~_IN_TRANS if implicit_at else None
        summary = await relay(
            client, backend, more, binary, status, cursor.lock_wait_watch(backend)
        )
        if implicit_at:
            await _end_locking_read(cursor)
        await _after_relay(client, cursor, backend, summary, sql, restore_id)
    except errors.BackendError as exc:
        if not backend.broken:  # SHOW WARNINGS after it lists what the shard's does
            with contextlib.suppress(errors.ProxyError):
                exc.conditions = await backend.show_warnings()
        await cursor.after_error(exc, backend)
        raise
    except errors.ShardUnavailable:
        backend.usable = False
        await cursor.after_shard_loss(backend)
        raise
    except BaseException:
        backend.usable = False  # the result stream was cut: the connection is desynced
        raise
    finally:
        if implicit_at and client.txn is txn:  # it failed: the implicit transaction ends
            with contextlib.suppress(errors.ProxyError):
                await cursor.end(commit=False, reason="implicit_at_failed")
        if borrowed:
            cursor.release(backend)


async def _after_relay(
    client: Client,
    cursor: Cursor,
    backend: Backend,
    summary: ResultSummary,
    sql: str,
    reread_id: bool,
) -> None:
    """What a relayed result leaves in the session: ids, warnings, the error."""
    keep_result_state(client, summary)
    if summary.warnings and summary.error is None:
        await capture_warnings(client, backend)
    if summary.error is None:  # after the warnings: asking the shard clears them
        await _note_relayed(client, backend, summary, sql)
        if reread_id:  # LAST_INSERT_ID(x) sets the session's value: read it back
            value = (await backend.query_rows("SELECT LAST_INSERT_ID()"))[0][0]
            client.last_insert_id = backend.last_insert_id = int(value or 0)
    if summary.error is not None:
        client.note_error(summary.error)
        await cursor.after_error(summary.error, backend)


async def _run_on_several(
    client: Client, cursor: Cursor, sql: str, route: Plan, *, more: bool, binary: bool
) -> None:
    root = route.root
    if isinstance(root, Everywhere):
        await run_everywhere(client, cursor, sql, route, more)
    elif isinstance(root, MergeRead):
        await run_merged(client, cursor, sql, route, more=more, binary=binary)
    elif route.returning:
        await run_returning_write(client, cursor, sql, route, more=more, binary=binary)
    elif isinstance(root, (ScatterWrite, SplitInsert, Route)):
        await run_scattered_write(client, cursor, sql, route, more=more)
    else:
        raise errors.ProxyError(
            1105, "HY000", f"xaproxy internal error: no executor for {type(root).__name__}"
        )


async def _at_write(
    client: Client,
    cursor: Cursor,
    backend: Backend,
    route: Plan,
    sql: str,
    more: bool,
    implicit: bool = False,
) -> bool:
    """An AT-mode write is the transaction layer's (it keeps the images); True if it was one.
    An implicit (autocommit) one commits before its OK."""
    if not (route.write or cursor.at_may_write(sql)) or await cursor.at_locking_read(backend, sql):
        return False
    _refuse_at_returning(sql)
    ok = await cursor.at_write(route.shards[0], backend, sql)
    if implicit:
        await cursor.end(commit=True)
    client.out.write(
        wire.ok_reply(client.status() | (_MORE if more else 0), ok, client.out.session_track)
    )
    return True


async def relay(
    client: Client,
    backend: Backend,
    more: bool,
    binary: bool,
    status: int | None = None,
    watch: contextlib.AbstractAsyncContextManager | None = None,
) -> ResultSummary:
    """Forwards the results of the command just sent on `backend` to the client, under
    the transaction's lock-wait `watch` when it has one."""
    result = forward_result(
        backend,
        client.out,
        session_status=client.status() if status is None else status,
        more_follows=more,
        client_deprecate_eof=client.deprecate_eof,
        binary_rows=make_row_converter if binary else None,
    )
    if watch is None:
        return await result
    async with watch:
        return await result


async def _note_relayed(client: Client, backend: Backend, summary: ResultSummary, sql: str) -> None:
    """ROW_COUNT() and FOUND_ROWS() of a relayed statement; SQL_CALC_FOUND_ROWS asks the
    shard (a false match in a literal asks too, and the shard answers the rows it sent)."""
    if not summary.ended_with_rows:
        client.note_result(affected=summary.last_affected)
        return
    client.note_result(rows=summary.last_rows)
    if "sql_calc_found_rows" in sql.lower():
        client.found_rows_count = await _shard_found_rows(backend)


async def _shard_found_rows(backend: Backend) -> int:
    rows = await backend.query_rows("SELECT FOUND_ROWS()")
    return int(rows[0][0] or 0)


def keep_result_state(client: Client, summary: ResultSummary) -> None:
    if summary.last_insert_id:
        client.last_insert_id = summary.last_insert_id
    client.no_backslash_escapes = bool(summary.backend_status & _NO_BACKSLASH_ESCAPES)
    if not summary.warnings:
        client.warnings = []


async def capture_warnings(client: Client, backend: Backend) -> None:
    """Keeps the statement's warnings: the shard connection goes back to the pool."""
    try:
        client.warnings = await backend.show_warnings()
    except errors.ProxyError:
        return


async def _connect_all(
    cursor: Cursor,
    route: Plan,
    backends: list[tuple[str, Backend]],
    borrowed: list[Backend],
    client: Client | None = None,
    sql: str = "",
) -> None:
    """Every shard's connection for a fan-out; each is given the session's LAST_INSERT_ID()
    when the statement reads it (a pooled connection has its last user's)."""
    restore = client is not None and "last_insert_id" in sql.lower()
    for shard in route.shards:
        backend, is_borrowed, _ = await cursor.connection(shard, route, bool(backends))
        backends.append((shard, backend))
        if is_borrowed:
            borrowed.append(backend)
        elif route.write:
            cursor.mark_wrote(shard)
        if restore and client is not None and backend.last_insert_id != client.last_insert_id:
            await backend.execute_ok(f"DO LAST_INSERT_ID({client.last_insert_id})")
            backend.last_insert_id = client.last_insert_id


async def run_merged(
    client: Client, cursor: Cursor, sql: str, route: Plan, *, more: bool, binary: bool
) -> None:
    """A SELECT every target runs, merged into one answer (a locking read in the transaction)."""
    implicit = client.txn is None and client.autocommit and route.write
    if client.txn is None and (not client.autocommit or route.write):
        cursor.start(implicit=implicit)
    backends: list[tuple[str, Backend]] = []
    borrowed: list[Backend] = []
    guard = None
    copies = Copies()
    try:
        await _connect_all(cursor, route, backends, borrowed, client, sql)
        guard = await cursor.guard_statement(backends, False)
        if route.write and cursor.at_mode():
            await cursor.at_locking_reads(backends, sql)
        status = client.status()
        if isinstance(route.root, MergeRead) and route.root.unmatched is not None:
            route = await with_unmatched(route, backends)
        if isinstance(route.root, MergeRead) and route.root.copies:
            await copies.make(cursor, route, backends, borrowed)
        read = await scatter_read(
            backends,
            route,
            sql,
            client.out,
            # an autocommit locking read is its own transaction, ended before the reply
            session_status=status & ~_IN_TRANS if implicit else status,
            more_follows=more,
            client_deprecate_eof=client.deprecate_eof,
            binary=binary,
            memory_limit=client.merge_memory_limit,
        )
        await _note_merged(client, backends, route, read)
        await copies.drop()
        if implicit:
            await _end_locking_read(cursor)
    except BaseException as exc:
        if isinstance(exc, errors.ProxyError) and not isinstance(exc, errors.ShardUnavailable):
            await copies.drop()  # the shards answered: the connections are in step
        else:
            copies.abandon()
        if isinstance(exc, CopyRefused):
            raise
        # a failed locking read may hold some shards' locks: an implicit transaction ends
        await _after_scatter_failure(client, cursor, backends, exc, guard)
        raise
    finally:
        for backend in borrowed:
            cursor.release(backend)


async def _note_merged(
    client: Client, backends: list[tuple[str, Backend]], route: Plan, read: ReadSummary
) -> None:
    """The session's warnings, ROW_COUNT() and FOUND_ROWS() after a merged read, taken
    from the shard connections before they go back to the pool."""
    if read.error is not None:
        client.note_error(read.error)
        return
    await collect_warnings(client, _warned(backends, read.warnings))
    if read.held_warnings:
        client.warnings = warning_tuples(read.held_warnings) + client.warnings
    client.note_result(rows=read.rows)
    root = route.root
    if isinstance(root, MergeRead) and root.calc_found_rows:
        # plain rows only (the planner refuses groups): the shards' counts add up
        client.found_rows_count = sum([await _shard_found_rows(b) for _, b in backends])


def _warned(backends: list[tuple[str, Backend]], counts: list[int]) -> list[Backend]:
    return [b for (_, b), n in zip(backends, counts, strict=True) if n]


async def collect_warnings(
    client: Client,
    backends: list[Backend],
    known: dict[Backend, list[tuple[str, int, str]]] | None = None,
) -> None:
    """The warnings of a statement several shards ran: each shard's, one after another
    (`known`: those of shards whose answer the proxy made itself)."""
    found: list[tuple[str, int, str]] = []
    for backend in backends:
        if known and backend in known:
            found.extend(known[backend])
            continue
        client.warnings = []
        await capture_warnings(client, backend)
        found.extend(client.warnings)
    client.warnings = found


async def run_scattered_write(
    client: Client, cursor: Cursor, sql: str, route: Plan, *, more: bool
) -> None:
    """A write on several shards in one transaction (implicit in autocommit): counts summed."""
    implicit = _start_write(client, cursor, route)
    backends: list[tuple[str, Backend]] = []
    borrowed: list[Backend] = []
    guard = None
    try:
        await _connect_all(cursor, route, backends, borrowed, client, sql)
        guard = await cursor.guard_statement(backends, True)
        if cursor.at_mode():  # its warnings are read with each shard's write
            results = await cursor.at_scatter_write(backends, route, sql)
            summary = summarize_writes(results, route.root)
        else:
            summary = await scatter_write(backends, route, sql)
            await collect_warnings(
                client, _warned(backends, summary.shard_warnings), summary.known_warnings
            )
    except BaseException as exc:
        await _after_scatter_failure(client, cursor, backends, exc, guard)
        raise
    finally:
        for backend in borrowed:
            cursor.release(backend)
    await _answer_write(client, cursor, summary, implicit, more)


async def run_returning_write(
    client: Client, cursor: Cursor, sql: str, route: Plan, *, more: bool, binary: bool
) -> None:
    """An INSERT/REPLACE/DELETE ... RETURNING on several shards, in one transaction
    (implicit in autocommit): the rows are sent once every shard answered and, for an
    implicit transaction, once it committed, so a failure never shows half the rows."""
    if cursor.at_mode():
        _refuse_at_returning("RETURNING")
    implicit = _start_write(client, cursor, route)
    backends: list[tuple[str, Backend]] = []
    borrowed: list[Backend] = []
    guard = None
    try:
        await _connect_all(cursor, route, backends, borrowed, client, sql)
        guard = await cursor.guard_statement(backends, True)
        answer = await scatter_returning(backends, route, sql)
        if binary:
            refuse_short_doubles(answer.coldefs, returning=True)
        await collect_warnings(client, _warned(backends, answer.shard_warnings))
    except BaseException as exc:
        await _after_scatter_failure(client, cursor, backends, exc, guard)
        raise
    finally:
        for backend in borrowed:
            cursor.release(backend)
    root = route.root
    if isinstance(root, SplitInsert) and root.generated_ids:
        client.last_insert_id = root.generated_ids[0]
    client.note_result(rows=len(answer.rows))
    commit_warnings = await cursor.end(commit=True) if implicit else []
    status = client.status() | (_MORE if more else 0)
    status |= answer.status & _NO_BACKSLASH_ESCAPES
    write_columns(client.out, answer.coldefs, status, client.deprecate_eof)
    convert = None
    if binary:
        convert = make_row_converter([wire.column_type_and_flags(c)[:2] for c in answer.coldefs])
    for row in answer.rows:
        client.out.write(convert(row) if convert is not None else row)
    warnings = answer.warnings + len(commit_warnings)
    client.out.write(
        wire.end_of_rows_tracked(
            status,
            warnings,
            client.deprecate_eof,
            client.out.session_track,
            answer.state_changed,
            answer.state,
        )
    )


_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def _refuse_at_returning(sql: str) -> None:
    """AT mode writes with before and after images and reads only an OK: RETURNING is
    refused (the word in a literal refuses too, a refusal rather than lost rows)."""
    if _RETURNING.search(sql):
        raise errors.not_supported(
            "RETURNING in AT mode (the write runs with its images)",
            "run it without RETURNING, or in XA mode",
        )


def _start_write(client: Client, cursor: Cursor, route: Plan) -> bool:
    """Opens the write's transaction (implicit in autocommit; True then), except for a
    one-shard write while the session holds table locks: a START TRANSACTION there would
    release them, so it runs as the shard's own autocommit statement."""
    if client.txn is not None:
        return False
    if client.locked_shards and len(route.shards) == 1:
        return False
    cursor.start(implicit=client.autocommit)
    return client.autocommit


async def _after_scatter_failure(
    client: Client,
    cursor: Cursor,
    backends: list[tuple[str, Backend]],
    exc: BaseException,
    guard: object,
) -> None:
    """What a failed fan-out leaves: lost shards' connections dropped, partial writes undone."""
    if isinstance(exc, errors.ShardUnavailable):
        for _, backend in backends:
            if backend.broken:
                backend.usable = False
        if client.txn is not None:
            await cursor.end(commit=False, reason="shard_lost")
    elif isinstance(exc, errors.BackendError):
        if client.txn is not None:
            # part of the statement may have applied on other shards: undo all of it
            # (the statement alone, or the transaction where MariaDB would end it)
            await cursor.statement_failed(guard, exc, [b for _, b in backends])
    else:
        for _, backend in backends:
            backend.usable = False  # a result stream was cut: the connections are desynced


async def _end_locking_read(cursor: Cursor) -> None:
    """Commits the implicit transaction of an autocommit SELECT ... FOR UPDATE over several
    shards (its locks released before the client reads on); its rows are already queued,
    so a failure here is logged, not answered."""
    try:
        await cursor.end(commit=True)
    except errors.ProxyError as exc:
        log.warning("ending an autocommit locking read failed: %s", exc)


async def _answer_write(
    client: Client, cursor: Cursor, summary: WriteSummary, implicit: bool, more: bool
) -> None:
    if summary.last_insert_id:
        client.last_insert_id = summary.last_insert_id
    client.note_result(affected=summary.affected_rows)
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
            summary.info,
            state=summary.state if client.out.session_track else b"",
        )
    )


async def run_everywhere(client: Client, cursor: Cursor, sql: str, route: Plan, more: bool) -> None:
    """DDL on a sharded or broadcast table: each shard commits it on its own, as MySQL does."""
    backends: list[tuple[str, Backend]] = []
    try:
        for shard in route.shards:
            backend = await cursor.autocommit_connection(shard, bool(backends))
            backends.append((shard, backend))
        summary = await scatter_write(backends, route, sql)
        # every shard ran the same DDL on its copy of the table, so each gives the same notes
        # ("Table 't' already exists"): one server's are the first shard's that has any
        client.warnings = []
        warned = _warned(backends, summary.shard_warnings)[:1]
        if warned:
            await capture_warnings(client, warned[0])
    finally:
        for _, backend in backends:
            cursor.release(backend)
    client.note_result(affected=0)  # DDL: ROW_COUNT() is 0 whatever the OK counts
    status = client.status() | (_MORE if more else 0)
    count = next((n for n in summary.shard_warnings if n), 0)
    client.out.write(wire.ok_packet(status, summary.affected_rows, 0, count))
