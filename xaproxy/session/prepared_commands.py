"""COM_STMT_PREPARE / EXECUTE / SEND_LONG_DATA / RESET, as functions over the session state.

Statements are planned once at PREPARE. An EXECUTE that one shard runs is forwarded
to the shard's own prepared statement with the client's parameter block
(execution/native.py); any other (several shards, AT mode, answered by the proxy)
binds the values, inlines them as literals and runs the statement as text.
"""

from __future__ import annotations

import logging
import struct

from .. import errors
from ..analysis import Kind, analyze
from ..analysis.spans import placeholders
from ..authz import authorize
from ..execution.native import NativeExecute
from ..protocol import wire
from ..protocol.binary import ExecuteRequest, decode_params, parse_execute
from ..protocol.constants import Capability, Command
from ..protocol.resultset import parse_prepare_ok, write_prepare_ok
from ..routing.keys import key_shard
from ..routing.plan import Plan, Route
from . import connection_state, local, reply, statements
from .limit_values import with_limit_counts
from .prepared import PreparedStatement
from .state import SessionState

log = logging.getLogger(__name__)

_U32 = struct.Struct("<I")
_PS_MULTI_RESULTS = int(Capability.PS_MULTI_RESULTS)


async def stmt_prepare(s: SessionState, payload: bytes) -> None:
    limit = s.ctx.config.max_prepared_statements
    if len(s.prepared) >= limit:
        raise errors.ProxyError(
            1461,
            "42000",
            "Can't create more than max_prepared_stmt_count statements "
            f"(current value: {limit}, xaproxy's max_prepared_statements per session): "
            "close statements the application no longer uses",
        )
    analysis = analyze(s.decode(payload[1:]))
    sql = analysis.effective
    if analysis.multiple:
        raise errors.ProxyError(
            1064,
            "42000",
            "You have an error in your SQL syntax: a prepared statement "
            "holds exactly one statement",
        )
    authorize(analysis, s.grants, s.database)  # before the shard sees the text
    kind = analysis.kind
    offsets, in_limit = placeholders(sql)
    if (
        kind in statements.ACCOUNT_VALUE_KINDS
        and analysis.uses_account
        and (offsets or kind is not Kind.SELECT)  # a SELECT without markers may be local
    ):
        replaced = local.with_account_values(s, analysis)
        if replaced is not None:
            analysis = analyze(replaced)
            sql = analysis.effective
            offsets, in_limit = placeholders(sql)
    statement = PreparedStatement(s.next_statement_id, sql, kind, offsets)
    statement.database_at_prepare = s.database
    statement.limit_params = in_limit
    # Values the session owns (LAST_INSERT_ID(), ROW_COUNT(), @@autocommit...) are the
    # pooled shard connection's in a native statement: those stay on the text path.
    statement.native = (
        kind in _NATIVE_KINDS
        and analysis.set_statement is None
        and not analysis.uses_session_values
    )
    if kind in (Kind.USE, Kind.EMPTY, Kind.COMMENT, Kind.LOAD_DATA_LOCAL):
        raise errors.unsupported_prepare(sql.split(None, 1)[0].upper() if sql.strip() else "empty")
    if statements.is_routed(kind) and not (analysis.uses_session_values and not offsets):
        parsed = s.ctx.parse_cache.get(sql)
        planner = s.ctx.planner
        if not offsets:
            route = planner.route(parsed, sql, s.database)
            statement.route = route if route.static else None
        statement.template = s.ctx.parse_cache.get(statement.template_text()) if offsets else parsed
        if offsets and statement.template.ast is not None:
            # A route that does not depend on values (no sharded table) is kept.
            try:
                route = planner.route(statement.template, sql, s.database, None)
            except errors.ProxyError:
                route = None
            if route is not None and route.static:
                statement.route = route
            elif statement.native:
                statement.key_param = planner.key_parameter(statement.template, s.database)
        await _describe_on_shard(s, statement, planner.describe_shard(parsed, sql, s.database))
    elif statements.is_routed(kind):
        statement.kind = Kind.LOCAL_SELECT
    s.next_statement_id += 1
    s.prepared[statement.id] = statement
    write_prepare_ok(
        s.out, statement.id, statement.columns, len(offsets), s.status(), s.deprecate_eof
    )


