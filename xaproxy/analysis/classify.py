"""A statement's kind and the names it uses, read from its tokens' words."""

from __future__ import annotations

from sqlglot.tokens import Token, TokenType

from .kinds import Kind
from .tokens import NAME_TYPES, dotted_name, type_ids, word

_SIMPLE_HEADS = {
    "SELECT": Kind.SELECT,
    "VALUES": Kind.SELECT,
    "INSERT": Kind.INSERT,
    "UPDATE": Kind.UPDATE,
    "DELETE": Kind.DELETE,
    "REPLACE": Kind.REPLACE,
    "DESC": Kind.EXPLAIN,
    "DESCRIBE": Kind.EXPLAIN,
    "EXPLAIN": Kind.EXPLAIN,
    "USE": Kind.USE,
    "SAVEPOINT": Kind.SAVEPOINT,
    "CALL": Kind.CALL,
    "DO": Kind.DO,
    "XA": Kind.XA,
    "KILL": Kind.KILL,
    "PREPARE": Kind.PREPARE,
    "DEALLOCATE": Kind.DEALLOCATE,
    "XAPROXY": Kind.PROXY,
    "GRANT": Kind.ACCOUNT,
    "REVOKE": Kind.ACCOUNT,
    "TRUNCATE": Kind.DDL,
}
_DDL_OBJECTS = {
    "TABLE": Kind.DDL,
    "VIEW": Kind.DDL,
    "INDEX": Kind.DDL,
    "SEQUENCE": Kind.DDL,
    "PROCEDURE": Kind.ROUTINE_DDL,
    "FUNCTION": Kind.ROUTINE_DDL,
    "TRIGGER": Kind.ROUTINE_DDL,
    "EVENT": Kind.ROUTINE_DDL,
    "PACKAGE": Kind.ROUTINE_DDL,
    "AGGREGATE": Kind.ROUTINE_DDL,
    "USER": Kind.ACCOUNT,
    "ROLE": Kind.ACCOUNT,
}
# Words between CREATE/ALTER/DROP and the kind of object: options that do not change it.
_DDL_OPTIONS = frozenset(
    {
        "OR",
        "REPLACE",
        "TEMPORARY",
        "UNIQUE",
        "FULLTEXT",
        "SPATIAL",
        "ONLINE",
        "OFFLINE",
        "IGNORE",
        "SQL",
        "SECURITY",
        "SQL SECURITY",
        "DEFINER",
        "INVOKER",
        "ALGORITHM",
        "UNDEFINED",
        "MERGE",
        "TEMPTABLE",
        "=",
        "",
        "@",
        "CURRENT_USER",
        "(",
        ")",
        "IF",
        "NOT",
        "EXISTS",
    }
)
_END_WORDS = frozenset({"", ";"})


def kind_of(words: list[str]) -> Kind:
    """The kind of one statement from its words (`''` stands for a value or quoted name)."""
    head = words[0]
    if head == "(":
        return Kind.SELECT if _first_keyword(words) in ("SELECT", "VALUES", "WITH") else Kind.OTHER
    simple = _SIMPLE_HEADS.get(head)
    if simple is not None:
        return simple
    rest = words[1:]
    if head == "SET":
        return (
            Kind.ACCOUNT
            if rest[:1] == ["PASSWORD"] or rest[:2] == ["DEFAULT", "ROLE"]
            else (Kind.SET)
        )
    if head == "BEGIN":
        return _begin(rest)
    if head == "START":
        return Kind.BEGIN if rest[:1] == ["TRANSACTION"] else Kind.OTHER
    if head in ("COMMIT", "ROLLBACK"):
        return _commit_or_rollback(head, rest)
    if head == "RELEASE":
        return Kind.SAVEPOINT if rest[:1] == ["SAVEPOINT"] else Kind.OTHER
    if head == "WITH":
        return _with(rest)
    if head == "SHOW":
        return _show(rest)
    if head in ("CREATE", "ALTER", "DROP", "RENAME"):
        return _ddl(head, rest)
    if head == "EXECUTE":
        return Kind.EXECUTE_IMMEDIATE if rest[:1] == ["IMMEDIATE"] else Kind.EXECUTE
    if head in ("LOCK", "LOCK TABLES", "LOCK TABLE"):
        return (
            Kind.LOCK_TABLES
            if head != "LOCK" or rest[:1] in (["TABLES"], ["TABLE"])
            else (Kind.OTHER)
        )
    if head in ("UNLOCK TABLES", "UNLOCK TABLE"):
        return Kind.UNLOCK_TABLES
    if head == "UNLOCK":
        return Kind.UNLOCK_TABLES if rest[:1] in (["TABLES"], ["TABLE"]) else Kind.OTHER
    if head == "LOAD":
        return _load(rest)
    return Kind.OTHER


