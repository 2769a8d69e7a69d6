"""One client statement: answered by the session itself, or planned and handed to the executor.

The table below maps each statement kind the session answers to its function;
everything else is planned (routing/) and run by execution/executor.py through
the session's shard access (transactions/access.py).
"""

from __future__ import annotations

from sqlglot import exp

from .. import errors
from ..analysis import Kind, Statement, analyze, session_calls, split_statements
from ..authz import authorize
from ..protocol import wire
from ..protocol.constants import Capability, Status
from ..routing.plan import Plan
from ..routing.planner import ANSWERED_LOCALLY
from . import (
    connection_state,
    load_data,
    local,
    reply,
    sql_prepared,
    table_locks,
    transaction_control,
)
from .state import SessionState

_MULTI_STATEMENTS = int(Capability.MULTI_STATEMENTS)
_MORE = int(Status.MORE_RESULTS_EXISTS)


async def com_query(s: SessionState, payload: bytes) -> None:
    sql = s.decode(payload[1:])
    if s.capabilities & _MULTI_STATEMENTS:
        statements = split_statements(sql)
    else:
        statements = [analyze(sql)]
        if statements[0].multiple:
            raise errors.parse_error(
                "this connection did not enable multi-statements "
                "(CLIENT_MULTI_STATEMENTS): send one statement per query"
            )
    last = len(statements) - 1
    for index, statement in enumerate(statements):
        await execute_text(
            s, statement.effective, more=index < last, binary=False, statement=statement
        )


async def execute_text(
    s: SessionState,
    sql: str,
    *,
    more: bool,
    binary: bool,
    kind: Kind | None = None,
    route: Plan | None = None,
    statement: Statement | None = None,
) -> None:
    """Runs one statement and queues its result (one result, or an error raised)."""
    if kind is None:
        statement = statement or analyze(sql)
        authorize(statement, s.grants, s.database)  # the allowlist, before anything runs
        kind = statement.kind
        if (
            kind not in _HANDLERS
            and statement.uses_session_values
            and await local.local_select(s, sql, more, binary)
        ):
            return
        if kind in ACCOUNT_VALUE_KINDS and statement.uses_account:
            replaced = local.with_account_values(s, statement)
            if replaced is not None:
                sql = replaced
                statement = analyze(sql)
        if kind in _EVALUATES_COUNTS and statement.functions & session_calls.COUNT_FUNCTIONS:
            sql = _with_session_counts(s, statement)
            statement = analyze(sql)
        if sql_prepared.is_managed(kind) and await _sql_prepared(s, statement, more, binary):
            return
        if (kind is Kind.LOCK_TABLES and await table_locks.lock(s, statement)) or (
            kind is Kind.UNLOCK_TABLES and await table_locks.unlock(s)
        ):
            reply.ok(s, more)
            return
        if kind is Kind.DDL:
            warnings = await table_locks.toggle_keys(s, statement)
            if warnings is not None:
                reply.ok(s, more, warnings=warnings)
                return
    handler = _HANDLERS.get(kind)
    if handler is not None:
        if kind is not Kind.SET and (statement or analyze(sql)).set_statement is not None:
            raise errors.not_supported(
                f"SET STATEMENT ... FOR {kind.value.upper()}", "run the statement without it"
            )
        await handler(s, sql, more, binary)
        if kind is Kind.DROP_DATABASE:
            await s.ctx.reload_metadata()
        return
    statement = statement or analyze(sql)
    if kind is not Kind.DDL or not changes_definitions(s, kind, statement):
        await connection_state.run_routed(s, sql, statement, route, more=more, binary=binary)
        return
    try:
        await connection_state.run_routed(s, sql, statement, route, more=more, binary=binary)
    finally:
        # also after a failure: DDL on several shards may have applied on some of them
        await s.ctx.reload_metadata()


async def _sql_prepared(s: SessionState, statement: Statement, more: bool, binary: bool) -> bool:
    """PREPARE/EXECUTE/DEALLOCATE of a statement the proxy keeps (sql_prepared.py); False:
    the shard's (routed as before, pinning the session)."""
    kind = statement.kind
    if kind is Kind.PREPARE:
        info = await sql_prepared.prepare(s, statement)
        if info is None:
            return False
        status = s.status() | (_MORE if more else 0)
        s.out.write(wire.ok_packet(status, 0, 0, 0, info))
        s.note_result(affected=0)
        return True
    if kind is Kind.DEALLOCATE:
        if len(statement.tokens) != 3 or not sql_prepared.deallocate(s, statement):
            return False
        reply.ok(s, more)
        return True
    if kind is Kind.EXECUTE_IMMEDIATE:
        text = await sql_prepared.immediate_text(s, statement)
    else:
        text = await sql_prepared.execute_text(s, statement)
    if text is None:
        return False
    await execute_text(s, text, more=more, binary=binary)
    return True


