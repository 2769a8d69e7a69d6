"""One client statement: answered by the session itself, or planned and handed to the executor.

The table below maps each statement kind the session answers to its function;
everything else is planned (routing/) and run by execution/executor.py through
the session's shard access (transactions/access.py).
"""

from __future__ import annotations

from ..execution import executor
from ..protocol.constants import Capability
from ..routing.planner import Route
from ..routing.statements import Kind, classify_keywords, needs_local_answer, split_statements
from . import local, transaction_control
from .state import SessionState

_MULTI_STATEMENTS = int(Capability.MULTI_STATEMENTS)


async def com_query(s: SessionState, payload: bytes) -> None:
    sql = s.decode(payload[1:])
    texts = split_statements(sql) if s.capabilities & _MULTI_STATEMENTS else [sql]
    last = len(texts) - 1
    for index, text in enumerate(texts):
        await execute_text(s, text, more=index < last, binary=False)


async def execute_text(
    s: SessionState,
    sql: str,
    *,
    more: bool,
    binary: bool,
    kind: Kind | None = None,
    route: Route | None = None,
) -> None:
    """Runs one statement and queues its result (one result, or an error raised)."""
    if kind is None:
        kind = classify_keywords(sql)
    if kind is None:
        kind = Kind.ROUTED
        if needs_local_answer(sql) and await local.local_select(s, sql, more, binary):
            return
    handler = _HANDLERS.get(kind)
    if handler is not None:
        await handler(s, sql, more, binary)
        return
    if route is None:
        route = s.ctx.route(sql, s.database)
    await executor.run(s, s.shards, sql, route, more=more, binary=binary)


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
    Kind.SHOW_WARNINGS: local.show_warnings,
    Kind.SHOW_ERRORS: local.show_warnings,
    Kind.SHOW_WARNING_COUNT: local.show_warning_count,
    Kind.SHOW_ERROR_COUNT: local.show_warning_count,
    Kind.XA: local.xa_statement,
    Kind.KILL: local.kill_statement,
    Kind.CREATE_DATABASE: local.database_statement,
    Kind.DROP_DATABASE: local.database_statement,
    Kind.PROXY: local.proxy_command,
    Kind.LOAD_DATA_LOCAL: local.load_data_local,
    Kind.EMPTY: local.empty,
}
