"""Session-state changes for a client that negotiated CLIENT_SESSION_TRACK.

Shard connections track their session state, and what a shard reports for a statement
it runs goes on to the client as it is (wire.ok_reply). For what the proxy answers
itself the client is told what MariaDB tells it:

- the schema after USE, COM_INIT_DB and a login with a database (session_track_schema,
  whose value the proxy reads back whenever a SET assigns it);
- for a SET of autocommit (the proxy keeps it) and SET NAMES utf8mb4 (answered without
  a shard), what a pooled connection reports for the same statement: MariaDB reports
  tracked variables in an order of its own and not for every spelling (`SET
  @@autocommit` is not reported, `SET SESSION autocommit` is), so the proxy asks
  rather than guesses. That connection is reset before anyone uses it again.

Tracking anything else (session_track_state_change, session_track_transaction_info)
is refused for such a client: the proxy could not report it exactly.
"""

from __future__ import annotations

from .. import errors
from ..analysis.clauses import Assignment, unquoted
from ..protocol import wire
from .state import SessionState

# a pooled connection's settings after a probe: matches no session, so the next sync resets it
_PROBED = ("-- xaproxy: session-state probe",)
_UNTRACKABLE = frozenset({"session_track_state_change", "session_track_transaction_info"})
_OFF = frozenset({"0", "off", "false", "default"})


def schema_change(s: SessionState) -> bytes:
    """What the client is told when the session's database is set (USE, a login)."""
    if s.out.session_track and s.track_schema and s.database:
        return wire.schema_state(s.database)
    return b""


async def probe(s: SessionState, sql: str, *, sets_autocommit: bool) -> bytes:
    """The state changes MariaDB reports for the SET `sql`, read on a pooled connection
    of the session's default shard (of another while that one is down: every shard
    reports the same); a shard's error for it is the statement's."""
    if not s.out.session_track:
        return b""
    default = s.ctx.planner.default_shard(s.database)
    shards = [default, *(name for name in s.ctx.config.shards if name != default)]
    for shard in shards:
        try:
            return await _probe_on(s, await s.shards.pooled(shard), sql, sets_autocommit)
        except errors.ShardUnavailable:
            # down, or a pooled connection that died with it: the next shard answers alike
            if shard == shards[-1]:
                raise
    raise AssertionError("a shard map has shards")


async def _probe_on(s: SessionState, backend, sql: str, sets_autocommit: bool) -> bytes:
    try:
        ok = await backend.execute_ok(sql)
        if sets_autocommit:
            await backend.execute_ok("SET autocommit=1")
    finally:
        backend.settings = _PROBED
        s.shards.release(backend)
    return wire.ok_state(ok)


def refuse_untrackable(s: SessionState, assignments: list[Assignment]) -> None:
    """A client that tracks session state cannot have what the proxy could not report."""
    if not s.out.session_track:
        return
    for assignment in assignments:
        if assignment.name in _UNTRACKABLE and unquoted(assignment.value).lower() not in _OFF:
            raise errors.not_supported(
                f"{assignment.name} for a client that tracks session state",
                "leave it OFF (the schema and system variables are tracked)",
            )


async def read_schema_tracking(s: SessionState, backend, assignments: list[Assignment]) -> None:
    """After a SET of session_track_schema: whether USE is reported from now on."""
    if any(a.name == "session_track_schema" for a in assignments):
        ((value,),) = await backend.query_rows("SELECT @@session.session_track_schema")
        s.track_schema = value in (b"1", b"ON")
