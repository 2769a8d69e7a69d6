"""Every transaction statement the proxy sends to a shard, written in one place.

The coordinator, the session's transaction control, AT mode and recovery all take
their `START TRANSACTION`, `XA ...`, `SAVEPOINT`, `COMMIT` and `ROLLBACK` text from
here, so the dialect the shards are spoken to in has one home. Functions take an
xid as its SQL literal (`Xid.sql()` / `RecoveredBranch.sql()`).
"""

from __future__ import annotations

START = "START TRANSACTION"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
XA_RECOVER = "XA RECOVER"


def join(*statements: str) -> str:
    """One multi-statement: the server stops at the first error."""
    return "; ".join(statements)


def then_commit(sql: str) -> str:
    """`sql` and the COMMIT of its local transaction, in one round trip."""
    return f"{sql}; {COMMIT}"


def xa_start(xid: str) -> str:
    return f"XA START {xid}"


def xa_end(xid: str) -> str:
    return f"XA END {xid}"


def xa_prepare(xid: str) -> str:
    return join(xa_end(xid), f"XA PREPARE {xid}")


def xa_commit(xid: str) -> str:
    return f"XA COMMIT {xid}"


def xa_rollback(xid: str) -> str:
    return f"XA ROLLBACK {xid}"


def xa_end_and_rollback(xid: str) -> str:
    """Ends and rolls back an active branch (a read-only branch at commit)."""
    return join(xa_end(xid), xa_rollback(xid))


def xa_commit_one_phase(xid: str) -> str:
    return join(xa_end(xid), f"{xa_commit(xid)} ONE PHASE")


def savepoint(name: str) -> str:
    return f"SAVEPOINT {name}"
