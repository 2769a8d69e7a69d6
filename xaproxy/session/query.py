"""Running statements on shards: one shard relayed, several shards scattered and merged.

Mixed into Session; also where a session borrows shard connections and makes them
carry its settings.
"""

from __future__ import annotations

import asyncio
import logging

from sqlglot import exp

from .. import errors
from ..execution.forward import ResultSummary, forward_result
from ..execution.scatter import WriteSummary, scatter_read, scatter_write
from ..protocol import wire
from ..protocol.binary import make_row_converter
from ..protocol.constants import (
    Capability,
    Command,
    Status,
)
from ..routing.keys import bind_placeholders
from ..routing.planner import Route
from ..routing.statements import (
    Kind,
    classify_keywords,
    needs_local_answer,
    split_statements,
)
from ..shards.backend import Backend
from ..transactions import at
from ..transactions.lockwait import bounded_lock_wait
from .local import LocalStatements
from .transaction_control import TransactionControl

log = logging.getLogger(__name__)


class StatementExecution:
    """Part of Session (see session.py); relies on its state."""

    async def _com_query(self, payload: bytes) -> None:
        sql = self._decode(payload[1:])
        statements = (
            split_statements(sql) if self.capabilities & Capability.MULTI_STATEMENTS else [sql]
        )
        last = len(statements) - 1
        for index, statement in enumerate(statements):
            await self._execute_text(statement, more=index < last, binary=False)

    async def _execute_text(
        self,
        sql: str,
        *,
        more: bool,
        binary: bool,
        kind: Kind | None = None,
        route: Route | None = None,
    ) -> None:
        """Runs one statement and queues its result (one result, or an error raised)."""
        if kind is None:
            kind = classify_keywords(sql)
        if kind is None:
            kind = Kind.ROUTED
            if needs_local_answer(sql) and await self._local_select(sql, more, binary):
                return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            await handler(self, sql, more, binary)
            return
        if route is None:
            route = self.ctx.route(sql, self.database)
        await self._run_routed(sql, route, more=more, binary=binary)

    async def _run_routed(self, sql: str, route: Route, *, more: bool, binary: bool) -> None:
        await self._check_transaction_timeout()
        if route.implicit_commit and self.txn is not None:
            await self._end_transaction(commit=True)
        if not route.single:
            await self._run_multi(sql, route, more=more, binary=binary)
            return
        if self.txn is None and not self.autocommit and not route.implicit_commit:
            self._start_transaction(implicit=False)
        shard = route.shards[0]
        txn = self.txn
        backend, borrowed, opening = await self._backend_for(
            shard, route, defer_join=txn is not None and txn.mode == "xa"
        )
        try:
            restore_id = (
                "last_insert_id" in sql.lower() and backend.last_insert_id != self.last_insert_id
            )
            sent = opening is not None and await self._open_branch(
                backend, shard, opening, None if restore_id else sql
            )
            if restore_id:
                await backend.execute_ok(f"DO LAST_INSERT_ID({self.last_insert_id})")
                backend.last_insert_id = self.last_insert_id
            at_write = (
                self.txn is not None
                and self.txn.mode == "at"
                and (route.write or at.may_write(sql))
                and not await self._at_locking_read(backend, sql)
            )
            if at_write:
                ok = await self._at_write(shard, backend, sql)
                self._write_ok_info(ok, more)
                return
            if not sent:
                await backend.send(Command.QUERY, sql.encode("utf-8", "surrogateescape"))
            limit = self.ctx.config.transactions.cross_shard_lock_wait_s
            if limit > 0 and self.txn is not None and len(self.txn.branches) > 1:
                async with bounded_lock_wait(self.ctx.pools, backend, limit):
                    summary = await self._forward(backend, more, binary)
            else:
                summary = await self._forward(backend, more, binary)
            self._after_result(summary, backend, sql)
            if summary.warnings and summary.error is None:
                await self._capture_warnings(backend)
            if summary.error is not None:
                self._note_error(summary.error)
                await self._after_backend_error(summary.error)
        except errors.BackendError as exc:
            await self._after_backend_error(exc)
            raise
        except errors.ShardUnavailable:
            backend.usable = False
            await self._abort_after_shard_loss(backend)
            raise
        except BaseException:
            backend.usable = False  # the result stream was cut: the connection is desynced
            raise
        finally:
            if borrowed:
                self.ctx.pools.release(backend)

    async def _forward(self, backend: Backend, more: bool, binary: bool) -> ResultSummary:
        return await forward_result(
            backend,
            self.out,
            session_status=self.status(),
            more_follows=more,
            client_deprecate_eof=self.deprecate_eof,
            binary_rows=make_row_converter if binary else None,
        )

    async def _open_branch(
        self, backend: Backend, shard: str, opening: list[str], sql: str | None
    ) -> bool:
        """Starts the branch `_backend_for(defer_join=True)` registered; True if `sql` went too.

        With `sql`, one multi-statement carries the opening and the statement: the
        opening's OKs are read here, the statement's result is left to the caller.
        """
        text = "; ".join(opening if sql is None else [*opening, sql])
        try:
            await backend.send(Command.QUERY, text.encode("utf-8", "surrogateescape"))
            await backend.read_oks(len(opening))
        except errors.BackendError:
            # the server stopped at the error: no transaction there, the statement never ran
            if self.txn is not None and self.txn.branches.get(shard) is not None:
                del self.txn.branches[shard]
            if self.pinned.get(shard) is not backend:
                self.ctx.pools.release(backend)
            raise
        return sql is not None

    async def _run_multi(self, sql: str, route: Route, *, more: bool, binary: bool) -> None:
        """A statement split over several shards (or rewritten for one)."""
        if route.implicit_commit:
            await self._run_everywhere(sql, route, more)
            return
        implicit = self.txn is None and self.autocommit and route.write
        if self.txn is None and (not self.autocommit or route.write):
            self._start_transaction(implicit=implicit)
        backends: list[tuple[str, Backend]] = []
        borrowed: list[Backend] = []
        try:
            for shard in route.shards:
                backend, is_borrowed, _ = await self._backend_for(shard, route, bool(backends))
                backends.append((shard, backend))
                if is_borrowed:
                    borrowed.append(backend)
                elif route.write and self.txn is not None:
                    self.txn.branches[shard].wrote = True
            if route.merge is not None:
                warnings = await scatter_read(
                    backends,
                    route,
                    sql,
                    self.out,
                    session_status=self.status(),
                    more_follows=more,
                    client_deprecate_eof=self.deprecate_eof,
                    binary=binary,
                )
                self.warnings = [] if not warnings else self.warnings
                return
            if self.txn is not None and self.txn.mode == "at":
                summary = await self._at_scatter_write(backends, route, sql)
            else:
                summary = await scatter_write(backends, route, sql)
        except errors.ShardUnavailable as exc:
            for _, backend in backends:
                if backend.broken:
                    backend.usable = False
            if self.txn is not None:
                await self._end_transaction(commit=False, reason="shard_lost")
            raise exc
        except errors.BackendError as exc:
            if self.txn is not None and (implicit or route.write):
                # part of the statement may have applied on other shards: undo all of it
                await self._end_transaction(commit=False, reason="statement_failed")
            raise exc
        except BaseException:
            for _, backend in backends:
                backend.usable = False
            raise
        finally:
            for backend in borrowed:
                self.ctx.pools.release(backend)
        if summary.last_insert_id:
            self.last_insert_id = summary.last_insert_id
        self.warnings = []
        commit_warnings: list[str] = []
        if implicit:
            commit_warnings = await self._end_transaction(commit=True)
        status = self.status() | (Status.MORE_RESULTS_EXISTS if more else 0)
        self.out.write(
            wire.ok_packet(
                status,
                summary.affected_rows,
                summary.last_insert_id,
                summary.warnings + len(commit_warnings),
            )
        )

    async def _at_write(self, shard: str, backend: Backend, sql: str) -> wire.OkInfo:
        """An AT-mode write: the statement with its before and after images."""
        parsed, params = self.ctx.parse_cache.template(sql)
        if parsed.ast is None:
            raise errors.parse_error(f"{parsed.error}; AT mode needs to parse every write")
        ast = bind_placeholders(parsed.ast, params)
        coordinator = self.ctx.coordinator
        await coordinator.ensure_decision_table(shard)
        ok, image = await at.execute_write(
            backend, ast, sql, self.database, coordinator.primary_keys
        )
        if image is not None and self.txn is not None:
            self.txn.branches[shard].images.append(image)
        if ok.last_insert_id:
            self.last_insert_id = ok.last_insert_id
        self.warnings = []
        return ok

    async def _at_locking_read(self, backend: Backend, sql: str) -> bool:
        """True for SELECT ... FOR UPDATE (after waiting out other transactions' global locks)."""
        parsed, params = self.ctx.parse_cache.template(sql)
        if not isinstance(parsed.ast, exp.Select):
            return False
        settings = self.ctx.config.transactions
        await at.wait_for_global_locks(
            backend,
            bind_placeholders(parsed.ast, params),
            self.database,
            self.ctx.coordinator.primary_keys,
            settings.lock_retry_count,
            settings.lock_retry_interval_ms,
            self.ctx.coordinator.peeker(backend.shard),
        )
        return True

    async def _at_scatter_write(self, backends: list[tuple[str, Backend]], route: Route, sql: str):
        results = await asyncio.gather(
            *(
                self._at_write(shard, backend, route.sql_for(shard, sql))
                for shard, backend in backends
            ),
            return_exceptions=True,
        )
        summary = WriteSummary()
        for result in results:
            if isinstance(result, BaseException):
                raise result
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

    def _write_ok_info(self, ok: wire.OkInfo, more: bool) -> None:
        status = self.status() | (Status.MORE_RESULTS_EXISTS if more else 0)
        self.out.write(
            wire.ok_packet(status, ok.affected_rows, ok.last_insert_id, ok.warnings, ok.info)
        )

    async def _run_everywhere(self, sql: str, route: Route, more: bool) -> None:
        """DDL on a sharded or broadcast table: each shard commits it on its own, as MySQL does."""
        backends: list[tuple[str, Backend]] = []
        try:
            for shard in route.shards:
                backend = await self.ctx.pools.acquire(
                    shard, self.found_rows, urgent=bool(backends)
                )
                backends.append((shard, backend))
                await self._sync(backend)
            summary = await scatter_write(backends, route, sql)
        finally:
            for _, backend in backends:
                self.ctx.pools.release(backend)
        self._ok(more, summary.affected_rows, summary.warnings)

    def _after_result(self, summary: ResultSummary, backend: Backend, sql: str) -> None:
        if summary.last_insert_id:
            self.last_insert_id = summary.last_insert_id
        self.no_backslash_escapes = bool(summary.backend_status & Status.NO_BACKSLASH_ESCAPES)
        if not summary.warnings:
            self.warnings = []

    async def _capture_warnings(self, backend: Backend) -> None:
        """Keeps the statement's warnings: the shard connection goes back to the pool."""
        try:
            rows = await backend.query_rows("SHOW WARNINGS")
        except errors.ProxyError:
            return
        self.warnings = [
            (
                (r[0] or b"").decode(),
                int(r[1] or 0),
                (r[2] or b"").decode("utf-8", "replace"),
            )
            for r in rows
        ]

    async def _after_backend_error(self, exc: errors.ProxyError) -> None:
        """A deadlock or lock wait timeout ends the whole transaction, as in MySQL."""
        if self.txn is not None and exc.code in (1213, 1205, 1614, 1402):
            await self._end_transaction(commit=False, reason="deadlock_or_timeout")

    async def _abort_after_shard_loss(self, lost: Backend) -> None:
        if self.txn is not None:
            await self._end_transaction(commit=False, reason="shard_lost")
        if self.pinned.get(lost.shard) is lost:
            del self.pinned[lost.shard]
            self.ctx.pools.discard(lost)

    async def _backend_for(
        self, shard: str, route: Route, holding: bool = False, *, defer_join: bool = False
    ) -> tuple[Backend, bool, list[str] | None]:
        """The connection a statement on `shard` runs on, whether to return it after, and
        with `defer_join`, the statements that open the transaction's branch there, which
        the caller sends in one multi-statement with its own (one round trip less).

        `holding`: the statement already holds connections of other shards.
        """
        txn = self.txn
        if txn is not None:
            branch = txn.branches.get(shard)
            if branch is not None:
                if route.write:
                    branch.wrote = True
                if route.pins_session:  # e.g. PREPARE in a transaction: keep it after COMMIT
                    self.pinned.setdefault(shard, branch.backend)
                return branch.backend, False, None
        pinned = self.pinned.get(shard)
        backend = pinned
        if backend is None:
            urgent = holding or bool(self.pinned) or (txn is not None and bool(txn.branches))
            backend = await self.ctx.pools.acquire(shard, self.found_rows, urgent=urgent)
            try:
                await self._sync(backend)
            except BaseException:
                self.ctx.pools.discard(backend)
                raise
        else:
            await self._sync(backend)
        if txn is not None:
            coordinator = self.ctx.coordinator
            opening: list[str] | None = None
            try:
                if defer_join:
                    opening, xid = await coordinator.opening(txn, shard)
                    branch = coordinator.add_branch(txn, shard, backend, xid)
                else:
                    branch = await coordinator.join(txn, shard, backend)
            except BaseException:
                if pinned is None:
                    self.ctx.pools.release(backend)
                raise
            branch.wrote = route.write
            if route.pins_session:
                self.pinned.setdefault(shard, backend)
            return backend, False, opening
        if pinned is not None:
            return pinned, False, None
        if route.pins_session:
            self.pinned[shard] = backend
            return backend, False, None
        return backend, True, None

    async def _sync(self, backend: Backend) -> None:
        """Makes a pooled connection carry this session's settings and database."""
        wanted = self.settings
        have = backend.settings
        if have != wanted:
            if have == wanted[: len(have)]:
                todo = wanted[len(have) :]
            else:
                await backend.reset()
                backend.database = None
                todo = wanted
            if todo:
                await backend.execute_ok("; ".join(todo))
            backend.settings = wanted
        database = self.database
        if database and backend.database != database:
            await backend.init_db(database)


