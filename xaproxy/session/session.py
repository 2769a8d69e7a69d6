"""One client connection: the handshake, then a loop over its commands.

A session owns what MySQL keeps per connection (current database, autocommit,
session variables, prepared statements, warnings, LAST_INSERT_ID) and borrows
shard connections only while a statement or a transaction needs them, so
thousands of idle clients cost no backend connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time

from .. import errors
from ..protocol import auth, handshake, wire
from ..protocol.constants import (
    CACHING_SHA2_PASSWORD,
    NATIVE_PASSWORD,
    SERVER_CAPABILITIES,
    UTF8MB4_GENERAL_CI,
    Capability,
    Command,
    Status,
)
from ..protocol.stream import ConnectionClosed, PacketStream, PacketTooLarge
from ..shards.backend import Backend
from ..transactions.coordinator import Transaction
from .charsets import names_setting
from .context import ProxyContext
from .local import LocalStatements
from .prepared import PreparedStatement
from .prepared_commands import PreparedCommands, _statement_id
from .query import StatementExecution
from .transaction_control import TransactionControl

log = logging.getLogger(__name__)

_U32 = struct.Struct("<I")
# Plain ints: IntFlag arithmetic costs an enum construction per statement.
_AUTOCOMMIT = int(Status.AUTOCOMMIT)
_IN_TRANS = int(Status.IN_TRANS)
_NO_BACKSLASH_ESCAPES = int(Status.NO_BACKSLASH_ESCAPES)
_ER_NET_PACKET_TOO_LARGE = errors.ProxyError(
    1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"
)


class Session(StatementExecution, TransactionControl, LocalStatements, PreparedCommands):
    def __init__(
        self, ctx: ProxyContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.ctx = ctx
        self.id = ctx.next_connection_id()
        self.out = PacketStream(reader, writer, ctx.max_allowed_packet)
        peer = writer.get_extra_info("peername")
        self.peer_host = peer[0] if isinstance(peer, tuple) else "localhost"
        self.user = ""
        self.capabilities = 0
        self.deprecate_eof = False
        self.found_rows = False
        self.busy = False
        self.started = time.monotonic()
        self._reset_state(database=None)

    def _reset_state(self, database: str | None) -> None:
        self.database = database
        self.autocommit = True
        self.txn_mode = self.ctx.config.transactions.mode
        self._timed_out = False
        self.txn: Transaction | None = None
        self.pinned: dict[str, Backend] = {}
        self.settings: tuple[str, ...] = ()
        self.charset_setting: str | None = None
        self.next_txn_characteristics: str | None = None
        self.last_insert_id = 0
        self.warnings: list[tuple[str, int, str]] = []
        self.no_backslash_escapes = False
        self.prepared: dict[int, PreparedStatement] = {}
        self._next_statement_id = 1

    async def run(self) -> None:
        self.ctx.sessions[self.id] = self
        try:
            if await self._handshake():
                await self._command_loop()
        except ConnectionClosed:
            pass
        except PacketTooLarge:
            with contextlib.suppress(Exception):
                self.out.write_error(_ER_NET_PACKET_TOO_LARGE)
                await self.out.flush()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("session %d failed", self.id)
        finally:
            await self._release_everything()
            self.out.close()
            self.ctx.sessions.pop(self.id, None)

    async def _release_everything(self) -> None:
        """Rolls back what the client left open and gives connections back."""
        if self.txn is not None:
            # CancelledError too: shutdown may cancel a session mid-rollback, and the
            # connections must still be given back below.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self._end_transaction(commit=False, reason="disconnect"))
        for backend in self.pinned.values():
            self.ctx.pools.discard(backend)
        self.pinned.clear()

    async def _handshake(self) -> bool:
        config = self.ctx.config
        scramble = auth.new_scramble()
        plugin = config.auth_plugin
        self.out.write(
            handshake.greeting(
                self.ctx.server_version,
                self.id,
                scramble,
                SERVER_CAPABILITIES,
                UTF8MB4_GENERAL_CI,
                Status.AUTOCOMMIT,
                plugin,
            )
        )
        await self.out.flush()
        payload = await self.out.read_packet()
        try:
            response = handshake.parse_handshake_response(payload)
        except errors.ProxyError as exc:
            self.out.write_error(exc)
            await self.out.flush()
            return False
        if response.capabilities & Capability.SSL and len(payload) <= 32:
            self.out.write_error(
                errors.ProxyError(1045, "28000", "xaproxy does not offer TLS on this listener")
            )
            await self.out.flush()
            return False
        self.capabilities = response.capabilities & SERVER_CAPABILITIES
        self.deprecate_eof = bool(self.capabilities & Capability.DEPRECATE_EOF)
        self.found_rows = bool(self.capabilities & Capability.FOUND_ROWS)
        client_plugin = response.plugin or plugin
        auth_response = response.auth_response
        supported = client_plugin in auth.SUPPORTED_PLUGINS
        if client_plugin != plugin and not auth_response and supported:
            # libmysqlclient sends no proof when its plugin is not the greeting's:
            # it expects an auth switch carrying a nonce for its own plugin.
            scramble = auth.new_scramble()
            self.out.write(handshake.auth_switch_request(client_plugin, scramble))
            await self.out.flush()
            auth_response = await self.out.read_packet()
        ok = await self._authenticate(response.user, client_plugin, scramble, auth_response)
        if not ok:
            return False
        self.charset_setting = names_setting(response.charset)
        self._rebuild_settings([])
        if response.database:
            try:
                self._check_database(response.database)
            except errors.ProxyError as exc:
                self.out.write_error(exc)
                await self.out.flush()
                return False
            self.database = response.database
        self.out.write(wire.ok_packet(self.status()))
        await self.out.flush()
        log.debug("session %d: %s@%s connected", self.id, self.user, self.peer_host)
        return True

    async def _authenticate(self, user: str, plugin: str, scramble: bytes, response: bytes) -> bool:
        """Checks the client's proof of password, switching plugins when needed."""
        if plugin not in auth.SUPPORTED_PLUGINS:
            scramble = auth.new_scramble()
            plugin = NATIVE_PASSWORD
            self.out.write(handshake.auth_switch_request(plugin, scramble))
            await self.out.flush()
            response = await self.out.read_packet()
        account = self.ctx.config.users.get(user)
        if account is None or not auth.verify(plugin, account.password, scramble, response):
            self.out.write_error(errors.access_denied(user, self.peer_host, bool(response)))
            await self.out.flush()
            return False
        if plugin == CACHING_SHA2_PASSWORD:
            self.out.write(b"\x01\x03")  # fast authentication succeeded
        self.user = user
        return True

    async def _command_loop(self) -> None:
        out = self.out
        while True:
            payload = await out.read_packet()
            if not payload:
                out.write_error(errors.malformed_packet("empty command packet"))
                await out.flush()
                continue
            command = payload[0]
            if command == Command.QUIT:
                return
            self.busy = True
            try:
                await self._dispatch(command, payload)
            except errors.ProxyError as exc:
                self._note_error(exc)
                out.write_error(exc)
            except (ConnectionClosed, PacketTooLarge, asyncio.CancelledError):
                raise
            except Exception as exc:
                # A bug must cost one statement, never the session or the proxy.
                log.exception("session %d: internal error", self.id)
                error = errors.ProxyError(
                    1105, "HY000", f"xaproxy internal error: {type(exc).__name__}: {exc}"
                )
                self._note_error(error)
                out.write_error(error)
            finally:
                self.busy = False
            if out.pending or out._out:
                await out.flush()
            if self.ctx.shutting_down and self.txn is None:
                return

    async def _dispatch(self, command: int, payload: bytes) -> None:
        if command == Command.QUERY:
            await self._com_query(payload)
        elif command == Command.STMT_EXECUTE:
            await self._com_stmt_execute(payload)
        elif command == Command.STMT_PREPARE:
            await self._com_stmt_prepare(payload)
        elif command == Command.STMT_CLOSE:
            self.prepared.pop(_statement_id(payload), None)
        elif command == Command.STMT_SEND_LONG_DATA:
            self._com_stmt_send_long_data(payload)
        elif command == Command.STMT_RESET:
            statement = self._statement(_statement_id(payload), "mysqld_stmt_reset")
            statement.long_data.clear()
            self.out.write(wire.ok_packet(self.status()))
        elif command == Command.PING:
            self.out.write(wire.ok_packet(self.status()))
        elif command == Command.INIT_DB:
            self._use(self._decode(payload[1:]))
            self.out.write(wire.ok_packet(self.status()))
        elif command == Command.FIELD_LIST:
            await self._com_field_list(payload)
        elif command == Command.RESET_CONNECTION:
            await self._release_everything()
            self._reset_state(self.database)
            self._rebuild_settings([])
            self.out.write(wire.ok_packet(self.status()))
        elif command == Command.CHANGE_USER:
            await self._com_change_user(payload)
        elif command == Command.SET_OPTION:
            self.out.write(wire.eof_packet(self.status()))
        elif command == Command.STATISTICS:
            uptime = int(time.monotonic() - self.started)
            self.out.write(
                f"Uptime: {uptime}  Threads: {len(self.ctx.sessions)}  Questions: 0".encode()
            )
        elif command == Command.PROCESS_KILL:
            self._kill(_U32.unpack_from(payload, 1)[0] if len(payload) >= 5 else 0, False)
            self.out.write(wire.ok_packet(self.status()))
        else:
            raise errors.unknown_command(command)

    def status(self) -> int:
        status = _AUTOCOMMIT if self.autocommit else 0
        if self.txn is not None:
            status |= _IN_TRANS
        if self.no_backslash_escapes:
            status |= _NO_BACKSLASH_ESCAPES
        return status

    def _decode(self, raw: bytes) -> str:
        return raw.decode("utf-8", "surrogateescape")

    def _note_error(self, exc: errors.ProxyError) -> None:
        self.warnings = [("Error", exc.code, exc.message)]

    async def _com_field_list(self, payload: bytes) -> None:
        table = self._decode(payload[1:].split(b"\0", 1)[0])
        parsed = self.ctx.parse_cache.get(f"SELECT * FROM `{table}`")
        route = self.ctx.planner.route(parsed, "", self.database)
        backend, borrowed = await self._backend_for_settings(route.shards[0], route)
        try:
            await backend.send(Command.FIELD_LIST, payload[1:])
            while True:
                packet = await backend.read()
                if wire.is_err(packet):
                    raise wire.parse_err(packet)
                if packet[0] == 0xFE and len(packet) < 0xFFFFFF:
                    self.out.write(wire.end_of_rows(self.status(), 0, self.deprecate_eof))
                    return
                self.out.write(packet)
        finally:
            if borrowed:
                self.ctx.pools.release(backend)

    async def _com_change_user(self, payload: bytes) -> None:
        request = handshake.parse_change_user(payload[1:], self.capabilities)
        await self._release_everything()
        database = request.database
        self._reset_state(None)
        # The client answered the original scramble with the plugin it names;
        # ask it for a fresh proof so the check does not depend on that nonce.
        scramble = auth.new_scramble()
        plugin = request.plugin if request.plugin in auth.SUPPORTED_PLUGINS else NATIVE_PASSWORD
        self.out.write(handshake.auth_switch_request(plugin, scramble))
        await self.out.flush()
        response = await self.out.read_packet()
        if not await self._authenticate(request.user, plugin, scramble, response):
            raise ConnectionClosed("change user failed")
        if request.charset:
            self.charset_setting = names_setting(request.charset)
        self._rebuild_settings([])
        if database:
            self._use(database)
        self.out.write(wire.ok_packet(self.status()))
