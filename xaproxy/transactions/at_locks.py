"""The AT global locks this proxy's own transactions hold, so a waiter is woken, not polling.

A transaction registers its lock keys (`db.table:pk`) just before it commits its
lock rows locally and leaves the table when its lock rows are gone (released after
the commit decision, or deleted by its compensation). Another transaction of this
proxy that needs one of those keys awaits the holder's completion instead of
reading the shard in a loop; waiters of one holder are woken in arrival order.

A waiter always holds the InnoDB row lock of the row it waits for (it wrote it, or
read it FOR UPDATE). So a holder that rolls back, whose compensation must lock that
row, and the waiter wait for each other: the waiter is the victim and gets 1213 at
once, rather than both waiting until a timeout.

Locks of other proxies (and crash leftovers) are not in this table: the lock rows
on the shard stay the authority, read before a lock is taken.
"""

from __future__ import annotations

import asyncio
import time

from .. import errors


class Holder:
    """One transaction's registered keys and its completion."""

    __slots__ = ("aborting", "done", "gtrid", "keys")

    def __init__(self, gtrid: str, keys: list[str]) -> None:
        self.gtrid = gtrid
        self.keys = keys
        self.aborting = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class LocalLocks:
    """lock key -> the holder in this process; bounded by the transactions in flight."""

    def __init__(self) -> None:
        self._held: dict[str, Holder] = {}

    def __len__(self) -> int:
        return len(self._held)

    def holder_of(self, keys: list[str], gtrid: str | None) -> Holder | None:
        for key in keys:
            holder = self._held.get(key)
            if holder is not None and holder.gtrid != gtrid:
                return holder
        return None

    async def wait_free(self, keys: list[str], gtrid: str | None, budget_s: float) -> None:
        """Returns once no other transaction of this proxy holds one of `keys`.

        1213 at once when a holder rolls back (see the module docstring), 1205 when
        the holders have not finished within `budget_s`.
        """
        deadline = time.monotonic() + budget_s
        while (holder := self.holder_of(keys, gtrid)) is not None:
            if holder.aborting:
                raise _deadlock(holder)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout(holder)
            try:
                await asyncio.wait_for(asyncio.shield(holder.done), remaining)
            except TimeoutError:
                raise _timeout(holder) from None
            if holder.aborting:
                raise _deadlock(holder)

    def hold(self, gtrid: str, keys: list[str]) -> Holder:
        """Registers `keys` for `gtrid` (the caller checked they are free)."""
        holder = Holder(gtrid, keys)
        for key in keys:
            self._held[key] = holder
        return holder

    def abort(self, holder: Holder | None) -> None:
        """The holder rolls back: its waiters are deadlock victims, now (and so are new
        ones, until `release` after its compensation)."""
        if holder is not None and not holder.done.done():
            holder.aborting = True
            holder.done.set_result(None)

    def release(self, holder: Holder | None) -> None:
        """The holder's lock rows are gone (or left to recovery): wake its waiters."""
        if holder is not None:
            self._drop(holder)
            if not holder.done.done():
                holder.done.set_result(None)

    def _drop(self, holder: Holder) -> None:
        for key in holder.keys:
            if self._held.get(key) is holder:
                del self._held[key]


def _deadlock(holder: Holder) -> errors.ProxyError:
    return errors.EndsTransaction(
        1213,
        "40001",
        "Deadlock found when trying to get lock; try restarting transaction (xaproxy AT: "
        f"transaction {holder.gtrid}, which holds a global lock on a row this transaction "
        "has locked, is rolling back and must lock that row to undo its change)",
    )


def _timeout(holder: Holder) -> errors.ProxyError:
    return errors.EndsTransaction(
        1205,
        "HY000",
        "Lock wait timeout exceeded; try restarting transaction (xaproxy AT global lock "
        f"held by {holder.gtrid})",
    )
