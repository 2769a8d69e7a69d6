"""The commit protocol of a client transaction that touched one or more shards.

The first shard a transaction touches runs a plain local transaction; every
shard that joins later runs an XA branch. At COMMIT:

  one shard wrote        -> plain COMMIT (or XA COMMIT ... ONE PHASE): no log, no prepare
  several shards wrote   -> XA END + XA PREPARE on the XA branches, in parallel
                            decision: INSERT the commit row in the local branch + COMMIT
                            XA COMMIT on the prepared branches, in parallel
                            (a branch that cannot be reached is finished in the background)

The local branch's COMMIT is the decision point ("last resource" commit): before
it every branch rolls back, after it every branch commits, whoever recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import errors
from ..config import Config
from ..shards.backend import Backend
from ..shards.pool import Pools
from . import at, decisions, failpoints, metrics
from . import statements as tsql
from .at_locks import Holder, LocalLocks
from .images import StatementImage
from .peek import BatchedPeek
from .xid import GlobalId, Xid, new_global_id

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Branch:
    shard: str
    backend: Backend
    xid: Xid | None  # None: a local transaction (the decision branch in XA mode; every AT branch)
    wrote: bool = False
    images: list[StatementImage] = field(default_factory=list)  # AT mode: what it changed


@dataclass(slots=True)
class Transaction:
    """A client transaction; branches join lazily, when a statement first touches a shard."""

    characteristics: str | None = None  # a pending `SET TRANSACTION ...` for this transaction
    begin_sql: str = tsql.START
    implicit: bool = False  # one autocommit statement that spans shards
    read_only: bool = False  # START TRANSACTION READ ONLY: XA branches are made read-only too
    mode: str = "xa"  # "xa" | "at"
    branches: dict[str, Branch] = field(default_factory=dict)
    savepoints: list[str] = field(default_factory=list)
    # AT mode: per savepoint (lower case), how many images each branch had when it was set
    image_marks: dict[str, dict[str, int]] = field(default_factory=dict)
    gid: GlobalId | None = None
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    state: str = "active"

    @property
    def local(self) -> Branch | None:
        for branch in self.branches.values():
            if branch.xid is None:
                return branch
        return None

    def backends(self) -> dict[str, Backend]:
        return {shard: b.backend for shard, b in self.branches.items()}


class CommitOutcomeUnknown(errors.ProxyError):
    pass


class Coordinator:
    """Runs the commit protocol and remembers what it still has to finish."""

    def __init__(self, config: Config, pools: Pools) -> None:
        self.config = config
        self.pools = pools
        self.proxy_id = config.proxy_id
        # called when branches are left for recovery, so it retries at once and often
        # (set by the server to the resolver's wake(); None: the periodic sweep only)
        self.on_in_doubt: Callable[[], None] | None = None
        self.active: dict[str, Transaction] = {}  # gtrid -> transaction in flight here
        self._cleanup: dict[str, list[str]] = {}  # decision shard -> gtrids to delete
        self._cleanup_task: asyncio.Task | None = None
        self.ready_shards: set[str] = set()
        self.primary_keys = at.PrimaryKeys()
        self._releases: list[tuple[str, str]] = []  # AT phase 2: (shard, gtrid)
        self._retries: set[asyncio.Task] = set()  # AT compensations still to finish
        self.local_locks = LocalLocks()  # AT global locks held by this process's transactions
        self._peeks: dict[str, BatchedPeek] = {}

    # --- joining ------------------------------------------------------------------

    async def join(self, txn: Transaction, shard: str, backend: Backend) -> Branch:
        """Starts the transaction's branch on `shard` over `backend`."""
        opening, xid = await self.opening(txn, shard)
        await backend.execute_ok(tsql.join(*opening))
        return self.add_branch(txn, shard, backend, xid)

    async def opening(self, txn: Transaction, shard: str) -> tuple[list[str], Xid | None]:
        """The statements that start the branch on `shard`, and its xid (None: local).

        A session may send them in one multi-statement with the branch's first
        statement (see `add_branch`): the server stops at the first error, so that
        statement never runs outside the transaction.
        """
        statements: list[str] = []
        if txn.characteristics:
            statements.append(txn.characteristics)
        if not txn.branches or txn.mode == "at":
            statements.append(txn.begin_sql)
            xid = None
        else:
            if txn.gid is None:
                local = txn.local
                assert local is not None
                await self.ensure_decision_table(local.shard)
                txn.gid = new_global_id(self.proxy_id, local.shard)
                self.active[txn.gid.gtrid] = txn
            xid = txn.gid.branch(shard)
            if txn.read_only:
                statements.append(tsql.NEXT_READ_ONLY)
            statements.append(tsql.xa_start(xid.sql()))
        statements.extend(tsql.savepoint(name) for name in txn.savepoints)
        return statements, xid

    def add_branch(self, txn: Transaction, shard: str, backend: Backend, xid: Xid | None) -> Branch:
        """Records a branch whose opening statements were sent (or are about to be)."""
        branch = Branch(shard, backend, xid)
        txn.branches[shard] = branch
        return branch

    async def ensure_decision_table(self, shard: str) -> None:
        """The decision table must exist before a local branch writes to it (DDL would commit)."""
        if shard in self.ready_shards:
            return
        backend = await self.pools.acquire(shard, urgent=True)
        try:
            await decisions.ensure_table(backend)
            self.ready_shards.add(shard)
        finally:
            self.pools.release(backend)

    # --- ending -------------------------------------------------------------------

    async def commit(self, txn: Transaction) -> list[str]:
        """Commits everywhere or nowhere; returns warnings for the client."""
        txn.state = "committing"
        try:
            if txn.mode == "at":
                return await self._commit_at(txn)
            return await self._commit(txn)
        finally:
            if txn.gid is not None and txn.state != "in_doubt":
                self.active.pop(txn.gid.gtrid, None)

    async def _commit(self, txn: Transaction) -> list[str]:
        branches = list(txn.branches.values())
        if not branches:
            return []
        local = txn.local
        assert local is not None
        xa = [b for b in branches if b.xid is not None]
        writers = [b for b in xa if b.wrote]
        readers = [b for b in xa if not b.wrote]
        # Read-only XA branches hold nothing the decision needs: end them now.
        await self._finish_quietly(readers, tsql.xa_end_and_rollback)
        if not writers:
            await local.backend.execute_ok(tsql.COMMIT)
            metrics.COMMITS.labels("one_phase").inc()
            txn.state = "committed"
            return []
        if len(writers) == 1 and not local.wrote:
            only = writers[0]
            await only.backend.execute_ok(tsql.xa_commit_one_phase(only.xid.sql()))
            with contextlib.suppress(errors.ProxyError):
                await local.backend.execute_ok(tsql.COMMIT)
            metrics.COMMITS.labels("one_phase").inc()
            txn.state = "committed"
            return []
        return await self._two_phase(txn, local, writers)

    async def _two_phase(self, txn: Transaction, local: Branch, writers: list[Branch]) -> list[str]:
        gid = txn.gid
        assert gid is not None
        await failpoints.hit("before_prepare")
        _, _, failure = await _in_parallel(
            writers,
            lambda b: b.backend.execute_ok(tsql.xa_prepare(b.xid.sql())),
            "after_prepare_some",
        )
        if failure is not None:
            txn.state = "rolling_back"
            await self._rollback_branches(txn)
            metrics.ROLLBACKS.labels("prepare_failed").inc()
            raise errors.ProxyError(
                failure.code if failure.code in (1213, 1205) else 1402,
                failure.sqlstate if failure.code in (1213, 1205) else "XA100",
                f"Transaction rolled back on every shard: a shard could not prepare "
                f"({failure.message})",
            )
        await failpoints.hit("after_prepare_all")
        # The decision: the commit row commits together with the local branch.
        decision_sql = decisions.commit_row_sql(gid, [b.shard for b in writers], self.proxy_id)
        try:
            await local.backend.execute_ok(tsql.then_commit(decision_sql))
        except errors.BackendError as exc:
            # The local branch did not commit (e.g. recovery already wrote an abort marker).
            txn.state = "rolling_back"
            with contextlib.suppress(errors.ProxyError):
                await local.backend.execute_ok(tsql.ROLLBACK)
            await self._rollback_prepared(writers, gid)
            metrics.ROLLBACKS.labels("decision_failed").inc()
            raise errors.ProxyError(
                1402,
                "XA100",
                f"Transaction rolled back on every shard: the commit decision could not be "
                f"recorded on shard '{local.shard}' ({exc.message})",
            ) from None
        except errors.ShardUnavailable as exc:
            outcome = await self._learn_outcome(gid)
            if outcome == decisions.COMMIT:
                pass  # it did commit; finish below
            elif outcome == decisions.ABORT:
                await self._rollback_prepared(writers, gid)
                metrics.ROLLBACKS.labels("decision_lost").inc()
                raise errors.ProxyError(
                    1402,
                    "XA100",
                    f"Transaction rolled back on every shard: shard '{local.shard}' failed while "
                    "recording the commit decision",
                ) from None
            else:
                txn.state = "in_doubt"
                self._needs_recovery()
                # Not "in flight here" any more: while listed in `active`, this proxy's own
                # resolver would skip its prepared branches forever.
                self.active.pop(gid.gtrid, None)
                log.warning(
                    "transaction %s is in doubt: decision shard %s failed while recording the "
                    "decision; recovery will finish it",
                    gid.gtrid,
                    local.shard,
                )
                raise CommitOutcomeUnknown(
                    1180,
                    "HY000",
                    f"Got error during COMMIT: shard '{local.shard}' failed while recording the "
                    f"commit decision of {gid.gtrid} and cannot be asked now ({exc.message}); "
                    "recovery will finish the transaction consistently on every shard",
                ) from None
        txn.state = "committed"
        await failpoints.hit("after_decision")
        warnings = await self._commit_prepared(writers)
        await failpoints.hit("after_commit_all")
        metrics.COMMITS.labels("xa").inc()
        if not warnings:
            self._schedule_cleanup(local.shard, gid.gtrid)
        return warnings

    # --- AT mode ----------------------------------------------------------------------

    async def _commit_at(self, txn: Transaction) -> list[str]:
        """AT commit: the other writers commit locally with undo rows and global locks,
        then the decider (the writer on the first shard by name) commits its data with
        the decision row, in one round trip (its rows need no undo: they commit with
        the decision); then the locks and undo rows go, in parallel per shard."""
        branches = list(txn.branches.values())
        writers = sorted((b for b in branches if b.images), key=lambda b: b.shard)
        readers = [b for b in branches if not b.images]
        if len(writers) <= 1:
            return await self._commit_at_one_phase(txn, writers, readers)
        decider, others = writers[0], writers[1:]
        await self.ensure_decision_table(decider.shard)
        gid = new_global_id(self.proxy_id, decider.shard)
        txn.gid = gid
        self.active[gid.gtrid] = txn
        holders: dict[str, Holder | None] = {}

        async def phase_one(branch: Branch) -> None:
            holders[branch.shard] = await at.commit_branch(
                branch.backend, gid.gtrid, branch.shard, branch.images, self.lock_wait(branch.shard)
            )

        check = asyncio.ensure_future(at.check_locks(decider.images, self.lock_wait(decider.shard)))
        committed, failed, failure = await _in_parallel(
            others, phase_one, "at_after_local_commit_some"
        )
        try:
            await check
        except errors.ProxyError as exc:
            failure = failure or exc
        if failure is not None:
            txn.state = "rolling_back"
            undone = [b for b, _ in failed] + [decider] + readers
            await asyncio.gather(*(self._quiet(b, tsql.ROLLBACK) for b in undone))
            await self._abort_at(gid, committed, holders)
            metrics.ROLLBACKS.labels("at_phase_one_failed").inc()
            raise errors.ProxyError(
                failure.code if failure.code in (1205, 1213) else 1402,
                failure.sqlstate if failure.code in (1205, 1213) else "XA100",
                f"Transaction rolled back on every shard: {failure.message}",
            )
        await failpoints.hit("at_after_local_commit_all")
        await self._record_at_decision(txn, gid, writers, committed, holders)
        txn.state = "committed"
        await failpoints.hit("at_after_decision")
        await self._release_at(gid, committed, holders, readers)
        metrics.COMMITS.labels("at").inc()
        return []

    async def _release_at(
        self,
        gid: GlobalId,
        committed: list[Branch],
        holders: dict[str, Holder | None],
        readers: list[Branch],
    ) -> None:
        """Phase two: each branch's undo row and global locks go at once, on its own
        (idle) connection, in parallel; what fails is left to the background sweep."""

        async def release(branch: Branch) -> None:
            try:
                await at.release(branch.backend, gid.gtrid, branch.shard)
            except errors.ProxyError:
                branch.backend.usable = False
                raise
            finally:
                self.local_locks.release(holders.get(branch.shard))

        ending = asyncio.gather(*(self._quiet(b, tsql.COMMIT) for b in readers))
        _, failed, _ = await _in_parallel(committed, release, "at_after_release_some")
        await ending
        for branch, _ in failed:
            self._releases.append((branch.shard, gid.gtrid))
        self._schedule_cleanup(gid.decision_shard, gid.gtrid)

    async def _commit_at_one_phase(
        self, txn: Transaction, writers: list[Branch], readers: list[Branch]
    ) -> list[str]:
        """At most one shard wrote: no undo log to keep, a local COMMIT on each branch."""
        if writers:
            # No undo needed, but the rows must not belong to another AT transaction
            # that may still roll back (it would find them changed).
            try:
                await at.check_locks(writers[0].images, self.lock_wait(writers[0].shard))
            except errors.ProxyError as exc:
                txn.state = "rolling_back"
                await self._rollback_branches(txn)
                metrics.ROLLBACKS.labels("at_global_lock").inc()
                raise errors.ProxyError(
                    exc.code, exc.sqlstate, f"Transaction rolled back: {exc.message}"
                ) from None
        for branch in writers + readers:
            await branch.backend.execute_ok(tsql.COMMIT)
        metrics.COMMITS.labels("one_phase").inc()
        txn.state = "committed"
        return []

    async def _record_at_decision(
        self,
        txn: Transaction,
        gid: GlobalId,
        writers: list[Branch],
        committed: list[Branch],
        holders: dict[str, Holder | None],
    ) -> None:
        """The commit row inserted in the decider's own local transaction, committed with
        its data in one round trip; a failure there aborts everywhere."""
        decider = writers[0]
        try:
            await decider.backend.execute_ok(
                tsql.then_commit(
                    decisions.commit_row_sql(gid, [b.shard for b in writers], self.proxy_id)
                )
            )
        except errors.BackendError as exc:
            txn.state = "rolling_back"
            await self._quiet(decider, tsql.ROLLBACK)
            await self._abort_at(gid, committed, holders)
            metrics.ROLLBACKS.labels("decision_failed").inc()
            raise errors.ProxyError(
                1402,
                "XA100",
                f"Transaction rolled back on every shard: the commit decision could not be recorded ({exc.message})",
            ) from None
        except errors.ShardUnavailable as exc:
            outcome = await self._learn_outcome(gid)
            if outcome == decisions.ABORT:  # the decision row never committed; the abort sticks now
                txn.state = "rolling_back"
                await self._abort_at(gid, committed, holders)
                metrics.ROLLBACKS.labels("decision_lost").inc()
                raise errors.ProxyError(
                    1402,
                    "XA100",
                    f"Transaction rolled back on every shard: shard '{gid.decision_shard}' failed "
                    f"while recording the commit decision ({exc.message})",
                ) from None
            if outcome != decisions.COMMIT:
                txn.state = "in_doubt"
                for branch in committed:  # the lock rows stay: recovery releases them
                    self.local_locks.release(holders.get(branch.shard))
                self._needs_recovery()
                # Not "in flight here" any more: the resolver must finish it (from the
                # undo rows and the decision shard) as soon as the shard is back.
                self.active.pop(gid.gtrid, None)
                raise CommitOutcomeUnknown(
                    1180,
                    "HY000",
                    f"Got error during COMMIT: shard '{gid.decision_shard}' failed while recording the "
                    f"commit decision of {gid.gtrid} ({exc.message}); recovery will finish it consistently",
                ) from None

    def lock_wait(self, shard: str) -> at.LockWait:
        settings = self.config.transactions
        return at.LockWait(
            shard,
            self.local_locks,
            self.peeker(shard),
            settings.lock_retry_count,
            settings.lock_retry_interval_ms,
        )

    def peeker(self, shard: str) -> at.Peek:
        """Reads on a fresh autocommit connection to `shard` (the latest committed rows),
        batched with the other lock checks on that shard."""
        peek = self._peeks.get(shard)
        if peek is None:
            peek = self._peeks[shard] = BatchedPeek(self.pools, shard)
        return peek

    async def _abort_at(
        self,
        gid: GlobalId,
        committed: list[Branch],
        holders: dict[str, Holder | None] | None = None,
    ) -> bool:
        """Makes the abort stick, then compensates the branches that committed locally.

        This proxy's waiters for their locks are deadlock victims at once (they hold row
        locks the compensation needs). Compensation runs on the branch's own connection
        when it is sound, else in the background on fresh ones. Returns False when the
        outcome could not be learned (recovery finishes).
        """
        holders = holders or {}
        for branch in committed:
            self.local_locks.abort(holders.get(branch.shard))
        outcome = await self._learn_outcome(gid)
        if outcome != decisions.ABORT:
            for branch in committed:
                self.local_locks.release(holders.get(branch.shard))
            self._retry_compensation(gid, [b.shard for b in committed])
            return False

        async def undo(branch: Branch) -> None:
            # The branch's own connection is idle now (its local transaction committed);
            # using it needs no pool slot, which a busy proxy may not have.
            own = branch.backend
            try:
                if not own.broken and await self._compensate_on(own, gid, branch.shard):
                    return
                self._retry_compensation(gid, [branch.shard])
            finally:
                self.local_locks.release(holders.get(branch.shard))

        await asyncio.gather(*(undo(b) for b in committed))
        return True

    async def _compensate_on(self, backend: Backend, gid: GlobalId, shard: str) -> bool:
        try:
            result = await at.compensate(backend, gid.gtrid, shard)
        except errors.ProxyError as exc:
            log.warning(
                "AT rollback of %s on %s failed, retrying: %s", gid.gtrid, shard, exc.message
            )
            return False
        log.warning("AT rollback of %s on %s: %s", gid.gtrid, shard, result.result)
        return True

    def _retry_compensation(self, gid: GlobalId, shards: list[str]) -> None:
        """Keeps compensating in the background until it succeeds (recovery would, later)."""

        async def retry() -> None:
            pending = list(shards)
            for attempt in range(600):
                await asyncio.sleep(min(0.1 * (attempt + 1), 2.0))
                if await self._learn_outcome(gid) != decisions.ABORT:
                    continue
                for shard in list(pending):
                    try:
                        backend = await self.pools.acquire(shard)
                    except errors.ProxyError:
                        continue
                    try:
                        if await self._compensate_on(backend, gid, shard):
                            pending.remove(shard)
                    finally:
                        self.pools.release(backend)
                if not pending:
                    return

        task = asyncio.ensure_future(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _commit_prepared(self, writers: list[Branch]) -> list[str]:
        warnings: list[str] = []
        _, failed, _ = await _in_parallel(
            writers,
            lambda b: b.backend.execute_ok(tsql.xa_commit(b.xid.sql())),
            "after_commit_some",
        )
        if failed:
            self._needs_recovery()
        for branch, exc in failed:
            branch.backend.usable = False
            metrics.DEFERRED.inc()
            warnings.append(
                f"xaproxy: the transaction is committed, but shard '{branch.shard}' could not "
                f"be reached to finish it ({getattr(exc, 'message', exc)}); it will be "
                "committed there in the background as soon as the shard is back"
            )
        return warnings

    def _needs_recovery(self) -> None:
        if self.on_in_doubt is not None:
            self.on_in_doubt()

    async def _learn_outcome(self, gid: GlobalId) -> str | None:
        """After losing the decision shard mid-commit: ask it again on a new connection."""
        for _ in range(3):
            try:
                backend = await self.pools.acquire(gid.decision_shard, urgent=True)
            except errors.ProxyError:
                await asyncio.sleep(0.2)
                continue
            try:
                return await decisions.decide_abort_unless_committed(backend, gid, self.proxy_id)
            except errors.ProxyError:
                backend.usable = False
            finally:
                self.pools.release(backend)
        return None

    async def rollback(self, txn: Transaction, reason: str = "client") -> None:
        txn.state = "rolling_back"
        try:
            await self._rollback_branches(txn)
        finally:
            if txn.gid is not None:
                self.active.pop(txn.gid.gtrid, None)
        metrics.ROLLBACKS.labels(reason).inc()

    async def _rollback_branches(self, txn: Transaction) -> None:
        statements = []
        for branch in txn.branches.values():
            if branch.xid is None:
                statements.append(self._quiet(branch, tsql.ROLLBACK))
            else:
                x = branch.xid.sql()
                statements.append(self._quiet_xa_rollback(branch, x))
        await asyncio.gather(*statements)

    async def _quiet_xa_rollback(self, branch: Branch, x: str) -> None:
        """XA ROLLBACK from whatever state the branch is in (active, idle or prepared)."""
        try:
            await branch.backend.execute_ok(tsql.xa_end(x))
        except errors.ProxyError:
            pass
        try:
            await branch.backend.execute_ok(tsql.xa_rollback(x))
        except errors.ProxyError as exc:
            if exc.code != 1397:  # XAER_NOTA: already gone
                # A closed connection rolls back an unprepared branch; recovery handles the rest.
                branch.backend.usable = False

    async def _rollback_prepared(self, writers: list[Branch], gid: GlobalId) -> None:
        await asyncio.gather(*(self._quiet(b, tsql.xa_rollback(b.xid.sql())) for b in writers))

    async def _quiet(self, branch: Branch, sql: str) -> None:
        try:
            await branch.backend.execute_ok(sql)
        except errors.ProxyError:
            branch.backend.usable = False

    async def _finish_quietly(self, branches: list[Branch], text: Callable[[str], str]) -> None:
        await asyncio.gather(
            *(self._quiet(b, text(b.xid.sql())) for b in branches if b.xid is not None)
        )

    # --- cleanup ----------------------------------------------------------------------

    def _schedule_cleanup(self, shard: str, gtrid: str) -> None:
        self._cleanup.setdefault(shard, []).append(gtrid)
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = asyncio.ensure_future(self._run_cleanup())

    async def _run_cleanup(self) -> None:
        """Deletes decision rows of finished transactions in batches, off the commit path."""
        await asyncio.sleep(0.05)
        while self._releases or self._cleanup:
            # One batch at a time: a commit queues its releases and its decision row
            # together (without awaiting in between), so a decision row deleted here
            # never belongs to a transaction whose undo rows are still to be released.
            releases, self._releases = self._releases, []
            cleanup, self._cleanup = self._cleanup, {}
            # AT: undo rows and locks go first; a decision row whose release failed stays,
            # because recovery would read undo rows without a decision as an abort.
            blocked: set[str] = set()
            for shard, gtrid in releases:
                try:
                    backend = await self.pools.acquire(shard, urgent=True)
                except errors.ProxyError:
                    blocked.add(gtrid)
                    continue
                try:
                    await at.release(backend, gtrid, shard)
                except errors.ProxyError:
                    blocked.add(gtrid)
                    backend.usable = False
                finally:
                    self.pools.release(backend)
            for shard, gtrids in cleanup.items():
                gtrids = [g for g in gtrids if g not in blocked]
                try:
                    backend = await self.pools.acquire(shard, urgent=True)
                except errors.ProxyError:
                    continue  # recovery's sweep deletes old rows later
                try:
                    await decisions.delete_rows(backend, gtrids)
                except errors.ProxyError:
                    backend.usable = False
                finally:
                    self.pools.release(backend)

    async def close(self) -> None:
        for peek in self._peeks.values():
            peek.close()
        if self._retries:  # unfinished ones are finished by the next start's recovery
            await asyncio.wait(list(self._retries), timeout=5)
        if self._cleanup_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._cleanup_task, 5)


async def _in_parallel(
    branches: list[Branch],
    step: Callable[[Branch], Awaitable[object]],
    failpoint: str,
) -> tuple[list[Branch], list[tuple[Branch, BaseException]], errors.ProxyError | None]:
    """Runs `step` on every branch at once; `failpoint` fires after the first success.

    Returns the branches that succeeded, those that failed with their errors, and the
    first shard error (other exceptions propagate).
    """
    tasks = {asyncio.ensure_future(step(b)): b for b in branches}
    failure: errors.ProxyError | None = None
    first = True
    for done in asyncio.as_completed(list(tasks)):
        try:
            await done
        except errors.ProxyError as exc:
            failure = failure or exc
            continue
        if first:
            first = False
            await failpoints.hit(failpoint)
    succeeded = [b for t, b in tasks.items() if t.exception() is None]
    failed = [(b, t.exception()) for t, b in tasks.items() if t.exception() is not None]
    return succeeded, failed, failure