def _first_keyword(words: list[str]) -> str:
    return next((w for w in words if w != "("), "")


def _begin(rest: list[str]) -> Kind:
    if rest[:2] == ["NOT", "ATOMIC"]:
        return Kind.COMPOUND
    if not rest or rest == ["WORK"]:
        return Kind.BEGIN
    return Kind.OTHER


def _commit_or_rollback(head: str, rest: list[str]) -> Kind:
    kind = Kind.COMMIT if head == "COMMIT" else Kind.ROLLBACK
    if rest[:1] == ["WORK"]:
        rest = rest[1:]
    if head == "ROLLBACK" and rest[:1] == ["TO"]:
        return Kind.SAVEPOINT
    if rest[:3] == ["AND", "NO", "CHAIN"]:
        rest = rest[3:]
    if rest[:2] == ["NO", "RELEASE"]:
        rest = rest[2:]
    return kind if not rest else Kind.OTHER  # AND CHAIN, RELEASE: not what the proxy does


def _with(rest: list[str]) -> Kind:
    """WITH ... SELECT (or UPDATE/DELETE/INSERT): the verb after the CTEs at depth 0."""
    depth = 0
    for text in rest:
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and text in ("SELECT", "UPDATE", "DELETE", "INSERT", "REPLACE", "VALUES"):
            return _SIMPLE_HEADS[text]
    return Kind.OTHER


def _show(rest: list[str]) -> Kind:
    if rest[:1] in (["DATABASES"], ["SCHEMAS"]):
        return Kind.SHOW_DATABASES
    if rest[:1] == ["TABLES"] or rest[:2] == ["FULL", "TABLES"]:
        return Kind.SHOW_TABLES
    if rest[:1] == ["PROCESSLIST"] or rest[:2] == ["FULL", "PROCESSLIST"]:
        return Kind.SHOW_PROCESSLIST
    if rest[:4] in (["COUNT", "(", "*", ")"],) and len(rest) == 5:
        return {"WARNINGS": Kind.SHOW_WARNING_COUNT, "ERRORS": Kind.SHOW_ERROR_COUNT}.get(
            rest[4], Kind.SHOW
        )
    if rest[:1] == ["STATUS"] or rest[:2] in (["SESSION", "STATUS"], ["LOCAL", "STATUS"]):
        return Kind.SHOW_SESSION_STATUS
    if rest[:1] == ["WARNINGS"]:
        return Kind.SHOW_WARNINGS
    if rest[:1] == ["ERRORS"]:
        return Kind.SHOW_ERRORS
    return Kind.SHOW


def _ddl(head: str, rest: list[str]) -> Kind:
    if head == "DROP" and rest[:1] == ["PREPARE"]:
        return Kind.DEALLOCATE
    index = 0
    while index < len(rest):
        text = rest[index]
        index += 1
        if text == "DEFINER":
            index = skip_definer(rest, index)
            continue
        if text in ("DATABASE", "SCHEMA"):
            if head == "CREATE":
                return Kind.CREATE_DATABASE
            return Kind.DROP_DATABASE if head == "DROP" else Kind.OTHER
        found = _DDL_OBJECTS.get(text)
        if found is not None:
            return found
        if text not in _DDL_OPTIONS:
            return Kind.OTHER
    return Kind.OTHER


def skip_definer(words: list[str], index: int) -> int:
    """Past `= user[@host]` / `= CURRENT_USER[()]` after DEFINER (at `index`)."""
    if words[index : index + 1] == ["="]:
        index += 1
    index += 1  # the user name (a word or a quoted string)
    if words[index : index + 2] == ["(", ")"]:
        index += 2
    if words[index : index + 1] == ["@"]:
        index += 2
    return index


def _load(rest: list[str]) -> Kind:
    if rest[:1] not in (["DATA"], ["XML"]):
        return Kind.OTHER
    options = rest[1:]
    while options[:1] in (["LOW_PRIORITY"], ["CONCURRENT"]):
        options = options[1:]
    return Kind.LOAD_DATA_LOCAL if options[:1] == ["LOCAL"] else Kind.LOAD_DATA


def set_statement_end(words: list[str]) -> int | None:
    """Index of the statement after `SET STATEMENT var=value, ... FOR`, or None."""
    depth = 0
    for index, text in enumerate(words[2:], start=2):
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and text == "FOR" and index + 1 < len(words):
            return index + 1
    return None


