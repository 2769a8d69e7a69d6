"""The connection phase: the server greeting and the client's reply to it."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .. import errors
from .constants import NATIVE_PASSWORD, Capability, Status
from .wire import read_lenenc_bytes, read_lenenc_int, read_nul_bytes


def greeting(
    server_version: str,
    connection_id: int,
    scramble: bytes,
    capabilities: int,
    charset: int,
    status: int = Status.AUTOCOMMIT,
    plugin: str = NATIVE_PASSWORD,
    mariadb_capabilities: int = 0,
) -> bytes:
    """HandshakeV10; scramble is 20 bytes (8 in part one, 12 + NUL in part two).

    With `mariadb_capabilities`, CLIENT_MYSQL is cleared and they fill the last four
    reserved bytes, as a MariaDB server announces them."""
    reserved = b"\0" * 10
    if mariadb_capabilities:
        capabilities &= ~Capability.LONG_PASSWORD
        reserved = b"\0" * 6 + struct.pack("<I", mariadb_capabilities)
    return b"".join(
        (
            b"\x0a",
            server_version.encode() + b"\0",
            struct.pack("<I", connection_id),
            scramble[:8],
            b"\0",
            struct.pack("<HBHH", capabilities & 0xFFFF, charset, status, capabilities >> 16),
            bytes((len(scramble) + 1,)),
            reserved,
            scramble[8:] + b"\0",
            plugin.encode() + b"\0",
        )
    )


@dataclass(slots=True)
class HandshakeResponse:
    capabilities: int
    max_packet: int
    charset: int
    user: str
    auth_response: bytes
    database: str | None
    plugin: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    mariadb_capabilities: int = 0  # what a MariaDB-aware client asked for


def parse_handshake_response(payload: bytes) -> HandshakeResponse:
    """HandshakeResponse41; older protocol versions are refused by the caller."""
    if len(payload) < 32:
        raise errors.malformed_packet("handshake response too short")
    caps, max_packet, charset = struct.unpack_from("<IIB", payload, 0)
    if not caps & Capability.PROTOCOL_41:
        raise errors.ProxyError(
            1251,
            "08004",
            "Client does not support authentication protocol requested by server; "
            "consider upgrading MySQL client",
        )
    pos = 32
    user_raw, pos = read_nul_bytes(payload, pos)
    if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth, pos = read_lenenc_bytes(payload, pos)
        auth = auth or b""
    else:
        auth, pos = _read_auth_response(payload, pos, caps)
    database = None
    if caps & Capability.CONNECT_WITH_DB and pos < len(payload):
        db_raw, pos = read_nul_bytes(payload, pos)
        database = db_raw.decode("utf-8", "replace") or None
    plugin = None
    if caps & Capability.PLUGIN_AUTH and pos < len(payload):
        end = payload.find(b"\0", pos)
        end = len(payload) if end < 0 else end
        plugin = payload[pos:end].decode("ascii", "replace")
        pos = end + 1
    attributes: dict[str, str] = {}
    if caps & Capability.CONNECT_ATTRS and pos < len(payload):
        total, pos = read_lenenc_int(payload, pos)
        end = min(len(payload), pos + (total or 0))
        while pos < end:
            key, pos = read_lenenc_bytes(payload, pos)
            value, pos = read_lenenc_bytes(payload, pos)
            attributes[(key or b"").decode("utf-8", "replace")] = (value or b"").decode(
                "utf-8", "replace"
            )
    mariadb = 0
    if not caps & Capability.LONG_PASSWORD:  # CLIENT_MYSQL clear: MariaDB's word is read
        (mariadb,) = struct.unpack_from("<I", payload, 28)
    return HandshakeResponse(
        caps,
        max_packet,
        charset,
        user_raw.decode("utf-8", "replace"),
        bytes(auth),
        database,
        plugin,
        attributes,
        mariadb,
    )


def auth_switch_request(plugin: str, scramble: bytes) -> bytes:
    return b"\xfe" + plugin.encode() + b"\0" + scramble + b"\0"


@dataclass(slots=True)
class ChangeUser:
    user: str
    auth_response: bytes
    database: str | None
    charset: int | None
    plugin: str | None


def parse_change_user(payload: bytes, caps: int) -> ChangeUser:
    """COM_CHANGE_USER body (without the command byte)."""
    user_raw, pos = read_nul_bytes(payload, 0)
    auth, pos = _read_auth_response(payload, pos, caps)
    db_raw, pos = read_nul_bytes(payload, pos) if pos < len(payload) else (b"", pos)
    charset = None
    if pos + 2 <= len(payload):
        charset = struct.unpack_from("<H", payload, pos)[0]
        pos += 2
    plugin = None
    if caps & Capability.PLUGIN_AUTH and pos < len(payload):
        end = payload.find(b"\0", pos)
        end = len(payload) if end < 0 else end
        plugin = payload[pos:end].decode("ascii", "replace")
    return ChangeUser(
        user_raw.decode("utf-8", "replace"),
        bytes(auth),
        db_raw.decode("utf-8", "replace") or None,
        charset,
        plugin,
    )


def _read_auth_response(payload: bytes, pos: int, caps: int) -> tuple[bytes, int]:
    """The auth response as a one-byte-length string (SECURE_CONNECTION) or NUL-ended."""
    if not caps & Capability.SECURE_CONNECTION:
        return read_nul_bytes(payload, pos)
    if pos >= len(payload):
        raise errors.malformed_packet("missing auth response")
    n = payload[pos]
    return payload[pos + 1 : pos + 1 + n], pos + 1 + n
