"""Read the YAML configuration and turn it into a validated ``Config``.

A DBA editing the file should see every mistake in one run, each pointing at
the exact place in the YAML (``schemas[0].tables[2].shard_key: required``), so
the checks here collect problems instead of stopping at the first one, and a
``Config`` is only built when there are none.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from collections.abc import Iterable
from typing import Any

import yaml

from xaproxy.config.model import (
    ALGORITHMS,
    AUTH_PLUGINS,
    BOOKKEEPING_DATABASE,
    TRANSACTION_MODES,
    Config,
    RangeBound,
    SchemaConfig,
    ShardConfig,
    ShardTls,
    TableConfig,
    TlsConfig,
    TransactionsConfig,
    UserConfig,
)

TOP_LEVEL = "(top level)"
_PROXY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_SHARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,20}")  # shard names go into XA ids (64 bytes)
_MAX_NAME = 64  # MySQL's limit for database and table names
_REQUIRED = object()

# The keys each kind of mapping may have; anything else is reported as a typo.
_TOP_KEYS = frozenset(
    {
        "listen",
        "proxy_id",
        "users",
        "shards",
        "schemas",
        "transactions",
        "auth_plugin",
        "max_connections",
        "login_timeout_s",
        "max_prepared_statements",
        "max_merge_memory_mb",
        "max_copy_rows",
        "max_copy_mb",
        "wait_timeout_s",
        "shutdown_timeout_s",
        "metrics_listen",
        "server_version",
        "workers",
        "tls",
    }
)
_TLS_KEYS = frozenset({"cert", "key"})
_SHARD_TLS_KEYS = frozenset({"ca", "verify_identity"})
_SHARD_KEYS = frozenset(
    {
        "name",
        "host",
        "port",
        "user",
        "password",
        "pool_size",
        "connect_timeout_s",
        "read_timeout_s",
        "tls",
    }
)
_USER_KEYS = frozenset(
    {
        "user",
        "password",
        "password_hash",
        "schemas",
        "read_only",
        "ddl",
        "admin",
        "require_tls",
        "max_connections",
    }
)
_NATIVE_HASH = re.compile(r"\*[0-9A-Fa-f]{40}")
# Databases a user may be granted besides the logical schemas (reads of the server's own).
_GRANTABLE_SYSTEM_SCHEMAS = ("information_schema", "performance_schema", "mysql", "sys")
_SCHEMA_KEYS = frozenset({"name", "default_shard", "tables"})
_TABLE_KEYS = frozenset(
    {
        "name",
        "shard_key",
        "algorithm",
        "shards",
        "broadcast",
        "ranges",
        "values",
        "auto_increment",
        "binding",
        "key_type",
    }
)
_KEY_TYPES = ("integer", "string")
_RANGE_KEYS = frozenset({"shard", "below"})
_TRANSACTION_KEYS = frozenset(
    {
        "mode",
        "timeout_s",
        "abandon_age_s",
        "lock_retry_count",
        "lock_retry_interval_ms",
        "recover_interval_s",
        "cross_shard_lock_wait_s",
    }
)


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def parse_config(data: object) -> Config:
    """Validate already-loaded YAML data; raise ``ConfigError`` listing all problems."""
    return _Parser().parse(data)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML file at ``path``."""
    return parse_config(_read_yaml(path))


def check_config(path: str | os.PathLike[str]) -> list[str]:
    """The problems of the file at ``path``; empty when it would load."""
    try:
        load_config(path)
    except ConfigError as e:
        return e.problems
    return []


# --- YAML reading ---------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics, but a key written twice is an error.

    Plain YAML silently keeps the last of two ``password:`` lines, which turns
    an editing slip into a surprise at runtime.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key; the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str | os.PathLike[str]) -> object:
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([f"{name}: cannot read the file: {e.strerror or e}"])
    except UnicodeDecodeError as e:
        raise ConfigError([f"{name}: the file is not valid UTF-8 ({e.reason})"])
    try:
        # _StrictLoader is a SafeLoader: no arbitrary Python objects are built.
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        raise ConfigError([_yaml_error_message(name, e)])


