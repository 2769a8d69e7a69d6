"""What the proxy reads from each shard before it serves: one connection per shard.

Start-up needs, from every shard, its version, max_allowed_packet, max_connections
and the privileges of the proxy's account. They are read in one visit per shard (all
shards at once), and the checks of server.py and shards/grants.py work on the result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .. import errors
from ..config import Config, ShardConfig
from .backend import Backend

_SETTINGS = "SELECT @@global.max_allowed_packet, @@global.max_connections, @@session.sql_mode"
# what a new session tracks for a client that negotiated CLIENT_SESSION_TRACK
_TRACKING = (
    "SELECT @@session.session_track_schema, @@session.session_track_state_change, "
    "@@session.session_track_transaction_info"
)
_GLOBAL_PRIVILEGES = "SELECT PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES"
_SCHEMA_PRIVILEGES = (
    "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES"
)


@dataclass(slots=True)
class ShardSurvey:
    """One shard as the proxy's account sees it; `unreachable` says why when it did not answer."""

    shard: str
    unreachable: str | None = None
    version: str = ""
    max_allowed_packet: int = 16 * 1024 * 1024
    max_connections: int | None = None
    sql_mode: str = ""  # what a new connection of the proxy's account starts with
    # session tracking of a new session: the schema is tracked; nothing but the schema
    # and system variables is (the proxy relays or makes exactly those: session/tracking.py)
    track_schema: bool = False
    tracks_only_schema_and_variables: bool = False
    # (privilege, grantable) on *.*, and (schema, privilege, grantable)
    global_privileges: list[tuple[str, bool]] = field(default_factory=list)
    schema_privileges: list[tuple[str, str, bool]] = field(default_factory=list)


async def survey_shard(shard: ShardConfig) -> ShardSurvey:
    """Connects to `shard` as the proxy does and reads what start-up checks need."""
    found = ShardSurvey(shard.name)
    try:
        backend = await Backend.connect(shard, found_rows=False)
    except errors.ProxyError as exc:
        found.unreachable = exc.message
        return found
    try:
        found.version = backend.conn.get_server_info()
        (packet, connections, sql_mode), *_ = await backend.query_rows(_SETTINGS)
        found.max_allowed_packet = int(packet)
        found.max_connections = int(connections)
        found.sql_mode = _text(sql_mode)
        try:
            (schema, state, transaction), *_ = await backend.query_rows(_TRACKING)
        except errors.BackendError:  # a server without session tracking
            pass
        else:
            found.track_schema = _text(schema) in ("1", "ON")
            found.tracks_only_schema_and_variables = _text(state) in ("0", "OFF") and (
                _text(transaction) == "OFF"
            )
        found.global_privileges = [
            (_text(p), _text(g) == "YES") for p, g in await backend.query_rows(_GLOBAL_PRIVILEGES)
        ]
        found.schema_privileges = [
            (_text(s), _text(p), _text(g) == "YES")
            for s, p, g in await backend.query_rows(_SCHEMA_PRIVILEGES)
        ]
    except errors.ProxyError as exc:
        found.unreachable = exc.message
    finally:
        backend.close()
    return found


async def survey(config: Config) -> list[ShardSurvey]:
    """Every shard of the config, visited concurrently, in the config's order."""
    return list(await asyncio.gather(*(survey_shard(s) for s in config.shards.values())))


def _text(value: bytes | str | None) -> str:
    if isinstance(value, str):
        return value
    return (value or b"").decode("utf-8", "replace")