async def _describe_on_shard(s: SessionState, statement: PreparedStatement, shard: str) -> None:
    """Prepares on the shard once to learn the result columns, then closes it there."""
    backend, borrowed = await s.shards.connection_outside_writes(shard)
    try:
        await backend.send(Command.STMT_PREPARE, statement.sql.encode("utf-8", "surrogateescape"))
        first = await backend.read()
        if wire.is_err(first):
            raise wire.parse_err(first)
        shard_id, columns, params = parse_prepare_ok(first)
        for _ in range(params):
            await backend.read()
        if params and not backend.deprecate_eof:
            await backend.read()
        coldefs = [await backend.read() for _ in range(columns)]
        if columns and not backend.deprecate_eof:
            await backend.read()
        await backend.send(Command.STMT_CLOSE, _U32.pack(shard_id))
        statement.columns = coldefs
        if params != len(statement.offsets):
            raise errors.ProxyError(
                1210,
                "HY000",
                f"xaproxy counted {len(statement.offsets)} parameter markers but the shard "
                f"counted {params}",
            )
    except errors.ShardUnavailable:
        backend.usable = False
        raise
    finally:
        if borrowed:
            s.shards.release(backend)


def statement_of(s: SessionState, statement_id: int, where: str) -> PreparedStatement:
    statement = s.prepared.get(statement_id)
    if statement is None:
        raise errors.unknown_statement(statement_id, where)
    return statement


def stmt_send_long_data(s: SessionState, payload: bytes) -> None:
    if len(payload) < 7:
        return  # no reply is allowed for this command, even on error
    statement = s.prepared.get(_statement_id(payload))
    if statement is None:
        return
    param = struct.unpack_from("<H", payload, 5)[0]
    if statement.long_data_too_large:
        return
    data = statement.long_data.get(param, b"") + payload[7:]
    if sum(map(len, statement.long_data.values())) + len(payload) - 7 > s.ctx.max_allowed_packet:
        statement.long_data.clear()  # memory stays bounded; EXECUTE reports it
        statement.long_data_too_large = True
        return
    statement.long_data[param] = data


async def stmt_execute(s: SessionState, payload: bytes) -> None:
    statement = statement_of(s, _statement_id(payload), "mysqld_stmt_execute")
    if s.database != statement.database_at_prepare:
        authorize(analyze(statement.sql), s.grants, s.database)  # its names resolve anew
    count = len(statement.offsets)
    request = _bind(statement, payload, count)
    kind = statement.kind
    route = statement.route
    if route is not None and s.database != statement.database_at_prepare:
        route = None
    if route is not None and _runs_natively(s, statement, route):
        if count:
            # the proxy forwards only a parameter block it can read itself: a malformed
            # one is refused here, as on the inline path, not left to the shard's reading
            decode_params(request, statement.param_types, statement.long_data)
        await _execute_natively(s, statement, payload, route)
        return
    values = None
    if count:
        values = decode_params(request, statement.param_types, statement.long_data)
        values = with_limit_counts(values, statement.limit_params, statement.param_types)
        sql = statement.inline(values, not s.no_backslash_escapes, s.client_charset)
    else:
        sql = statement.sql
    if kind is Kind.LOCAL_SELECT:
        statement.long_data.clear()
        if not await local.local_select(s, sql, False, True):
            await statements.execute_text(s, sql, more=False, binary=True)
        return
    template = statement.template
    if (
        route is None
        and statements.is_routed(kind)
        and template is not None
        and template.ast is not None
    ):
        # planned once at PREPARE; only the values are bound now
        shard = _key_shard(s, statement, values)
        route = statement.key_plans.get(shard) if shard is not None else None
        if route is None:
            route = s.ctx.planner.route(template, sql, s.database, values)
            if shard is not None and route.shards == (shard,) and type(route.root) is Route:
                statement.key_plans[shard] = route
        if _runs_natively(s, statement, route):
            await _execute_natively(s, statement, payload, route)
            return
    statement.long_data.clear()
    if statements.is_routed(kind) and route is not None:
        try:
            await connection_state.run_routed(
                s, sql, analyze(statement.sql), route, more=False, binary=True
            )
        finally:
            if kind is Kind.DDL and statements.changes_definitions(s, kind, analyze(sql)):
                await s.ctx.reload_metadata()
        return
    await statements.execute_text(
        s,
        sql,
        more=False,
        binary=True,
        kind=None if statements.is_routed(kind) else kind,
        route=route,
    )


