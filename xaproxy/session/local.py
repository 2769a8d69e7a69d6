"""Statements the proxy answers itself: SET, USE, SHOW ..., KILL, SELECTs of session values.

Functions over the session state (session/state.py), chosen by statement kind in
session/statements.py.
"""

from __future__ import annotations

import logging
import re
import time

from sqlglot import exp
from sqlglot.tokens import TokenType

from .. import errors
from ..analysis import Kind, Statement, analyze
from ..analysis.account import ACCOUNT_FUNCTIONS, account_calls
from ..analysis.clauses import (
    Assignment,
    database_target,
    is_set_transaction,
    kill_target,
    reads_user_variables,
    set_assignments,
    show_options,
    unquoted,
    use_target,
)
from ..analysis.spans import select_item_texts
from ..analysis.statement import LOCAL_FUNCTIONS
from ..authz.rules import MISREAD_MODES, check_database_access, misread_mode
from ..execution import executor
from ..protocol import wire
from ..protocol.constants import (
    FieldType,
    Status,
)
from ..routing.plan import on_shard
from ..routing.planner import SYSTEM_SCHEMAS
from ..shards.cancel import cancel_session_queries
from . import reply, tracking
from .admin import run_admin_command
from .charsets import BACKEND_COLLATION, UNREADABLE_CLIENT_CHARSETS, refuse_client_charset
from .connection_state import USER_VARIABLES, place_user_variables
from .local_columns import describe, variable_column
from .state import SessionState

log = logging.getLogger(__name__)

_TRUE_WORDS = {"1": True, "on": True, "true": True, "0": False, "off": False, "false": False}
_SESSION_SCOPES = ("", "session", "local")


