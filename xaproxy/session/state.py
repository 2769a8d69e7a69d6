"""What one client connection has, as plain data: the handlers are functions over it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import errors
from ..authz import UserGrants
from ..protocol.constants import Status
from ..protocol.stream import PacketStream
from ..shards.backend import Backend
from ..transactions.access import ShardAccess
from ..transactions.coordinator import Transaction

if TYPE_CHECKING:
    from .context import ProxyContext
    from .prepared import PreparedStatement
    from .sql_prepared import SqlPrepared

# Plain ints: IntFlag arithmetic costs an enum construction per statement.
_AUTOCOMMIT = int(Status.AUTOCOMMIT)
_IN_TRANS = int(Status.IN_TRANS)
_NO_BACKSLASH_ESCAPES = int(Status.NO_BACKSLASH_ESCAPES)

# The pin cause of a session whose user variables live on a shard connection.
USER_VARIABLES = "user variables"


@dataclass(slots=True, eq=False)
class SessionState:
    """A client connection's state, as MySQL keeps it per connection, plus its shard access."""

    ctx: ProxyContext
    out: PacketStream
    id: int
    peer_host: str = "localhost"
    user: str = ""
    # what the user may do (users[] of the config); nothing until it has logged in
    grants: UserGrants = field(default_factory=lambda: UserGrants("", "", frozenset()))
    capabilities: int = 0
    deprecate_eof: bool = False
    found_rows: bool = False
    busy: bool = False
    idle_since: float = 0.0  # monotonic time the last command ended (or the login)
    wait_timeout_s: float = 28800  # @@wait_timeout of the session: idle longer, it is closed
    # @@interactive_timeout once the session set it (else the shard's answers it)
    interactive_timeout: int | None = None
    info: bytes | None = None  # the statement running now (COM_QUERY), for SHOW PROCESSLIST
    command_started: float = 0.0  # when the current command began
    started: float = field(default_factory=time.monotonic)
    database: str | None = None
    # USE is reported to a client that tracks session state (@@session_track_schema)
    track_schema: bool = False
    autocommit: bool = True
    txn_mode: str = "xa"
    timed_out: bool = False
    txn: Transaction | None = None
    pinned: dict[str, Backend] = field(default_factory=dict)
    # why the session is pinned ("user variables", "LOCK TABLES"...), in order of first cause
    pin_causes: list[str] = field(default_factory=list)
    # set around one statement that creates state only its connection can hold: the
    # connection it runs on is pinned with this cause (transactions/access.py)
    pin_request: str | None = None
    # SAVEPOINTs set with autocommit off before the transaction's first statement
    pending_savepoints: list[str] = field(default_factory=list)
    # user variable (lower case) -> the shard whose pinned connection holds it
    variable_homes: dict[str, str] = field(default_factory=dict)
    settings: tuple[str, ...] = ()
    charset_setting: str | None = None
    # character_set_client as the shard reports it: parameters inlined into text are
    # escaped for it (a multi-byte character may end in 0x5c in gbk, big5, sjis, cp932)
    client_charset: str = "utf8mb4"
    # (collation id, bytes per character) a client sees on a string literal and on a
    # string function (DATABASE(), USER()): the proxy's own answers are described so
    literal_charset: tuple[int, int] = (45, 4)
    function_charset: tuple[int, int] = (45, 4)
    # (cipher, protocol version) once the client upgraded to TLS; kept across resets
    tls: tuple[str, str] | None = None
    next_txn_characteristics: str | None = None
    last_insert_id: int = 0
    # ROW_COUNT() and FOUND_ROWS() as the session's last statement left them: the proxy
    # answers both, a pooled shard connection may have run another session's statement
    row_count: int = 0
    found_rows_count: int = 0
    warnings: list[tuple[str, int, str]] = field(default_factory=list)
    no_backslash_escapes: bool = False
    prepared: dict[int, PreparedStatement] = field(default_factory=dict)
    # LOCK TABLES of sharded tables: the shards holding locks, the names locked
    locked_shards: list[str] = field(default_factory=list)
    locked_tables: frozenset[str] = frozenset()
    # SQL-level PREPAREs of statements on sharded tables, kept by the proxy (by name)
    sql_prepared: dict[str, SqlPrepared] = field(default_factory=dict)
    next_statement_id: int = 1
    shards: ShardAccess = field(init=False)

    def __post_init__(self) -> None:
        ctx = self.ctx
        self.txn_mode = ctx.config.transactions.mode
        self.track_schema = bool(ctx.session_track_schema)
        self.shards = ShardAccess(self, ctx.pools, ctx.coordinator, ctx.config, ctx.parse_cache)

    def reset(self, database: str | None) -> None:
        """COM_RESET_CONNECTION / COM_CHANGE_USER: a fresh session on the same socket."""
        self.database = database
        self.track_schema = bool(self.ctx.session_track_schema)
        self.autocommit = True
        self.txn_mode = self.ctx.config.transactions.mode
        self.timed_out = False
        self.wait_timeout_s = self.ctx.config.wait_timeout_s
        self.interactive_timeout = None
        self.txn = None
        self.pinned = {}
        self.pin_causes = []
        self.pin_request = None
        self.pending_savepoints = []
        self.variable_homes = {}
        self.settings = ()
        self.charset_setting = None
        self.client_charset = "utf8mb4"
        self.literal_charset = self.function_charset = (45, 4)
        self.next_txn_characteristics = None
        self.last_insert_id = 0
        self.row_count = 0
        self.found_rows_count = 0
        self.warnings = []
        self.no_backslash_escapes = False
        self.prepared = {}
        self.sql_prepared = {}
        self.locked_shards = []
        self.locked_tables = frozenset()
        self.next_statement_id = 1

    @property
    def merge_memory_limit(self) -> int:
        """The bytes one fan-out SELECT's merge may hold (max_merge_memory_mb; 0: unlimited)."""
        return self.ctx.config.max_merge_memory_mb * 1024 * 1024

    def status(self) -> int:
        status = _AUTOCOMMIT if self.autocommit else 0
        if self.txn is not None:
            status |= _IN_TRANS
        if self.no_backslash_escapes:
            status |= _NO_BACKSLASH_ESCAPES
        return status

    def note_error(self, exc: errors.ProxyError) -> None:
        self.warnings = getattr(exc, "conditions", None) or [("Error", exc.code, exc.message)]
        self.row_count = -1  # FOUND_ROWS() keeps the last statement's that succeeded

    def note_result(self, affected: int | None = None, rows: int | None = None) -> None:
        """MariaDB's rule: a result set makes ROW_COUNT() -1 and FOUND_ROWS() its row
        count (SQL_CALC_FOUND_ROWS: the count without LIMIT); an OK sets ROW_COUNT() to
        its affected rows and leaves FOUND_ROWS()."""
        if rows is not None:
            self.row_count = -1
            self.found_rows_count = rows
        else:
            self.row_count = affected or 0

    def decode(self, raw: bytes) -> str:
        return raw.decode("utf-8", "surrogateescape")
