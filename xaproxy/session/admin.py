"""The proxy's own SQL commands (`XAPROXY ...`), for operators and DBAs.

XAPROXY VERSION
XAPROXY SHOW POOLS          connections per shard: in use, idle
XAPROXY SHOW SESSIONS       client sessions of this proxy
XAPROXY SHOW TRANSACTIONS   active transactions here, and in-doubt XA branches on the shards
XAPROXY EXPLAIN <statement> the shards a statement goes to and the SQL each one gets
XAPROXY SHOW METADATA       the configured tables' definitions read from the shards, and
                            the tables whose shards disagree (or lack them)
XAPROXY RELOAD METADATA     read them again (after DDL that did not go through this proxy)
XAPROXY RESOLVE '<gtrid>' RESTORE | ACCEPT
                            settle an AT rollback stopped by rows changed outside the
                            transaction: RESTORE writes the before images anyway,
                            ACCEPT keeps the current rows; both drop its undo rows and locks
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlglot.tokens import TokenType

from .. import __version__, errors
from ..analysis import analyze
from ..analysis.tokens import tokenize, word
from ..metadata.model import Catalog
from ..protocol import wire
from ..protocol.resultset import column_for
from ..transactions import at

if TYPE_CHECKING:
    from .state import SessionState as Session

_COMMANDS = (
    "XAPROXY VERSION",
    "XAPROXY SHOW POOLS",
    "XAPROXY SHOW SESSIONS",
    "XAPROXY SHOW TRANSACTIONS",
    "XAPROXY EXPLAIN <statement>",
    "XAPROXY SHOW METADATA",
    "XAPROXY RELOAD METADATA",
    "XAPROXY RESOLVE '<gtrid>' RESTORE|ACCEPT",
)

Columns = list[wire.ColumnDef]


def _table(names: list[str], samples: list[object], rows: list[list]) -> tuple[Columns, list[list]]:
    return [column_for(n, v) for n, v in zip(names, samples, strict=True)], rows


async def run_admin_command(session: Session, sql: str) -> tuple[Columns, list[list]]:
    code = analyze(sql).code
    tokens = [t for t in tokenize(code) if word(t) != ";"]
    heads = [word(t) for t in tokens[:2]]
    if heads == ["XAPROXY", "EXPLAIN"] and len(tokens) > 2:
        return _explain(session, sql[tokens[2].start :].strip().rstrip(";"))
    if (
        heads == ["XAPROXY", "RESOLVE"]
        and len(tokens) == 4
        and tokens[2].token_type == TokenType.STRING
        and word(tokens[3]) in ("RESTORE", "ACCEPT")
    ):
        return await _resolve(session, tokens[2].text, word(tokens[3]))
    words = " ".join(word(t) for t in tokens)
    ctx = session.ctx
    if words == "XAPROXY VERSION":
        return _table(["version"], [""], [[__version__]])
    if words == "XAPROXY SHOW POOLS":
        rows = []
        for name, pool in ctx.pools.by_shard.items():
            idle = sum(len(v) for v in pool._idle.values())
            rows.append(
                [name, pool.shard.host, pool.shard.port, pool.shard.pool_size, pool.in_use, idle]
            )
        return _table(
            ["shard", "host", "port", "pool_size", "in_use", "idle"], ["", "", 0, 0, 0, 0], rows
        )
    if words == "XAPROXY SHOW SESSIONS":
        now = time.monotonic()
        rows = [
            [
                s.id,
                s.user,
                s.peer_host,
                s.database,
                int(now - s.started),
                int(s.txn is not None),
                ",".join(sorted(s.pinned)),
                ", ".join(s.pin_causes),
            ]
            for s in ctx.sessions.values()
        ]
        return _table(
            ["id", "user", "host", "db", "age_s", "in_transaction", "pinned_to", "pinned_for"],
            [0, "", "", "", 0, 0, "", ""],
            rows,
        )
    if words == "XAPROXY SHOW TRANSACTIONS":
        return await _transactions(session)
    if words == "XAPROXY SHOW METADATA":
        return _metadata(ctx.planner.metadata)
    if words == "XAPROXY RELOAD METADATA":
        return _metadata(await ctx.reload_metadata())
    raise errors.ProxyError(
        1064, "42000", f"Unknown xaproxy command; available: {', '.join(_COMMANDS)}"
    )


def _metadata(catalog: Catalog) -> tuple[Columns, list[list]]:
    """One row per configured table: its state, columns and keys as the shards gave them."""
    rows = []
    for state in catalog.tables.values():
        definition = state.definition
        problem = state.problem
        status = "ok" if problem is None else ("absent" if state.absent else "differs")
        columns = primary = unique = auto = None
        if definition is not None:
            columns = ", ".join(f"{c.name} {c.describe()}" for c in definition.columns)
            primary = ",".join(definition.primary_key)
            unique = "; ".join(",".join(k) for k in definition.unique_keys)
            auto = definition.auto_increment
        rows.append(
            [
                state.schema,
                state.name,
                ",".join(state.shards),
                status,
                problem,
                columns,
                primary,
                unique,
                auto,
            ]
        )
    names = [
        "schema",
        "table",
        "shards",
        "status",
        "problem",
        "columns",
        "primary_key",
        "unique_keys",
        "auto_increment",
    ]
    return _table(names, [""] * len(names), rows)


async def _transactions(session: Session) -> tuple[Columns, list[list]]:
    """Active transactions of this proxy, then every prepared branch the shards report."""
    ctx = session.ctx
    now = time.monotonic()
    rows: list[list] = []
    for other in list(ctx.sessions.values()):
        txn = other.txn
        if txn is None:
            continue
        branches = ",".join(
            f"{shard}:{'local' if b.xid is None else 'xa'}{'+w' if b.wrote else ''}"
            for shard, b in txn.branches.items()
        )
        gtrid = txn.gid.gtrid if txn.gid else ""
        rows.append(["active", other.id, gtrid, txn.state, branches, round(now - txn.started, 3)])
    resolver = ctx.resolver
    if resolver is not None:
        for branch in await resolver.scan():
            gid = branch.ours
            label = branch.gtrid.decode("utf-8", "replace")
            if gid is None:
                rows.append(
                    [
                        "foreign",
                        None,
                        label,
                        f"prepared (formatID {branch.format_id})",
                        branch.shard,
                        None,
                    ]
                )
                continue
            state = (
                "prepared, in flight here" if gid.gtrid in ctx.coordinator.active else "in doubt"
            )
            rows.append(
                [
                    "prepared",
                    None,
                    gid.gtrid,
                    state,
                    f"{branch.shard} (decision on {gid.decision_shard})",
                    round(gid.age_s(), 3),
                ]
            )
        for shard, gtrid, status, age in await resolver.undo_entries():
            if status == at.UNDO_DEFENSE:
                continue
            state = (
                "at: needs operator"
                if status == at.UNDO_NEEDS_OPERATOR
                else "at: committed locally"
            )
            rows.append(["at", None, gtrid, state, shard, round(age, 3)])
    names = ["kind", "session", "gtrid", "state", "branches", "age_s"]
    return _table(names, ["", 0, "", "", "", "0.0"], rows)


async def _resolve(session: Session, gtrid: str, how: str) -> tuple[Columns, list[list]]:
    """The operator's decision for an AT transaction whose rollback found outside changes."""
    ctx = session.ctx
    rows = []
    quoted = "'" + gtrid.replace("'", "''") + "'"
    for shard in ctx.config.shards:
        backend = await ctx.pools.acquire(shard)
        try:
            found = await backend.query_rows(
                f"SELECT status FROM {at.UNDO} WHERE gtrid = {quoted} AND shard = '{shard}'"
            )
            # Only a rollback stopped for an operator: undo rows of a transaction still
            # in flight (status 0) and defense rows (status 1) are not the operator's.
            if not found or int(found[0][0] or b"0") != at.UNDO_NEEDS_OPERATOR:
                continue
            if how == "RESTORE":
                result = await at.compensate(backend, gtrid, shard, force=True)
                rows.append([shard, gtrid, f"restored before images ({result.result})"])
            else:
                await backend.execute_ok(
                    f"DELETE FROM {at.UNDO} WHERE gtrid = {quoted} AND shard = '{shard}'; "
                    f"DELETE FROM {at.LOCKS} WHERE gtrid = {quoted}"
                )
                rows.append([shard, gtrid, "kept current rows; undo log and locks dropped"])
        except errors.ProxyError:
            backend.usable = False
            raise
        finally:
            ctx.pools.release(backend)
    if not rows:
        raise errors.ProxyError(
            1397,
            "XAE04",
            f"no AT rollback of transaction '{gtrid}' waits for an operator "
            "(XAPROXY SHOW TRANSACTIONS lists those as 'at: needs operator')",
        )
    return _table(["shard", "gtrid", "result"], ["", "", ""], rows)


def _explain(session: Session, statement: str) -> tuple[Columns, list[list]]:
    """Plans a statement exactly as it would run, and shows the plan tree instead of running it."""
    kind = analyze(statement).kind
    parsed, params = session.ctx.parse_cache.template(statement)
    plan = session.ctx.planner.plan(kind, parsed, statement, session.database, params)
    rows = [[line] for line in plan.describe().splitlines()]
    return _table(["plan"], [""], rows)