def is_locking_read(words: list[str], kind: Kind) -> bool:
    """FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE anywhere in a SELECT."""
    if kind is not Kind.SELECT:
        return False
    for index, text in enumerate(words):
        if text == "FOR" and words[index + 1 : index + 2] in (["UPDATE"], ["SHARE"]):
            return True
        if text == "LOCK" and words[index + 1 : index + 4] == ["IN", "SHARE", "MODE"]:
            return True
    return False


# Words after which a table name follows (a comma list after those marked True).
_TABLE_WORDS = {
    "FROM": True,
    "JOIN": False,
    "STRAIGHT_JOIN": False,
    "INTO": False,
    "UPDATE": True,
    "TABLE": True,
    "TABLES": True,
    "LOCK TABLES": True,
    "LOCK TABLE": True,
    "DESC": False,
    "DESCRIBE": False,
    "REFERENCES": False,
    "TRUNCATE": False,
    "USING": True,
    "VIEW": False,
    "EXISTS": False,
}
_VALUE_TYPES = frozenset({TokenType.STRING, TokenType.NUMBER, TokenType.NATIONAL_STRING})
_NAME_IDS = type_ids(NAME_TYPES)
_VALUE_IDS = type_ids(_VALUE_TYPES)
_NOT_NAMES = frozenset(
    {"SELECT", "WITH", "VALUES", "VALUE", "SET", "WHERE", "DUAL", "(", "IF", "NOT", "EXISTS", ""}
    | {"TABLE", "OUTFILE", "DUMPFILE", "IGNORE", "LOW_PRIORITY", "QUICK", "ONLY", "ALL"}
)
# Words followed by `(` that are not function calls.
_NOT_FUNCTIONS = frozenset(
    {"AS", "UNION", "IN", "VALUES", "VALUE", "INTO", "EXISTS", "USING", "OVER", "AND", "OR"}
    | {"NOT", "WHERE", "FROM", "JOIN", "SELECT", "ALL", "ANY", "SOME", "INTERSECT", "EXCEPT"}
    | {"ON", "BY", "TABLE", "WINDOW", "LATERAL", "RECURSIVE"}
)
# A name followed by `(` after these is a table, index or routine, not a function call.
_NAMING_WORDS = frozenset(
    {"INTO", "TABLE", "EXISTS", "REFERENCES", "JOIN", "FROM", "UPDATE", "ON", "INDEX", "CALL"}
    | {"PROCEDURE", "FUNCTION", "KEY", "REPLACE", "INSERT", "VIEW", "TRIGGER", "EVENT"}
)


_TRIGGER_EVENTS = frozenset({"INSERT", "UPDATE", "DELETE"})


_ASSIGNS_ANY = frozenset(
    {"CALL", "EXECUTE", "BEGIN", "IF", "WHILE", "LOOP", "REPEAT", "FOR", "CASE", "LOAD"}
)


def _assigns(tokens: list[Token], words: list[str], index: int) -> bool:
    """The user variable whose `@` is at `index` is assigned: `@v := x`, `SET @v = x`,
    `INTO @v` (and the next variables of that INTO list)."""
    after = tokens[index + 2].token_type if index + 2 < len(tokens) else None
    if after == TokenType.COLON_EQ:
        return True
    before = words[index - 1] if index else ""
    if after == TokenType.EQ and words[:1] == ["SET"] and before in ("SET", ",", "STATEMENT"):
        return True
    back = index - 1
    while back >= 2 and words[back] == "," and tokens[back - 2].token_type == TokenType.PARAMETER:
        back -= 3  # INTO @a, @b, @c
    return back >= 0 and words[back] == "INTO"


