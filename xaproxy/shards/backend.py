"""One connection to one shard.

asyncmy does the connecting and authentication (including caching_sha2 against
MySQL 8 backends); after that the proxy reads the shard's packets raw, so a
single-shard result can be forwarded to the client without decoding its rows.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import weakref
from dataclasses import dataclass

import asyncmy
from asyncmy import errors as asyncmy_errors
from asyncmy.constants.CLIENT import FOUND_ROWS as _ASYNCMY_FOUND_ROWS
from asyncmy.constants.CLIENT import LOCAL_FILES as _LOCAL_FILES
from asyncmy.constants.CLIENT import PS_MULTI_RESULTS as _PS_MULTI_RESULTS
from asyncmy.constants.CLIENT import SESSION_TRACK as _SESSION_TRACK

from .. import errors
from ..config import ShardConfig
from ..protocol import wire
from ..protocol.constants import Command, Status
from .connection import ShardConnection
from .statements import StatementCache


@dataclass(slots=True)
class Result:
    """One statement's result in a multi-statement: rows (and their column
    definitions) for a query, the OK for anything else."""

    coldefs: list[bytes]
    rows: list[list[bytes | None]]
    ok: wire.OkInfo | None


class StatementFailed(errors.BackendError):
    """A shard's error for statement `index` (0-based) of a multi-statement."""

    def __init__(self, code: int, sqlstate: str, message: str, index: int) -> None:
        super().__init__(code, sqlstate, message)
        self.index = index


class _RawPacket:
    """Packet type for asyncmy's reader that never raises on error packets."""

    __slots__ = ("data",)

    def __init__(self, data: bytes, encoding: str | None = None) -> None:
        self.data = data

    def is_error_packet(self) -> bool:
        return False


# A shard connection stops being read while this much of what the shard sent has
# not been consumed yet (the client reads slower than the shard sends, or a merge
# waits for another shard); reading resumes below the low-water mark, and always
# when a read needs more bytes than are buffered.
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
# Bytes written to a shard and not yet taken by it before a relayed upload waits.
_WRITE_HIGH_WATER = 1 << 20
_WRITE_WAIT_S = 0.002


class ReadGate(asyncio.BufferedProtocol):
    """The shard transport's protocol in front of asyncmy's: pauses reading at a high-water mark.

    asyncmy's receive buffer grows with whatever the socket delivers, so a
    result nobody consumes would pile up in the proxy. The gate pauses the
    transport (the shard then blocks on its TCP window) once the unconsumed bytes
    reach READ_HIGH_WATER. asyncmy waits for bytes only through its protocol's
    `wait_for_data`; the gate wraps it on that instance and resumes first, so a
    read never waits on a paused transport.
    """

    def __init__(self, proto: asyncio.BufferedProtocol, transport: asyncio.Transport) -> None:
        self.state = proto
        self.transport = transport
        self.paused = False
        # the hot callbacks go straight to asyncmy's protocol
        self.get_buffer = proto.get_buffer  # type: ignore[method-assign]
        self._buffer_updated = proto.buffer_updated
        self.eof_received = proto.eof_received  # type: ignore[method-assign]
        self.connection_lost = proto.connection_lost  # type: ignore[method-assign]
        self.pause_writing = proto.pause_writing  # type: ignore[method-assign]
        self.resume_writing = proto.resume_writing  # type: ignore[method-assign]
        wait_for_data = proto.wait_for_data  # type: ignore[attr-defined]

        def wait_resumed(need: int):  # returns asyncmy's coroutine: no extra frame per wait
            if self.paused:
                self.resume()
            return wait_for_data(need)

        proto.wait_for_data = wait_resumed  # type: ignore[attr-defined]

    def buffer_updated(self, nbytes: int) -> None:
        self._buffer_updated(nbytes)
        state = self.state
        if not self.paused and state.length - state.pos >= READ_HIGH_WATER:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    @property
    def buffered(self) -> int:
        """Bytes the shard sent that the proxy has not consumed yet."""
        return self.state.length - self.state.pos


def _install_gate(conn: asyncmy.Connection) -> ReadGate | None:
    transport, proto = conn._transport, conn._proto
    if transport is None or proto is None:
        return None
    gate = ReadGate(proto, transport)
    transport.set_protocol(gate)
    return gate


