"""One client connection: the handshake, then a loop over its commands.

A session owns what MySQL keeps per connection (session/state.py: current
database, autocommit, session variables, prepared statements, warnings,
LAST_INSERT_ID) and borrows shard connections only while a statement or a
transaction needs them, so thousands of idle clients cost no backend connections.
Each command byte has one handler in `_COMMANDS`: a function over the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable

from .. import errors
from ..authz import grants_for
from ..protocol import auth, handshake, wire
from ..protocol.constants import (
    CACHING_SHA2_PASSWORD,
    MARIADB_CAPABILITIES,
    NATIVE_PASSWORD,
    SERVER_CAPABILITIES,
    UTF8MB4_GENERAL_CI,
    Capability,
    Command,
    MariaDBCapability,
    Status,
)
from ..protocol.stream import ConnectionClosed, PacketStream, PacketTooLarge
from . import local, prepared_commands, reply, statements, tracking, transaction_control
from .charsets import (
    UNREADABLE_CLIENT_CHARSETS,
    client_charset,
    handshake_collation,
    names_setting,
    refuse_client_charset,
)
from .context import ProxyContext
from .state import SessionState

log = logging.getLogger(__name__)

_U32 = struct.Struct("<I")
_ER_NET_PACKET_TOO_LARGE = errors.ProxyError(
    1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"
)


class Session:
    """The client connection: runs the handshake, then one command after another."""

    __slots__ = ("state",)

    def __init__(
        self, ctx: ProxyContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        self.state = SessionState(
            ctx,
            PacketStream(reader, writer, ctx.max_allowed_packet),
            ctx.next_connection_id(),
            peer_host=peer[0] if isinstance(peer, tuple) else "localhost",
        )

    @property
    def id(self) -> int:
        return self.state.id

    @property
    def busy(self) -> bool:
        return self.state.busy

    def expire_idle(self, now: float) -> bool:
        """Closes the connection of a session idle past its wait_timeout, as MariaDB does
        (its transaction is rolled back as the session ends); True if it was closed."""
        s = self.state
        if s.busy or not s.idle_since or now - s.idle_since <= s.wait_timeout_s:
            return False
        s.out.close()
        return True

    async def expire_transaction(self) -> bool:
        """Rolls back an idle transaction older than the timeout (called by the server)."""
        return await transaction_control.expire_transaction(self.state)

    async def run(self) -> None:
        s = self.state
        try:
            opened = await asyncio.wait_for(open_session(s), s.ctx.config.login_timeout_s)
        except (TimeoutError, ConnectionClosed, PacketTooLarge):
            s.out.close()  # a client that does not log in in time holds nothing
            return
        except LoginRefused as refused:
            await refuse_login(s, refused)
            s.out.close()
            return
        except Exception:
            log.exception("session %d: handshake failed", s.id)
            s.out.close()
            return
        if not opened:
            s.out.close()
            return
        s.ctx.sessions[s.id] = s  # only logged-in sessions count against max_connections
        s.wait_timeout_s = s.ctx.config.wait_timeout_s
        s.idle_since = time.monotonic()
        try:
            await _command_loop(s)
        except ConnectionClosed:
            pass
        except PacketTooLarge:
            with contextlib.suppress(Exception):
                s.out.write_error(_ER_NET_PACKET_TOO_LARGE)
                await s.out.flush()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("session %d failed", s.id)
        finally:
            await s.shards.release_everything()
            s.out.close()
            s.ctx.sessions.pop(s.id, None)


async def _command_loop(s: SessionState) -> None:
    out = s.out
    commands = _COMMANDS
    while True:
        payload = await out.read_packet()
        if not payload:
            out.write_error(errors.malformed_packet("empty command packet"))
            await out.flush()
            continue
        command = payload[0]
        if command == Command.QUIT:
            return
        s.busy = True
        s.command_started = time.monotonic()
        if command == Command.QUERY:
            s.info = payload
        try:
            handler = commands.get(command)
            if handler is None:
                raise errors.unknown_command(command)
            await handler(s, payload)
        except errors.ProxyError as exc:
            s.note_error(exc)
            out.write_error(exc)
        except (ConnectionClosed, PacketTooLarge, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug must cost one statement, never the session or the proxy.
            log.exception("session %d: internal error", s.id)
            error = errors.ProxyError(
                1105, "HY000", f"xaproxy internal error: {type(exc).__name__}: {exc}"
            )
            s.note_error(error)
            out.write_error(error)
        finally:
            s.busy = False
            s.idle_since = time.monotonic()
            s.info = None
        if out.pending or out._out:
            await out.flush()
        if s.ctx.shutting_down and s.txn is None:
            return


async def open_session(s: SessionState) -> bool:
    """The greeting, the client's answer, authentication; True when the client is in."""
    try:
        await _log_in(s)
    except errors.ProxyError as exc:
        s.out.write_error(exc)
        await s.out.flush()
        return False
    s.out.write(wire.ok_packet(s.status(), state=tracking.schema_change(s)))
    await s.out.flush()
    log.debug("session %d: %s@%s connected", s.id, s.user, s.peer_host)
    return True


