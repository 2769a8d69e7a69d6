"""BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the transaction timeout, for a Session.

The commit protocol itself lives in xaproxy.transactions; this is the session side.
"""

from __future__ import annotations

import logging
import time

from .. import errors
from ..analysis import analyze
from ..transactions.coordinator import Transaction

log = logging.getLogger(__name__)


class TransactionControl:
    """Part of Session (see session.py); relies on its state."""

    def _start_transaction(
        self, implicit: bool, begin_sql: str = "START TRANSACTION"
    ) -> Transaction:
        self.txn = Transaction(
            self.next_txn_characteristics, begin_sql, implicit=implicit, mode=self.txn_mode
        )
        self.next_txn_characteristics = None
        return self.txn

    async def _check_transaction_timeout(self) -> None:
        """A transaction older than transactions.timeout_s is rolled back, and the client told once."""
        txn = self.txn
        limit = self.ctx.config.transactions.timeout_s
        if txn is not None and time.monotonic() - txn.started > limit:
            await self._end_transaction(commit=False, reason="timeout")
            self._timed_out = True
        if self._timed_out:
            self._timed_out = False
            raise errors.ProxyError(
                1205,
                "HY000",
                f"xaproxy rolled back the transaction: it was open longer than "
                f"transactions.timeout_s ({limit:g}s); start it again",
            )

    async def expire_transaction(self) -> bool:
        """Rolls back an idle transaction older than the timeout (called by the server)."""
        txn = self.txn
        if txn is None or self.busy:
            return False
        if time.monotonic() - txn.started <= self.ctx.config.transactions.timeout_s:
            return False
        self.busy = True
        try:
            await self._end_transaction(commit=False, reason="timeout")
        finally:
            self.busy = False
        self._timed_out = True
        return True

    async def _begin(self, sql: str, more: bool, binary: bool) -> None:
        # BEGIN commits the open transaction: one the proxy timed out must be reported, not
        # silently replaced by a new one.
        await self._check_transaction_timeout()
        if self.txn is not None:
            await self._end_transaction(commit=True)
        statement = analyze(sql)
        body = " ".join(statement.code.split()).rstrip(";").rstrip()  # comments are blanked
        begin_sql = body if statement.verb == "START" else "START TRANSACTION"
        self._start_transaction(implicit=False, begin_sql=begin_sql)
        self._ok(more)

    async def _commit(self, sql: str, more: bool, binary: bool) -> None:
        await self._check_transaction_timeout()
        warnings = await self._end_transaction(commit=True)
        self._ok(more, warnings=len(warnings))

    async def _rollback(self, sql: str, more: bool, binary: bool) -> None:
        self._timed_out = False
        await self._end_transaction(commit=False)
        self._ok(more)

    async def _end_transaction(self, commit: bool, reason: str = "client") -> list[str]:
        """Commits or rolls back on every branch; returns warnings for the client."""
        txn, self.txn = self.txn, None
        if txn is None:
            return []
        coordinator = self.ctx.coordinator
        try:
            if commit:
                warnings = await coordinator.commit(txn)
                if warnings:
                    self.warnings = [("Warning", 1105, w) for w in warnings]
                return warnings
            await coordinator.rollback(txn, reason)
            return []
        finally:
            for shard, branch in txn.branches.items():
                if self.pinned.get(shard) is not branch.backend:
                    self.ctx.pools.release(branch.backend)

    async def _savepoint(self, sql: str, more: bool, binary: bool) -> None:
        txn = self.txn
        words = sql.split()
        verb = words[0].upper()
        name = words[-1].rstrip(";")
        if txn is None:
            if verb == "SAVEPOINT":
                self._ok(more)  # MySQL accepts it outside a transaction and forgets it at once
                return
            raise errors.ProxyError(1305, "42000", f"SAVEPOINT {name} does not exist")
        if verb != "SAVEPOINT" and name.lower() not in (n.lower() for n in txn.savepoints):
            raise errors.ProxyError(1305, "42000", f"SAVEPOINT {name} does not exist")
        for branch in txn.branches.values():
            await branch.backend.execute_ok(sql)
        lowered = [n.lower() for n in txn.savepoints]
        if verb == "SAVEPOINT":
            if name.lower() in lowered:
                del txn.savepoints[lowered.index(name.lower())]
            txn.savepoints.append(name)
        else:
            keep = lowered.index(name.lower()) + (1 if verb == "ROLLBACK" else 0)
            del txn.savepoints[keep:]
        self._ok(more)
