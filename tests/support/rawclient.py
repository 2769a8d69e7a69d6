"""A tiny socket-level MySQL client for protocol tests.

Drivers hide the wire format (framing, sequence ids, EOF versus OK packets);
protocol tests need to see and send exact packets, including broken ones.
Only what the tests need: the handshake with mysql_native_password or
caching_sha2_password, sending arbitrary payloads and reading packets back.
"""

from __future__ import annotations

import hashlib
import socket
import struct
from dataclasses import dataclass, field

MAX_PAYLOAD = 0xFFFFFF

# Capability bits.
CLIENT_LONG_PASSWORD = 1 << 0
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SSL = 1 << 11
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_DEPRECATE_EOF = 1 << 24

DEFAULT_CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
)

# Status flags.
SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008

# Commands.
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_PING = 0x0E
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_CLOSE = 0x19


class ProtocolError(AssertionError):
    """The peer sent something the test did not expect."""


def native_password(password: str, scramble: bytes) -> bytes:
    """mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mask = hashlib.sha1(scramble + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


def caching_sha2_password(password: str, scramble: bytes) -> bytes:
    """caching_sha2_password fast path: XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) + nonce))."""
    if not password:
        return b""
    p1 = hashlib.sha256(password.encode()).digest()
    p2 = hashlib.sha256(p1).digest()
    mask = hashlib.sha256(p2 + scramble).digest()
    return bytes(a ^ b for a, b in zip(p1, mask, strict=True))


def lenenc_int(n: int) -> bytes:
    if n < 0xFB:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def lenenc_str(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def read_lenenc_int(buf: bytes, pos: int) -> tuple[int | None, int]:
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFB:
        return None, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def read_lenenc_str(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = read_lenenc_int(buf, pos)
    if length is None:
        return None, pos
    return buf[pos : pos + length], pos + length


@dataclass
class Greeting:
    protocol: int
    server_version: str
    connection_id: int
    scramble: bytes
    capabilities: int
    charset: int
    status: int
    plugin: str


@dataclass
class Ok:
    affected_rows: int
    last_insert_id: int
    status: int
    warnings: int
    info: bytes = b""


@dataclass
class Err:
    code: int
    sqlstate: str
    message: str


@dataclass
class Eof:
    warnings: int
    status: int


@dataclass
class ResultSet:
    """One result of a COM_QUERY, with the kinds of its packets in wire order."""

    columns: list[bytes] = field(default_factory=list)
    rows: list[list[bytes | None]] = field(default_factory=list)
    raw_rows: list[bytes] = field(default_factory=list)  # row payloads as sent
    end: Ok | Eof | Err | None = None
    ok: Ok | None = None  # a result without rows
    kinds: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        final = self.ok or self.end
        assert isinstance(final, Ok | Eof), f"result ended with {final!r}"
        return final.status


@dataclass
class Prepared:
    statement_id: int
    columns: int
    params: int
    kinds: list[str]


def parse_ok(payload: bytes) -> Ok:
    affected, pos = read_lenenc_int(payload, 1)
    insert_id, pos = read_lenenc_int(payload, pos)
    status, warnings = struct.unpack_from("<HH", payload, pos)
    return Ok(affected or 0, insert_id or 0, status, warnings, payload[pos + 4 :])


def parse_err(payload: bytes) -> Err:
    code = struct.unpack_from("<H", payload, 1)[0]
    if payload[3:4] == b"#":
        return Err(code, payload[4:9].decode(), payload[9:].decode("utf-8", "replace"))
    return Err(code, "", payload[3:].decode("utf-8", "replace"))


def parse_eof(payload: bytes) -> Eof:
    warnings, status = struct.unpack_from("<HH", payload, 1)
    return Eof(warnings, status)


def column_name(coldef: bytes) -> str:
    pos = 0
    for _ in range(4):  # catalog, schema, table, org_table
        _, pos = read_lenenc_str(coldef, pos)
    name, _ = read_lenenc_str(coldef, pos)
    return (name or b"").decode()


def is_ok(payload: bytes) -> bool:
    return payload[:1] == b"\x00"


def is_err(payload: bytes) -> bool:
    return payload[:1] == b"\xff"


class RawClient:
    """One TCP connection speaking the MySQL protocol by hand."""

    def __init__(self, host: str, port: int, timeout: float = 15) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq = 0
        self.capabilities = 0
        self.greeting: Greeting | None = None

    # --- framing ---------------------------------------------------------------

    def recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionError(f"connection closed with {n} bytes still expected")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read_wire_packet(self) -> tuple[int, bytes]:
        """One wire packet: (sequence id, payload), without joining 16 MiB parts."""
        header = self.recv_exact(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        seq = header[3]
        if seq != self.seq:
            raise ProtocolError(f"sequence id {seq}, expected {self.seq}")
        self.seq = (seq + 1) & 0xFF
        return seq, self.recv_exact(length) if length else b""

    def read_packet(self) -> bytes:
        """One logical payload (parts of 0xFFFFFF bytes joined)."""
        _, payload = self.read_wire_packet()
        if len(payload) < MAX_PAYLOAD:
            return payload
        parts = [payload]
        while True:
            _, part = self.read_wire_packet()
            parts.append(part)
            if len(part) < MAX_PAYLOAD:
                return b"".join(parts)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_packet(self, payload: bytes) -> None:
        """Sends a logical payload with the current sequence id, split at 0xFFFFFF."""
        out = []
        pos = 0
        while True:
            chunk = payload[pos : pos + MAX_PAYLOAD]
            out.append(struct.pack("<I", len(chunk))[:3] + bytes((self.seq,)) + chunk)
            self.seq = (self.seq + 1) & 0xFF
            pos += len(chunk)
            if len(chunk) < MAX_PAYLOAD:
                break
        self.sock.sendall(b"".join(out))

    def command(self, command: int, body: bytes = b"") -> None:
        """Starts a new command: sequence id 0."""
        self.seq = 0
        self.send_packet(bytes((command,)) + body)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection phase ----------------------------------------------------------

    def read_greeting(self) -> Greeting:
        payload = self.read_packet()
        if is_err(payload):
            err = parse_err(payload)
            raise ProtocolError(f"server refused the connection: {err}")
        protocol = payload[0]
        end = payload.index(b"\0", 1)
        version = payload[1:end].decode()
        pos = end + 1
        conn_id = struct.unpack_from("<I", payload, pos)[0]
        pos += 4
        scramble1 = payload[pos : pos + 8]
        pos += 9
        caps_low, charset, status, caps_high = struct.unpack_from("<HBHH", payload, pos)
        pos += 7
        auth_len = payload[pos]
        pos += 11
        part2_len = max(13, auth_len - 8)
        scramble2 = payload[pos : pos + part2_len].rstrip(b"\0")
        pos += part2_len
        plugin_end = payload.find(b"\0", pos)
        plugin = payload[pos : plugin_end if plugin_end >= 0 else len(payload)].decode()
        self.greeting = Greeting(
            protocol,
            version,
            conn_id,
            scramble1 + scramble2,
            caps_low | caps_high << 16,
            charset,
            status,
            plugin,
        )
        return self.greeting

    def handshake_response(
        self,
        user: str,
        auth_response: bytes,
        *,
        database: str | None = None,
        plugin: str = "mysql_native_password",
        capabilities: int = DEFAULT_CAPABILITIES,
        attributes: dict[str, str] | None = None,
        charset: int = 45,
    ) -> bytes:
        if database is not None:
            capabilities |= CLIENT_CONNECT_WITH_DB
        if attributes is not None:
            capabilities |= CLIENT_CONNECT_ATTRS
        self.capabilities = capabilities
        parts = [
            struct.pack("<IIB", capabilities, 1 << 30, charset),
            b"\0" * 23,
            user.encode() + b"\0",
        ]
        if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            parts.append(lenenc_str(auth_response))
        else:
            parts.append(bytes((len(auth_response),)) + auth_response)
        if database is not None:
            parts.append(database.encode() + b"\0")
        if capabilities & CLIENT_PLUGIN_AUTH:
            parts.append(plugin.encode() + b"\0")
        if attributes is not None:
            body = b"".join(
                lenenc_str(k.encode()) + lenenc_str(v.encode()) for k, v in attributes.items()
            )
            parts.append(lenenc_str(body))
        return b"".join(parts)

    def login(
        self,
        user: str,
        password: str,
        *,
        database: str | None = None,
        plugin: str = "mysql_native_password",
        capabilities: int = DEFAULT_CAPABILITIES,
        attributes: dict[str, str] | None = None,
        charset: int = 45,
    ) -> Ok | Err:
        """Full handshake; follows an auth switch. Returns the final OK or ERR.

        ``self.auth_trace`` records the packets between the response and the end.
        """
        greeting = self.read_greeting()
        if plugin == "caching_sha2_password":
            proof = caching_sha2_password(password, greeting.scramble)
        elif plugin == "mysql_native_password":
            proof = native_password(password, greeting.scramble)
        else:
            proof = b"\x01" * 64  # some other plugin's data: the server must switch us
        self.send_packet(
            self.handshake_response(
                user,
                proof,
                database=database,
                plugin=plugin,
                capabilities=capabilities,
                attributes=attributes,
                charset=charset,
            )
        )
        self.auth_trace: list[bytes] = []
        while True:
            payload = self.read_packet()
            self.auth_trace.append(payload)
            if is_ok(payload):
                return parse_ok(payload)
            if is_err(payload):
                return parse_err(payload)
            if payload[:1] == b"\xfe":  # auth switch request
                end = payload.index(b"\0", 1)
                new_plugin = payload[1:end].decode()
                nonce = payload[end + 1 :].rstrip(b"\0")
                if new_plugin == "mysql_native_password":
                    self.send_packet(native_password(password, nonce))
                elif new_plugin == "caching_sha2_password":
                    self.send_packet(caching_sha2_password(password, nonce))
                else:
                    raise ProtocolError(f"cannot answer an auth switch to {new_plugin}")
                continue
            if payload[:1] == b"\x01":  # auth more data (caching_sha2 fast path result)
                if payload[1:2] == b"\x03":
                    continue
                raise ProtocolError(f"server asked for full authentication: {payload!r}")
            raise ProtocolError(f"unexpected packet during authentication: {payload!r}")

    # --- command phase -------------------------------------------------------------

    def query(self, sql: str | bytes) -> None:
        self.command(COM_QUERY, sql.encode() if isinstance(sql, str) else sql)

    def read_result(self, *, binary: bool = False) -> ResultSet:
        """Reads one result (OK, ERR or a result set) in the negotiated EOF framing.

        With ``binary`` (a COM_STMT_EXECUTE result) rows are kept only as raw payloads.
        """
        deprecate_eof = bool(self.capabilities & CLIENT_DEPRECATE_EOF)
        result = ResultSet()
        first = self.read_packet()
        if is_err(first):
            result.kinds.append("ERR")
            result.end = parse_err(first)
            return result
        if is_ok(first):
            result.kinds.append("OK")
            result.ok = parse_ok(first)
            return result
        count, _ = read_lenenc_int(first, 0)
        result.kinds.append("COUNT")
        for _ in range(count or 0):
            result.columns.append(self.read_packet())
            result.kinds.append("COLDEF")
        if not deprecate_eof:
            eof = self.read_packet()
            if not (eof[:1] == b"\xfe" and len(eof) < 9):
                raise ProtocolError(f"expected EOF after column definitions, got {eof!r}")
            result.kinds.append("EOF")
        while True:
            payload = self.read_packet()
            if is_err(payload):
                result.kinds.append("ERR")
                result.end = parse_err(payload)
                return result
            if payload[:1] == b"\xfe" and len(payload) < MAX_PAYLOAD:
                if deprecate_eof:
                    result.kinds.append("OK_EOF")
                    result.end = parse_ok(payload)
                else:
                    if len(payload) >= 9:
                        raise ProtocolError(f"EOF packet too long: {payload!r}")
                    result.kinds.append("EOF")
                    result.end = parse_eof(payload)
                return result
            result.raw_rows.append(payload)
            result.kinds.append("ROW")
            if binary:
                continue
            row: list[bytes | None] = []
            pos = 0
            for _ in range(count or 0):
                value, pos = read_lenenc_str(payload, pos)
                row.append(value)
            if pos != len(payload):
                raise ProtocolError(f"row has {len(payload) - pos} trailing bytes")
            result.rows.append(row)

    def prepare(self, sql: str) -> Prepared:
        """COM_STMT_PREPARE; reads the whole response in the negotiated framing."""
        self.command(COM_STMT_PREPARE, sql.encode())
        first = self.read_packet()
        if is_err(first):
            raise ProtocolError(f"prepare of {sql!r} failed: {parse_err(first)}")
        statement_id, columns, params = struct.unpack_from("<IHH", first, 1)
        prepared = Prepared(statement_id, columns, params, ["PREPARE_OK"])
        deprecate_eof = bool(self.capabilities & CLIENT_DEPRECATE_EOF)
        for count, kind in ((params, "PARAM"), (columns, "COLDEF")):
            for _ in range(count):
                self.read_packet()
                prepared.kinds.append(kind)
            if count and not deprecate_eof:
                eof = self.read_packet()
                if not (eof[:1] == b"\xfe" and len(eof) < 9):
                    raise ProtocolError(f"expected EOF in the prepare response, got {eof!r}")
                prepared.kinds.append("EOF")
        return prepared

    def execute(self, statement_id: int, params: list[bytes | None] = ()) -> None:
        """COM_STMT_EXECUTE with string parameters (type VAR_STRING, types sent)."""
        body = struct.pack("<IBI", statement_id, 0, 1)
        if params:
            bitmap = bytearray((len(params) + 7) // 8)
            for i, value in enumerate(params):
                if value is None:
                    bitmap[i // 8] |= 1 << (i % 8)
            body += bytes(bitmap) + b"\x01" + b"\xfd\x00" * len(params)
            body += b"".join(lenenc_str(v) for v in params if v is not None)
        self.command(COM_STMT_EXECUTE, body)

    def read_results(self) -> list[ResultSet]:
        """Every result of a (multi-statement) query, following MORE_RESULTS_EXISTS."""
        results = []
        while True:
            result = self.read_result()
            results.append(result)
            final = result.ok or result.end
            if isinstance(final, Err) or not final.status & SERVER_MORE_RESULTS_EXISTS:
                return results

    def simple_query(self, sql: str) -> ResultSet:
        """A single-statement query; raises when the server answers with an error."""
        self.query(sql)
        result = self.read_result()
        if isinstance(result.end, Err):
            raise ProtocolError(f"{sql!r} failed: {result.end}")
        return result


def connect(
    host: str,
    port: int,
    user: str,
    password: str,
    **kwargs: object,
) -> RawClient:
    """A logged-in RawClient; raises ProtocolError when the login is refused."""
    client = RawClient(host, port)
    try:
        result = client.login(user, password, **kwargs)  # type: ignore[arg-type]
    except BaseException:
        client.close()
        raise
    if isinstance(result, Err):
        client.close()
        raise ProtocolError(f"login refused: {result}")
    return client
