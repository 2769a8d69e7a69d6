"""A session's way to its shards: the executor's cursor, implemented by the transaction layer.

Only here is it decided which connection a statement on a shard runs on: the
transaction's branch there, a connection the session is pinned to, or one borrowed
from the pool and made to carry the session's settings. Branches are opened and
marked as written here, and the transaction is started and ended here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlglot import exp

from .. import errors
from ..analysis import Kind, analyze
from ..config import Config
from ..protocol import wire
from ..protocol.constants import Command
from ..routing.keys import bind_placeholders
from ..shards.backend import Backend
from ..shards.pool import Pools
from . import at, metrics
from . import statements as tsql
from .coordinator import Coordinator, Transaction
from .lockwait import bounded_lock_wait

log = logging.getLogger(__name__)

# Errors after which MariaDB has rolled back the whole transaction on that server (a
# deadlock; an XA branch rolled back); a lock wait timeout too when the shard runs with
# innodb_rollback_on_timeout=ON (asked on the shard when it happens).
_ENDS_TRANSACTION = frozenset({1213, 1614, 1402})
_LOCK_WAIT_TIMEOUT = 1205
_WHOLE_TRANSACTION_ROLLED_BACK = (
    " (xaproxy: the whole transaction was rolled back on every shard, as MariaDB does "
    "after this error; the session is no longer in a transaction: start it again)"
)


class SessionFacts(Protocol):
    """The session state the transaction layer reads and keeps (session/state.py)."""

    database: str | None
    autocommit: bool
    txn_mode: str
    timed_out: bool
    txn: Transaction | None
    pinned: dict[str, Backend]
    settings: tuple[str, ...]
    next_txn_characteristics: str | None
    last_insert_id: int
    warnings: list[tuple[str, int, str]]
    found_rows: bool
    pending_savepoints: list[str]
    pin_request: str | None
    pin_causes: list[str]


@dataclass(slots=True)
class StatementGuard:
    """What undoes a failed multi-shard statement inside a transaction: the proxy's
    savepoint on each shard it runs on (`savepoint`) and, for AT mode, how many images
    each branch had before it."""

    shards: list[str]
    savepoint: bool
    marks: dict[str, int] = field(default_factory=dict)


def apply_savepoint(names: list[str], action: str, name: str) -> None:
    """SAVEPOINT / ROLLBACK TO / RELEASE on a list of savepoint names, as MariaDB keeps them:
    names compare without case; setting an existing name moves it last; ROLLBACK TO keeps
    the savepoint and drops the later ones; RELEASE drops it and the later ones."""
    lowered = [n.lower() for n in names]
    key = name.lower()
    if action == "SAVEPOINT":
        if key in lowered:
            del names[lowered.index(key)]
        names.append(name)
        return
    if key not in lowered:
        raise errors.ProxyError(1305, "42000", f"SAVEPOINT {name} does not exist")
    del names[lowered.index(key) + (1 if action == "ROLLBACK" else 0) :]


class ShardAccess:
    """The cursor the executor runs plans through, one per client session."""

    __slots__ = ("config", "coordinator", "parse_cache", "pools", "state")

    def __init__(
        self,
        state: SessionFacts,
        pools: Pools,
        coordinator: Coordinator,
        config: Config,
        parse_cache: Any,
    ) -> None:
        self.state = state
        self.pools = pools
        self.coordinator = coordinator
        self.config = config
        self.parse_cache = parse_cache

    # --- connections --------------------------------------------------------------

    async def connection(
        self, shard: str, route: Any, holding: bool = False, *, defer_join: bool = False
    ) -> tuple[Backend, bool, list[str] | None]:
        """The connection a statement on `shard` runs on, whether to release it after, and
        with `defer_join`, the statements that open the transaction's branch there, which
        the caller sends in one multi-statement with its own (one round trip less).

        `holding`: the statement already holds connections of other shards.
        """
        state = self.state
        txn = state.txn
        if txn is not None:
            branch = txn.branches.get(shard)
            if branch is not None:
                if route.write:
                    branch.wrote = True
                if self._pins(route):  # e.g. PREPARE in a transaction: keep it after COMMIT
                    self._pin(shard, branch.backend, route)
                if state.database and branch.backend.database != state.database:
                    # USE inside the transaction: the branch must read the new database
                    await branch.backend.init_db(state.database)
                return branch.backend, False, None
        pinned = state.pinned.get(shard)
        backend = pinned
        if backend is None:
            urgent = holding or bool(state.pinned) or (txn is not None and bool(txn.branches))
            backend = await self._borrow(shard, urgent)
        else:
            await self.sync(backend)
        if txn is not None:
            return backend, False, await self._join(txn, shard, backend, route, pinned, defer_join)
        if pinned is not None:
            if self._pins(route):
                self._pin(shard, pinned, route)
            return pinned, False, None
        if self._pins(route):
            self._pin(shard, backend, route)
            return backend, False, None
        return backend, True, None

    def _pins(self, route: Any) -> bool:
        return route.pins_session or self.state.pin_request is not None

    def _pin(self, shard: str, backend: Backend, route: Any = None, cause: str = "") -> None:
        """Keeps `backend` for the rest of the session: it holds state no other connection
        has (user variables, a temporary table, a named lock...); noted with its cause."""
        state = self.state
        state.pinned.setdefault(shard, backend)
        cause = cause or state.pin_request or "temporary table or named lock"
        if cause not in state.pin_causes:
            state.pin_causes.append(cause)
            metrics.PINNED.labels(cause).inc()

    async def _join(
        self,
        txn: Transaction,
        shard: str,
        backend: Backend,
        route: Any,
        pinned: Backend | None,
        defer_join: bool,
    ) -> list[str] | None:
        coordinator = self.coordinator
        opening: list[str] | None = None
        try:
            if defer_join:
                opening, xid = await coordinator.opening(txn, shard)
                branch = coordinator.add_branch(txn, shard, backend, xid)
            else:
                branch = await coordinator.join(txn, shard, backend)
        except BaseException:
            if pinned is None:
                self.pools.release(backend)
            raise
        branch.wrote = route.write
        if self._pins(route):
            self._pin(shard, backend, route)
        return opening

    async def _borrow(self, shard: str, urgent: bool) -> Backend:
        backend = await self.pools.acquire(shard, self.state.found_rows, urgent=urgent)
        backend.owner = self.state.id
        try:
            await self.sync(backend)
        except BaseException:
            self.pools.discard(backend)
            raise
        return backend

    async def connection_outside_writes(self, shard: str) -> tuple[Backend, bool]:
        """A connection for a statement that joins no branch (SET validation, metadata)."""
        state = self.state
        if state.txn is not None and shard in state.txn.branches:
            return state.txn.branches[shard].backend, False
        if shard in state.pinned:
            return state.pinned[shard], False
        return await self._borrow(shard, False), True

    async def pooled(self, shard: str) -> Backend:
        """A pooled connection of its own with the session's settings, whatever the
        session holds on `shard` (a probe of what a statement reports); released by the
        caller. Urgent when the session already holds connections: waiting for the pool
        while holding some could wait for ever."""
        state = self.state
        txn = state.txn
        return await self._borrow(
            shard, bool(state.pinned) or (txn is not None and bool(txn.branches))
        )

    @contextlib.asynccontextmanager
    async def outside_writes(self, shard: str) -> AsyncIterator[Backend]:
        """connection_outside_writes for one block: a borrowed connection goes back after it."""
        backend, borrowed = await self.connection_outside_writes(shard)
        try:
            yield backend
        finally:
            if borrowed:
                self.release(backend)

    async def pinned_connection(self, shard: str, cause: str) -> Backend:
        """The connection on `shard` the session keeps from now on (for `cause`), for a
        statement that joins no branch (a SET of user variables)."""
        state = self.state
        txn = state.txn
        if txn is not None and shard in txn.branches:
            backend = txn.branches[shard].backend
        elif shard in state.pinned:
            backend = state.pinned[shard]
            await self.sync(backend)
        else:
            urgent = bool(state.pinned) or (txn is not None and bool(txn.branches))
            backend = await self._borrow(shard, urgent)
        self._pin(shard, backend, cause=cause)
        return backend

    async def autocommit_connection(self, shard: str, holding: bool) -> Backend:
        """A pooled connection outside the transaction (DDL commits on its own)."""
        return await self._borrow(shard, holding)

    async def plain_connection(self, shard: str) -> Backend:
        """A pooled connection as it is, without the session's settings."""
        backend = await self.pools.acquire(shard, self.state.found_rows)
        backend.owner = self.state.id
        return backend

    def release(self, backend: Backend) -> None:
        self.pools.release(backend)

    def mark_wrote(self, shard: str) -> None:
        txn = self.state.txn
        if txn is not None:
            txn.branches[shard].wrote = True

    async def sync(self, backend: Backend) -> None:
        """Makes a pooled connection carry this session's settings and database."""
        state = self.state
        wanted = state.settings
        have = backend.settings
        if have != wanted:
            if have == wanted[: len(have)]:
                todo = wanted[len(have) :]
            elif state.pinned.get(backend.shard) is backend:
                # a reset would drop what the session is pinned for: the settings in
                # order on top give the same final values
                todo = wanted
            else:
                await backend.reset()
                backend.database = None
                todo = wanted
            if todo:
                await backend.execute_ok("; ".join(todo))
            backend.settings = wanted
        database = state.database
        if database and backend.database != database:
            await backend.init_db(database)

    async def open_branch(
        self, backend: Backend, shard: str, opening: list[str], sql: str | None
    ) -> bool:
        """Starts the branch `connection(defer_join=True)` registered; True if `sql` went too.

        With `sql`, one multi-statement carries the opening and the statement: the
        opening's OKs are read here, the statement's result is left to the caller.
        """
        text = tsql.join(*opening) if sql is None else tsql.join(*opening, sql)
        try:
            await backend.send(Command.QUERY, text.encode("utf-8", "surrogateescape"))
            await backend.read_oks(len(opening))
        except errors.BackendError:
            # the server stopped at the error: no transaction there, the statement never ran
            state = self.state
            if state.txn is not None and state.txn.branches.get(shard) is not None:
                del state.txn.branches[shard]
            if state.pinned.get(shard) is not backend:
                self.pools.release(backend)
            raise
        return sql is not None

    def lock_wait_watch(self, backend: Backend) -> Any:
        """A watchdog on cross-shard lock waits, or None when one is not needed."""
        limit = self.config.transactions.cross_shard_lock_wait_s
        txn = self.state.txn
        if limit > 0 and txn is not None and len(txn.branches) > 1:
            return bounded_lock_wait(self.pools, backend, limit)
        return None

    # --- the transaction ----------------------------------------------------------

    def start(
        self, implicit: bool, begin_sql: str = tsql.START, read_only: bool = False
    ) -> Transaction:
        state = self.state
        state.txn = Transaction(
            state.next_txn_characteristics,
            begin_sql,
            implicit=implicit,
            read_only=read_only,
            mode=state.txn_mode,
        )
        state.next_txn_characteristics = None
        if not implicit:
            # savepoints set with autocommit off before the transaction's first statement
            state.txn.savepoints, state.pending_savepoints = state.pending_savepoints, []
        return state.txn

    async def end(self, commit: bool, reason: str = "client") -> list[str]:
        """Commits or rolls back on every branch; returns warnings for the client."""
        state = self.state
        txn, state.txn = state.txn, None
        state.pending_savepoints = []
        if txn is None:
            return []
        coordinator = self.coordinator
        try:
            if commit:
                warnings = await coordinator.commit(txn)
                if warnings:
                    state.warnings = [("Warning", 1105, w) for w in warnings]
                return warnings
            await coordinator.rollback(txn, reason)
            return []
        finally:
            for shard, branch in txn.branches.items():
                if state.pinned.get(shard) is not branch.backend:
                    self.pools.release(branch.backend)

    async def check_timeout(self) -> None:
        """A transaction older than transactions.timeout_s is rolled back, and the client told once."""
        state = self.state
        txn = state.txn
        limit = self.config.transactions.timeout_s
        if txn is not None and time.monotonic() - txn.started > limit:
            await self.end(commit=False, reason="timeout")
            state.timed_out = True
        if state.timed_out:
            state.timed_out = False
            raise errors.ProxyError(
                1205,
                "HY000",
                f"xaproxy rolled back the transaction: it was open longer than "
                f"transactions.timeout_s ({limit:g}s); start it again",
            )

    def expired(self) -> bool:
        txn = self.state.txn
        return (
            txn is not None and time.monotonic() - txn.started > self.config.transactions.timeout_s
        )

    async def savepoint(self, action: str, name: str) -> None:
        """A client's SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT (action SAVEPOINT,
        ROLLBACK or RELEASE), on every branch, with MariaDB's answers (1305)."""
        state = self.state
        txn = state.txn
        if txn is None:
            if not state.autocommit:
                # MariaDB keeps it for the transaction the next statement starts
                apply_savepoint(state.pending_savepoints, action, name)
            elif action != "SAVEPOINT":  # with autocommit on MariaDB forgets it at once
                raise errors.ProxyError(1305, "42000", f"SAVEPOINT {name} does not exist")
            return
        names = list(txn.savepoints)
        apply_savepoint(names, action, name)  # 1305 before anything is sent
        text = {"SAVEPOINT": tsql.savepoint, "ROLLBACK": tsql.rollback_to}.get(
            action, tsql.release
        )(name)
        await _on_each([b.backend for b in txn.branches.values()], text)
        txn.savepoints = names
        key = name.lower()
        if action == "SAVEPOINT":
            txn.image_marks[key] = {s: len(b.images) for s, b in txn.branches.items()}
        elif action == "ROLLBACK":
            marks = txn.image_marks.get(key, {})
            for shard, branch in txn.branches.items():
                del branch.images[marks.get(shard, 0) :]

    async def guard_statement(
        self, backends: list[tuple[str, Backend]], writes: bool
    ) -> StatementGuard | None:
        """Before a multi-shard statement inside a transaction: the proxy's savepoint on
        each of its shards, so that a failure on one undoes it on all and the transaction
        goes on, as MariaDB's statement atomicity has it. None outside a transaction (an
        implicit transaction is the statement itself: it is rolled back whole)."""
        txn = self.state.txn
        if txn is None or txn.implicit:
            return None
        shards = [shard for shard, _ in backends]
        guard = StatementGuard(shards, writes)
        if writes:
            guard.marks = {s: len(txn.branches[s].images) for s in shards if s in txn.branches}
            await _on_each([b for _, b in backends], tsql.savepoint(tsql.STATEMENT_SAVEPOINT))
        return guard

    async def statement_failed(
        self, guard: StatementGuard | None, exc: errors.ProxyError, backends: list[Backend]
    ) -> None:
        """A multi-shard statement failed: undone on every shard it ran on (the transaction
        goes on), or the whole transaction rolled back where MariaDB would do that too
        (and the client's error says so)."""
        txn = self.state.txn
        if txn is None:
            return
        if txn.implicit:  # the statement was the transaction
            await self.end(commit=False, reason="statement_failed")
            return
        if await self._ends_transaction(exc, backends):
            await self._end_after(exc)
            return
        if guard is None or not guard.savepoint:
            return  # it failed before it ran, or a read: nothing to undo
        try:
            await _on_each(backends, tsql.rollback_to(tsql.STATEMENT_SAVEPOINT))
        except errors.ProxyError as undo_failure:
            log.warning("could not undo a failed statement on every shard: %s", undo_failure)
            await self._end_after(exc)
            return
        for shard in guard.shards:
            branch = txn.branches.get(shard)
            if branch is not None:
                del branch.images[guard.marks.get(shard, 0) :]

    async def _ends_transaction(self, exc: errors.ProxyError, backends: list[Backend]) -> bool:
        if exc.code in _ENDS_TRANSACTION or isinstance(exc, errors.EndsTransaction):
            return True
        if exc.code != _LOCK_WAIT_TIMEOUT or not isinstance(exc, errors.BackendError):
            return False
        for backend in backends:  # a shard's own lock wait timeout: as that shard is set up
            try:
                rows = await backend.query_rows("SELECT @@innodb_rollback_on_timeout")
            except errors.ProxyError:
                return True
            if rows and rows[0][0] not in (b"0", None):
                return True
        return False

    async def _end_after(self, exc: errors.ProxyError) -> None:
        await self.end(commit=False, reason="deadlock_or_timeout")
        exc.message += _WHOLE_TRANSACTION_ROLLED_BACK
        exc.args = (exc.message,)

    async def after_error(self, exc: errors.ProxyError, backend: Backend | None = None) -> None:
        """After a single-shard statement failed in a transaction: the shard undid the
        statement itself; the proxy ends the whole transaction only where MariaDB did."""
        if self.state.txn is not None and await self._ends_transaction(
            exc, [backend] if backend is not None else []
        ):
            await self._end_after(exc)

    async def after_shard_loss(self, lost: Backend) -> None:
        state = self.state
        if state.txn is not None:
            await self.end(commit=False, reason="shard_lost")
        if state.pinned.get(lost.shard) is lost:
            del state.pinned[lost.shard]
            self.pools.discard(lost)

    async def release_everything(self) -> None:
        """Rolls back what the client left open and gives connections back."""
        state = self.state
        if state.txn is not None:
            # CancelledError too: shutdown may cancel a session mid-rollback, and the
            # connections must still be given back below.
            try:
                await asyncio.shield(self.end(commit=False, reason="disconnect"))
            except (Exception, asyncio.CancelledError):
                pass
        pinned = list(state.pinned.values())
        state.pinned.clear()
        state.pin_causes.clear()
        for backend in pinned:
            await self._reset_for_reuse(backend)

    async def _reset_for_reuse(self, backend: Backend) -> None:
        """A connection that carried a session's own state goes back to the pool only
        after COM_RESET_CONNECTION (user variables, temporary tables, locks all gone)."""
        try:
            if backend.broken:
                raise errors.shard_lost(backend.shard, "broken")
            await asyncio.shield(backend.reset())
            backend.database = None
        except (Exception, asyncio.CancelledError):
            self.pools.discard(backend)
            return
        self.pools.release(backend)

    # --- AT mode ------------------------------------------------------------------

    def at_mode(self) -> bool:
        txn = self.state.txn
        return txn is not None and txn.mode == "at"

    def at_may_write(self, sql: str) -> bool:
        return at.may_write(sql)

    async def at_write(
        self,
        shard: str,
        backend: Backend,
        sql: str,
        warnings: list[tuple[str, int, str]] | None = None,
    ) -> wire.OkInfo:
        """An AT-mode write: the statement with its before and after images. Its warnings
        (read before the image reads clear them) become the session's, or go to
        `warnings` (a write on several shards gathers each shard's)."""
        state = self.state
        implicit = state.txn is not None and state.txn.implicit
        parsed, params = self.parse_cache.template(sql)
        coordinator = self.coordinator
        found: list[tuple[str, int, str]] = []
        try:
            if parsed.ast is None:
                raise at.NotImageable(
                    *_args(
                        errors.parse_error(f"{parsed.error}; AT mode needs to parse every write")
                    )
                )
            ast = bind_placeholders(parsed.ast, params)
            await coordinator.ensure_decision_table(shard)
            ok, image = await at.execute_write(
                backend, ast, sql, state.database, coordinator.primary_keys, found
            )
        except at.NotImageable:
            if not implicit:
                raise
            # An autocommit statement AT mode cannot image (no primary key, INSERT IGNORE,
            # REPLACE ...) runs as it did before AT mode checked autocommit writes: alone,
            # without images and without waiting for global locks.
            ok, image = await backend.execute_ok(sql), None
            if ok.warnings:  # nothing ran after it: its warnings are still there
                found = await backend.show_warnings()
        if image is not None and state.txn is not None:
            state.txn.branches[shard].images.append(image)
        if ok.last_insert_id:
            state.last_insert_id = ok.last_insert_id
        if warnings is not None:
            warnings.extend(found)
        else:
            state.warnings = found if ok.warnings else []
        return ok

    async def at_locking_read(self, backend: Backend, sql: str) -> bool:
        """True for SELECT ... FOR UPDATE (after waiting out other transactions' global locks)."""
        parsed, params = self.parse_cache.template(sql)
        if not isinstance(parsed.ast, exp.Select):
            return False
        await at.wait_for_global_locks(
            backend,
            bind_placeholders(parsed.ast, params),
            self.state.database,
            self.coordinator.primary_keys,
            self.coordinator.lock_wait(backend.shard),
        )
        return True

    async def at_locking_reads(self, backends: list[tuple[str, Backend]], sql: str) -> None:
        """A locking read over several shards waits out other transactions' global locks
        on each shard's rows, as a one-shard locking read does."""
        parsed, params = self.parse_cache.template(sql)
        if not isinstance(parsed.ast, exp.Select):
            return
        ast = bind_placeholders(parsed.ast, params)
        coordinator = self.coordinator
        await _all_of(
            at.wait_for_global_locks(
                backend,
                ast,
                self.state.database,
                coordinator.primary_keys,
                coordinator.lock_wait(shard),
            )
            for shard, backend in backends
        )

    def at_autocommit(self, sql: str, route: Any) -> bool:
        """True for an autocommit write or locking read in AT mode: it runs as a
        one-statement AT transaction (global locks respected, images taken)."""
        state = self.state
        if state.txn is not None or not state.autocommit or state.txn_mode != "at":
            return False
        kind = analyze(sql).kind
        if kind in (Kind.INSERT, Kind.UPDATE, Kind.DELETE, Kind.REPLACE):
            return True
        return kind == Kind.SELECT and bool(getattr(route, "write", False))

    async def at_scatter_write(
        self, backends: list[tuple[str, Backend]], route: Any, sql: str
    ) -> list[wire.OkInfo]:
        """An AT write on several shards at once; the first failure is raised after all answer."""
        found: list[list[tuple[str, int, str]]] = [[] for _ in backends]
        results = await asyncio.gather(
            *(
                self.at_write(shard, backend, route.sql_for(shard, sql), found[i])
                for i, (shard, backend) in enumerate(backends)
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.state.warnings = [w for shard_warnings in found for w in shard_warnings]
        return results


async def _on_each(backends: list[Backend], sql: str) -> None:
    """`sql` on every connection at once; the first failure raised after all answered."""
    results = await asyncio.gather(*(b.execute_ok(sql) for b in backends), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _all_of(steps: Iterable[Awaitable[object]]) -> None:
    """Runs the steps at once; the first failure raised after all of them ended."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _args(exc: errors.ProxyError) -> tuple[int, str, str]:
    return exc.code, exc.sqlstate, exc.message