class Backend:
    """A pooled shard connection plus the session state last applied to it."""

    __slots__ = (
        "__weakref__",
        "conn",
        "database",
        "deprecate_eof",
        "extended_metadata",
        "found_rows",
        "gate",
        "last_insert_id",
        "last_used",
        "overflow",
        "owner",
        "read_since",
        "read_timeout_s",
        "settings",
        "shard",
        "stalled",
        "statements",
        "status",
        "usable",
        "warnings",
    )

    def __init__(
        self, shard: str, conn: asyncmy.Connection, found_rows: bool, read_timeout_s: float = 0
    ) -> None:
        self.shard = shard
        self.conn = conn
        self.found_rows = found_rows
        self.database: str | None = None
        self.settings: tuple[str, ...] = ()
        self.last_insert_id = 0
        self.status = Status.AUTOCOMMIT
        self.deprecate_eof = bool(conn._deprecate_eof)
        # column definitions carry MariaDB's extended metadata block
        self.extended_metadata = getattr(conn, "extended_metadata", False)
        self.last_used = time.monotonic()
        self.usable = True
        self.overflow = False  # beyond pool_size: closed when released
        self.owner = 0  # the id of the client session using it (0: in the pool)
        self.read_since = 0.0  # when the pending read began (0: no read pending)
        self.read_timeout_s = read_timeout_s
        self.stalled = False  # closed by expire_stalled_reads
        self.gate = _install_gate(conn)
        self.statements = StatementCache()  # prepared here for native executes
        self.warnings = 0  # of the last result read by query_table/query_results
        _LIVE.add(self)

    @classmethod
    async def connect(cls, shard: ShardConfig, found_rows: bool) -> Backend:
        try:
            conn = ShardConnection(
                host=shard.host,
                port=shard.port,
                user=shard.user,
                password=shard.password,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=shard.connect_timeout_s,
                # PS_MULTI_RESULTS: a native CALL's OUT parameters come back as MariaDB
                # sends them to a client that asked for them. LOCAL_FILES: a client's
                # LOAD DATA LOCAL INFILE; the shard's request for the file goes to that
                # client (execution/local_file.py), asyncmy never opens a file itself.
                # SESSION_TRACK: the shard reports session-state changes, which go on to
                # a client that tracks them (wire.ok_reply)
                client_flag=_PS_MULTI_RESULTS
                | _LOCAL_FILES
                | _SESSION_TRACK
                | (_ASYNCMY_FOUND_ROWS if found_rows else 0),
                ssl=_tls_context(shard),
            )
            await conn.connect()
        except (asyncmy_errors.Error, OSError, TimeoutError, RuntimeError) as exc:
            code = exc.args[0] if isinstance(exc, asyncmy_errors.Error) and exc.args else None
            detail = _describe(exc)
            if isinstance(exc, RuntimeError):
                # asyncmy sets socket options after reading nothing yet: a server that
                # answers with an error and closes at once (1040) leaves no socket to set
                code, detail = await _refusal_of(shard, detail)
            if code in errors.SHARD_FULL_CODES:
                raise errors.shard_full(shard.name, code, detail) from None
            raise errors.shard_unreachable(shard.name, detail) from None
        return cls(shard.name, conn, found_rows, shard.read_timeout_s)

    @property
    def broken(self) -> bool:
        return not self.usable or self.conn._stream_broken

    # --- raw command I/O ------------------------------------------------------

    async def send(self, command: int, argument: bytes = b"") -> None:
        gate = self.gate
        if gate is not None and gate.paused:
            gate.resume()  # a new command: whatever was left unread is not waited for
        try:
            await self.conn._execute_command(command, argument)
        except (asyncmy_errors.Error, OSError) as exc:
            self.usable = False
            raise errors.shard_lost(self.shard, _describe(exc)) from None

    async def write_packet(self, payload: bytes) -> None:
        """Sends one packet of the command under way (a LOAD DATA LOCAL file's data),
        split at 16 MiB as the protocol frames it; waits while the shard has not taken
        what was sent before (its socket buffer past _WRITE_HIGH_WATER)."""
        conn = self.conn
        try:
            view = memoryview(payload)
            while True:
                chunk = bytes(view[:_MAX_PAYLOAD])
                view = view[_MAX_PAYLOAD:]
                conn.write_packet(chunk)
                if len(chunk) < _MAX_PAYLOAD:
                    break
            transport = conn._transport
            while transport is not None and transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                if transport.is_closing():
                    raise OSError("the connection closed")
                await asyncio.sleep(_WRITE_WAIT_S)
        except (asyncmy_errors.Error, OSError) as exc:
            self.usable = False
            raise errors.shard_lost(self.shard, _describe(exc)) from None

    async def read(self) -> bytes:
        # A packet already in the receive buffer is taken without awaiting the reader.
        conn = self.conn
        proto = conn._proto
        if proto is not None:
            pos = proto.pos
            buf = proto.buffer
            if proto.length - pos >= 4:
                size = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
                if (
                    size < _MAX_PAYLOAD
                    and proto.length - pos - 4 >= size
                    and buf[pos + 3] == conn._next_seq_id
                ):
                    conn._next_seq_id = (conn._next_seq_id + 1) & 0xFF
                    proto.pos = pos + 4 + size
                    gate = self.gate
                    if gate is not None and gate.paused and gate.buffered < READ_LOW_WATER:
                        gate.resume()
                    return bytes(buf[pos + 4 : pos + 4 + size])
        return await self._read_waiting()

    def row_run(self, client_seq: int) -> tuple[bytes, int, int]:
        """The complete row packets at the head of the receive buffer, framed for the client.

        Returns (wire bytes, packet count, the client's next sequence id); stops before
        the first packet that is incomplete, 16 MiB or more, or starts with 0xFE or 0xFF
        (end of rows, an error), which the caller reads as a packet. Rows are relayed as
        the shard sent them; only the sequence ids are the client's.
        """
        conn = self.conn
        proto = conn._proto
        if proto is None:
            return b"", 0, client_seq
        buf = proto.buffer
        start = pos = proto.pos
        end = proto.length
        seq = conn._next_seq_id
        count = 0
        while end - pos >= 5:
            size = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if size >= _MAX_PAYLOAD or end - pos - 4 < size or buf[pos + 3] != seq or size == 0:
                break
            if buf[pos + 4] >= 0xFE:
                break
            pos += 4 + size
            seq = (seq + 1) & 0xFF
            count += 1
        if not count:
            return b"", 0, client_seq
        shift = (client_seq - conn._next_seq_id) & 0xFF
        run = bytes(buf[start:pos]) if not shift else _renumbered(buf, start, pos, shift)
        proto.pos = pos
        conn._next_seq_id = seq
        gate = self.gate
        if gate is not None and gate.paused and gate.buffered < READ_LOW_WATER:
            gate.resume()
        return run, count, (client_seq + count) & 0xFF

    async def _read_waiting(self) -> bytes:
        self.read_since = time.monotonic()
        gate = self.gate
        if gate is not None and gate.paused and gate.buffered < READ_LOW_WATER:
            gate.resume()
        try:
            packet = await self.conn.read_packet(_RawPacket)
        except (asyncmy_errors.Error, OSError) as exc:
            self.usable = False
            detail = _describe(exc)
            if self.stalled:
                detail = (
                    f"the shard sent nothing for {self.read_timeout_s:g} s "
                    "(shards[].read_timeout_s); its connection was closed"
                )
            raise errors.shard_lost(self.shard, detail) from None
        finally:
            self.read_since = 0.0
        return packet.data

    def note_status(self, status: int) -> None:
        self.status = status

    async def execute_ok(self, sql: str | bytes) -> wire.OkInfo:
        """Runs a statement expected to return no rows (SET, BEGIN, XA ...)."""
        await self.send(Command.QUERY, sql.encode() if isinstance(sql, str) else sql)
        return await self.read_ok()

    async def read_oks(self, count: int) -> None:
        """Reads the OKs of the first `count` statements of a multi-statement.

        The first error is raised; the server ran nothing after it.
        """
        for _ in range(count):
            payload = await self.read()
            if wire.is_err(payload):
                self.status = 0
                raise wire.parse_err(payload)
            self.status = wire.parse_ok(payload).status

    async def read_ok(self) -> wire.OkInfo:
        payload = await self.read()
        if wire.is_err(payload):
            raise wire.parse_err(payload)
        if payload[0] != 0x00:
            await self.skip_result(payload)
            return wire.OkInfo(0, 0, self.status, 0, b"")
        ok = wire.parse_ok(payload)
        self.status = ok.status
        if ok.last_insert_id:
            self.last_insert_id = ok.last_insert_id
        if ok.status & Status.MORE_RESULTS_EXISTS:
            # a multi-statement: drain the rest, report the first error
            while self.status & Status.MORE_RESULTS_EXISTS:
                payload = await self.read()
                if wire.is_err(payload):
                    self.status = 0
                    raise wire.parse_err(payload)
                if payload[0] == 0x00:
                    self.status = wire.parse_ok(payload).status
                else:
                    await self.skip_result(payload)
        return ok

    async def show_warnings(self) -> list[tuple[str, int, str]]:
        """SHOW WARNINGS of the last statement, as (level, code, message)."""
        return warning_tuples(await self.query_rows("SHOW WARNINGS"))

    async def query_rows(self, sql: str | bytes) -> list[list[bytes | None]]:
        """Runs a query and returns its rows as raw text values (for admin work)."""
        return (await self.query_table(sql))[1]

    async def query_table(self, sql: str | bytes) -> tuple[list[bytes], list[list[bytes | None]]]:
        """Runs a query; returns its column definitions and rows of raw text values."""
        coldefs = await self._result_header(sql)
        rows: list[list[bytes | None]] = []
        if coldefs is None:
            return [], rows
        while True:
            payload = await self.read()
            if wire.is_err(payload):
                raise wire.parse_err(payload)
            if self._ends_rows(payload):
                return coldefs, rows
            rows.append(_row_values(payload, len(coldefs)))

    async def _result_header(self, sql: str | bytes) -> list[bytes] | None:
        """Sends a query and reads its column definitions (None: it answered OK)."""
        await self.send(Command.QUERY, sql.encode() if isinstance(sql, str) else sql)
        payload = await self.read()
        if wire.is_err(payload):
            raise wire.parse_err(payload)
        if payload[0] == 0x00:
            self.status = wire.parse_ok(payload).status
            return None
        count, _ = wire.read_lenenc_int(payload, 0)
        coldefs = [await self.read() for _ in range(count or 0)]
        if not self.deprecate_eof:
            await self.read()
        return coldefs

    async def query_rows_within(
        self, sql: str | bytes, budget: list[int], max_rows: int
    ) -> list[list[bytes | None]] | None:
        """query_rows holding at most `max_rows` rows and `budget[0]` bytes of them (a
        budget queries read at once may share); past either, the rest is read and dropped
        (the connection stays in step) and None is returned."""
        coldefs = await self._result_header(sql)
        if coldefs is None:
            return []
        rows: list[list[bytes | None]] | None = []
        while True:
            payload = await self.read()
            if wire.is_err(payload):
                raise wire.parse_err(payload)
            if self._ends_rows(payload):
                return rows
            budget[0] -= len(payload)
            if rows is not None and (budget[0] < 0 or len(rows) >= max_rows):
                rows = None
            if rows is not None:
                rows.append(_row_values(payload, len(coldefs)))

    async def query_results(self, sql: str | bytes) -> list[Result]:
        """Runs a multi-statement; returns one result per statement (rows, or the OK).

        The server stops at the first error: it is raised as a `StatementFailed` that
        says which statement (0-based) failed, after the results before it were read.
        """
        await self.send(Command.QUERY, sql.encode() if isinstance(sql, str) else sql)
        results: list[Result] = []
        while True:
            payload = await self.read()
            if wire.is_err(payload):
                self.status = 0
                error = wire.parse_err(payload)
                raise StatementFailed(error.code, error.sqlstate, error.message, len(results))
            if payload[0] == 0x00:
                ok = wire.parse_ok(payload)
                self.status = ok.status
                if ok.last_insert_id:
                    self.last_insert_id = ok.last_insert_id
                results.append(Result([], [], ok))
            else:
                coldefs, rows = await self._read_rows(payload, len(results))
                results.append(Result(coldefs, rows, None))
            if not self.status & Status.MORE_RESULTS_EXISTS:
                return results

    async def _read_rows(
        self, first: bytes, index: int
    ) -> tuple[list[bytes], list[list[bytes | None]]]:
        count, _ = wire.read_lenenc_int(first, 0)
        coldefs = [await self.read() for _ in range(count or 0)]
        if not self.deprecate_eof:
            await self.read()
        rows: list[list[bytes | None]] = []
        while True:
            payload = await self.read()
            if wire.is_err(payload):
                self.status = 0
                error = wire.parse_err(payload)
                raise StatementFailed(error.code, error.sqlstate, error.message, index)
            if self._ends_rows(payload):
                return coldefs, rows
            row, pos = [], 0
            for _ in range(count or 0):
                value, pos = wire.read_lenenc_bytes(payload, pos)
                row.append(value)
            rows.append(row)

    def _ends_rows(self, payload: bytes) -> bool:
        end = wire.rows_end(payload, self.deprecate_eof)
        if end is None:
            return False
        self.status, self.warnings = end
        return True

    async def skip_result(self, first: bytes) -> None:
        """Consumes a result set whose column count packet was `first`."""
        count, _ = wire.read_lenenc_int(first, 0)
        for _ in range(count or 0):
            await self.read()
        if not self.deprecate_eof:
            await self.read()
        while True:
            payload = await self.read()
            if wire.is_err(payload) or self._ends_rows(payload):
                return

    async def reset(self) -> None:
        """COM_RESET_CONNECTION: back to a fresh session without reconnecting."""
        self.statements.clear()  # the server closes them all, even if the reset fails
        await self.send(Command.RESET_CONNECTION)
        await self.read_ok()
        self.settings = ()
        self.last_insert_id = 0

    async def ping(self) -> None:
        await self.send(Command.PING)
        await self.read_ok()

    async def init_db(self, database: str) -> None:
        await self.send(Command.INIT_DB, database.encode())
        await self.read_ok()
        self.database = database

    def close(self) -> None:
        self.usable = False
        try:
            self.conn.close()
        except Exception:
            pass