def _offered_capabilities(s: SessionState) -> int:
    """SSL when the config has `tls:`; SESSION_TRACK in front of shards whose session
    tracking the proxy passes on exactly (ProxyContext.session_track_schema)."""
    offered = SERVER_CAPABILITIES
    if s.ctx.tls is not None:
        offered |= Capability.SSL
    if s.ctx.session_track_schema is not None:
        offered |= Capability.SESSION_TRACK
    return offered


def _mariadb_capabilities(s: SessionState) -> int:
    """MariaDB's extended capabilities the proxy offers: in front of MariaDB shards
    (whose column definitions carry the extended metadata), as MariaDB itself does."""
    return MARIADB_CAPABILITIES if "MariaDB" in s.ctx.server_version else 0


async def _log_in(s: SessionState) -> None:
    """Greeting, TLS, response and proof; a refusal is raised (LoginRefused: wrong password)."""
    scramble = auth.new_scramble()
    plugin = s.ctx.config.auth_plugin
    offered, mariadb = _offered_capabilities(s), _mariadb_capabilities(s)
    s.out.write(
        handshake.greeting(
            s.ctx.server_version,
            s.id,
            scramble,
            offered,
            UTF8MB4_GENERAL_CI,
            Status.AUTOCOMMIT,
            plugin,
            mariadb,
        )
    )
    await s.out.flush()
    payload = await _after_tls(s, await s.out.read_packet())
    response = handshake.parse_handshake_response(payload)
    s.capabilities = response.capabilities & offered & ~Capability.SSL
    s.out.session_track = bool(s.capabilities & Capability.SESSION_TRACK)
    s.out.extended_metadata = bool(
        response.mariadb_capabilities & mariadb & MariaDBCapability.EXTENDED_METADATA
    )
    s.deprecate_eof = bool(s.capabilities & Capability.DEPRECATE_EOF)
    s.found_rows = bool(s.capabilities & Capability.FOUND_ROWS)
    client_plugin = response.plugin or plugin
    auth_response = response.auth_response
    supported = client_plugin in auth.SUPPORTED_PLUGINS
    if client_plugin != plugin and not auth_response and supported:
        # libmysqlclient sends no proof when its plugin is not the greeting's:
        # it expects an auth switch carrying a nonce for its own plugin.
        scramble = auth.new_scramble()
        s.out.write(handshake.auth_switch_request(client_plugin, scramble))
        await s.out.flush()
        auth_response = await s.out.read_packet()
    await authenticate(s, response.user, client_plugin, scramble, auth_response)
    _start_session(s, response)
    if response.database:
        await local.check_database_exists(s, response.database)


async def _after_tls(s: SessionState, payload: bytes) -> bytes:
    """The handshake response: after a TLS upgrade when `payload` is an SSLRequest."""
    if not (len(payload) == 32 and _U32.unpack_from(payload)[0] & Capability.SSL):
        return payload
    if s.ctx.tls is None:
        raise errors.ProxyError(
            1045,
            "28000",
            "xaproxy has no TLS certificate configured (tls: in its config): "
            "connect without TLS or ask the operator to configure one",
        )
    try:
        s.tls = await s.out.start_tls(s.ctx.tls) or ("", "")
    except ConnectionClosed as exc:
        log.info("session %d from %s: %s", s.id, s.peer_host, exc)
        raise
    return await s.out.read_packet()