class Names:
    """Tables, variables, functions and every other name a statement's tokens hold."""

    def __init__(self, tokens: list[Token], words: list[str]) -> None:
        self.tables_found: list[str] = []
        self.refs_found: list[tuple[str | None, str]] = []
        names: set[str] = set()
        functions: set[str] = set()
        user_variables: set[str] = set()
        assigned: set[str] = set()
        system_variables: set[tuple[str, str]] = set()
        last = len(tokens) - 1
        for index, token in enumerate(tokens):
            kind = token.token_type
            text = words[index]
            if index < last:
                if kind == TokenType.PARAMETER:
                    if not _user_at_host(tokens[index - 1] if index else None, token):
                        name = tokens[index + 1].text.lower()
                        user_variables.add(name)
                        if _assigns(tokens, words, index):
                            assigned.add(name)
                elif kind == TokenType.SESSION_PARAMETER:
                    system_variables.add(_system_variable(tokens, index + 1))
                elif (
                    words[index + 1] == "("
                    and text[:1].isalpha()
                    and text not in _NOT_FUNCTIONS
                    and (index == 0 or words[index - 1] not in _NAMING_WORDS)
                ):
                    functions.add(text)
                elif (
                    kind == TokenType.IDENTIFIER
                    and words[index + 1] == "("
                    and (index == 0 or words[index - 1] not in _NAMING_WORDS)
                    and words[index - 1 : index] != ["."]
                ):
                    # `load_file`(...): MariaDB finds native functions by quoted names too
                    functions.add(token.text.upper())
            if id(kind) in _NAME_IDS or (text[:1].isalpha() and id(kind) not in _VALUE_IDS):
                names.add(token.text.lower())
            list_after = _TABLE_WORDS.get(text)
            if (
                list_after is None
                and text == "ON"
                and index >= 2
                and (words[index - 2] == "INDEX" or words[index - 1] in _TRIGGER_EVENTS)
            ):
                list_after = False  # CREATE INDEX i ON t, CREATE TRIGGER ... BEFORE INSERT ON t
            if list_after is not None:
                self._tables_after(tokens, index + 1, list_after)
        self.tables = tuple(dict.fromkeys(self.tables_found))
        self.table_refs = tuple(dict.fromkeys(self.refs_found))
        self.qualifiers, self.database_qualifiers = _qualifiers(tokens)
        self.into_file = any(
            text == "INTO" and words[index + 1 : index + 2] in (["OUTFILE"], ["DUMPFILE"])
            for index, text in enumerate(words)
        )
        self.names = frozenset(names)
        self.functions = frozenset(functions)
        self.user_variables = frozenset(user_variables)
        # CALL (OUT parameters), EXECUTE and compound statements may assign any of them
        everything = bool(words) and (words[0] in _ASSIGNS_ANY or words[1:2] == [":"])
        self.assigned_user_variables = frozenset(user_variables if everything else assigned)
        self.system_variables = frozenset(system_variables)

    def _tables_after(self, tokens: list[Token], index: int, comma_list: bool) -> None:
        while index < len(tokens):
            start = index
            name, index = _qualified_name(tokens, index)
            if name is None:
                return
            self.tables_found.append(name)
            parts = [t.text for t in tokens[start:index] if t.token_type != TokenType.DOT]
            schema = parts[-2] if len(parts) >= 2 else None
            self.refs_found.append((schema, parts[-1]))
            if not comma_list:
                return
            index = _skip_alias(tokens, index)
            if index >= len(tokens) or tokens[index].token_type != TokenType.COMMA:
                return
            index += 1


def _qualified_name(tokens: list[Token], index: int) -> tuple[str | None, int]:
    parts, index = dotted_name(tokens, index, _NOT_NAMES)
    return (".".join(parts) if parts else None), index


def _qualifiers(tokens: list[Token]) -> tuple[frozenset[str], frozenset[str]]:
    """First parts of dotted names (lower case): all of them, and those surely a database.

    `a.b` may be a database and a table or a table and a column; `a.b.c` and a call
    `a.f(...)` name database `a`.
    """
    every: set[str] = set()
    databases: set[str] = set()
    count = len(tokens)
    for index in range(count - 2):
        token = tokens[index]
        if tokens[index + 1].token_type != TokenType.DOT or token.token_type in _VALUE_TYPES:
            continue
        if token.token_type == TokenType.DOT or token.token_type == TokenType.STAR:
            continue
        if index and tokens[index - 1].token_type == TokenType.DOT:
            continue  # the middle of a dotted name
        name = token.text.lower()
        every.add(name)
        after = index + 3
        if after < count and tokens[after].token_type in (TokenType.DOT, TokenType.L_PAREN):
            databases.add(name)
    return frozenset(every), frozenset(databases)


def _skip_alias(tokens: list[Token], index: int) -> int:
    """Past `[AS] alias` and LOCK TABLES' READ/WRITE [LOCAL] / LOW_PRIORITY WRITE."""
    while index < len(tokens):
        token = tokens[index]
        if token.token_type in (TokenType.COMMA, TokenType.SEMICOLON, TokenType.L_PAREN):
            return index
        text = word(token)
        if text in ("AS", "READ", "WRITE", "LOCAL", "LOW_PRIORITY") or token.token_type in (
            NAME_TYPES
        ):
            index += 1
            continue
        return index
    return index


def _user_at_host(previous: Token | None, at: Token) -> bool:
    """`root@localhost`, `'u'@'h'`: an account, not a user variable."""
    return (
        previous is not None
        and previous.end + 1 == at.start
        and previous.token_type in (TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING)
    )


def _system_variable(tokens: list[Token], index: int) -> tuple[str, str]:
    first = tokens[index].text.lower()
    if (
        first in ("global", "session", "local")
        and index + 2 < len(tokens)
        and tokens[index + 1].token_type == TokenType.DOT
    ):
        return first, tokens[index + 2].text.lower()
    return "", first
