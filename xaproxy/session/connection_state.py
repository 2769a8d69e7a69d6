"""A routed statement and the connection-local state it creates: pins, user variables,
`SET STATEMENT ... FOR`.

State the proxy cannot reproduce on another connection (user variables, temporary
tables, named locks, LOCK TABLES, SQL-level PREPARE; Statement.connection_state)
pins the session to the connection it was created on, for the rest of the session;
at the end such a connection is reset (COM_RESET_CONNECTION) before it goes back to
the pool (transactions/access.py). A user variable lives on one shard's connection:
a statement that uses it runs there, or is refused when it cannot.
"""

from __future__ import annotations

import dataclasses

from .. import errors
from ..analysis import Kind, Statement, analyze
from ..execution import executor
from ..execution.native import NativeExecute
from ..routing.plan import InsertSelect, LoadStaged, OnceEvaluated, OrderedWrite, Plan, on_shard
from ..shards.statements import prepared_on
from . import insert_select, load_staged, ordered_write, table_locks, volatile_values
from .state import USER_VARIABLES, SessionState

# Statements without tables that the proxy may run on any shard: they go where the
# session's user variables live.
_MOVABLE = (Kind.SELECT, Kind.DO, Kind.SET)


async def run_routed(
    s: SessionState,
    sql: str,
    statement: Statement,
    route: Plan | None,
    *,
    more: bool,
    binary: bool,
    native: NativeExecute | None = None,
) -> None:
    """Plans (unless `route` is given) and runs a statement, pinning the session to the
    connection it runs on when it creates state only that connection can hold.

    `native`: a prepared statement's execute for the shard's own statement (executor.run).
    """
    if statement.set_statement is not None:
        route = _one_statement_settings(s, statement, route)
    elif route is None:
        try:
            route = s.ctx.route(sql, s.database)
        except errors.ProxyError as refusal:
            if refusal.code == errors.NOT_SUPPORTED:
                await raise_syntax_error(s, sql)
            raise
    table_locks.check(s, statement, route)
    if isinstance(route.root, InsertSelect):
        await insert_select.run(s, route.root, more, _run_text)
        return
    if isinstance(route.root, OrderedWrite):
        await ordered_write.run(s, route.root, more, _run_text)
        return
    if isinstance(route.root, OnceEvaluated):
        await volatile_values.run(s, route.root, more, _run_text)
        return
    if isinstance(route.root, LoadStaged):
        await load_staged.run(s, route.root, more, _run_text)
        return
    cause = statement.connection_state
    if cause is None:
        await executor.run(s, s.shards, sql, route, more=more, binary=binary, native=native)
        return
    if cause == USER_VARIABLES:
        route, keeps = place_user_variables(s, statement, route)
        if not keeps:  # it only reads variables this session never set: NULL anywhere
            await executor.run(s, s.shards, sql, route, more=more, binary=binary, native=native)
            return
    s.pin_request = cause
    try:
        await executor.run(s, s.shards, sql, route, more=more, binary=binary, native=native)
    finally:
        s.pin_request = None


async def _run_text(s: SessionState, sql: str, more: bool = False) -> None:
    """A statement the proxy makes for the session (a step of InsertSelect or
    OrderedWrite), run as a client's."""
    await run_routed(s, sql, analyze(sql), None, more=more, binary=False)


async def raise_syntax_error(s: SessionState, sql: str) -> None:
    """Raises the syntax error (1064) MariaDB answers `sql` with, if it has one: a statement
    the proxy would refuse (`LIMIT '2'` over several shards) that MariaDB cannot even parse
    gets MariaDB's answer. The default shard prepares it, which runs nothing."""
    shard = s.ctx.planner.default_shard(s.database)
    try:
        async with s.shards.outside_writes(shard) as backend:
            await prepared_on(backend, sql)
    except errors.ProxyError as exc:
        if exc.code == _PARSE_ERROR:
            raise exc from None
        # no syntax error, or the shard is down: the refusal stands


_PARSE_ERROR = 1064


def _one_statement_settings(s: SessionState, statement: Statement, route: Plan | None) -> Plan:
    """`SET STATEMENT var=value, ... FOR <stmt>`: routed as <stmt>; every shard's text
    keeps the prefix, so the settings apply to that statement alone, and they are
    never recorded as the session's."""
    if route is None:
        inner = statement.effective[statement.body_start :]
        route = s.ctx.route(inner, s.database)
        route = dataclasses.replace(
            route, sql=inner, prefix=statement.effective[: statement.body_start]
        )
    if route.write and (s.txn_mode == "at" or (s.txn is not None and s.txn.mode == "at")):
        raise errors.not_supported(
            "SET STATEMENT ... FOR a write in AT mode",
            "run the write without SET STATEMENT, or in XA mode",
        )
    return route


def place_user_variables(s: SessionState, statement: Statement, route: Plan) -> tuple[Plan, bool]:
    """The route of a statement that uses user variables: the shard where they live; and
    whether its connection must be kept (it assigns some, or reads ones set before).

    A statement without tables moves there; one that runs elsewhere or on several
    shards is refused (its variables would be another connection's, or NULL).
    """
    homes = s.variable_homes
    placed = {homes[name] for name in statement.user_variables if name in homes}
    assigned = statement.assigned_user_variables
    if not placed and not assigned:
        return route, False
    shards = route.shards
    if len(placed) > 1:
        raise errors.not_supported(
            "a statement using user variables that live on different shards' connections "
            f"({', '.join(sorted(placed))})",
            "use variables set by statements on the same shard, or pass values as literals",
        )
    home = next(iter(placed), None)
    if home is not None and shards != (home,):
        if statement.tables or statement.kind not in _MOVABLE:
            raise errors.not_supported(
                f"user variables here: they live on the connection to shard '{home}' and "
                f"this statement runs on {', '.join(shards) or 'no shard'}",
                "use them in statements on that shard's tables, or pass values as literals",
            )
        route = on_shard(home, "where the session's user variables live")
        shards = route.shards
    if len(shards) != 1:
        raise errors.not_supported(
            "user variables in a statement that runs on several shards "
            f"({', '.join(shards)}): each shard would have its own values",
            "narrow it to one shard (its shard key), or pass values as literals",
        )
    for name in assigned:
        homes[name] = shards[0]
    return route, True
