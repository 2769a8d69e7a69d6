"""Finishing in-doubt XA branches, after a crash or for a proxy that died.

Every shard is asked for its prepared branches (XA RECOVER). For each branch
of ours the decision shard named in its gtrid is asked for the outcome; no
commit row means abort, and the abort is written down first so that it sticks.
Branches whose formatID or gtrid are not ours are reported and never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from .. import errors
from ..config import Config
from ..shards.pool import Pools
from ..transactions import at, decisions, metrics
from ..transactions import statements as tsql
from ..transactions.coordinator import Coordinator
from ..transactions.xid import RecoveredBranch, parse_gtrid, parse_recover_row
from .dialect import recover_statement

log = logging.getLogger(__name__)

# Abort markers must outlive any coordinator that could still try to commit.
ABORT_MARKER_RETENTION_S = 24 * 3600


@dataclass(slots=True)
class Resolution:
    shard: str
    gtrid: str
    action: str  # "commit" | "rollback" | "skip: ..." | "foreign"
    done: bool


URGENT_RETRY_S = 0.2
URGENT_RETRY_MAX_S = 2.0


class Resolver:
    def __init__(self, config: Config, pools: Pools, coordinator: Coordinator | None) -> None:
        self.config = config
        self.pools = pools
        self.coordinator = coordinator
        self.last_scan: list[RecoveredBranch] = []
        self.scan_complete = False  # every shard answered the last XA RECOVER
        self._at_scan_complete = False
        self.in_doubt_at: set[str] = set()
        self._family = False
        self._woken = asyncio.Event()
        if coordinator is not None:
            coordinator.on_in_doubt = self.wake

    async def bootstrap(self) -> None:
        """Creates the decision table on every reachable shard."""
        for shard in self.config.shards:
            try:
                backend = await self.pools.acquire(shard)
            except errors.ProxyError as exc:
                log.warning(
                    "shard %s unreachable, decision table not checked: %s", shard, exc.message
                )
                continue
            try:
                await decisions.ensure_table(backend)
                if self.coordinator is not None:
                    self.coordinator.ready_shards.add(shard)
            except errors.ProxyError as exc:
                log.warning("shard %s: cannot create the decision table: %s", shard, exc.message)
            finally:
                self.pools.release(backend)

    async def scan(self) -> list[RecoveredBranch]:
        found: list[RecoveredBranch] = []
        complete = True
        for shard in self.config.shards:
            try:
                backend = await self.pools.acquire(shard)
            except errors.ProxyError:
                complete = False
                continue
            try:
                rows = await backend.query_rows(recover_statement(backend))
                found.extend(parse_recover_row(shard, row) for row in rows)
            except errors.ProxyError as exc:
                complete = False
                log.warning("XA RECOVER failed on shard %s: %s", shard, exc.message)
            finally:
                self.pools.release(backend)
        self.last_scan = found
        self.scan_complete = complete
        return found

    async def resolve(
        self,
        *,
        own_now: bool,
        any_age: bool = False,
        dry_run: bool = False,
        family: bool = False,
    ) -> list[Resolution]:
        """Resolves in-doubt branches of ours.

        own_now: branches of this proxy_id are resolved at once (its previous life
        died, or they are not in flight here); others wait for the abandon age
        unless any_age (the operator's `xaproxy recover`).
        """
        self._family = family
        results: list[Resolution] = []
        outcomes: dict[str, str | None] = {}
        active = self.coordinator.active if self.coordinator is not None else {}
        abandon = self.config.transactions.abandon_age_s
        for branch in await self.scan():
            gid = branch.ours
            label = branch.gtrid.decode("utf-8", "replace")
            if gid is None:
                log.warning(
                    "shard %s has a prepared XA branch not made by xaproxy (formatID %d, gtrid %r); "
                    "left alone",
                    branch.shard,
                    branch.format_id,
                    label,
                )
                results.append(Resolution(branch.shard, label, "foreign", False))
                continue
            if gid.gtrid in active:
                continue
            own = self._is_own(gid.proxy_id)
            if not (any_age or (own and own_now) or gid.age_s() >= abandon):
                results.append(
                    Resolution(branch.shard, gid.gtrid, "skip: younger than abandon age", False)
                )
                continue
            if gid.gtrid not in outcomes:
                outcomes[gid.gtrid] = await self._outcome(gid, dry_run)
            outcome = outcomes[gid.gtrid]
            if outcome is None:
                results.append(
                    Resolution(
                        branch.shard,
                        gid.gtrid,
                        f"skip: decision shard {gid.decision_shard} unreachable",
                        False,
                    )
                )
                continue
            action = "commit" if outcome == decisions.COMMIT else "rollback"
            done = False
            if not dry_run:
                done = await self._apply(branch, action)
            log.warning(
                "recovery: %s branch %s of %s on shard %s (decision shard %s)%s",
                action,
                branch.bqual.decode("utf-8", "replace"),
                gid.gtrid,
                branch.shard,
                gid.decision_shard,
                " [dry run]" if dry_run else "",
            )
            results.append(Resolution(branch.shard, gid.gtrid, action, done))
        results.extend(await self._resolve_at(own_now=own_now, any_age=any_age, dry_run=dry_run))
        if not dry_run and self.scan_complete and self._at_scan_complete:
            # A commit row may go only when no shard can still hold a branch of it.
            await self._sweep({b.gtrid.decode("utf-8", "replace") for b in self.last_scan})
        return results

    def _is_own(self, proxy_id: str) -> bool:
        """This proxy's id; with `family`, also its worker processes' ids (`<id>-w<n>`)."""
        own = self.config.proxy_id
        return proxy_id == own or (self._family and proxy_id.startswith(own + "-w"))

    async def undo_entries(self) -> list[tuple[str, str, int, float]]:
        """(shard, gtrid, status, age in s) of every AT undo row on every reachable shard."""
        entries = []
        complete = True
        for shard in self.config.shards:
            try:
                backend = await self.pools.acquire(shard)
            except errors.ProxyError:
                complete = False
                continue
            try:
                rows = await backend.query_rows(
                    f"SELECT gtrid, status, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6)) / 1e6 FROM {at.UNDO}"
                )
                entries.extend(
                    (shard, r[0].decode("utf-8", "replace"), int(r[1] or b"0"), float(r[2] or b"0"))
                    for r in rows
                )
            except errors.ProxyError as exc:
                if exc.code != 1146:  # the table appears with the first AT transaction
                    complete = False
            finally:
                self.pools.release(backend)
        self._at_scan_complete = complete
        self.in_doubt_at = {e[1] for e in entries if e[2] != at.UNDO_DEFENSE}
        return entries

    async def _resolve_at(self, *, own_now: bool, any_age: bool, dry_run: bool) -> list[Resolution]:
        """AT transactions whose coordinator died: release if committed, compensate if not."""
        results: list[Resolution] = []
        active = self.coordinator.active if self.coordinator is not None else {}
        abandon = self.config.transactions.abandon_age_s
        outcomes: dict[str, str | None] = {}
        compensated: set[str] = set()
        for shard, gtrid, status, age in await self.undo_entries():
            gid = parse_gtrid(gtrid)
            if gid is None or gid.gtrid in active:
                continue
            if status == at.UNDO_DEFENSE:
                if age > ABORT_MARKER_RETENTION_S and not dry_run:
                    await self._on(
                        shard,
                        lambda b, g=gtrid, sh=shard: b.execute_ok(
                            f"DELETE FROM {at.UNDO} WHERE gtrid = '{g}' AND shard = '{sh}' AND status = {at.UNDO_DEFENSE}"
                        ),
                    )
                continue
            if status == at.UNDO_NEEDS_OPERATOR:
                results.append(Resolution(shard, gtrid, "needs operator: XAPROXY RESOLVE", False))
                continue
            own = self._is_own(gid.proxy_id)
            if not (any_age or (own and own_now) or gid.age_s() >= abandon):
                continue
            if gtrid not in outcomes:
                outcomes[gtrid] = await self._outcome(gid, dry_run)
            outcome = outcomes[gtrid]
            if outcome is None:
                continue
            if outcome == decisions.COMMIT:
                done = dry_run or await self._on(
                    shard, lambda b, g=gtrid, sh=shard: at.release(b, g, sh)
                )
                results.append(
                    Resolution(shard, gtrid, "at commit: release", bool(done and not dry_run))
                )
                continue
            if dry_run:
                results.append(Resolution(shard, gtrid, "at rollback: compensate", False))
                continue
            if gtrid in compensated:
                continue  # its other shards' entries were handled with the first one
            compensated.add(gtrid)
            # abort: compensate every shard that has an undo row, and leave defense
            # rows on every other shard (a late local commit there must fail)
            for target in self.config.shards:
                compensation = await self._on(
                    target, lambda b, g=gtrid, t=target: at.compensate(b, g, t)
                )
                if compensation is None or compensation.result != "defended" or target == shard:
                    label = compensation.result if compensation is not None else "shard unreachable"
                    results.append(
                        Resolution(target, gtrid, f"at rollback: {label}", compensation is not None)
                    )
                    log.warning("recovery: AT rollback of %s on %s: %s", gtrid, target, label)
                    metrics.RECOVERIES.labels("at_rollback").inc()
        return results

    async def _on(self, shard: str, action):
        """Runs `action(backend)` on a pooled connection to `shard`; None when it failed."""
        try:
            backend = await self.pools.acquire(shard)
        except errors.ProxyError:
            return None
        try:
            result = await action(backend)
            return True if result is None else result
        except errors.ProxyError as exc:
            log.warning("recovery on %s: %s", shard, exc.message)
            backend.usable = False
            return None
        finally:
            self.pools.release(backend)

    async def _outcome(self, gid, dry_run: bool) -> str | None:
        try:
            backend = await self.pools.acquire(gid.decision_shard)
        except (errors.ProxyError, KeyError):
            return None
        try:
            if dry_run:
                return await decisions.read_outcome(backend, gid.gtrid) or decisions.ABORT
            return await decisions.decide_abort_unless_committed(backend, gid, self.config.proxy_id)
        except errors.ProxyError as exc:
            log.warning("cannot read the decision of %s: %s", gid.gtrid, exc.message)
            backend.usable = False
            return None
        finally:
            self.pools.release(backend)

    async def _apply(self, branch: RecoveredBranch, action: str) -> bool:
        try:
            backend = await self.pools.acquire(branch.shard)
        except errors.ProxyError:
            return False
        try:
            finish = tsql.xa_commit if action == "commit" else tsql.xa_rollback
            await backend.execute_ok(finish(branch.sql()))
            metrics.RECOVERIES.labels(action).inc()
            return True
        except errors.ProxyError as exc:
            if exc.code == 1397:
                # Either resolved by someone else, or still attached to a live connection
                # (e.g. one the shard has not yet seen close after a proxy crash), which
                # MariaDB also answers with XAER_NOTA. Only the first one is done.
                return not await self._still_prepared(backend, branch)
            log.warning(
                "recovery could not %s %s on %s: %s",
                action,
                branch.gtrid,
                branch.shard,
                exc.message,
            )
            backend.usable = False
            return False
        finally:
            self.pools.release(backend)

    async def _still_prepared(self, backend, branch: RecoveredBranch) -> bool:
        try:
            rows = await backend.query_rows(recover_statement(backend))
        except errors.ProxyError:
            backend.usable = False
            return True
        for row in rows:
            found = parse_recover_row(branch.shard, row)
            if (found.format_id, found.gtrid, found.bqual) == (
                branch.format_id,
                branch.gtrid,
                branch.bqual,
            ):
                log.warning(
                    "recovery: branch %r on %s is still attached to a connection; retrying later",
                    branch.gtrid,
                    branch.shard,
                )
                return True
        return False

    async def _sweep(self, in_doubt: set[str]) -> None:
        """Deletes commit rows whose branches are all finished, and expired abort markers."""
        abandon = self.config.transactions.abandon_age_s
        for shard in self.config.shards:
            try:
                backend = await self.pools.acquire(shard)
            except errors.ProxyError:
                continue
            try:
                if shard not in (self.coordinator.ready_shards if self.coordinator else set()):
                    await decisions.ensure_table(backend)
                committed = [
                    g
                    for g in await decisions.old_rows(backend, abandon, decisions.COMMIT)
                    if g not in in_doubt and g not in self.in_doubt_at
                ]
                await decisions.delete_rows(backend, committed)
                expired = await decisions.old_rows(
                    backend, ABORT_MARKER_RETENTION_S, decisions.ABORT
                )
                await decisions.delete_rows(backend, [g for g in expired if g not in in_doubt])
            except errors.ProxyError as exc:
                log.debug("decision sweep on %s: %s", shard, exc.message)
            finally:
                self.pools.release(backend)

    def wake(self) -> None:
        """Branches were just left in doubt: resolve now, and retry often until they are done."""
        self._woken.set()

    async def run_forever(self) -> None:
        """Resolves every recover_interval_s; after wake(), every URGENT_RETRY_S (doubling to
        URGENT_RETRY_MAX_S) until a pass leaves nothing unresolved, so a branch held
        prepared by a shard restart is finished as soon as the shard answers again."""
        interval = self.config.transactions.recover_interval_s
        urgent_delay: float | None = None
        while True:
            delay = interval if urgent_delay is None else min(urgent_delay, interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), delay)
            if self._woken.is_set():
                self._woken.clear()
                urgent_delay = URGENT_RETRY_S
            results: list[Resolution] | None = None
            with contextlib.suppress(Exception):
                results = await self.resolve(own_now=True)
            if urgent_delay is not None:
                settled = results is not None and self.scan_complete
                settled = settled and all(r.done for r in results or [])
                urgent_delay = None if settled else min(urgent_delay * 2, URGENT_RETRY_MAX_S)
