"""The statement allowlist: what each statement needs, and whether a user has it.

`needs_of(statement)` reads, once per statement text, what a statement needs from
its analysis alone: a refusal that holds for every user (account management,
server administration, file access, XA, anything not understood), the access it
takes (none, read, write, DDL, operator) and the databases it names. `authorize`
then checks that against one user's grants and the session's current database.

Allowed: SELECT/INSERT/UPDATE/DELETE/REPLACE/CALL on the user's schemas, DDL there
for users with `ddl`, transaction control, SET of session variables, the SHOW forms
an application or ORM reads, USE of a granted schema, PREPARE/EXECUTE IMMEDIATE of a
string that is itself allowed, stored programs whose every statement is allowed.
Everything else is refused: an allowlist, never a blocklist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.tokens import Token, TokenType

from .. import errors
from ..analysis import Kind, Statement, analyze
from ..analysis.account import account_calls
from ..analysis.classify import skip_definer
from ..analysis.clauses import database_target, is_set_transaction, set_assignments, use_target
from ..analysis.tokens import dotted_name, word
from ..config.model import BOOKKEEPING_DATABASE
from . import information_schema
from .grants import UserGrants

NONE, READ, WRITE, DDL, ADMIN = "none", "read", "write", "ddl", "admin"

INFORMATION_SCHEMA = "information_schema"
# The server's own databases: never a client's unless its `schemas` grant names them.
SERVER_DATABASES = frozenset({"mysql", "sys", "performance_schema"})

# Functions that read the server's file system (MariaDB needs FILE for them).
_FILE_FUNCTIONS = frozenset({"LOAD_FILE"})
# Session variables only SUPER may set on MariaDB: replication, binary log, identity.
_PRIVILEGED_VARIABLES = frozenset(
    {
        "sql_log_bin",
        "sql_log_off",
        "server_id",
        "skip_replication",
        "pseudo_thread_id",
        "pseudo_slave_mode",
        "debug",
        "debug_dbug",
        "debug_sync",
        "insert_id",  # binary-log replay
        "rand_seed1",
        "rand_seed2",
    }
)
_PRIVILEGED_PREFIXES = ("gtid_", "binlog_", "wsrep_", "slave_", "replicate_", "debug_")
_ENGINES = frozenset({"INNODB", "ARIA", "MYISAM", "MEMORY", "HEAP"})

# Every word MariaDB can begin a statement with that a stored program body may not
# hold (the others, SELECT/INSERT/UPDATE/DELETE/REPLACE/SET/CALL/DO/control flow,
# are checked as the top-level statements are: tables, functions, variables).
_NOT_IN_PROGRAMS = frozenset(
    {
        "ALTER",
        "ANALYZE",
        "BACKUP",
        "BINLOG",
        "CACHE",
        "CHANGE",
        "CHECKSUM",
        "CREATE",
        "DEALLOCATE",
        "DROP",
        "EXECUTE",
        "FLUSH",
        "GRANT",
        "HELP",
        "INSTALL",
        "KILL",
        "LOAD",
        "OPTIMIZE",
        "PREPARE",
        "PURGE",
        "RENAME",
        "REPAIR",
        "RESET",
        "REVOKE",
        "SHOW",
        "SHUTDOWN",
        "STOP",
        "TRUNCATE",
        "UNINSTALL",
        "UNLOCK",
        "USE",
        "XA",
        "GLOBAL",
        "PERSIST",
        "SONAME",
        "OUTFILE",
        "DUMPFILE",
    }
)
# Words a MariaDB statement can begin with: anything else is a syntax error there too.
_STATEMENT_HEADS = _NOT_IN_PROGRAMS | frozenset(
    {
        "BEGIN", "CALL", "CHECK", "CLOSE", "COMMIT", "DECLARE", "DELETE", "DESC", "DESCRIBE",
        "DO", "EXPLAIN", "FETCH", "GET", "HANDLER", "IF", "CASE", "INSERT", "ITERATE", "LEAVE",
        "LOCK", "LOOP", "OPEN", "RELEASE", "REPEAT", "REPLACE", "RESIGNAL", "RETURN",
        "ROLLBACK", "SAVEPOINT", "SELECT", "SET", "SIGNAL", "START", "TABLE", "UPDATE",
        "VALUES", "WHILE", "WITH", "(", "XAPROXY",
    }
)  # fmt: skip
_ROUTINE_OBJECTS = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"})

# SHOW forms an application reads (after FULL/EXTENDED/GLOBAL/SESSION/LOCAL).
_SHOW_FORMS = frozenset(
    {
        "COLUMNS",
        "FIELDS",
        "INDEX",
        "INDEXES",
        "KEYS",
        "TABLE",
        "TRIGGERS",
        "EVENTS",
        "OPEN",
        "CREATE",
        "VARIABLES",
        "STATUS",
        "COLLATION",
        "CHARACTER",
        "CHARSET",
        "ENGINES",
        "STORAGE",
        "PRIVILEGES",
        "PROCEDURE",
        "FUNCTION",
    }
)
_SHOW_MODIFIERS = frozenset({"FULL", "EXTENDED", "GLOBAL", "SESSION", "LOCAL"})
_SHOW_CREATE_OBJECTS = frozenset(
    {"TABLE", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "SEQUENCE"}
)
_INSERT_MODIFIERS = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"})
_HARMLESS_PROXY_COMMANDS = frozenset({"VERSION"})


@dataclass(frozen=True, slots=True)
class Needs:
    """What a statement needs, whoever runs it."""

    refusal: errors.ProxyError | None = None
    access: str = NONE
    # (database, table or None) named explicitly, lower case
    databases: tuple[tuple[str, str | None], ...] = ()
    # lower-case names resolved in the current database (tables, routines)
    unqualified: tuple[str, ...] = ()
    qualifiers: frozenset[str] = frozenset()  # first parts of dotted names (maybe databases)
    inner: tuple[Statement, ...] = field(default=())  # texts it runs: PREPARE ... FROM '...'
    # CREATE/DROP DATABASE: a name the config does not know is the session's to refuse (1235)
    unknown_ok: bool = False
    # it would make the connection's transactions read-write (READ WRITE, tx_read_only):
    # refused to read_only users, whose shard connections run SET SESSION TRANSACTION READ ONLY
    read_write: bool = False


def _refused(what: str, why: str, code: int = 1227) -> Needs:
    sqlstate = "42000"
    return Needs(
        refusal=errors.ProxyError(code, sqlstate, f"Access denied: xaproxy refuses {what}: {why}")
    )


_cache: dict[str, Needs] = {}
_CACHE_SIZE = 8192


def needs_of(statement: Statement) -> Needs:
    """What `statement` needs (cached by its text: the analysis is cached the same way)."""
    found = _cache.get(statement.text)
    if found is None:
        found = _needs(statement)
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[statement.text] = found
    return found


def authorize(statement: Statement, grants: UserGrants, current_db: str | None) -> None:
    """Returns when `grants` allow `statement` run in `current_db`; raises ProxyError otherwise."""
    needs = needs_of(statement)
    if needs.refusal is not None:
        raise needs.refusal
    access = needs.access
    if access is ADMIN and not grants.admin:
        raise errors.ProxyError(
            1227,
            "42000",
            f"Access denied; user {grants.account} is not an xaproxy operator "
            "(users[].admin in the proxy config) for this XAPROXY command",
        )
    if access is DDL and not grants.ddl:
        raise errors.ProxyError(
            1142,
            "42000",
            f"DDL command denied to user {grants.account}: the proxy config does not grant "
            "it ddl (users[].ddl)",
        )
    if grants.read_only and (access is WRITE or access is DDL or needs.read_write):
        raise errors.ProxyError(
            1142,
            "42000",
            f"{statement.verb or 'this'} command denied to user {grants.account}: "
            "the user is read_only in the proxy config"
            + (" (its transactions are read-only on the shards)" if needs.read_write else ""),
        )
    for database, table in needs.databases:
        if needs.unknown_ok and _unknown(grants, database):
            continue
        _check_database(statement, grants, access, database, table)
    if needs.unqualified:
        if current_db is None:
            raise errors.no_database_selected()
        current = current_db.lower()
        for name in needs.unqualified:
            _check_database(statement, grants, access, current, name)
    if needs.qualifiers:
        _check_qualifiers(needs.qualifiers, grants)
    if statement.kind in _ROW_KINDS and _reads_information_schema(needs, current_db):
        information_schema.check_reads(statement, grants, current_db)
    for inner in needs.inner:
        authorize(inner, grants, current_db)


# Statements whose information_schema reads return rows (SHOW and EXPLAIN describe).
_ROW_KINDS = frozenset({Kind.SELECT, Kind.DO, Kind.SET})


def _reads_information_schema(needs: Needs, current_db: str | None) -> bool:
    if needs.unqualified and current_db is not None and current_db.lower() == INFORMATION_SCHEMA:
        return True
    return any(database == INFORMATION_SCHEMA for database, _ in needs.databases) or (
        INFORMATION_SCHEMA in needs.qualifiers
    )


def check_database_access(grants: UserGrants, database: str) -> None:
    """A database the session may make current (USE, COM_INIT_DB, the handshake's)."""
    name = database.lower()
    if name == INFORMATION_SCHEMA or (name in grants.schemas and name != BOOKKEEPING_DATABASE):
        return
    raise _database_denied(grants, database)


def _unknown(grants: UserGrants, name: str) -> bool:
    return (
        name not in grants.known
        and name not in SERVER_DATABASES
        and name != BOOKKEEPING_DATABASE
        and name != INFORMATION_SCHEMA
    )


def _database_denied(grants: UserGrants, database: str) -> errors.ProxyError:
    if _unknown(grants, database.lower()):
        return errors.unknown_database(database)
    return errors.ProxyError(
        1044,
        "42000",
        f"Access denied for user {grants.account} to database '{database}': "
        + _why_not(grants, database.lower()),
    )


def _why_not(grants: UserGrants, name: str) -> str:
    if name == BOOKKEEPING_DATABASE:
        return "it holds the proxy's own bookkeeping tables"
    if name in SERVER_DATABASES:
        return "a server database, not granted to this user (users[].schemas)"
    return "not among the schemas the proxy config grants this user (users[].schemas)"


def _check_database(
    statement: Statement, grants: UserGrants, access: str, database: str, table: str | None
) -> None:
    if database == INFORMATION_SCHEMA:
        if access is not READ and access is not NONE:
            raise errors.ProxyError(
                1044,
                "42000",
                f"Access denied for user {grants.account} to database 'information_schema': "
                "it is read-only",
            )
        if table == "processlist":
            raise errors.ProxyError(
                1142,
                "42000",
                f"SELECT command denied to user {grants.account} for table "
                "`information_schema`.`PROCESSLIST`: it lists the proxy's shard connections; "
                "use SHOW PROCESSLIST, which lists the proxy's sessions",
            )
        return
    if database in grants.schemas and database != BOOKKEEPING_DATABASE:
        return
    if table is None:
        raise _database_denied(grants, database)
    raise errors.ProxyError(
        1142,
        "42000",
        f"{statement.verb or 'this'} command denied to user {grants.account} for table "
        f"`{database}`.`{table}`: {_why_not(grants, database)}",
    )


def _check_qualifiers(qualifiers: frozenset[str], grants: UserGrants) -> None:
    """`d.x` where `d` is a database the user may not use: refused whatever `x` is."""
    for name in qualifiers:
        if name in grants.schemas or name == INFORMATION_SCHEMA:
            continue
        if name == BOOKKEEPING_DATABASE or name in SERVER_DATABASES:
            raise _database_denied(grants, name)


# --- what a statement needs ------------------------------------------------------------


def _needs(st: Statement) -> Needs:
    if st.error is not None:
        return Needs(refusal=errors.parse_error(f"{st.error}; nothing was run"))
    if st.multiple:
        return _refused("several statements in one", "send them one at a time")
    kind = st.kind
    handler = _KINDS.get(kind)
    if handler is None and st.verb not in _STATEMENT_HEADS:
        near = " ".join(st.effective.split())[:80]
        return Needs(
            refusal=errors.ProxyError(
                1064,
                "42000",
                "You have an error in your SQL syntax; check the manual that corresponds to "
                f"your MariaDB server version for the right syntax to use near '{near}' at line 1",
            )
        )
    if handler is None:
        return _refused(
            f"{st.verb or 'this statement'} ({kind.value})",
            "only statements an application needs reach the shards "
            "(see the README's Security section)",
        )
    needs = handler(st)
    if needs.refusal is None and kind not in _ACCOUNT_KINDS and _calls_account(st):
        return _account_refusal(f"in {st.verb or 'this statement'}")
    return needs


# Statements in which the session puts the proxy user's value in place of USER() & co.
# (or refuses where that is not exact); EXPLAIN shows no value. In every other
# statement the call would run on the shard later or elsewhere: refused.
_ACCOUNT_KINDS = frozenset(
    {Kind.SELECT, Kind.INSERT, Kind.UPDATE, Kind.DELETE, Kind.REPLACE, Kind.DO, Kind.CALL}
    | {Kind.SET, Kind.EXPLAIN}
)


def _calls_account(st: Statement) -> bool:
    calls = account_calls(list(st.tokens))
    return calls is None or bool(calls)


def _account_refusal(where: str) -> Needs:
    return Needs(
        refusal=errors.not_supported(
            f"USER()/CURRENT_USER()/SESSION_USER()/SYSTEM_USER() {where} (the shard would "
            "answer its own account, not the proxy user)",
            "compute the value in a statement of its own (SELECT USER(), SET @u = USER()) "
            "and pass it as a value",
        )
    )


def _names(st: Statement, access: str, *, refs: bool = True, **more) -> Needs:
    """The common checks: file access, and the databases of every name used."""
    if st.functions & _FILE_FUNCTIONS:
        return _refused("LOAD_FILE()", "it reads files on the shard's server (FILE privilege)")
    if st.into_file:
        return _refused(
            "SELECT ... INTO OUTFILE/DUMPFILE", "it writes a file on the shard's server"
        )
    if st.set_statement is not None:
        prefix = f"SET {st.set_statement.split(None, 2)[2].rsplit(None, 1)[0]}"
        refusal = _set_refusal(prefix) or _sql_mode_refusal(prefix, literal_only=True)
        if refusal is not None:
            return refusal
        more.setdefault("read_write", _sets_read_write(prefix))
    databases: dict[tuple[str, str | None], None] = {}
    unqualified: dict[str, None] = {}
    if refs:
        for schema, table in st.table_refs:
            if schema is None:
                unqualified[table.lower()] = None
            else:
                databases[(schema.lower(), table.lower())] = None
    for schema, table in [*more.pop("extra_refs", ()), *_sequence_refs(st)]:
        if schema is None:
            unqualified[table.lower()] = None
        else:
            databases[(schema.lower(), table.lower() if table else None)] = None
    for name in st.database_qualifiers:
        databases[(name, None)] = None
    return Needs(
        access=access,
        databases=tuple(databases),
        unqualified=tuple(unqualified),
        qualifiers=st.qualifiers,
        **more,
    )


def _none(st: Statement) -> Needs:
    return Needs()


def _read(st: Statement) -> Needs:
    return _names(st, READ)


def _write(st: Statement) -> Needs:
    return _names(st, WRITE, extra_refs=_insert_targets(list(st.tokens)))


def _explain(st: Statement) -> Needs:
    return _names(st, READ, extra_refs=_insert_targets(list(st.tokens)))


def _ddl(st: Statement) -> Needs:
    words = list(st.words)
    tokens = list(st.tokens)
    refusal = _ddl_refusal(words, tokens)
    if refusal is not None:
        return refusal
    extra = []
    for index, text in enumerate(words):
        if text == "LIKE" or (text == "TO" and "RENAME" in words):
            name, _ = _qualified(tokens, index + 1)
            if name is not None:
                extra.append(name)
    return _names(st, DDL, extra_refs=extra)


def _ddl_refusal(words: list[str], tokens: list[Token]) -> Needs | None:
    for index, text in enumerate(words):
        if text in ("DATA", "INDEX") and words[index + 1 : index + 2] == ["DIRECTORY"]:
            return _refused(f"{text} DIRECTORY", "it places files on the shard's file system")
        if text == "ENGINE":
            at = index + 2 if words[index + 1 : index + 2] == ["="] else index + 1
            engine = tokens[at].text.upper() if at < len(tokens) else ""
            if engine not in _ENGINES:
                return _refused(
                    f"ENGINE={engine or '?'}",
                    "only InnoDB, Aria, MyISAM and MEMORY tables are created through the proxy",
                )
        if text == "DEFINER":
            after = index + 2 if words[index + 1 : index + 2] == ["="] else index + 1
            if words[after : after + 1] != ["CURRENT_USER"]:
                return _refused("DEFINER = <account>", "objects are defined by the proxy's account")
    return None


def _routine(st: Statement) -> Needs:
    words = list(st.words)
    tokens = list(st.tokens)
    refusal = _ddl_refusal(words, tokens)
    if refusal is not None:
        return refusal
    index = 1
    while index < len(words) and words[index] not in _ROUTINE_OBJECTS:
        if words[index] == "DEFINER":
            index = skip_definer(words, index + 1)
            continue
        if words[index] == "PACKAGE":
            return _refused("PACKAGE", "not understood by the proxy")
        index += 1
    index += 1
    while words[index : index + 1] in (["IF"], ["NOT"], ["EXISTS"]):
        index += 1
    name, after = _qualified(tokens, index)
    if name is None:
        return _refused(f"{st.verb} of a stored program", "its name is not understood")
    refusal = _body_refusal(words, tokens, after)
    if refusal is not None:
        return refusal
    program_schema, _ = name
    body_refs = _insert_targets(tokens[after:])
    needs = _names(st, DDL, refs=False, extra_refs=[name])
    if needs.refusal is not None:
        return needs
    databases = dict.fromkeys(needs.databases)
    unqualified = dict.fromkeys(needs.unqualified)
    # names in the body resolve in the program's database
    for schema, table in [*st.table_refs, *body_refs, *_call_targets(tokens[after:])]:
        if schema is None and program_schema is not None:
            schema = program_schema
        if schema is None:
            unqualified[table.lower()] = None
        else:
            databases[(schema.lower(), table.lower())] = None
    return Needs(
        access=DDL,
        databases=tuple(databases),
        unqualified=tuple(unqualified),
        qualifiers=needs.qualifiers,
    )


def _body_refusal(words: list[str], tokens: list[Token], start: int) -> Needs | None:
    """A word of a stored program's body (from `start`) that only a statement we refuse uses."""
    for position in range(start, len(words)):
        text = words[position]
        following = words[position + 1 : position + 2]
        if text in _NOT_IN_PROGRAMS:
            return _program_refusal(text)
        if text == "LOCK" and following != ["IN"]:
            return _program_refusal("LOCK TABLES")
        if text == "START" and following != ["TRANSACTION"]:
            return _program_refusal("START")
        if text == "HANDLER" and words[position - 1 : position] not in (
            ["CONTINUE"],
            ["EXIT"],
            ["UNDO"],
        ):
            return _program_refusal("HANDLER")
        if text in ("SET", "DEFAULT") and following in (["PASSWORD"], ["ROLE"]):
            return _program_refusal(f"SET {following[0]}")
        if _privileged_variable(tokens[position].text):
            return _program_refusal(f"a change of {tokens[position].text}")
    return None


def _program_refusal(what: str) -> Needs:
    return _refused(
        f"{what} in a stored program body",
        "a stored program may hold only the statements a client may run "
        "(SELECT, INSERT, UPDATE, DELETE, REPLACE, SET, CALL, control flow)",
    )


def _compound(st: Statement) -> Needs:
    words = list(st.words)
    tokens = list(st.tokens)
    refusal = _body_refusal(words, tokens, 0)
    if refusal is not None:
        return refusal
    return _names(st, WRITE, extra_refs=[*_insert_targets(tokens), *_call_targets(tokens)])


def _call(st: Statement) -> Needs:
    return _names(st, WRITE, extra_refs=_call_targets(list(st.tokens)))


def _set(st: Statement) -> Needs:
    refusal = _set_refusal(st.effective) or _sql_mode_refusal(st.effective, literal_only=False)
    if refusal is not None:
        return refusal
    return _names(st, NONE, read_write=_sets_read_write(st.effective))


# The variables that make a connection's transactions read-only (11.1 adds the second name).
_READ_ONLY_VARIABLES = frozenset({"tx_read_only", "transaction_read_only"})


def _sets_read_write(text: str) -> bool:
    """A SET that may end a connection's read-only transactions: `... TRANSACTION ... READ
    WRITE` in any scope, or any assignment of tx_read_only / transaction_read_only."""
    words = list(analyze(text).words)
    if "TRANSACTION" in words[:3]:
        return _says_read_write(words)
    return any(a.scope != "user" and a.name in _READ_ONLY_VARIABLES for a in set_assignments(text))


def _says_read_write(words: list[str]) -> bool:
    return any(
        text == "READ" and words[index + 1 : index + 2] == ["WRITE"]
        for index, text in enumerate(words)
    )


def _begin(st: Statement) -> Needs:
    """START TRANSACTION READ WRITE would lift a read_only user's read-only default."""
    return Needs(read_write=_says_read_write(list(st.words)))


def _set_refusal(text: str) -> Needs | None:
    analysed = analyze(text)
    if is_set_transaction(text):
        return None
    words = list(analysed.words)
    if words[:3] in (["SET", "SESSION", "TRANSACTION"], ["SET", "LOCAL", "TRANSACTION"]):
        return None
    assignments = set_assignments(text)
    if not assignments:
        return _refused(
            " ".join(words[:2]) or "SET",
            "only SET of session variables, SET NAMES and SET TRANSACTION are forwarded",
        )
    for assignment in assignments:
        if assignment.scope in ("global", "persist", "persist_only"):
            return _refused(
                f"SET GLOBAL {assignment.name}",
                "server settings are changed on each shard by its DBA, not through the proxy",
            )
        if assignment.scope != "user" and _privileged_variable(assignment.name):
            return _refused(
                f"SET {assignment.name}",
                "it changes replication or binary logging (SUPER on the shard)",
            )
        if assignment.scope != "user" and assignment.name in _ENGINE_VARIABLES:
            engine = assignment.value.strip().strip("'\"`").upper()
            if engine not in _ENGINES and engine != "DEFAULT":
                return _refused(
                    f"SET {assignment.name} = {assignment.value}",
                    "a CREATE TABLE without ENGINE would then use an engine the proxy refuses; "
                    "only InnoDB, Aria, MyISAM and MEMORY are allowed",
                )
    return None


# The engine a CREATE TABLE without ENGINE= gets (CONNECT or FEDERATED would read files
# or other servers): only the engines ENGINE= may name.
_ENGINE_VARIABLES = frozenset(
    {"default_storage_engine", "default_tmp_storage_engine", "storage_engine"}
)


# sql_mode values that change how a statement parses. The proxy, which parses it as the
# default mode does, would check, route or regenerate a different statement from the one
# the shard runs: with ANSI_QUOTES "..." is a name ("mysql"."user"), with PIPES_AS_CONCAT
# `1 || 0` is '10' (a shard key), with HIGH_NOT_PRECEDENCE `NOT a BETWEEN b AND c` is
# `(NOT a) BETWEEN b AND c`. The modes that combine others (ANSI, ORACLE, ...) hold
# ANSI_QUOTES.
_QUOTING_MODES = frozenset({"ANSI_QUOTES", "ANSI", "ORACLE", "MSSQL", "DB2", "POSTGRESQL", "MAXDB"})
MISREAD_MODES: dict[str, str] = {
    **dict.fromkeys(
        _QUOTING_MODES,
        'in it "..." is a name, which the proxy reads as a string; '
        "quote names with backticks instead",
    ),
    "PIPES_AS_CONCAT": "in it || is CONCAT, which the proxy reads as OR; use CONCAT() instead",
    "HIGH_NOT_PRECEDENCE": (
        "in it NOT binds tighter than the proxy reads it; write the parentheses instead"
    ),
}


def misread_mode(modes: str) -> str | None:
    """The first mode of a sql_mode value the proxy would misread statements in."""
    named = {m.strip().upper() for m in modes.split(",")}
    found = sorted(named & MISREAD_MODES.keys())
    return found[0] if found else None


def _sql_mode_refusal(text: str, *, literal_only: bool) -> Needs | None:
    """A sql_mode the proxy would misread statements in is refused; a value that is not a
    string literal only in SET STATEMENT (a plain SET is read back by the session)."""
    for assignment in set_assignments(text):
        if assignment.scope == "user" or assignment.name != "sql_mode":
            continue
        tokens = analyze(assignment.value).tokens
        if len(tokens) != 1 or tokens[0].token_type != TokenType.STRING:
            if literal_only and assignment.value.strip().upper() != "DEFAULT":
                return _refused(
                    "SET STATEMENT sql_mode = <expression>",
                    "write the modes as one string literal, which the proxy can check",
                )
            continue  # the session reads the resulting sql_mode back
        mode = misread_mode(tokens[0].text)
        if mode is not None:
            return _refused(f"sql_mode {mode}", MISREAD_MODES[mode])
    return None


def _privileged_variable(name: str) -> bool:
    lower = name.lower()
    return lower in _PRIVILEGED_VARIABLES or lower.startswith(_PRIVILEGED_PREFIXES)


def _use(st: Statement) -> Needs:
    target = use_target(st.effective)
    if target is None:
        return Needs()  # the handler answers the syntax error
    return Needs(databases=((target.lower(), None),))


def _database(st: Statement) -> Needs:
    target = database_target(st.effective)
    if target is None:
        return Needs(access=DDL)
    return Needs(access=DDL, databases=((target[1].lower(), None),), unknown_ok=True)


def _show_tables(st: Statement) -> Needs:
    return _show_common(st, [])


def _show(st: Statement) -> Needs:
    words = list(st.words)
    tokens = list(st.tokens)
    index = 1
    while words[index : index + 1] and words[index] in _SHOW_MODIFIERS:
        index += 1
    form = words[index] if index < len(words) else ""
    refusal = _show_refusal(words, index, form)
    if refusal is not None:
        return refusal
    if form not in _SHOW_FORMS:
        return _refused(
            f"SHOW {form or ''}".strip(),
            "server and replication status is for the shards' DBA; "
            "SHOW of the user's own schemas and tables is allowed",
        )
    if form == "CREATE":
        object_word = words[index + 1] if index + 1 < len(words) else ""
        if object_word in ("DATABASE", "SCHEMA"):
            at = index + 2
            if words[at : at + 3] == ["IF", "NOT", "EXISTS"]:
                at += 3
            if at < len(tokens):
                return _show_common(st, [(tokens[at].text, None)])
            return Needs()
        if object_word not in _SHOW_CREATE_OBJECTS:
            return _refused(f"SHOW CREATE {object_word}", "account details stay on the shards")
        name, _ = _qualified(tokens, index + 2)
        return _show_common(st, [name] if name is not None else [])
    if form in ("PROCEDURE", "FUNCTION"):
        if words[index + 1 : index + 2] == ["CODE"]:
            name, _ = _qualified(tokens, index + 2)
            return _show_common(st, [name] if name is not None else [])
        return _show_common(st, [])
    refs: list[tuple[str | None, str | None]] = []
    table: tuple[str | None, str] | None = None
    table_first = form in ("COLUMNS", "FIELDS", "INDEX", "INDEXES", "KEYS")
    for position in range(index + 1, len(words)):
        if words[position] not in ("FROM", "IN") or position + 1 >= len(tokens):
            continue
        if table_first and table is None:
            table, _ = _qualified(tokens, position + 1)
        elif table is not None and table[0] is None:
            table = (tokens[position + 1].text, table[1])  # SHOW COLUMNS FROM t FROM d
        else:
            refs.append((tokens[position + 1].text, None))
    if table is not None:
        refs.append(table)
    return _show_common(st, refs)


def _show_refusal(words: list[str], index: int, form: str) -> Needs | None:
    """SHOW forms whose answer would be about the shard account or every database."""
    if form == "GRANTS":
        return _refused(
            "SHOW GRANTS",
            "it would list the shard account's privileges, not the proxy user's; a proxy "
            "user's grants are its users[] entry in the proxy config (schemas, read_only, "
            "ddl, admin)",
        )
    if form in ("PROCEDURE", "FUNCTION", "PACKAGE") and words[index + 1 : index + 2] == ["STATUS"]:
        return _refused(
            f"SHOW {form} STATUS",
            "it lists the stored programs of every database of the shard; query "
            "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '<schema>' instead",
            1142,
        )
    if form == "OPEN" and "FROM" not in words and "IN" not in words:
        return _refused(
            "SHOW OPEN TABLES without FROM",
            "it lists the open tables of every database of the shard; add FROM <schema>",
            1142,
        )
    return None


def _show_status(st: Statement) -> Needs:
    if "SELECT" in st.words:
        return _refused("a subquery in SHOW", "query information_schema instead")
    return Needs()


def _show_common(st: Statement, refs: list[tuple[str | None, str | None]]) -> Needs:
    if "SELECT" in st.words:
        return _refused("a subquery in SHOW", "query information_schema instead")
    if st.kind is Kind.SHOW_TABLES:
        words = list(st.words)
        tokens = list(st.tokens)
        for position, text in enumerate(words):
            if text in ("FROM", "IN") and position + 1 < len(tokens):
                refs = [(tokens[position + 1].text, None)]
                break
    databases: dict[tuple[str, str | None], None] = {}
    unqualified: dict[str, None] = {}
    for schema, table in refs:
        if schema is None and table is not None:
            unqualified[table.lower()] = None
        elif schema is not None:
            databases[(schema.lower(), table.lower() if table else None)] = None
    return Needs(
        access=READ,
        databases=tuple(databases),
        unqualified=tuple(unqualified),
        qualifiers=st.qualifiers,
    )


def _prepare(st: Statement) -> Needs:
    """PREPARE s FROM '<text>': the text is what runs, so it is what is authorized."""
    tokens = list(st.tokens)
    words = list(st.words)
    at = words.index("FROM") + 1 if "FROM" in words else len(words)
    if at != 3 or len(tokens) != 4:
        return _dynamic("PREPARE ... FROM")
    return _inner(st, tokens[3], "PREPARE ... FROM")


def _execute_immediate(st: Statement) -> Needs:
    tokens = list(st.tokens)
    words = list(st.words)
    if len(tokens) < 3 or (len(tokens) > 3 and words[3] != "USING"):
        return _dynamic("EXECUTE IMMEDIATE")
    inner = _inner(st, tokens[2], "EXECUTE IMMEDIATE")
    if inner.refusal is not None or len(tokens) == 3:
        return inner
    using = _names(st, NONE)  # the USING values may read tables too
    return Needs(
        access=NONE,
        databases=using.databases,
        unqualified=using.unqualified,
        qualifiers=using.qualifiers,
        inner=inner.inner,
        refusal=using.refusal,
    )


def _inner(st: Statement, token: Token, what: str) -> Needs:
    if token.token_type != TokenType.STRING:
        return _dynamic(what)
    written = st.code[token.start : token.end + 1]
    if "\\" in written:
        return _refused(
            f"{what} a string with backslash escapes",
            "the proxy authorizes the statement text exactly; write it without backslashes",
        )
    inner = analyze(token.text)
    if _calls_account(inner):
        return _account_refusal(f"in the text of {what}")
    return Needs(inner=(inner,))


def _dynamic(what: str) -> Needs:
    return _refused(
        f"{what} a variable or expression",
        "the statement text must be a string literal the proxy can check",
    )


def _xa(st: Statement) -> Needs:
    return Needs(
        refusal=errors.ProxyError(
            1399,
            "XAE07",
            "xaproxy manages XA itself: XA statements from clients are refused. "
            "Use BEGIN ... COMMIT; the proxy makes cross-shard transactions atomic",
        )
    )


def _proxy(st: Statement) -> Needs:
    words = list(st.words)
    if words[1:2] == ["EXPLAIN"] and len(st.tokens) > 2:
        inner = st.effective[st.tokens[2].start :].strip().rstrip(";")
        return Needs(inner=(analyze(inner),))
    if len(words) == 2 and words[1] in _HARMLESS_PROXY_COMMANDS:
        return Needs()
    return Needs(access=ADMIN)


def _account(st: Statement) -> Needs:
    return _refused(
        f"{st.verb} (account management)",
        "accounts and privileges are managed on the shards by their DBA; "
        "proxy users are configured under users: in the proxy config",
    )


def _load_data(st: Statement) -> Needs:
    return _refused(
        "LOAD DATA INFILE", "it reads a file on the shard's server; use LOAD DATA LOCAL or INSERT"
    )


def _lock_tables(st: Statement) -> Needs:
    return _names(st, WRITE if "WRITE" in st.words else READ)


_KINDS = {
    Kind.BEGIN: _begin,
    Kind.COMMIT: _none,
    Kind.ROLLBACK: _none,
    Kind.SAVEPOINT: _none,
    Kind.SET: _set,
    Kind.USE: _use,
    Kind.SHOW_DATABASES: _none,
    Kind.SHOW_TABLES: _show_tables,
    Kind.SHOW_WARNINGS: _none,
    Kind.SHOW_ERRORS: _none,
    Kind.SHOW_WARNING_COUNT: _none,
    Kind.SHOW_ERROR_COUNT: _none,
    Kind.SHOW_PROCESSLIST: _none,
    Kind.SHOW_SESSION_STATUS: _show_status,  # the session answers it (TLS status) or a shard does
    Kind.SHOW: _show,
    Kind.SELECT: _read,
    Kind.DO: _read,
    Kind.EXPLAIN: _explain,
    Kind.INSERT: _write,
    Kind.UPDATE: _write,
    Kind.DELETE: _write,
    Kind.REPLACE: _write,
    Kind.DDL: _ddl,
    Kind.ROUTINE_DDL: _routine,
    Kind.CREATE_DATABASE: _database,
    Kind.DROP_DATABASE: _database,
    Kind.ACCOUNT: _account,
    Kind.CALL: _call,
    Kind.COMPOUND: _compound,
    Kind.XA: _xa,
    Kind.KILL: _none,  # the session lets one kill only one's own sessions (admins: any)
    Kind.PREPARE: _prepare,
    Kind.EXECUTE: _none,  # what it runs was authorized at PREPARE
    Kind.EXECUTE_IMMEDIATE: _execute_immediate,
    Kind.DEALLOCATE: _none,
    Kind.LOCK_TABLES: _lock_tables,
    Kind.UNLOCK_TABLES: _none,
    Kind.LOAD_DATA: _load_data,
    Kind.LOAD_DATA_LOCAL: _write,  # the session refuses it (not supported)
    Kind.PROXY: _proxy,
    Kind.COMMENT: _none,
    Kind.EMPTY: _none,
}


# --- names read from tokens --------------------------------------------------------------


def _qualified(tokens: list[Token], index: int) -> tuple[tuple[str | None, str] | None, int]:
    """(database or None, name) of a possibly dotted name at `index`, and the index after it."""
    parts, index = dotted_name(tokens, index)
    if not parts:
        return None, index
    return (parts[-2] if len(parts) >= 2 else None, parts[-1]), index


def _insert_targets(tokens: list[Token]) -> list[tuple[str | None, str]]:
    """Tables after INSERT/REPLACE written without INTO (`INSERT d.t VALUES ...`)."""
    found = []
    for index, token in enumerate(tokens):
        text = word(token)
        if text not in ("INSERT", "REPLACE"):
            continue
        if text == "REPLACE" and index and word(tokens[index - 1]) == "OR":
            continue
        at = index + 1
        while at < len(tokens) and word(tokens[at]) in _INSERT_MODIFIERS:
            at += 1
        if at == index + 1 or word(tokens[at - 1]) != "INTO":
            name, _ = _qualified(tokens, at)
            if name is not None and word(tokens[at]) not in (
                "SELECT",
                "VALUES",
                "VALUE",
                "SET",
                "ON",
            ):
                found.append(name)
    return found


# Functions whose first argument is a sequence: a table, in any database.
_SEQUENCE_FUNCTIONS = frozenset({"NEXTVAL", "LASTVAL", "SETVAL"})


def _sequence_refs(st: Statement) -> list[tuple[str | None, str]]:
    """The sequences of NEXTVAL(s), LASTVAL(s), SETVAL(s, n), NEXT/PREVIOUS VALUE FOR s:
    tables a statement reads or writes like any other, checked against the grants."""
    if "VALUE" not in st.words and not st.functions & _SEQUENCE_FUNCTIONS:
        return []
    tokens = list(st.tokens)
    words = st.words
    found = []
    for index, text in enumerate(words):
        following = words[index + 1 : index + 2]
        if (text in _SEQUENCE_FUNCTIONS and following == ("(",)) or (
            text == "VALUE" and following == ("FOR",)
        ):
            name, _ = _qualified(tokens, index + 2)
            if name is not None:
                found.append(name)
    return found


def _call_targets(tokens: list[Token]) -> list[tuple[str | None, str]]:
    found = []
    for index, token in enumerate(tokens):
        if word(token) == "CALL":
            name, _ = _qualified(tokens, index + 1)
            if name is not None:
                found.append(name)
    return found
