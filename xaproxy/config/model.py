"""The validated configuration as immutable values.

Everything here is plain data: the loader has already checked every rule, so
the rest of the proxy can trust these objects without re-validating them. The
classes are frozen so that a running proxy cannot change its configuration by
accident; a reload builds a new ``Config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALGORITHMS: tuple[str, ...] = ("hash", "list", "mod", "range")
"""Sharding algorithms a table may use, in the order error messages list them."""

TRANSACTION_MODES: tuple[str, ...] = ("xa", "at")
AUTH_PLUGINS: tuple[str, ...] = ("mysql_native_password", "caching_sha2_password")


@dataclass(frozen=True, slots=True)
class ShardTls:
    """TLS to a shard: the server certificate is verified against `ca` (PEM; None: the
    system's CAs) and, with `verify_identity`, must name the shard's host."""

    ca: str | None = None
    verify_identity: bool = True


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """One backend MySQL server and how the proxy connects to it."""

    name: str
    host: str
    port: int
    user: str
    password: str
    pool_size: int
    connect_timeout_s: float
    # a shard that sends nothing for this long while the proxy waits for an answer is
    # treated as lost (its connection closed, the statement failed, the transaction
    # rolled back); 0: wait for ever
    read_timeout_s: float = 120
    tls: ShardTls | None = None  # None: plaintext to the shard


@dataclass(frozen=True, slots=True)
class RangeBound:
    """Rows whose shard key is below ``below`` (and not below an earlier bound) go to ``shard``.

    ``below`` is ``None`` only for the last bound, meaning "everything else".
    """

    shard: str
    below: int | float | str | None


@dataclass(frozen=True, slots=True)
class TableConfig:
    """How one logical table is placed on the shards.

    A table is either sharded (``algorithm`` set), broadcast (a full copy on
    every shard in ``shards``) or unsharded (it lives on the schema's default
    shard, which is then its only entry in ``shards``).
    """

    name: str
    shard_key: str | None
    algorithm: str | None
    shards: tuple[str, ...]
    broadcast: bool
    ranges: tuple[RangeBound, ...] = ()
    values: dict[str, tuple] = field(default_factory=dict, hash=False)
    auto_increment: str | None = None
    binding: str | None = None
    # "integer" or "string": the SQL kind of the shard key column, None when not declared
    # (hash keys then narrow only on literals every column type compares the same way)
    key_type: str | None = None

    @property
    def sharded(self) -> bool:
        """True when rows are spread over the shards by ``algorithm``."""
        return not self.broadcast and self.algorithm is not None


@dataclass(frozen=True, slots=True)
class SchemaConfig:
    """A logical database: the same database name exists on every shard."""

    name: str
    default_shard: str
    tables: dict[str, TableConfig] = field(default_factory=dict, hash=False)

    def table(self, name: str) -> TableConfig | None:
        """The configured table called ``name`` (any case), or None when it is unsharded."""
        return self.tables.get(name.lower())

    @property
    def has_sharded_tables(self) -> bool:
        """True when some table is spread over shards, so routing cannot be skipped."""
        return any(t.sharded for t in self.tables.values())


BOOKKEEPING_DATABASE = "xaproxy"
"""The database of the proxy's own tables (decisions, undo log, global locks) on every shard."""


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A client account the proxy accepts (independent of the shards' accounts).

    What it may do is least privilege by default: reads and writes in its schemas,
    no DDL, no operator commands (xaproxy/authz/ enforces it).
    """

    user: str
    password: str
    # the mysql_native_password hash ("*" + 40 hex digits, SHA1(SHA1(password))), when the
    # config gives that instead of the clear text
    password_hash: str | None = None
    schemas: frozenset[str] | None = None  # lower-case logical schema names; None: all of them
    read_only: bool = False
    ddl: bool = False
    admin: bool = False
    require_tls: bool = False  # a login of this user over plaintext is refused
    max_connections: int | None = None  # sessions of this user at a time (None: no own limit)


@dataclass(frozen=True, slots=True)
class TransactionsConfig:
    """How cross-shard transactions are made atomic and how long they may take."""

    mode: str = "xa"
    timeout_s: float = 60
    abandon_age_s: float = 300
    lock_retry_count: int = 30
    lock_retry_interval_ms: int = 10
    recover_interval_s: float = 30
    # a row-lock wait of a transaction that spans shards is ended after this (0: never)
    cross_shard_lock_wait_s: float = 5


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The certificate chain and private key the proxy offers clients (PEM files)."""

    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class Config:
    """The whole proxy configuration."""

    listen_host: str
    listen_port: int
    proxy_id: str
    users: dict[str, UserConfig] = field(hash=False)
    shards: dict[str, ShardConfig] = field(hash=False)
    schemas: dict[str, SchemaConfig] = field(hash=False)
    transactions: TransactionsConfig = field(default_factory=TransactionsConfig)
    auth_plugin: str = "mysql_native_password"
    max_connections: int = 10000
    login_timeout_s: float = 10  # a connection not logged in by then is closed
    max_prepared_statements: int = 4096  # per session, as max_prepared_stmt_count
    # what one fan-out SELECT's merge may hold in a session (groups, DISTINCT keys,
    # rows to sort); past it the statement ends with 1038. 0: unlimited
    max_merge_memory_mb: int = 64
    # a SELECT the shards cannot answer in parts reads the sharded tables it needs into
    # temporary copies on one shard (or a join's shards): at most these rows and MiB of
    # them per statement, else refused. 0 MiB: never copied, always refused
    max_copy_rows: int = 100_000
    max_copy_mb: int = 4
    wait_timeout_s: float = 28800  # a session idle this long is closed (SET wait_timeout too)
    shutdown_timeout_s: float = 10
    metrics_listen: tuple[str, int] | None = None
    server_version: str | None = None
    workers: int = 1  # processes sharing the listen port (SO_REUSEPORT)
    tls: TlsConfig | None = None  # None: no TLS; a client's SSLRequest is refused

    def schema(self, name: str) -> SchemaConfig | None:
        """The schema called ``name`` (any case), or None when it is not configured."""
        return self.schemas.get(name.lower())