def _yaml_error_message(name: str, e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    what = f"{context}: {problem}" if context else problem
    if mark is None:
        return f"{name}: invalid YAML: {what}"
    return f"{name}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}"


# --- validation helpers ---------------------------------------------------------------------


def _key(path: str, key: str) -> str:
    return key if path in ("", TOP_LEVEL) else f"{path}.{key}"


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return _is_int(v)


def _is_scalar_value(v: object) -> bool:
    """A value that can be a shard-key value in the config (no bools: YAML's `no` is one)."""
    return isinstance(v, str) or _is_number(v)


class _Section:
    """One YAML mapping being read: typed getters that record problems under its path.

    A getter that finds a problem returns the default (or None when the key is
    required) so that validation can continue and report further problems.
    """

    def __init__(self, problems: list[str], data: object, path: str, keys: Iterable[str]) -> None:
        self.problems = problems
        self.path = path
        self.ok = isinstance(data, dict)
        self.data: dict[Any, Any] = data if isinstance(data, dict) else {}
        allowed = set(keys)
        if not self.ok:
            self.problem(path, "expected a mapping")
            return
        for k in self.data:
            if k not in allowed:
                self.problem(_key(path, str(k)), "unknown key")

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def at(self, key: str) -> str:
        return _key(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: object = _REQUIRED) -> Any:
        if key not in self.data:
            if default is _REQUIRED and self.ok:
                self.problem(self.at(key), "required")
                return None
            return None if default is _REQUIRED else default
        return self.data[key]

    def string(
        self, key: str, default: object = _REQUIRED, *, nullable: bool = False, max_len: int = 0
    ) -> Any:
        if key not in self.data:
            return self.raw(key, default)
        v = self.data[key]
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            hint = " (put it in quotes)" if isinstance(v, (bool, int, float)) else ""
            self.problem(self.at(key), f"expected a string{hint}")
            return None if default is _REQUIRED else default
        if not v:
            self.problem(self.at(key), "must not be empty")
            return None
        if max_len and len(v) > max_len:
            self.problem(self.at(key), f"must be at most {max_len} characters")
        return v

    def password(self, key: str) -> str:
        """A password; a missing or empty (null) value means no password."""
        v = self.data.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            self.problem(self.at(key), "expected a string (put it in quotes)")
            return ""
        return v

    def integer(
        self,
        key: str,
        default: object = _REQUIRED,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        if key not in self.data:
            return self.raw(key, default)
        v = self.data[key]
        if not _is_int(v):
            self.problem(self.at(key), "expected an integer")
            return None if default is _REQUIRED else default
        return self._bounded(key, v, default, minimum, maximum)

    def number(
        self,
        key: str,
        default: object = _REQUIRED,
        *,
        minimum: float | None = None,
        positive: bool = False,
    ) -> Any:
        if key not in self.data:
            return self.raw(key, default)
        v = self.data[key]
        if not _is_number(v):
            self.problem(self.at(key), "expected a number")
            return None if default is _REQUIRED else default
        if positive and v <= 0:
            self.problem(self.at(key), "must be greater than 0")
            return None if default is _REQUIRED else default
        return self._bounded(key, v, default, minimum, None)

    def _bounded(
        self, key: str, v: Any, default: object, minimum: float | None, maximum: float | None
    ) -> Any:
        if minimum is not None and maximum is not None and not minimum <= v <= maximum:
            self.problem(self.at(key), f"must be between {minimum} and {maximum}")
        elif minimum is not None and v < minimum:
            self.problem(self.at(key), f"must be at least {minimum}")
        elif maximum is not None and v > maximum:
            self.problem(self.at(key), f"must be at most {maximum}")
        else:
            return v
        return None if default is _REQUIRED else default

    def boolean(self, key: str, default: bool) -> bool:
        v = self.data.get(key, default)
        if not isinstance(v, bool):
            self.problem(self.at(key), "expected true or false")
            return default
        return v

    def choice(self, key: str, default: str | None, choices: Iterable[str], expected: str) -> Any:
        """A string from ``choices`` (any case, stored lower-case)."""
        if key not in self.data:
            return self.raw(key, _REQUIRED if default is None else default)
        v = self.data[key]
        if isinstance(v, str) and v.lower() in choices:
            return v.lower()
        self.problem(self.at(key), expected)
        return default

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        """A list; missing means empty unless ``required``."""
        if key not in self.data:
            if required and self.ok:
                self.problem(self.at(key), "required")
            return []
        v = self.data[key]
        if not isinstance(v, list):
            self.problem(self.at(key), "expected a list")
            return []
        return v

    def address(self, key: str, default: object = _REQUIRED, *, nullable: bool = False) -> Any:
        """A ``host:port`` string (``[::1]:3307`` for IPv6); port 0 picks a free port."""
        if key not in self.data:
            return self.raw(key, default)
        v = self.data[key]
        if v is None and nullable:
            return None
        parsed = _parse_address(v)
        if parsed is None:
            self.problem(self.at(key), "expected host:port")
        elif not 0 <= parsed[1] <= 65535:
            self.problem(self.at(key), "port must be between 0 and 65535")
            return None
        return parsed


def _parse_address(v: object) -> tuple[str, int] | None:
    if not isinstance(v, str):
        return None
    host, sep, port = v.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address must be bracketed to be unambiguous
        return None
    if not host:
        return None
    return host, int(port)


# --- the parser -----------------------------------------------------------------------------


class _Parser:
    """Validates one configuration document, accumulating problems."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.shard_names: list[str] = []
        # Whether every shard entry had a usable name; when not, references to
        # shards are not checked, so that one typo does not produce dozens of
        # "unknown shard" follow-up reports.
        self.shards_ok = True

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def parse(self, data: object) -> Config:
        if data is None:
            raise ConfigError([f"{TOP_LEVEL}: the configuration is empty"])
        top = _Section(self.problems, data, TOP_LEVEL, _TOP_KEYS)
        if not top.ok:
            raise ConfigError(self.problems)

        listen = top.address("listen")
        proxy_id = top.string("proxy_id")
        if isinstance(proxy_id, str) and proxy_id and not _PROXY_ID.fullmatch(proxy_id):
            self.problem(
                "proxy_id",
                "expected 1 to 16 characters from A-Z, a-z, 0-9, '_' and '-' "
                "(it is embedded in XA transaction ids)",
            )
        auth_plugin = top.choice(
            "auth_plugin",
            "mysql_native_password",
            AUTH_PLUGINS,
            "expected mysql_native_password or caching_sha2_password",
        )
        max_connections = top.integer("max_connections", 10000, minimum=1)
        login_timeout_s = top.number("login_timeout_s", 10, positive=True)
        max_prepared_statements = top.integer("max_prepared_statements", 4096, minimum=1)
        max_merge_memory_mb = top.integer("max_merge_memory_mb", 64, minimum=0)
        max_copy_rows = top.integer("max_copy_rows", 100_000, minimum=1)
        max_copy_mb = top.integer("max_copy_mb", 4, minimum=0, maximum=1024)
        wait_timeout_s = top.number("wait_timeout_s", 28800, positive=True)
        shutdown_timeout_s = top.number("shutdown_timeout_s", 10, minimum=0)
        metrics_listen = top.address("metrics_listen", None, nullable=True)
        server_version = top.string("server_version", None, nullable=True)
        workers = top.integer("workers", 1, minimum=1, maximum=64)
        tls = self.parse_tls(top.raw("tls", None))

        shards = self.parse_shards(top.items("shards", required=True))
        users = self.parse_users(top.items("users", required=True))
        schemas = self.parse_schemas(top.items("schemas"))
        self.check_user_schemas(top.items("users"), users, schemas)
        # `transactions:` left empty means "all defaults", like leaving it out.
        tx_data = top.raw("transactions", {})
        transactions = self.parse_transactions({} if tx_data is None else tx_data)

        if self.problems:
            raise ConfigError(self.problems)
        return Config(
            listen_host=listen[0],
            listen_port=listen[1],
            proxy_id=proxy_id,
            users=users,
            shards=shards,
            schemas=schemas,
            transactions=transactions,
            auth_plugin=auth_plugin,
            max_connections=max_connections,
            login_timeout_s=float(login_timeout_s),
            max_prepared_statements=max_prepared_statements,
            max_merge_memory_mb=max_merge_memory_mb,
            max_copy_rows=max_copy_rows,
            max_copy_mb=max_copy_mb,
            wait_timeout_s=float(wait_timeout_s),
            shutdown_timeout_s=float(shutdown_timeout_s),
            metrics_listen=metrics_listen,
            server_version=server_version,
            workers=workers,
            tls=tls,
        )

    def parse_tls(self, data: object) -> TlsConfig | None:
        """`tls: {cert, key}`: both PEM files must load as a server certificate chain."""
        if data is None:
            return None
        s = _Section(self.problems, data, "tls", _TLS_KEYS)
        cert, key = s.string("cert"), s.string("key")
        if not s.ok or cert is None or key is None:
            return None
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            self.problem("tls", f"cannot load the certificate {cert!r} with key {key!r}: {exc}")
            return None
        return TlsConfig(cert=cert, key=key)

    def parse_shard_tls(self, path: str, data: object) -> ShardTls | None:
        """`shards[].tls`: true (system CAs) or {ca, verify_identity}; the CA file must load."""
        if data is None or data is False:
            return None
        if data is True:
            return ShardTls()
        s = _Section(self.problems, data, path, _SHARD_TLS_KEYS)
        ca = s.string("ca", None, nullable=True)
        verify_identity = s.boolean("verify_identity", True)
        if ca is not None:
            try:
                ssl.create_default_context(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                self.problem(_key(path, "ca"), f"cannot load {ca!r}: {exc}")
        return ShardTls(ca=ca, verify_identity=verify_identity)

    # --- shards and users ---

    def parse_shards(self, items: list[Any]) -> dict[str, ShardConfig]:
        shards: dict[str, ShardConfig] = {}
        if not items:
            self.shards_ok = False
            if not any(p.startswith("shards:") for p in self.problems):
                self.problem("shards", "at least one shard is required")
        for i, item in enumerate(items):
            path = _index("shards", i)
            s = _Section(self.problems, item, path, _SHARD_KEYS)
            name = s.string("name")
            if name is None:
                self.shards_ok = False
            elif name in self.shard_names:
                self.problem(s.at("name"), f"duplicate shard name {name!r}")
            elif not _SHARD_NAME.fullmatch(name):
                self.problem(
                    s.at("name"),
                    "expected 1 to 20 characters from A-Z, a-z, 0-9, '_' and '-' "
                    "(it is embedded in XA transaction ids)",
                )
            else:
                self.shard_names.append(name)
            shard = ShardConfig(
                name=name,
                host=s.string("host"),
                port=s.integer("port", minimum=1, maximum=65535),
                user=s.string("user"),
                password=s.password("password"),
                pool_size=s.integer("pool_size", 32, minimum=1),
                connect_timeout_s=float(s.number("connect_timeout_s", 5, positive=True)),
                read_timeout_s=float(s.number("read_timeout_s", 120, minimum=0)),
                tls=self.parse_shard_tls(s.at("tls"), s.raw("tls", None)),
            )
            if name is not None and name not in shards:
                shards[name] = shard
        return shards

    def parse_users(self, items: list[Any]) -> dict[str, UserConfig]:
        users: dict[str, UserConfig] = {}
        if not items and not any(p.startswith("users:") for p in self.problems):
            self.problem("users", "at least one user is required")
        for i, item in enumerate(items):
            path = _index("users", i)
            s = _Section(self.problems, item, path, _USER_KEYS)
            user = s.string("user")
            password = s.password("password")
            password_hash = s.string("password_hash", None)
            if password_hash is not None:
                if s.has("password"):
                    self.problem(path, "give either password or password_hash, not both")
                elif not _NATIVE_HASH.fullmatch(password_hash):
                    self.problem(
                        s.at("password_hash"),
                        "expected the mysql_native_password hash: '*' and 40 hex digits, "
                        "as SELECT PASSWORD('...') prints it",
                    )
                    password_hash = None
                else:
                    password_hash = password_hash.upper()
            schemas = self.user_schemas(s)
            read_only = s.boolean("read_only", False)
            ddl = s.boolean("ddl", False)
            admin = s.boolean("admin", False)
            require_tls = s.boolean("require_tls", False)
            max_connections = s.integer("max_connections", None, minimum=1)
            if read_only and ddl:
                self.problem(path, "read_only and ddl contradict each other: a DDL changes data")
            if user is None:
                continue
            if user in users:
                self.problem(s.at("user"), f"duplicate user {user!r}")
            else:
                users[user] = UserConfig(
                    user=user,
                    password=password,
                    password_hash=password_hash,
                    schemas=schemas,
                    read_only=read_only,
                    ddl=ddl,
                    admin=admin,
                    require_tls=require_tls,
                    max_connections=max_connections,
                )
        return users

    def user_schemas(self, s: _Section) -> frozenset[str] | None:
        """`schemas:` of a user: a list of schema names; absent means every logical schema."""
        if not s.has("schemas"):
            return None
        names = s.items("schemas")
        found: list[str] = []
        for j, name in enumerate(names):
            at = _index(s.at("schemas"), j)
            if not isinstance(name, str) or not name:
                self.problem(at, "expected a schema name (a string)")
            elif name.lower() == BOOKKEEPING_DATABASE:
                self.problem(
                    at,
                    f"'{BOOKKEEPING_DATABASE}' holds the proxy's own bookkeeping tables; "
                    "no client may be granted it",
                )
            else:
                found.append(name.lower())
        return frozenset(found)

    def check_user_schemas(
        self, items: list[Any], users: dict[str, UserConfig], schemas: dict[str, SchemaConfig]
    ) -> None:
        """Each schema a user is granted is a logical schema or a system one."""
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("schemas"), list):
                continue
            for j, name in enumerate(item["schemas"]):
                if not isinstance(name, str) or not name:
                    continue
                lower = name.lower()
                if lower in schemas or lower in _GRANTABLE_SYSTEM_SCHEMAS:
                    continue
                if lower == BOOKKEEPING_DATABASE:
                    continue  # reported already
                self.problem(
                    _index(f"{_index('users', i)}.schemas", j),
                    f"unknown schema {name!r}: expected one of the schemas: section "
                    f"({', '.join(sorted(schemas)) or 'none'}) or {', '.join(_GRANTABLE_SYSTEM_SCHEMAS)}",
                )

    def check_shard(self, path: str, name: object) -> bool:
        """Report ``name`` when it is not a configured shard; True when it is usable."""
        if not isinstance(name, str):
            self.problem(path, "expected a shard name")
            return False
        if name not in self.shard_names:
            if self.shards_ok:
                self.problem(path, f"unknown shard {name!r}")
            return False
        return True

    # --- transactions ---

    def parse_transactions(self, data: object) -> TransactionsConfig:
        d = TransactionsConfig()
        s = _Section(self.problems, data, "transactions", _TRANSACTION_KEYS)
        return TransactionsConfig(
            mode=s.choice("mode", d.mode, TRANSACTION_MODES, "expected xa or at"),
            timeout_s=float(s.number("timeout_s", d.timeout_s, positive=True)),
            abandon_age_s=float(s.number("abandon_age_s", d.abandon_age_s, positive=True)),
            lock_retry_count=s.integer("lock_retry_count", d.lock_retry_count, minimum=0),
            lock_retry_interval_ms=s.integer(
                "lock_retry_interval_ms", d.lock_retry_interval_ms, minimum=0
            ),
            recover_interval_s=float(
                s.number("recover_interval_s", d.recover_interval_s, positive=True)
            ),
            cross_shard_lock_wait_s=float(
                s.number("cross_shard_lock_wait_s", d.cross_shard_lock_wait_s, minimum=0)
            ),
        )

    # --- schemas and tables ---

    def parse_schemas(self, items: list[Any]) -> dict[str, SchemaConfig]:
        schemas: dict[str, SchemaConfig] = {}
        for i, item in enumerate(items):
            path = _index("schemas", i)
            s = _Section(self.problems, item, path, _SCHEMA_KEYS)
            name = s.string("name", max_len=_MAX_NAME)
            default_shard = s.string("default_shard")
            if default_shard is not None:
                self.check_shard(s.at("default_shard"), default_shard)
            tables = self.parse_tables(s.at("tables"), s.items("tables"), default_shard)
            if name is None:
                continue
            if name.lower() in schemas:
                self.problem(s.at("name"), f"duplicate schema {name!r}")
                continue
            if name.lower() == BOOKKEEPING_DATABASE:
                self.problem(
                    s.at("name"),
                    f"'{BOOKKEEPING_DATABASE}' is the database of the proxy's own bookkeeping "
                    "tables; give the logical schema another name",
                )
                continue
            schemas[name.lower()] = SchemaConfig(
                name=name, default_shard=default_shard, tables=tables
            )
        return schemas

    def parse_tables(
        self, path: str, items: list[Any], default_shard: str | None
    ) -> dict[str, TableConfig]:
        tables: dict[str, TableConfig] = {}
        bindings: dict[str, TableConfig] = {}  # group -> first table of the group
        for i, item in enumerate(items):
            tpath = _index(path, i)
            table = self.parse_table(tpath, item, default_shard)
            if table is None or not isinstance(table.name, str):
                continue
            key = table.name.lower()
            if key in tables:
                self.problem(_key(tpath, "name"), f"duplicate table {table.name!r}")
                continue
            tables[key] = table
            if table.binding is not None:
                first = bindings.setdefault(table.binding, table)
                if first is not table:
                    self.check_binding(_key(tpath, "binding"), table, first)
        return tables

    def parse_algorithm(self, s: _Section) -> str | None:
        """The table's `algorithm`, lower-cased, or None (a problem noted) when it is not one."""
        algorithm = s.raw("algorithm")
        if algorithm is None:
            if s.has("algorithm"):
                self.problem(s.at("algorithm"), "required")
            return None
        if isinstance(algorithm, str) and algorithm.lower() in ALGORITHMS:
            return algorithm.lower()
        shown = repr(algorithm) if isinstance(algorithm, str) else str(algorithm)
        self.problem(
            s.at("algorithm"),
            f"unknown algorithm {shown} (expected one of: {', '.join(ALGORITHMS)})",
        )
        return None

    def parse_table(self, path: str, item: object, default_shard: str | None) -> TableConfig | None:
        s = _Section(self.problems, item, path, _TABLE_KEYS)
        if not s.ok:
            return None
        name = s.string("name", max_len=_MAX_NAME)
        broadcast = s.boolean("broadcast", False)
        auto_increment = s.string("auto_increment", None, nullable=True)
        binding = s.string("binding", None, nullable=True)
        explicit_shards = s.has("shards")
        shards = self.parse_table_shards(s)

        if broadcast:
            for key in ("shard_key", "algorithm", "ranges", "values", "binding"):
                if s.has(key):
                    self.problem(s.at(key), "not allowed on a broadcast table")
            return TableConfig(
                name=name,
                shard_key=None,
                algorithm=None,
                shards=shards,
                broadcast=True,
                auto_increment=auto_increment,
            )

        if not s.has("algorithm") and not s.has("shard_key"):
            # Listed but unsharded: it lives on the schema's default shard.
            for key in ("shards", "ranges", "values", "binding"):
                if s.has(key):
                    self.problem(
                        s.at(key),
                        "only allowed on sharded or broadcast tables "
                        "(an unsharded table lives on the schema's default_shard)",
                    )
            return TableConfig(
                name=name,
                shard_key=None,
                algorithm=None,
                shards=(default_shard,) if default_shard else (),
                broadcast=False,
                auto_increment=auto_increment,
            )

        shard_key = s.string("shard_key")
        algorithm = self.parse_algorithm(s)
        if s.has("ranges") and algorithm != "range" and algorithm is not None:
            self.problem(s.at("ranges"), "only allowed with algorithm: range")
        if s.has("values") and algorithm != "list" and algorithm is not None:
            self.problem(s.at("values"), "only allowed with algorithm: list")

        ranges: tuple[RangeBound, ...] = ()
        values: dict[str, tuple] = {}
        if algorithm == "range":
            ranges = self.parse_ranges(s)
            used = [b.shard for b in ranges if b.shard is not None]
            self.check_coverage(s, shards, used, explicit_shards, "ranges", "by any range")
        elif algorithm == "list":
            values = self.parse_values(s)
            self.check_coverage(s, shards, list(values), explicit_shards, "values", "in values")

        return TableConfig(
            name=name,
            shard_key=shard_key,
            algorithm=algorithm,
            shards=shards,
            broadcast=False,
            ranges=ranges,
            values=values,
            auto_increment=auto_increment,
            binding=binding,
            key_type=self.parse_key_type(s),
        )

    def parse_key_type(self, s: _Section) -> str | None:
        """The optional kind of the shard key column: what its comparisons convert to."""
        key_type = s.raw("key_type", None)
        if key_type is not None and key_type not in _KEY_TYPES:
            self.problem(s.at("key_type"), f"expected one of: {', '.join(_KEY_TYPES)}")
            return None
        return key_type

    def parse_table_shards(self, s: _Section) -> tuple[str, ...]:
        """The table's ``shards:``, or every configured shard when it is omitted."""
        if not s.has("shards"):
            return tuple(self.shard_names)
        items = s.items("shards")
        if not items and isinstance(s.data.get("shards"), list):
            self.problem(s.at("shards"), "must not be empty")
        shards: list[str] = []
        for i, name in enumerate(items):
            path = _index(s.at("shards"), i)
            if not self.check_shard(path, name):
                continue
            if name in shards:
                self.problem(path, f"duplicate shard {name!r}")
            else:
                shards.append(name)
        return tuple(shards)

    def check_coverage(
        self,
        s: _Section,
        shards: tuple[str, ...],
        used: list[str],
        explicit_shards: bool,
        what: str,
        covered_by: str,
    ) -> None:
        """Every shard of a range/list table must receive rows, and only those shards."""
        if not self.shards_ok or not used:  # a missing ranges/values is reported already
            return
        for shard in shards:
            if shard in used:
                continue
            if explicit_shards:
                path = _index(s.at("shards"), s.data["shards"].index(shard))
                self.problem(path, f"shard {shard!r} is not covered {covered_by}")
            else:
                self.problem(
                    s.at(what),
                    f"shard {shard!r} is not covered {covered_by} "
                    "(add it, or list the table's shards: explicitly)",
                )
        for shard in dict.fromkeys(used):
            if shard in self.shard_names and shard not in shards:
                self.problem(s.at(what), f"shard {shard!r} is not in this table's shards")

    def parse_ranges(self, s: _Section) -> tuple[RangeBound, ...]:
        path = s.at("ranges")
        items = s.items("ranges", required=True)
        if not items and isinstance(s.data.get("ranges"), list):
            self.problem(path, "must not be empty")
        bounds: list[RangeBound] = []
        previous: Any = None
        for i, item in enumerate(items):
            r = _Section(self.problems, item, _index(path, i), _RANGE_KEYS)
            if not r.ok:
                continue
            shard = r.raw("shard")
            if shard is not None and not self.check_shard(r.at("shard"), shard):
                shard = shard if isinstance(shard, str) else None
            last = i == len(items) - 1
            below = r.data.get("below")
            if below is None:
                if not last:
                    self.problem(r.at("below"), "required (only the last range may omit it)")
            elif not _is_scalar_value(below):
                self.problem(r.at("below"), "expected a number or a string")
                below = None
            elif previous is not None:
                if isinstance(below, str) != isinstance(previous, str):
                    self.problem(
                        r.at("below"),
                        "expected the same kind of value as the earlier bounds "
                        "(all numbers or all strings)",
                    )
                elif below <= previous:
                    self.problem(
                        r.at("below"),
                        f"bounds must be ascending ({below!r} is not above {previous!r})",
                    )
            if below is not None and (
                previous is None or isinstance(below, str) == isinstance(previous, str)
            ):
                previous = below
            bounds.append(RangeBound(shard=shard, below=below))
        return tuple(bounds)

    def parse_values(self, s: _Section) -> dict[str, tuple]:
        path = s.at("values")
        data = s.raw("values")
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(path, "expected a mapping of shard name to a list of values")
            return {}
        if not data:
            self.problem(path, "must not be empty")
        values: dict[str, tuple] = {}
        owner: dict[Any, str] = {}  # value -> shard it was first listed for
        for shard, items in data.items():
            vpath = _key(path, str(shard))
            if not self.check_shard(vpath, shard):
                continue
            if not isinstance(items, list):
                self.problem(vpath, "expected a list of values")
                continue
            if not items:
                self.problem(vpath, "must not be empty")
            kept: list[Any] = []
            for j, v in enumerate(items):
                ipath = _index(vpath, j)
                if not _is_scalar_value(v):
                    self.problem(
                        ipath,
                        "expected a string or a number "
                        "(quote words YAML reads as true/false/null, like NO or off)",
                    )
                    continue
                seen_for = owner.get(v)
                if seen_for == shard:
                    self.problem(ipath, f"value {v!r} is listed twice")
                elif seen_for is not None:
                    self.problem(ipath, f"value {v!r} is already listed for shard {seen_for!r}")
                else:
                    owner[v] = shard
                    kept.append(v)
            values[shard] = tuple(kept)
        return values

    def check_binding(self, path: str, table: TableConfig, first: TableConfig) -> None:
        """Bound tables are joined shard-locally, so they must place rows identically."""
        if not table.sharded or not first.sharded:
            return
        differences = []
        if table.algorithm != first.algorithm:
            differences.append(f"algorithm {table.algorithm} vs {first.algorithm}")
        if table.shards != first.shards:
            differences.append(f"shards {list(table.shards)} vs {list(first.shards)}")
        if table.ranges != first.ranges:
            differences.append("ranges")
        if table.values != first.values:
            differences.append("values")
        if differences:
            self.problem(
                path,
                f"table {table.name!r} must place rows like {first.name!r} in binding group "
                f"{table.binding!r} (differs in {', '.join(differences)})",
            )
