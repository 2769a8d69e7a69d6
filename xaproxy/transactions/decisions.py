"""The commit decision rows, kept in the shards' own storage.

A row ('C') is inserted inside the decision shard's local branch, so the
COMMIT of that branch *is* the global commit decision: as durable and as
replicated as the data, readable by every proxy instance. Recovery that finds
no row writes an abort marker ('A') under the same primary key, so a slow
coordinator's later insert fails and it can never commit what recovery undid.
"""

from __future__ import annotations

from ..shards.backend import Backend
from .at import BOOTSTRAP as AT_BOOTSTRAP
from .xid import GlobalId

DATABASE = "xaproxy"
TABLE = f"{DATABASE}.decisions"
COMMIT = "C"
ABORT = "A"

BOOTSTRAP = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        gtrid VARBINARY(64) NOT NULL PRIMARY KEY,
        outcome CHAR(1) NOT NULL,
        proxy_id VARCHAR(64) NOT NULL,
        branches VARCHAR(2048) NOT NULL DEFAULT '',
        created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        KEY (created_at)
    ) ENGINE=InnoDB""",
)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def commit_row_sql(gid: GlobalId, branches: list[str], recorded_by: str) -> str:
    return (
        f"INSERT INTO {TABLE} (gtrid, outcome, proxy_id, branches) VALUES "
        f"({_quote(gid.gtrid)}, '{COMMIT}', {_quote(recorded_by)}, {_quote(','.join(branches))})"
    )


async def ensure_table(backend: Backend) -> None:
    """Creates the decision table, and AT mode's lock and undo tables, on one shard."""
    for statement in (*BOOTSTRAP, *AT_BOOTSTRAP):
        await backend.execute_ok(statement)


async def read_outcome(backend: Backend, gtrid: str) -> str | None:
    rows = await backend.query_rows(f"SELECT outcome FROM {TABLE} WHERE gtrid = {_quote(gtrid)}")
    return rows[0][0].decode() if rows and rows[0][0] else None


async def decide_abort_unless_committed(backend: Backend, gid: GlobalId, recorded_by: str) -> str:
    """The final outcome of `gid`: commit if its row exists, else an abort marker that sticks."""
    outcome = await read_outcome(backend, gid.gtrid)
    if outcome is not None:
        return outcome
    # INSERT IGNORE waits for a coordinator's uncommitted insert of the same key;
    # whichever commits first wins, and we read back the winner.
    await backend.execute_ok(
        f"INSERT IGNORE INTO {TABLE} (gtrid, outcome, proxy_id) VALUES "
        f"({_quote(gid.gtrid)}, '{ABORT}', {_quote(recorded_by)})"
    )
    return await read_outcome(backend, gid.gtrid) or ABORT


async def delete_rows(backend: Backend, gtrids: list[str]) -> None:
    if gtrids:
        values = ", ".join(_quote(g) for g in gtrids)
        await backend.execute_ok(f"DELETE FROM {TABLE} WHERE gtrid IN ({values})")


async def old_rows(backend: Backend, older_than_s: float, outcome: str) -> list[str]:
    rows = await backend.query_rows(
        f"SELECT gtrid FROM {TABLE} WHERE outcome = '{outcome}' AND "
        f"created_at < NOW(6) - INTERVAL {float(older_than_s):.3f} SECOND LIMIT 1000"
    )
    return [r[0].decode() for r in rows if r[0]]
