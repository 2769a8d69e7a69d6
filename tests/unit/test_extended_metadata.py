"""MariaDB's extended column metadata: offered in the greeting, read from the client's
response, kept, dropped or added per column definition as the client negotiated."""

from __future__ import annotations

import struct

from xaproxy.protocol import handshake, wire
from xaproxy.protocol.constants import Capability, FieldType, MariaDBCapability

PLAIN = wire.ColumnDef("doc", type=FieldType.BLOB, table="docs", schema="shop").encode()
JSON_BLOCK = b"\x01\x04json"  # format (1) "json"


def _with_block(coldef: bytes, block: bytes) -> bytes:
    """`coldef` as a connection with extended metadata carries it."""
    pos = len(coldef) - 13
    return coldef[:pos] + wire.lenenc_bytes(block) + coldef[pos:]


def test_a_client_without_extended_metadata_gets_the_block_dropped() -> None:
    extended = _with_block(PLAIN, JSON_BLOCK)
    assert wire.column_for_client(extended, False) == PLAIN
    assert wire.column_for_client(PLAIN, False) == PLAIN


def test_a_client_with_extended_metadata_gets_the_shards_block_or_an_empty_one() -> None:
    extended = _with_block(PLAIN, JSON_BLOCK)
    assert wire.column_for_client(extended, True) == extended
    assert wire.column_for_client(PLAIN, True) == _with_block(PLAIN, b"")
    assert wire.column_for_client(_with_block(PLAIN, b""), True) == _with_block(PLAIN, b"")


def test_fixed_fields_are_read_past_the_block() -> None:
    extended = _with_block(PLAIN, JSON_BLOCK)
    assert wire.column_type_and_flags(extended) == wire.column_type_and_flags(PLAIN)
    assert wire.column_charset_and_length(extended) == (45, 1024)
    assert wire.column_name(extended) == "doc"


def test_a_field_list_definition_with_a_default_is_converted_by_the_connections_word() -> None:
    with_default = PLAIN + wire.lenenc_bytes(b"{}")
    extended = _with_block(PLAIN, JSON_BLOCK) + wire.lenenc_bytes(b"{}")
    assert wire.field_list_column(extended, True, False) == with_default
    assert wire.field_list_column(with_default, False, True) == (
        _with_block(PLAIN, b"") + wire.lenenc_bytes(b"{}")
    )
    assert wire.field_list_column(extended, True, True) == extended


def test_the_greeting_announces_mariadb_capabilities_with_client_mysql_clear() -> None:
    packet = handshake.greeting(
        "10.11.19-MariaDB", 7, b"a" * 20, Capability.LONG_PASSWORD | Capability.PROTOCOL_41, 45
    )
    offered = handshake.greeting(
        "10.11.19-MariaDB",
        7,
        b"a" * 20,
        Capability.LONG_PASSWORD | Capability.PROTOCOL_41,
        45,
        mariadb_capabilities=MariaDBCapability.EXTENDED_METADATA,
    )
    head = len(b"\x0a10.11.19-MariaDB\0") + 4 + 8 + 1
    (low,) = struct.unpack_from("<H", packet, head)
    assert low & Capability.LONG_PASSWORD
    (low,) = struct.unpack_from("<H", offered, head)
    assert not low & Capability.LONG_PASSWORD
    reserved = head + 2 + 1 + 2 + 2 + 1
    assert offered[reserved : reserved + 6] == b"\0" * 6
    assert struct.unpack_from("<I", offered, reserved + 6) == (MariaDBCapability.EXTENDED_METADATA,)
    assert len(offered) == len(packet)


def _response(caps: int, extended: int) -> bytes:
    return (
        struct.pack("<IIB", caps, 1 << 24, 45)
        + b"\0" * 19
        + struct.pack("<I", extended)
        + b"app\0\0"
    )


def test_the_clients_word_is_read_only_when_it_clears_client_mysql() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
    mariadb = handshake.parse_handshake_response(_response(caps, 8))
    assert mariadb.mariadb_capabilities == MariaDBCapability.EXTENDED_METADATA
    mysql = handshake.parse_handshake_response(_response(caps | Capability.LONG_PASSWORD, 8))
    assert mysql.mariadb_capabilities == 0
