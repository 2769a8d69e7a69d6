"""BEGIN, COMMIT, ROLLBACK and SAVEPOINT statements of a client, over its session state.

The transaction itself (branches, timeout, commit protocol) is the transaction
layer's (transactions/access.py, coordinator.py); this is the statements' side.
"""

from __future__ import annotations

import itertools

from .. import errors
from ..analysis import analyze
from ..analysis.clauses import savepoint_command
from ..transactions import statements as tsql
from . import reply, steps, table_locks
from .state import SessionState


async def begin(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    # BEGIN commits the open transaction: one the proxy timed out must be reported, not
    # silently replaced by a new one.
    await s.shards.check_timeout()
    if s.txn is not None:
        await s.shards.end(commit=True)
    s.pending_savepoints = []  # BEGIN commits: savepoints set with autocommit off are gone
    await table_locks.unlock(s)  # and releases table locks, as on MariaDB
    statement = analyze(sql)
    body = " ".join(statement.code.split()).rstrip(";").rstrip()  # comments are blanked
    words = statement.words
    s.shards.start(
        implicit=False,
        begin_sql=body if statement.verb == "START" else tsql.START,
        read_only=("READ", "ONLY") in itertools.pairwise(words),
    )
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
    """SAVEPOINT, ROLLBACK TO and RELEASE SAVEPOINT however the transaction started
    (BEGIN, autocommit off, an implicit one), names quoted or bare alike."""
    command = savepoint_command(sql)
    if command is None:
        raise errors.parse_error(
            "expected SAVEPOINT name, ROLLBACK [WORK] TO [SAVEPOINT] name or RELEASE SAVEPOINT name"
        )
    if command.name.lower() in (tsql.STATEMENT_SAVEPOINT, steps.SAVEPOINT):
        raise errors.not_supported(
            f"the savepoint name {command.name}", "it is the proxy's own: choose another name"
        )
    await s.shards.check_timeout()
    await s.shards.savepoint(command.action, command.name)
    reply.ok(s, more)