# Statement kinds the session answers itself, by handler.
_HANDLERS = {
    Kind.BEGIN: TransactionControl._begin,
    Kind.COMMIT: TransactionControl._commit,
    Kind.ROLLBACK: TransactionControl._rollback,
    Kind.SAVEPOINT: TransactionControl._savepoint,
    Kind.SET: LocalStatements._set,
    Kind.USE: LocalStatements._use_statement,
    Kind.SHOW_DATABASES: LocalStatements._show_databases,
    Kind.SHOW_TABLES: LocalStatements._show_tables,
    Kind.SHOW_WARNINGS: LocalStatements._show_warnings,
    Kind.SHOW_ERRORS: LocalStatements._show_warnings,
    Kind.SHOW_WARNING_COUNT: LocalStatements._show_warning_count,
    Kind.SHOW_ERROR_COUNT: LocalStatements._show_warning_count,
    Kind.XA: LocalStatements._xa,
    Kind.KILL: LocalStatements._kill_statement,
    Kind.CREATE_DATABASE: LocalStatements._database_statement,
    Kind.DROP_DATABASE: LocalStatements._database_statement,
    Kind.PROXY: LocalStatements._proxy_command,
    Kind.LOAD_DATA_LOCAL: LocalStatements._load_data_local,
    Kind.EMPTY: LocalStatements._empty,
}