_MAX_PAYLOAD = 0xFFFFFF


def warning_tuples(rows: list[list[bytes | None]]) -> list[tuple[str, int, str]]:
    """SHOW WARNINGS rows as the session keeps them: (level, code, message)."""
    return [
        ((r[0] or b"").decode(), int(r[1] or 0), (r[2] or b"").decode("utf-8", "replace"))
        for r in rows
    ]


def _row_values(payload: bytes, count: int) -> list[bytes | None]:
    """A text row's values (None for NULL)."""
    row, pos = [], 0
    for _ in range(count):
        value, pos = wire.read_lenenc_bytes(payload, pos)
        row.append(value)
    return row


def _renumbered(buf: bytearray, start: int, end: int, shift: int) -> bytes:
    """Packets buf[start:end] with every sequence id moved by `shift`."""
    run = bytearray(buf[start:end])
    pos, stop = 0, end - start
    while pos < stop:
        run[pos + 3] = (run[pos + 3] + shift) & 0xFF
        pos += 4 + (run[pos] | run[pos + 1] << 8 | run[pos + 2] << 16)
    return bytes(run)


_LIVE: weakref.WeakSet[Backend] = weakref.WeakSet()
_TLS_CONTEXTS: dict[tuple[str | None, bool], ssl.SSLContext] = {}


