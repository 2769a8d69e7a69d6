"""The client's handshake character set, as a setting to replay on shard connections."""

from __future__ import annotations

from asyncmy.charset import charset_by_id

# Shard connections are opened with utf8mb4; a client asking for it needs nothing.
_BACKEND_CHARSET = "utf8mb4"


def names_setting(collation_id: int) -> str | None:
    """`SET NAMES ...` for a non-default client charset, or None."""
    try:
        charset = charset_by_id(collation_id)
    except Exception:
        return None
    name = charset.name
    if name == _BACKEND_CHARSET:
        return None
    if name == "utf8":
        name = "utf8mb3"
    return f"SET NAMES {name}"
