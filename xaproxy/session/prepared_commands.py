"""COM_STMT_PREPARE / EXECUTE / SEND_LONG_DATA for a Session.

Statements are planned once at PREPARE; EXECUTE binds the values, inlines them as
literals and runs the statement as text.
"""

from __future__ import annotations

import logging
import struct

from .. import errors
from ..analysis import Kind, analyze
from ..analysis.spans import placeholder_offsets
from ..protocol import wire
from ..protocol.binary import decode_params, parse_execute
from ..protocol.constants import (
    Command,
    FieldType,
)
from ..routing.planner import Route
from .prepared import PreparedStatement
from .query import is_routed

log = logging.getLogger(__name__)

_U32 = struct.Struct("<I")

_PARAM_DEF = wire.ColumnDef("?", type=FieldType.VAR_STRING, charset=63, length=0).encode()


class PreparedCommands:
    """Part of Session (see session.py); relies on its state."""

    async def _com_stmt_prepare(self, payload: bytes) -> None:
        analysis = analyze(self._decode(payload[1:]))
        sql = analysis.effective
        if analysis.multiple:
            raise errors.ProxyError(
                1064,
                "42000",
                "You have an error in your SQL syntax: a prepared statement "
                "holds exactly one statement",
            )
        kind = analysis.kind
        offsets = placeholder_offsets(sql)
        statement = PreparedStatement(self._next_statement_id, sql, kind, offsets)
        statement.database_at_prepare = self.database
        if kind in (Kind.USE, Kind.EMPTY, Kind.COMMENT, Kind.LOAD_DATA_LOCAL):
            raise errors.unsupported_prepare(
                sql.split(None, 1)[0].upper() if sql.strip() else "empty"
            )
        if is_routed(kind) and not (analysis.uses_session_values and not offsets):
            parsed = self.ctx.parse_cache.get(sql)
            planner = self.ctx.planner
            if not offsets:
                route = planner.route(parsed, sql, self.database)
                statement.route = route if route.static else None
            statement.template = (
                self.ctx.parse_cache.get(statement.template_text()) if offsets else parsed
            )
            if offsets and statement.template.ast is not None:
                # A route that does not depend on values (no sharded table) is kept.
                try:
                    route = planner.route(statement.template, sql, self.database, None)
                except errors.ProxyError:
                    route = None
                if route is not None and route.static:
                    statement.route = route
            await self._describe_on_shard(
                statement, planner.describe_shard(parsed, sql, self.database)
            )
        elif is_routed(kind):
            statement.kind = Kind.LOCAL_SELECT
        self._next_statement_id += 1
        self.prepared[statement.id] = statement
        out = self.out
        out.write(
            b"\x00"
            + _U32.pack(statement.id)
            + struct.pack("<HHBH", len(statement.columns), len(offsets), 0, 0)
        )
        if offsets:
            for _ in offsets:
                out.write(_PARAM_DEF)
            if not self.deprecate_eof:
                out.write(wire.eof_packet(self.status()))
        if statement.columns:
            for coldef in statement.columns:
                out.write(coldef)
            if not self.deprecate_eof:
                out.write(wire.eof_packet(self.status()))

    async def _describe_on_shard(self, statement: PreparedStatement, shard: str) -> None:
        """Prepares on the shard once to learn the result columns, then closes it there."""
        backend, borrowed = await self._backend_for_settings(shard, Route((shard,)))
        try:
            await backend.send(
                Command.STMT_PREPARE, statement.sql.encode("utf-8", "surrogateescape")
            )
            first = await backend.read()
            if wire.is_err(first):
                raise wire.parse_err(first)
            shard_id, columns, params = struct.unpack_from("<IHH", first, 1)
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
                self.ctx.pools.release(backend)

    def _statement(self, statement_id: int, where: str) -> PreparedStatement:
        statement = self.prepared.get(statement_id)
        if statement is None:
            raise errors.unknown_statement(statement_id, where)
        return statement

    def _com_stmt_send_long_data(self, payload: bytes) -> None:
        if len(payload) < 7:
            return  # no reply is allowed for this command, even on error
        statement = self.prepared.get(_statement_id(payload))
        if statement is None:
            return
        param = struct.unpack_from("<H", payload, 5)[0]
        statement.long_data[param] = statement.long_data.get(param, b"") + payload[7:]

    async def _com_stmt_execute(self, payload: bytes) -> None:
        statement = self._statement(_statement_id(payload), "mysqld_stmt_execute")
        count = len(statement.offsets)
        request = parse_execute(payload[1:], count)
        if count:
            if request.param_types is not None:
                statement.param_types = request.param_types
            elif statement.param_types is None:
                raise errors.malformed_packet("parameter types were never sent for this statement")
            values = decode_params(request, statement.param_types, statement.long_data)
            statement.long_data.clear()
            sql = statement.inline(values, not self.no_backslash_escapes)
        else:
            sql = statement.sql
        kind = statement.kind
        if kind is Kind.LOCAL_SELECT:
            if not await self._local_select(sql, False, True):
                await self._execute_text(sql, more=False, binary=True)
            return
        route = statement.route
        if route is not None and self.database != statement.database_at_prepare:
            route = None
        template = statement.template
        if route is None and is_routed(kind) and template is not None and template.ast is not None:
            # planned once at PREPARE; only the values are bound now
            route = self.ctx.planner.route(template, sql, self.database, values if count else None)
        if is_routed(kind) and route is not None:
            await self._run_routed(sql, route, more=False, binary=True)
            return
        await self._execute_text(
            sql, more=False, binary=True, kind=None if is_routed(kind) else kind, route=route
        )


def _statement_id(payload: bytes) -> int:
    if len(payload) < 5:
        raise errors.malformed_packet("statement id missing")
    return _U32.unpack_from(payload, 1)[0]