def _start_session(s: SessionState, response: handshake.HandshakeResponse) -> None:
    """The logged-in client's character set and database; refusals are raised."""
    charset = client_charset(response.charset)
    if charset in UNREADABLE_CLIENT_CHARSETS:
        raise refuse_client_charset(charset)
    s.charset_setting = names_setting(response.charset)
    s.client_charset = charset
    s.literal_charset = s.function_charset = handshake_collation(response.charset)
    local.rebuild_settings(s, [])
    if response.database:
        local.check_database(s, response.database)
        s.database = response.database
    if len(s.ctx.sessions) >= s.ctx.config.max_connections:
        raise errors.ProxyError(1040, "08004", "Too many connections")
    account = s.ctx.config.users[s.user]
    if account.require_tls and s.tls is None:
        raise errors.ProxyError(
            1045,
            "28000",
            f"Access denied for user '{s.user}'@'{s.peer_host}': this user must connect "
            "with TLS (require_tls)",
        )
    if account.max_connections is not None:
        mine = sum(1 for other in s.ctx.sessions.values() if other.user == s.user)
        if mine >= account.max_connections:
            raise errors.ProxyError(
                1226,
                "42000",
                f"User '{s.user}' has exceeded the 'max_user_connections' resource "
                f"(current value: {account.max_connections})",
            )


