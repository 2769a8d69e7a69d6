"""BEGIN, COMMIT, ROLLBACK and SAVEPOINT statements of a client, over its session state.

The transaction itself (branches, timeout, commit protocol) is the transaction
layer's (transactions/access.py, coordinator.py); this is the statements' side.
"""

from __future__ import annotations

from .. import errors
from ..analysis import analyze
from ..transactions import statements as tsql
from . import reply
from .state import SessionState


async def begin(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    # BEGIN commits the open transaction: one the proxy timed out must be reported, not
    # silently replaced by a new one.
    await s.shards.check_timeout()
    if s.txn is not None:
        await s.shards.end(commit=True)
    statement = analyze(sql)
    body = " ".join(statement.code.split()).rstrip(";").rstrip()  # comments are blanked
    s.shards.start(implicit=False, begin_sql=body if statement.verb == "START" else tsql.START)
    reply.ok(s, more)


async def commit(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    await s.shards.check_timeout()
    warnings = await s.shards.end(commit=True)
    reply.ok(s, more, warnings=len(warnings))


async def rollback(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    s.timed_out = False
    await s.shards.end(commit=False)
    reply.ok(s, more)


async def expire_transaction(s: SessionState) -> bool:
    """Rolls back an idle transaction older than the timeout (called by the server)."""
    if s.busy or not s.shards.expired():
        return False
    s.busy = True
    try:
        await s.shards.end(commit=False, reason="timeout")
    finally:
        s.busy = False
    s.timed_out = True
    return True


async def savepoint(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    txn = s.txn
    words = sql.split()
    verb = words[0].upper()
    name = words[-1].rstrip(";")
    if txn is None:
        if verb == "SAVEPOINT":
            reply.ok(s, more)  # MySQL accepts it outside a transaction and forgets it at once
            return
        raise errors.ProxyError(1305, "42000", f"SAVEPOINT {name} does not exist")
    if verb != "SAVEPOINT" and name.lower() not in (n.lower() for n in txn.savepoints):
        raise errors.ProxyError(1305, "42000", f"SAVEPOINT {name} does not exist")
    await s.shards.on_branches(sql)
    lowered = [n.lower() for n in txn.savepoints]
    if verb == "SAVEPOINT":
        if name.lower() in lowered:
            del txn.savepoints[lowered.index(name.lower())]
        txn.savepoints.append(name)
    else:
        keep = lowered.index(name.lower()) + (1 if verb == "ROLLBACK" else 0)
        del txn.savepoints[keep:]
    reply.ok(s, more)
