"""A session's way to its shards: the executor's cursor, implemented by the transaction layer.

Only here is it decided which connection a statement on a shard runs on: the
transaction's branch there, a connection the session is pinned to, or one borrowed
from the pool and made to carry the session's settings. Branches are opened and
marked as written here, and the transaction is started and ended here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from sqlglot import exp

from .. import errors
from ..config import Config
from ..protocol import wire
from ..protocol.constants import Command
from ..routing.keys import bind_placeholders
from ..shards.backend import Backend
from ..shards.pool import Pools
from . import at
from . import statements as tsql
from .coordinator import Coordinator, Transaction
from .lockwait import bounded_lock_wait


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
                if route.pins_session:  # e.g. PREPARE in a transaction: keep it after COMMIT
                    state.pinned.setdefault(shard, branch.backend)
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
            return pinned, False, None
        if route.pins_session:
            state.pinned[shard] = backend
            return backend, False, None
        return backend, True, None

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
        if route.pins_session:
            self.state.pinned.setdefault(shard, backend)
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

    def start(self, implicit: bool, begin_sql: str = tsql.START) -> Transaction:
        state = self.state
        state.txn = Transaction(
            state.next_txn_characteristics, begin_sql, implicit=implicit, mode=state.txn_mode
        )
        state.next_txn_characteristics = None
        return state.txn

    async def end(self, commit: bool, reason: str = "client") -> list[str]:
        """Commits or rolls back on every branch; returns warnings for the client."""
        state = self.state
        txn, state.txn = state.txn, None
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

    async def on_branches(self, sql: str) -> None:
        """A client's SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT, on every branch."""
        txn = self.state.txn
        if txn is not None:
            for branch in txn.branches.values():
                await branch.backend.execute_ok(sql)

    async def after_error(self, exc: errors.ProxyError) -> None:
        """A deadlock or lock wait timeout ends the whole transaction, as in MySQL."""
        if self.state.txn is not None and exc.code in (1213, 1205, 1614, 1402):
            await self.end(commit=False, reason="deadlock_or_timeout")

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
        for backend in state.pinned.values():
            self.pools.discard(backend)
        state.pinned.clear()

    # --- AT mode ------------------------------------------------------------------

    def at_mode(self) -> bool:
        txn = self.state.txn
        return txn is not None and txn.mode == "at"

    def at_may_write(self, sql: str) -> bool:
        return at.may_write(sql)

    async def at_write(self, shard: str, backend: Backend, sql: str) -> wire.OkInfo:
        """An AT-mode write: the statement with its before and after images."""
        parsed, params = self.parse_cache.template(sql)
        if parsed.ast is None:
            raise errors.parse_error(f"{parsed.error}; AT mode needs to parse every write")
        ast = bind_placeholders(parsed.ast, params)
        coordinator = self.coordinator
        await coordinator.ensure_decision_table(shard)
        state = self.state
        ok, image = await at.execute_write(
            backend, ast, sql, state.database, coordinator.primary_keys
        )
        if image is not None and state.txn is not None:
            state.txn.branches[shard].images.append(image)
        if ok.last_insert_id:
            state.last_insert_id = ok.last_insert_id
        state.warnings = []
        return ok

    async def at_locking_read(self, backend: Backend, sql: str) -> bool:
        """True for SELECT ... FOR UPDATE (after waiting out other transactions' global locks)."""
        parsed, params = self.parse_cache.template(sql)
        if not isinstance(parsed.ast, exp.Select):
            return False
        settings = self.config.transactions
        await at.wait_for_global_locks(
            backend,
            bind_placeholders(parsed.ast, params),
            self.state.database,
            self.coordinator.primary_keys,
            settings.lock_retry_count,
            settings.lock_retry_interval_ms,
            self.coordinator.peeker(backend.shard),
        )
        return True

    async def at_scatter_write(
        self, backends: list[tuple[str, Backend]], route: Any, sql: str
    ) -> list[wire.OkInfo]:
        """An AT write on several shards at once; the first failure is raised after all answer."""
        results = await asyncio.gather(
            *(
                self.at_write(shard, backend, route.sql_for(shard, sql))
                for shard, backend in backends
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results