class LoginRefused(Exception):
    """A wrong password: the answer goes out after `delay` seconds, outside the login timeout."""

    def __init__(self, error: errors.ProxyError, delay: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay


async def refuse_login(s: SessionState, refused: LoginRefused) -> None:
    if refused.delay:
        await asyncio.sleep(refused.delay)
    s.out.write_error(refused.error)
    with contextlib.suppress(ConnectionClosed):
        await s.out.flush()


async def authenticate(
    s: SessionState, user: str, plugin: str, scramble: bytes, response: bytes
) -> bool:
    """Checks the client's proof of password, switching plugins when needed."""
    account = s.ctx.config.users.get(user)
    hashed = account is not None and account.password_hash is not None
    if plugin not in auth.SUPPORTED_PLUGINS or (hashed and plugin != NATIVE_PASSWORD):
        scramble = auth.new_scramble()
        plugin = NATIVE_PASSWORD
        s.out.write(handshake.auth_switch_request(plugin, scramble))
        await s.out.flush()
        response = await s.out.read_packet()
    if account is None or not (
        auth.verify_native_hash(account.password_hash, scramble, response)
        if account.password_hash is not None
        else auth.verify(plugin, account.password, scramble, response)
    ):
        delay = s.ctx.login_guard.failed(s.peer_host)
        log.warning("failed login of %r from %s (answer delayed %gs)", user, s.peer_host, delay)
        raise LoginRefused(errors.access_denied(user, s.peer_host, bool(response)), delay)
    s.ctx.login_guard.succeeded(s.peer_host)
    if plugin == CACHING_SHA2_PASSWORD:
        s.out.write(b"\x01\x03")  # fast authentication succeeded
    s.user = user
    s.grants = grants_for(account, s.ctx.config, s.peer_host)
    return True


# --- commands other than COM_QUERY and the prepared-statement ones -------------------


async def _ping(s: SessionState, payload: bytes) -> None:
    reply.ok(s, False)


async def _init_db(s: SessionState, payload: bytes) -> None:
    await local.use(s, s.decode(payload[1:]))
    reply.ok(s, False, state=tracking.schema_change(s))


async def _field_list(s: SessionState, payload: bytes) -> None:
    """COM_FIELD_LIST (old clients' column listing), relayed from the table's shard."""
    table = s.decode(payload[1:].split(b"\0", 1)[0])
    if s.database is None:
        # a pooled shard connection may still be in another session's database
        raise errors.no_database_selected()
    parsed = s.ctx.parse_cache.get(f"SELECT * FROM `{table}`")
    route = s.ctx.planner.route(parsed, "", s.database)
    backend, borrowed = await s.shards.connection_outside_writes(route.shards[0])
    try:
        await backend.send(Command.FIELD_LIST, payload[1:])
        while True:
            packet = await backend.read()
            if wire.is_err(packet):
                raise wire.parse_err(packet)
            if wire.rows_end(packet, backend.deprecate_eof) is not None:
                s.out.write(wire.end_of_rows(s.status(), 0, s.deprecate_eof))
                return
            s.out.write(
                wire.field_list_column(packet, backend.extended_metadata, s.out.extended_metadata)
            )
    finally:
        if borrowed:
            s.shards.release(backend)


async def _reset_connection(s: SessionState, payload: bytes) -> None:
    await s.shards.release_everything()
    s.reset(s.database)
    local.rebuild_settings(s, [])
    reply.ok(s, False)


async def _change_user(s: SessionState, payload: bytes) -> None:
    request = handshake.parse_change_user(payload[1:], s.capabilities)
    await s.shards.release_everything()
    database = request.database
    s.reset(None)
    # The client answered the original scramble with the plugin it names;
    # ask it for a fresh proof so the check does not depend on that nonce.
    scramble = auth.new_scramble()
    plugin = request.plugin if request.plugin in auth.SUPPORTED_PLUGINS else NATIVE_PASSWORD
    s.out.write(handshake.auth_switch_request(plugin, scramble))
    await s.out.flush()
    response = await s.out.read_packet()
    try:
        await authenticate(s, request.user, plugin, scramble, response)
    except LoginRefused as refused:
        await refuse_login(s, refused)
        raise ConnectionClosed("change user failed") from None
    if request.charset:
        if client_charset(request.charset) in UNREADABLE_CLIENT_CHARSETS:
            raise refuse_client_charset(client_charset(request.charset))
        s.charset_setting = names_setting(request.charset)
        s.client_charset = client_charset(request.charset)
        s.literal_charset = s.function_charset = handshake_collation(request.charset)
    local.rebuild_settings(s, [])
    if database:
        await local.use(s, database)
    reply.ok(s, False, state=tracking.schema_change(s))


async def _set_option(s: SessionState, payload: bytes) -> None:
    """COM_SET_OPTION: multi-statements on (0) or off (1) for the rest of the session, as
    mysqli's multi_query() asks; answered with an EOF as MariaDB does."""
    if len(payload) < 3:
        raise errors.malformed_packet("COM_SET_OPTION without its option")
    option = int.from_bytes(payload[1:3], "little")
    if option == 0:
        s.capabilities |= Capability.MULTI_STATEMENTS
    elif option == 1:
        s.capabilities &= ~Capability.MULTI_STATEMENTS
    else:
        raise errors.ProxyError(1047, "08S01", "Unknown command")
    s.out.write(wire.end_of_rows(s.status(), 0, s.deprecate_eof))


async def _statistics(s: SessionState, payload: bytes) -> None:
    uptime = int(time.monotonic() - s.started)
    s.out.write(f"Uptime: {uptime}  Threads: {len(s.ctx.sessions)}  Questions: 0".encode())


async def _process_kill(s: SessionState, payload: bytes) -> None:
    await local.kill(s, _U32.unpack_from(payload, 1)[0] if len(payload) >= 5 else 0, False)
    reply.ok(s, False)


async def _stmt_close(s: SessionState, payload: bytes) -> None:
    prepared_commands.stmt_close(s, payload)


async def _stmt_send_long_data(s: SessionState, payload: bytes) -> None:
    prepared_commands.stmt_send_long_data(s, payload)


async def _stmt_reset(s: SessionState, payload: bytes) -> None:
    prepared_commands.stmt_reset(s, payload)


_COMMANDS: dict[int, Callable[[SessionState, bytes], Awaitable[None]]] = {
    Command.QUERY: statements.com_query,
    Command.STMT_EXECUTE: prepared_commands.stmt_execute,
    Command.STMT_PREPARE: prepared_commands.stmt_prepare,
    Command.STMT_CLOSE: _stmt_close,
    Command.STMT_SEND_LONG_DATA: _stmt_send_long_data,
    Command.STMT_RESET: _stmt_reset,
    Command.PING: _ping,
    Command.INIT_DB: _init_db,
    Command.FIELD_LIST: _field_list,
    Command.RESET_CONNECTION: _reset_connection,
    Command.CHANGE_USER: _change_user,
    Command.SET_OPTION: _set_option,
    Command.STATISTICS: _statistics,
    Command.PROCESS_KILL: _process_kill,
}