# Statements whose ROW_COUNT()/FOUND_ROWS() are evaluated when they run (not stored
# program bodies, which the shard runs later with its own values).
_EVALUATES_COUNTS = frozenset(
    {
        Kind.SELECT,
        Kind.INSERT,
        Kind.UPDATE,
        Kind.DELETE,
        Kind.REPLACE,
        Kind.DO,
        Kind.SET,
        Kind.CALL,
    }
)


def _with_session_counts(s: SessionState, statement: Statement) -> str:
    """The statement with the session's ROW_COUNT()/FOUND_ROWS() written in; a SELECT
    item that is (or holds) one without an alias is refused: its column would be named
    after the value, not after the call as MariaDB names it."""
    if statement.kind is Kind.SELECT:
        ast = s.ctx.parse_cache.get(statement.effective).ast
        items = ast.expressions if isinstance(ast, exp.Select) else []
        for item in items:
            if not isinstance(item, exp.Alias) and any(
                isinstance(node, exp.Anonymous)
                and str(node.this).upper() in session_calls.COUNT_FUNCTIONS
                for node in item.walk()
            ):
                raise errors.not_supported(
                    "ROW_COUNT()/FOUND_ROWS() without an alias in a SELECT that a shard runs",
                    "give the item an alias (ROW_COUNT() AS n), or select it alone",
                )
    return session_calls.with_values(
        statement, {"ROW_COUNT": s.row_count, "FOUND_ROWS": s.found_rows_count}
    )


# Statements whose USER() & co. the session replaces with the proxy user's value.
ACCOUNT_VALUE_KINDS = frozenset(
    {Kind.SELECT, Kind.INSERT, Kind.UPDATE, Kind.DELETE, Kind.REPLACE, Kind.DO, Kind.CALL}
    | {Kind.SET}
)

_DEFINITION_VERBS = frozenset({"CREATE", "ALTER", "DROP", "RENAME"})


def changes_definitions(s: SessionState, kind: Kind, statement: Statement) -> bool:
    """DDL that may change a configured table's columns or keys (TRUNCATE does not)."""
    if kind is not Kind.DDL or statement.verb not in _DEFINITION_VERBS:
        return False
    names = statement.names
    return any(
        table in names for schema in s.ctx.config.schemas.values() for table in schema.tables
    )


# Statement kinds the session answers itself, by handler.
_HANDLERS = {
    Kind.BEGIN: transaction_control.begin,
    Kind.COMMIT: transaction_control.commit,
    Kind.ROLLBACK: transaction_control.rollback,
    Kind.SAVEPOINT: transaction_control.savepoint,
    Kind.SET: local.set_statement,
    Kind.USE: local.use_statement,
    Kind.SHOW_DATABASES: local.show_databases,
    Kind.SHOW_TABLES: local.show_tables,
    Kind.SHOW_SESSION_STATUS: local.show_session_status,
    Kind.SHOW_WARNINGS: local.show_warnings,
    Kind.SHOW_ERRORS: local.show_warnings,
    Kind.SHOW_WARNING_COUNT: local.show_warning_count,
    Kind.SHOW_ERROR_COUNT: local.show_warning_count,
    Kind.SHOW_PROCESSLIST: local.show_processlist,
    Kind.XA: local.xa_statement,
    Kind.KILL: local.kill_statement,
    Kind.CREATE_DATABASE: local.database_statement,
    Kind.DROP_DATABASE: local.database_statement,
    Kind.PROXY: local.proxy_command,
    Kind.LOAD_DATA_LOCAL: load_data.load_local,
    Kind.EMPTY: local.empty,
    Kind.COMMENT: local.comment_only,
}


def is_routed(kind: Kind) -> bool:
    """Statements of this kind are planned and run on shards (the session answers the rest)."""
    return kind not in ANSWERED_LOCALLY
