"""The client's handshake character set, as a setting to replay on shard connections."""

from __future__ import annotations

from asyncmy.charset import charset_by_id

from .. import errors
from .local_columns import maxlen_of

# Shard connections are opened with utf8mb4; a client asking for it needs nothing.
_BACKEND_CHARSET = "utf8mb4"
BACKEND_COLLATION = 45  # utf8mb4_general_ci, what asyncmy asks for
_MYSQL8_COLLATIONS = 255  # ids from here on are MySQL 8's, unknown to MariaDB


# Character sets in which the second byte of a two-byte character can be 0x5c, the
# backslash. The proxy reads a statement's text as UTF-8; in these the server would read
# `0xbf 0x5c 0x27` as one character and a quote where the proxy sees an escaped quote, so a
# string literal could end at a different place for the proxy and the server (a second
# statement hidden from the proxy's analysis, or a prepared parameter breaking out of
# its quotes). Sessions may not use them for character_set_client.
UNREADABLE_CLIENT_CHARSETS = frozenset({"big5", "gbk", "gb18030", "sjis", "cp932"})


def refuse_client_charset(name: str) -> errors.ProxyError:
    return errors.ProxyError(
        1115,
        "42000",
        f"xaproxy does not accept character set '{name}' for the client connection: in "
        f"{name} a multi-byte character can end in byte 0x5c (backslash), so the proxy could "
        "read a statement differently from the server; connect with utf8mb4 (the shards "
        "convert stored data to it)",
    )


def client_charset(collation_id: int) -> str:
    """The character set name of a handshake collation id (utf8mb4 when unknown: the
    shard connections' own, which the proxy then also escapes for)."""
    try:
        name = charset_by_id(collation_id).name
    except Exception:
        return _BACKEND_CHARSET
    return "utf8mb3" if name == "utf8" else name


def names_setting(collation_id: int) -> str | None:
    """`SET NAMES <charset> COLLATE <collation>` for the handshake's collation, as MariaDB
    applies it to the session (client, connection and results character sets, and
    collation_connection), or None when it is the shard connections' own."""
    if collation_id == BACKEND_COLLATION:
        return None
    try:
        charset = charset_by_id(collation_id)
    except Exception:
        return None
    name, collation = charset.name, charset.collation
    if name == "utf8":
        name = "utf8mb3"
        collation = "utf8mb3_" + collation.removeprefix("utf8_")
    if collation_id >= _MYSQL8_COLLATIONS:
        # MySQL 8's (utf8mb4_0900_ai_ci, what Connector/Python sends): MariaDB does not
        # know it and gives the session its default collation of the character set
        return None if name == _BACKEND_CHARSET else f"SET NAMES {name}"
    return f"SET NAMES {name} COLLATE {collation}"


def handshake_collation(collation_id: int) -> tuple[int, int]:
    """collation_connection after a login asking for `collation_id`, and its bytes per
    character (the server's default utf8mb4 one when the id is unknown)."""
    try:
        name = charset_by_id(collation_id).name
    except Exception:
        return BACKEND_COLLATION, 4
    if collation_id >= _MYSQL8_COLLATIONS and name == _BACKEND_CHARSET:
        return BACKEND_COLLATION, 4  # MariaDB gives the session its utf8mb4 default
    return collation_id, maxlen_of(name)