async def set_statement(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    statement = analyze(sql)
    if statement.set_statement is not None:
        raise errors.not_supported("SET STATEMENT ... FOR SET", "run the SET on its own")
    assignments = set_assignments(sql)
    tracking.refuse_untrackable(s, assignments)
    ours = [a for a in assignments if a.name == "autocommit" and a.scope in _SESSION_SCOPES]
    if ours:
        # autocommit is the session's; the other variables of the same SET (a JDBC
        # driver's connect) are set as any SET, before autocommit changes
        value = [_autocommit_value(a) for a in ours][-1]
        others = [a for a in assignments if a not in ours]
        warnings = 0
        if others:  # checked (and refused) as any SET before the probe may run it
            warnings, _ = await _other_settings(
                s, "SET " + ", ".join(a.text for a in others), others, statement
            )
        state = await tracking.probe(s, sql, sets_autocommit=True)
        await _set_autocommit(s, value)
        reply.ok(s, more, warnings=warnings, state=state)
        return
    warnings, state = await _other_settings(s, sql, assignments, statement)
    reply.ok(s, more, warnings=warnings, state=state)


def _autocommit_value(assignment: Assignment) -> bool:
    written = unquoted(assignment.value)
    value = _TRUE_WORDS.get(written.lower())
    if value is None:
        raise errors.ProxyError(
            1231, "42000", f"Variable 'autocommit' can't be set to the value of '{written}'"
        )
    return value


async def _set_autocommit(s: SessionState, value: bool) -> None:
    if value and not s.autocommit:
        await s.shards.check_timeout()  # it would commit: report a timeout
    if value and not s.autocommit and s.txn is not None:
        await s.shards.end(commit=True)
    if value:
        s.pending_savepoints = []  # autocommit on commits: savepoints are gone
    s.autocommit = value


async def _other_settings(
    s: SessionState, sql: str, assignments: list[Assignment], statement: Statement
) -> tuple[int, bytes]:
    """Every SET but autocommit's; returns its warning count and the session-state
    changes it reports (session/tracking.py)."""
    only = assignments[0] if len(assignments) == 1 else None
    mode = (
        unquoted(only.value).lower()
        if only is not None
        and only.name == "xaproxy_transaction_mode"
        and only.scope in ("", "session")
        else None
    )
    if mode in ("at", "xa"):
        if s.txn is not None:
            raise errors.ProxyError(
                1568,
                "25001",
                "Transaction characteristics can't be changed while a transaction is in progress: "
                "set xaproxy_transaction_mode before BEGIN",
            )
        s.txn_mode = mode
        return 0, b""
    if any(a.scope in ("global", "persist") for a in assignments):
        raise errors.ProxyError(
            1227,
            "42000",
            "xaproxy does not pass SET GLOBAL to shards; change server settings on each shard",
        )
    if only is not None and only.scope == "names" and unquoted(only.value).lower() == "utf8mb4":
        state = await tracking.probe(s, sql, sets_autocommit=False)
        s.charset_setting = None
        s.client_charset = "utf8mb4"
        s.literal_charset = s.function_charset = (BACKEND_COLLATION, 4)
        rebuild_settings(s, list(plain_settings(s)))
        return 0, state
    if is_set_transaction(sql):
        s.next_txn_characteristics = sql.strip().rstrip(";")
        return 0, b""
    _refuse_placed_tables(s, statement)
    if "@" in statement.code and statement.user_variables:
        return await _set_with_user_variables(s, sql, assignments, statement)
    # Everything else: let a shard validate it, then remember it for replay.
    shard = s.ctx.planner.default_shard(s.database)
    backend, borrowed = await s.shards.connection_outside_writes(shard)
    try:
        before = await _sql_mode_before(backend, assignments)
        ok = await backend.execute_ok(sql)
        s.no_backslash_escapes = bool(ok.status & Status.NO_BACKSLASH_ESCAPES)
        s.warnings = []
        if ok.warnings:  # read before anything else runs on the connection
            await executor.capture_warnings(s, backend)
        await _check_sql_mode(backend, before)
        timeouts = [a for a in assignments if _is_timeout(a)]
        if timeouts:
            await _take_timeouts(s, backend, {a.name for a in timeouts})
        if any(_sets_client_charset(a) for a in assignments):
            await _read_back_charsets(s, backend)
        await tracking.read_schema_tracking(s, backend, assignments)
        if not timeouts:
            _remember(s, sql.strip().rstrip(";"), assignments)
        elif len(timeouts) < len(assignments):
            rest = [a for a in assignments if not _is_timeout(a)]
            _remember(s, "SET " + ", ".join(a.text for a in rest), rest)
        backend.settings = s.settings
    finally:
        if borrowed:
            s.shards.release(backend)
    return ok.warnings, wire.ok_state(ok)


def _is_timeout(assignment: Assignment) -> bool:
    return assignment.name in ("wait_timeout", "interactive_timeout") and (
        assignment.scope in _SESSION_SCOPES
    )


_TIMEOUTS = "SELECT @@session.wait_timeout, @@session.interactive_timeout"
_GLOBAL_TIMEOUTS = (
    "SET SESSION wait_timeout = @@global.wait_timeout, "
    "interactive_timeout = @@global.interactive_timeout"
)


async def _take_timeouts(s: SessionState, backend, assigned: set[str]) -> None:
    """The session's wait_timeout is the proxy's to keep: the shard validated the SET
    (range, warnings), the session takes the values, and the shard connection gets the
    server's own back, so a pooled connection is never closed by the shard for a
    client's short timeout."""
    wait, interactive = (await backend.query_rows(_TIMEOUTS))[0]
    if "wait_timeout" in assigned:
        s.wait_timeout_s = float(wait or s.ctx.config.wait_timeout_s)
    if "interactive_timeout" in assigned and interactive is not None:
        s.interactive_timeout = int(interactive)
    await backend.execute_ok(_GLOBAL_TIMEOUTS)


async def _sql_mode_before(backend, assignments: list[Assignment]) -> bytes | None:
    """The connection's sql_mode before a SET that assigns it from an expression (None for
    other SETs: a string literal was checked by the allowlist)."""
    if not any(
        a.name == "sql_mode" and a.scope in _SESSION_SCOPES and not _one_string(a.value)
        for a in assignments
    ):
        return None
    rows = await backend.query_rows("SELECT @@session.sql_mode")
    return rows[0][0] or b""


def _one_string(value: str) -> bool:
    tokens = analyze(value).tokens
    return len(tokens) == 1 and tokens[0].token_type == TokenType.STRING


async def _check_sql_mode(backend, before: bytes | None) -> None:
    """A sql_mode set from an expression (`CONCAT(@@sql_mode, ...)`, `@saved`) is read back:
    in a mode the proxy would misread statements in (ANSI_QUOTES, PIPES_AS_CONCAT, ...),
    the connection gets its sql_mode back and the SET is refused."""
    if before is None:
        return
    rows = await backend.query_rows("SELECT @@session.sql_mode")
    mode = misread_mode((rows[0][0] or b"").decode())
    if mode is not None:
        await backend.execute_ok(f"SET SESSION sql_mode = '{before.decode()}'")
        raise errors.ProxyError(
            1227, "42000", f"Access denied: xaproxy refuses sql_mode {mode}: {MISREAD_MODES[mode]}"
        )


def _remember(s: SessionState, key: str, assignments: list[Assignment]) -> None:
    """Records a SET of session variables for replay on the session's other connections."""
    settings = [x for x in plain_settings(s) if x != key]
    if assignments and assignments[0].scope in ("names", "charset"):
        s.charset_setting = key
    else:
        settings.append(key)
    rebuild_settings(s, settings)


def _refuse_placed_tables(s: SessionState, statement: Statement) -> None:
    """A SET that reads a sharded or broadcast table (a subquery) would read one shard."""
    schema = s.ctx.config.schema(s.database) if s.database else None
    if schema is None or not statement.tables:
        return
    for table in schema.tables.values():
        if (table.sharded or table.broadcast) and table.name.lower() in statement.names:
            raise errors.not_supported(
                f"SET with a subquery on sharded or broadcast table '{schema.name}.{table.name}'",
                "use SELECT ... INTO @variable, which the proxy routes",
            )


async def _set_with_user_variables(
    s: SessionState, sql: str, assignments: list[Assignment], statement: Statement
) -> tuple[int, bytes]:
    """A SET that assigns or reads user variables runs on the connection they live on,
    which the session is pinned to; the session variables it sets are recorded as
    their resulting values (a value read from a user variable cannot be replayed)."""
    default = s.ctx.planner.default_shard(s.database)
    route, _ = place_user_variables(s, statement, on_shard(default, "user variables"))
    shard = route.shards[0]
    backend = await s.shards.pinned_connection(shard, USER_VARIABLES)
    before = await _sql_mode_before(backend, assignments)
    ok = await backend.execute_ok(sql)
    s.no_backslash_escapes = bool(ok.status & Status.NO_BACKSLASH_ESCAPES)
    await _check_sql_mode(backend, before)
    if any(_sets_client_charset(a) for a in assignments):  # mariadb-dump's restore of it
        await _read_back_charsets(s, backend)
    await tracking.read_schema_tracking(s, backend, assignments)
    for assignment in assignments:
        if assignment.scope == "user":
            continue
        if assignment.scope in ("names", "charset"):
            if reads_user_variables(assignment):
                raise errors.not_supported(  # cannot happen in valid SQL; never replay it
                    "SET NAMES from a user variable", "name the character set"
                )
            _remember(s, f"SET {assignment.text}", [assignment])
        elif reads_user_variables(assignment):
            rows = await backend.query_rows(f"SELECT @@session.`{assignment.name}`")
            _remember(s, f"SET @@session.`{assignment.name}` = {_literal(rows[0][0])}", [])
        else:
            _remember(s, f"SET {assignment.text}", [assignment])
    backend.settings = s.settings
    return ok.warnings, wire.ok_state(ok)


def _literal(value: bytes | None) -> str:
    """A variable's value, read back as text, as the literal that sets it again."""
    if value is None:
        return "NULL"
    text = value.decode("utf-8", "surrogateescape")
    if text.lstrip("-").replace(".", "", 1).isdigit():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _sets_client_charset(assignment: Assignment) -> bool:
    """SET NAMES, SET CHARACTER SET and character_set_client itself change how the
    server reads the bytes of a statement; the connection's ones how it describes strings."""
    return assignment.scope in ("names", "charset") or assignment.name in (
        "character_set_client",
        "character_set_connection",
        "collation_connection",
    )


# What the shard describes a one-character literal and DATABASE() in: the character set
# and collation a client sees for them (character_set_results, or when that is NULL the
# literal's connection charset and the system charset) is the server's own answer.
_CHARSET_PROBE = "SELECT @@character_set_client, 'a', DATABASE()"


async def _read_back_charsets(s: SessionState, backend) -> None:
    """What a SET of character sets left on the shard: statements' parameters are escaped
    for character_set_client, the proxy's own string answers described as the shard does."""
    coldefs, rows = await backend.query_table(_CHARSET_PROBE)
    charset = (rows[0][0] or b"utf8mb4").decode().lower()
    if charset in UNREADABLE_CLIENT_CHARSETS:
        backend.usable = False  # it now reads statements in that set: not reused
        raise refuse_client_charset(charset)
    s.client_charset = charset
    s.literal_charset = wire.column_charset_and_length(coldefs[1])
    collation, length = wire.column_charset_and_length(coldefs[2])
    s.function_charset = (collation, length // 64)


# A read_only user's connections refuse writes themselves: a stored function, a view or
# a trigger that writes fails on the shard (1792), whatever the proxy read in the text.
READ_ONLY_SETTING = "SET SESSION TRANSACTION READ ONLY"


def plain_settings(s: SessionState) -> tuple[str, ...]:
    settings = s.settings
    if settings and settings[0] == READ_ONLY_SETTING:
        settings = settings[1:]
    if settings and settings[0] == _names_entry_of(settings):
        return settings[1:]
    return settings


def _names_entry_of(settings: tuple[str, ...]) -> str | None:
    head = settings[0] if settings else None
    if head is not None and any(a.scope in ("names", "charset") for a in set_assignments(head)):
        return head
    return None


def rebuild_settings(s: SessionState, plain: list[str]) -> None:
    head = [READ_ONLY_SETTING] if s.grants.read_only else []
    if s.charset_setting:
        head.append(s.charset_setting)
    s.settings = tuple(head + plain)


async def use_statement(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    database = use_target(sql)
    if database is None:
        raise errors.parse_error("expected USE <database>")
    await use(s, database)
    reply.ok(s, more, state=tracking.schema_change(s))


async def use(s: SessionState, database: str) -> None:
    check_database(s, database)
    await check_database_exists(s, database)
    s.database = database


async def check_database_exists(s: SessionState, database: str) -> None:
    """A schema of the shard map that its default shard does not have is unknown (1049), as
    MariaDB answers USE of a missing database. The check switches a connection of that
    shard to the database, which the session's next statement there would do anyway."""
    if database.lower() in SYSTEM_SCHEMAS:
        return
    shard = s.ctx.planner.default_shard(database)
    try:
        async with s.shards.outside_writes(shard) as backend:
            if backend.database != database:
                await backend.init_db(database)
    except errors.ProxyError as exc:
        if exc.code in _NO_SUCH_DATABASE:
            raise
        # the shard is down: the database may well be there, and the session may use the
        # schema's tables on other shards meanwhile; its statements there get the clear error
        log.info("session %d: USE %s not checked, shard %s: %s", s.id, database, shard, exc)


_NO_SUCH_DATABASE = frozenset({1049, 1044})  # unknown database, access denied to it


def check_database(s: SessionState, database: str) -> None:
    if database.lower() not in SYSTEM_SCHEMAS and s.ctx.config.schema(database) is None:
        raise errors.unknown_database(database)
    check_database_access(s.grants, database)


async def show_databases(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    """The granted schemas of the shard map that exist (on their default shard, where USE
    looks for them), and information_schema. It reads a table, so, as on MariaDB, it
    clears the last statement's warnings."""
    s.warnings = []
    granted = [x for x in s.ctx.config.schemas.values() if x.name.lower() in s.grants.schemas]
    existing: set[str] = set()
    for shard in sorted({x.default_shard for x in granted}):
        async with s.shards.outside_writes(shard) as backend:
            rows = await backend.query_rows("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        existing.update(f"{shard}\0{(r[0] or b'').decode()}" for r in rows)
    names = sorted(
        [
            "information_schema",
            *(x.name for x in granted if f"{x.default_shard}\0{x.name}" in existing),
        ]
    )
    like = show_options(sql).like
    if like is not None:
        names = [n for n in names if _like(like, n)]
    reply.rows(s, [wire.ColumnDef("Database", length=256)], [[n] for n in names], more, binary)


async def show_session_status(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    """SHOW [SESSION] STATUS as a shard has it, but the TLS lines are the client connection's:
    the shard's own connection to the proxy is not the one the client asks about."""
    shard = s.ctx.planner.default_shard(s.database)
    backend, borrowed = await s.shards.connection_outside_writes(shard)
    try:
        rows = await backend.query_rows(sql)
    finally:
        if borrowed:
            s.shards.release(backend)
    cipher, version = s.tls or ("", "")
    ours = {b"Ssl_cipher": cipher.encode(), b"Ssl_version": version.encode()}
    values = [[name, ours.get(name, value)] for name, value in rows]
    columns = [wire.ColumnDef("Variable_name", length=256), wire.ColumnDef("Value", length=8192)]
    reply.rows(s, columns, values, more, binary)


async def show_tables(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    """The logical tables: what the default shard has plus the sharded ones."""
    options = show_options(sql)
    database = options.database or s.database
    if database is None:
        raise errors.no_database_selected()
    schema = s.ctx.config.schema(database)
    if schema is None:
        await executor.run(
            s,
            s.shards,
            sql,
            on_shard(s.ctx.planner.first_shard, "schema not in the shard map"),
            more=more,
            binary=binary,
        )
        return
    full = options.full
    s.warnings = []  # it reads a table: MariaDB clears the last statement's warnings
    placed = [t for t in schema.tables.values() if t.sharded or t.broadcast]
    listings = {}
    for shard in dict.fromkeys([schema.default_shard, *(t.shards[0] for t in placed)]):
        listings[shard] = await _tables_on(s, shard, schema.name)
    # the default shard's tables, but a placed table only where it lives (its first shard)
    placed_names = {t.name.lower() for t in placed}
    tables = {
        n: kind for n, kind in listings[schema.default_shard].items()
        if n.lower() not in placed_names
    }  # fmt: skip
    for table in placed:
        found = {n.lower(): (n, kind) for n, kind in listings[table.shards[0]].items()}
        if table.name.lower() in found:
            name, kind = found[table.name.lower()]
            tables[name] = kind
    like = options.like
    names = sorted(n for n in tables if like is None or _like(like, n))
    columns = [wire.ColumnDef(f"Tables_in_{schema.name}", length=256)]
    if full:
        columns.append(wire.ColumnDef("Table_type", length=64))
        out_rows = [[n, tables[n]] for n in names]
    else:
        out_rows = [[n] for n in names]
    reply.rows(s, columns, out_rows, more, binary)


async def _tables_on(s: SessionState, shard: str, database: str) -> dict[str, str]:
    """{table: Table_type} of `database` on `shard` (none when the shard lacks it)."""
    quoted = database.replace("`", "``")
    try:
        async with s.shards.outside_writes(shard) as backend:
            rows = await backend.query_rows(f"SHOW FULL TABLES FROM `{quoted}`")
    except errors.BackendError as exc:
        if exc.code != 1049:
            raise
        rows = []
    return {(r[0] or b"").decode(): (r[1] or b"BASE TABLE").decode() for r in rows}


async def show_warnings(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    rows = [list(w) for w in s.warnings]
    if analyze(sql).kind is Kind.SHOW_ERRORS:
        rows = [r for r in rows if r[0] == "Error"]
    limit = show_options(sql).limit
    if limit is not None:
        first, count = limit
        rows = rows[first : first + count] if count is not None else rows[:first]
    columns = [
        wire.ColumnDef("Level", length=28),
        wire.ColumnDef("Code", type=FieldType.LONG, charset=63, length=4, flags=0x21),
        wire.ColumnDef("Message", length=2048),
    ]
    reply.rows(s, columns, rows, more, binary)


async def show_warning_count(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    errors_only = analyze(sql).kind is Kind.SHOW_ERROR_COUNT
    count = sum(1 for w in s.warnings if not errors_only or w[0] == "Error")
    name = "@@session.error_count" if errors_only else "@@session.warning_count"
    reply.rows(s, [variable_column(name, "warning_count")], [[count]], more, binary)


async def local_select(s: SessionState, sql: str, more: bool, binary: bool) -> bool:
    """Answers SELECTs of values the proxy owns (autocommit, LAST_INSERT_ID(), USER(), ...)."""
    parsed = s.ctx.parse_cache.get(sql)
    ast = parsed.ast

    if (
        not isinstance(ast, exp.Select)
        or ast.args.get("from_")
        or ast.args.get("where")
        or ast.args.get("into")
    ):
        return False
    values = []
    for item in ast.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        found, value = _local_value(s, node)
        if not found:
            return False
        values.append(value)
    texts = select_item_texts(sql)
    names = []
    for index, item in enumerate(ast.expressions):
        if isinstance(item, exp.Alias):
            names.append(item.alias)
        elif isinstance(item, exp.Literal) and item.is_string:
            names.append(item.this)  # MariaDB names a string literal by its value
        else:
            names.append(texts[index] if index < len(texts) else item.sql("mysql"))
    columns = []
    for name, item in zip(names, ast.expressions, strict=True):
        node = item.this if isinstance(item, exp.Alias) else item
        column = describe(name, node, s.literal_charset, s.function_charset)
        if column is None:
            raise errors.not_supported(
                f"{name} beside values the proxy answers itself (LAST_INSERT_ID(), "
                "@@autocommit, USER() ...)",
                "select the value in a statement of its own",
            )
        columns.append(column)
    limit = ast.args.get("limit")
    rows = [values]
    if limit is not None and limit.expression is not None and limit.expression.name == "0":
        rows = []
    reply.rows(s, columns, rows, more, binary)
    return True


def with_account_values(s: SessionState, statement: Statement) -> str | None:
    """The statement's text with each USER()/CURRENT_USER()/SESSION_USER()/SYSTEM_USER()
    replaced by the proxy user's value (a shard would answer its own account), or None
    when it calls none. Refused (1235) where the replacement would not be exact: where
    the call's text names a result column, in RETURNING.

    The value is written as an expression of the same character set, collation and
    coercibility as the function's (utf8mb3_general_ci, SYSCONST), so comparisons and
    stored values are what MariaDB gives: CONCAT(LEFT(VERSION(), 0), _utf8mb3 X'...').
    """
    calls = account_calls(list(statement.tokens))
    if calls is not None and not calls:
        return None
    kind = statement.kind
    words = statement.words
    result_set = kind is Kind.SELECT and not _selects_into(statement)
    if (
        calls is None
        or (result_set and any(call.visible for call in calls))
        or (kind is not Kind.SELECT and "RETURNING" in words)
    ):
        raise errors.not_supported(
            "USER()/CURRENT_USER()/SESSION_USER()/SYSTEM_USER() in a select list or RETURNING "
            "of a statement the proxy sends to a shard (the shard would answer its own account)",
            "select the function alone (SELECT USER()), which the proxy answers, or use it in "
            "WHERE, SET or VALUES",
        )
    text = statement.effective
    pieces = []
    at = 0
    for call in calls:
        pieces.append(text[at : call.start])
        pieces.append(_account_expression(account_value(s, call.name)))
        at = call.end
    pieces.append(text[at:])
    return "".join(pieces)


def account_value(s: SessionState, function: str) -> str:
    """What USER() & co. answer for this session: `user@client-host`, and for
    CURRENT_USER() the account matched, `user@%` (proxy users are any-host)."""
    if function == "CURRENT_USER":
        return f"{s.user}@%"
    return f"{s.user}@{s.peer_host}"


def _account_expression(value: str) -> str:
    return f"CONCAT(LEFT(VERSION(), 0), _utf8mb3 X'{value.encode('utf-8').hex()}')"


def _selects_into(statement: Statement) -> bool:
    """`SELECT ... INTO @v` (or a local variable): no result set, no column names."""
    tokens = statement.tokens
    depth = 0
    for index, token in enumerate(tokens):
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and statement.words[index] == "INTO":
            return True
    return False


def _local_value(s: SessionState, node) -> tuple[bool, object]:

    if isinstance(node, exp.Literal):
        return True, node.this if node.is_string else _number(node.this)
    if isinstance(node, exp.Null):
        return True, None
    if isinstance(node, (exp.CurrentUser, exp.SessionUser)) or (
        isinstance(node, exp.Anonymous)
        and str(node.this).upper() in ACCOUNT_FUNCTIONS
        and not node.expressions
    ):
        return True, account_value(
            s, "CURRENT_USER" if isinstance(node, exp.CurrentUser) else "USER"
        )
    if isinstance(node, exp.CurrentSchema):
        # a pooled shard connection may still have another session's database
        return True, s.database
    if isinstance(node, exp.Anonymous) and str(node.this).upper() in LOCAL_FUNCTIONS:
        name = str(node.this).upper()
        if node.expressions:
            return False, None
        if name == "ROW_COUNT":
            return True, s.row_count
        if name == "FOUND_ROWS":
            return True, s.found_rows_count
        return True, s.last_insert_id if name == "LAST_INSERT_ID" else s.id
    if isinstance(node, exp.SessionParameter):
        name = node.name.lower()
        kind = (node.args.get("kind") or "").lower()
        if kind == "global":
            return False, None
        if name == "autocommit":
            return True, int(s.autocommit)
        if name in ("last_insert_id", "identity"):
            return True, s.last_insert_id
        if name == "warning_count":
            return True, len(s.warnings)
        if name == "error_count":
            return True, sum(1 for w in s.warnings if w[0] == "Error")
        if name == "in_transaction":
            return True, int(s.txn is not None)
        if name == "wait_timeout":
            return True, int(s.wait_timeout_s)
        if name == "interactive_timeout" and s.interactive_timeout is not None:
            return True, s.interactive_timeout
    return False, None


async def xa_statement(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    raise errors.ProxyError(
        1399,
        "XAE07",
        "xaproxy manages XA itself: XA statements from clients are refused. "
        "Use BEGIN ... COMMIT; the proxy makes cross-shard transactions atomic",
    )


async def kill_statement(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    target = kill_target(sql)
    if target is None:
        raise errors.parse_error("expected KILL [CONNECTION | QUERY] <id>")
    await kill(s, *target)
    reply.ok(s, more)


async def kill(s: SessionState, session_id: int, query_only: bool) -> None:
    """KILL QUERY interrupts what the session runs on every shard (its client gets 1317);
    KILL [CONNECTION] does that too and closes the session's client connection, which
    rolls back its transaction."""
    target = s.ctx.sessions.get(session_id)
    if target is None:
        raise errors.ProxyError(1094, "HY000", f"Unknown thread id: {session_id}")
    if target.user != s.user and not s.grants.admin:
        # MariaDB's answer without the PROCESS/CONNECTION ADMIN privilege
        raise errors.ProxyError(1095, "HY000", f"You are not owner of thread {session_id}")
    if target is s:
        return  # a session's own statement is this KILL itself
    await cancel_session_queries(session_id, s.ctx.config.shards)
    if not query_only:
        target.out.close()


async def show_processlist(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    """The proxy's own sessions (never the shard connections): one's own, or all for admins."""
    full = analyze(sql).words[1:2] == ("FULL",)
    now = time.monotonic()
    rows = []
    for other in list(s.ctx.sessions.values()):
        if not other.user:
            continue  # still logging in
        own = other.user == s.user
        if not own and not s.grants.admin:
            continue
        busy = other.busy or other is s
        info = None
        if other is s:
            info = sql
        elif other.info is not None:
            info = other.decode(other.info[1:])
        if info is not None and not full:
            info = info[:100]
        rows.append(
            [
                other.id,
                other.user,
                other.peer_host,
                other.database,
                "Query" if busy else "Sleep",
                int(now - ((other.command_started if busy else other.idle_since) or other.started)),
                "executing" if busy else "",
                info if busy else None,
                0.0,
            ]
        )
    columns = [
        wire.ColumnDef("Id", type=FieldType.LONGLONG, charset=63, length=21, flags=0x21),
        wire.ColumnDef("User", length=128),
        wire.ColumnDef("Host", length=64),
        wire.ColumnDef("db", length=64),
        wire.ColumnDef("Command", length=16),
        wire.ColumnDef("Time", type=FieldType.LONG, charset=63, length=7, flags=0x21),
        wire.ColumnDef("State", length=30),
        wire.ColumnDef("Info", length=100 if not full else 65535),
        wire.ColumnDef("Progress", type=FieldType.NEWDECIMAL, charset=63, length=7, decimals=3),
    ]
    reply.rows(s, columns, rows, more, binary)


async def database_statement(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    """CREATE/DROP DATABASE of a logical schema runs on every shard."""
    target = database_target(sql)
    if target is None:
        raise errors.parse_error("expected CREATE|DROP DATABASE <name>")
    verb, name = target
    if s.ctx.config.schema(name) is None:
        raise errors.not_supported(
            f"{verb} DATABASE of '{name}', which is not a schema in the shard map",
            "add it under `schemas:` in the proxy config first",
        )
    if s.txn is not None:
        await s.shards.end(commit=True)
    affected = 0
    warnings = 0  # MariaDB keeps the last statement's warnings when this one has none
    for shard in s.ctx.config.shards:
        backend = await s.shards.plain_connection(shard)
        try:
            ok = await backend.execute_ok(sql)
            affected = max(affected, ok.affected_rows)
            if ok.warnings and not warnings:
                # each shard notes the same ("database exists"): one server's are one shard's
                warnings = ok.warnings
                s.warnings = []
                await executor.capture_warnings(s, backend)
            if backend.database and backend.database.lower() == name.lower():
                backend.database = None
        finally:
            s.shards.release(backend)
    if verb.upper() == "DROP" and s.database and s.database.lower() == name.lower():
        s.database = None  # MariaDB: the session has no database once its own is dropped
    reply.ok(s, more, affected, warnings)


async def proxy_command(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    columns, rows = await run_admin_command(s, sql)
    reply.rows(s, columns, rows, more, binary)


async def empty(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    raise errors.ProxyError(1065, "42000", "Query was empty")


async def comment_only(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    reply.ok(s, more)  # MariaDB answers a statement of only comments with OK


def _number(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return text


def _like(pattern: str, name: str) -> bool:
    # `\_` and `\%` match the character itself, as in MySQL's LIKE
    regex = "".join(
        re.escape(part[1])
        if part.startswith("\\") and len(part) == 2
        else ".*"
        if part == "%"
        else "."
        if part == "_"
        else re.escape(part)
        for part in re.findall(r"\\.|.", pattern, re.S)
    )
    return re.fullmatch(regex, name, re.I | re.S) is not None