def _tls_context(shard: ShardConfig) -> ssl.SSLContext | None:
    """The client TLS context for a shard (one per CA file and identity rule, reused)."""
    tls = shard.tls
    if tls is None:
        return None
    key = (tls.ca, tls.verify_identity)
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        context = ssl.create_default_context(cafile=tls.ca)
        context.check_hostname = tls.verify_identity
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _TLS_CONTEXTS[key] = context
    return context


def running_for(owner: int) -> list[Backend]:
    """The connections on which session `owner` is waiting for a shard's answer now."""
    return [b for b in list(_LIVE) if b.owner == owner and b.read_since and b.usable]


def expire_stalled_reads(now: float | None = None) -> list[Backend]:
    """Closes every connection whose pending read has waited past its read timeout.

    A frozen or unreachable shard sends nothing, and TCP alone may wait for
    minutes; closing the connection makes the waiting read fail at once, so the
    statement fails and its transaction is rolled back like after a lost shard.
    """
    now = time.monotonic() if now is None else now
    stalled = [
        b
        for b in list(_LIVE)
        if b.read_since and b.read_timeout_s and now - b.read_since > b.read_timeout_s
    ]
    for backend in stalled:
        backend.stalled = True
        backend.close()
    return stalled


async def _refusal_of(shard: ShardConfig, detail: str) -> tuple[int | None, str]:
    """The error a shard answers a new connection with before its greeting (1040 when
    full), read on a plain connection; (None, `detail`) when it greets normally."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(shard.host, shard.port), shard.connect_timeout_s
        )
    except (OSError, TimeoutError) as exc:
        return None, str(exc) or detail
    try:
        header = await asyncio.wait_for(reader.readexactly(4), shard.connect_timeout_s)
        payload = await asyncio.wait_for(
            reader.readexactly(int.from_bytes(header[:3], "little")), shard.connect_timeout_s
        )
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None, detail
    finally:
        writer.close()
    if len(payload) < 3 or payload[0] != 0xFF:
        return None, detail
    message = payload[3:]
    if message[:1] == b"#":
        message = message[6:]
    return int.from_bytes(payload[1:3], "little"), message.decode("utf-8", "replace")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncmy_errors.Error) and exc.args:
        return str(exc.args[-1])
    return str(exc) or type(exc).__name__