# Statements whose execute goes to the shard's own prepared statement when one shard
# runs them; DDL and the rest keep the inline path (metadata reloads, implicit commits).
_NATIVE_KINDS = frozenset(
    {Kind.SELECT, Kind.INSERT, Kind.UPDATE, Kind.DELETE, Kind.REPLACE, Kind.CALL, Kind.DO}
)


def _runs_natively(s: SessionState, statement: PreparedStatement, route: Plan) -> bool:
    """One shard runs it as the client wrote it, and no AT-mode transaction needs its text
    (the AT layer takes before-images from the statement's literal values). A CALL only
    for a client that takes OUT parameters (CLIENT_PS_MULTI_RESULTS): the shard sends them."""
    root = route.root
    return (
        statement.native
        and (statement.kind is not Kind.CALL or bool(s.capabilities & _PS_MULTI_RESULTS))
        and type(root) is Route
        and root.sql is None
        and not route.prefix
        and s.txn_mode != "at"
        and (s.txn is None or s.txn.mode != "at")
    )


async def _execute_natively(
    s: SessionState, statement: PreparedStatement, payload: bytes, route: Plan
) -> None:
    long_data, statement.long_data = statement.long_data, {}
    command = NativeExecute(
        statement.sql, payload, len(statement.offsets), statement.raw_types, long_data
    )
    await connection_state.run_routed(
        s, statement.sql, analyze(statement.sql), route, more=False, binary=True, native=command
    )


def _key_shard(
    s: SessionState, statement: PreparedStatement, values: list[object] | None
) -> str | None:
    """The one shard a `WHERE key = ?` template's value names (the planner's rule), when
    its plan for that shard may be reused: same database, same table metadata."""
    keyed = statement.key_param
    if keyed is None or values is None or s.database != statement.database_at_prepare:
        return None
    planner = s.ctx.planner
    if statement.key_metadata is not planner.metadata:
        # new table metadata: the key column may read values otherwise; plans made anew
        statement.key_plans.clear()
        statement.key_metadata = planner.metadata
        assert statement.template is not None
        keyed = statement.key_param = planner.key_parameter(statement.template, s.database)
        if keyed is None:
            return None
    table, column, index = keyed
    shards = key_shard(table, values[index], column)
    return shards[0] if shards is not None and len(shards) == 1 else None


def _bind(statement: PreparedStatement, payload: bytes, count: int) -> ExecuteRequest:
    """The execute's parts; the parameter types it binds are kept for later executes."""
    request = parse_execute(payload[1:], count)
    if statement.long_data_too_large:
        statement.long_data_too_large = False
        raise errors.ProxyError(
            1153,
            "08S01",
            "Parameter of prepared statement which is set through mysql_send_long_data() "
            "is longer than 'max_allowed_packet' bytes",
        )
    if count:
        if request.param_types is not None:
            statement.param_types = request.param_types
            statement.raw_types = _raw_types(payload, count)
        elif statement.param_types is None:
            raise errors.malformed_packet("parameter types were never sent for this statement")
    return request


def _raw_types(payload: bytes, count: int) -> bytes:
    start = 11 + (count + 7) // 8  # command, id, flags, iterations, NULL bitmap, bound flag
    return bytes(payload[start : start + 2 * count])


def _statement_id(payload: bytes) -> int:
    if len(payload) < 5:
        raise errors.malformed_packet("statement id missing")
    return _U32.unpack_from(payload, 1)[0]


def stmt_close(s: SessionState, payload: bytes) -> None:
    s.prepared.pop(_statement_id(payload), None)  # no reply, as on MySQL


def stmt_reset(s: SessionState, payload: bytes) -> None:
    statement = statement_of(s, _statement_id(payload), "mysqld_stmt_reset")
    statement.long_data.clear()
    statement.long_data_too_large = False
    reply.ok(s, False)
