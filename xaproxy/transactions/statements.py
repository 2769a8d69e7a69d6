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
# XA START has no READ ONLY: a branch of a read-only transaction is made so beforehand
NEXT_READ_ONLY = "SET TRANSACTION READ ONLY"


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


def quoted(name: str) -> str:
    """A savepoint name as an identifier (MariaDB compares savepoint names without case)."""
    return "`" + name.replace("`", "``") + "`"


def savepoint(name: str) -> str:
    return f"SAVEPOINT {quoted(name)}"


def rollback_to(name: str) -> str:
    return f"ROLLBACK TO SAVEPOINT {quoted(name)}"


def release(name: str) -> str:
    return f"RELEASE SAVEPOINT {quoted(name)}"


# The savepoint the proxy sets before each multi-shard statement inside a transaction,
# rolled back to when the statement fails on some shard: the failed statement is undone
# on every shard and the transaction goes on, as MariaDB does for one server. A client's
# own savepoints cannot take this name (the proxy refuses it).
STATEMENT_SAVEPOINT = "xaproxy_statement"
