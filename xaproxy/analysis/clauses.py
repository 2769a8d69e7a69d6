"""The parts of control statements the session acts on, read from their tokens.

SET's assignments, USE's database, KILL's target, CREATE/DROP DATABASE's name and
SHOW's LIKE / FROM / LIMIT / FULL: the session answers these itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.tokens import Token, TokenType

from .lexer import lex
from .tokens import tokenize, word

_SCOPES = {"GLOBAL": "global", "SESSION": "session", "LOCAL": "local"}
_SCOPES_WORDS = {**_SCOPES, "PERSIST": "persist", "PERSIST_ONLY": "persist"}


@dataclass(slots=True, frozen=True)
class Assignment:
    """One `name = value` of a SET; scope '', 'global', 'session', 'local', 'persist',
    'user' (@x), 'names' or 'charset' (then `value` is the character set)."""

    scope: str
    name: str  # lower case ('' for NAMES / CHARACTER SET)
    value: str  # the value's code text, stripped (quotes kept)
    # the whole assignment's code text, as written (`@@session.x = 1`)
    text: str = field(default="", compare=False)


def _tokens(sql: str) -> tuple[str, list[Token]]:
    code = lex(sql).code
    tokens = [t for t in tokenize(code) if t.token_type != TokenType.SEMICOLON]
    return code, tokens


def set_assignments(sql: str) -> list[Assignment]:
    """The assignments of `SET ...` in order ([] when it is not one the proxy reads)."""
    code, tokens = _tokens(sql)
    if not tokens or word(tokens[0]) != "SET":
        return []
    assignments = []
    for part in _top_level_parts(tokens[1:]):
        assignment = _assignment(code, part)
        if assignment is None:
            return []
        assignments.append(assignment)
    return assignments


def is_set_transaction(sql: str) -> bool:
    """`SET TRANSACTION ...`: characteristics of the next transaction only."""
    _, tokens = _tokens(sql)
    return [word(t) for t in tokens[:2]] == ["SET", "TRANSACTION"]


def _top_level_parts(tokens: list[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.COMMA and depth == 0:
            parts.append([])
            continue
        parts[-1].append(token)
    return parts


def _assignment(code: str, part: list[Token]) -> Assignment | None:
    words = [word(t) for t in part]
    if not part:
        return None
    if words[0] == "NAMES" or words[:2] == ["CHARACTER", "SET"] or words[0] == "CHARSET":
        skip = 2 if words[0] == "CHARACTER" else 1
        value = _text(code, part[skip:])
        kind = "names" if words[0] == "NAMES" else "charset"
        return Assignment(kind, "", value, _text(code, part))
    scope = ""
    index = 0
    if part[0].token_type == TokenType.PARAMETER:
        scope, index = "user", 1
    elif part[0].token_type == TokenType.SESSION_PARAMETER:
        index = 1
        if words[2:3] == ["."] and words[1] in _SCOPES:
            scope, index = _SCOPES[words[1]], 3
    elif words[0] in _SCOPES_WORDS:
        scope, index = _SCOPES_WORDS[words[0]], 1
    if index + 1 >= len(part) or part[index + 1].token_type not in (
        TokenType.EQ,
        TokenType.COLON_EQ,
    ):
        return None
    value = _text(code, part[index + 2 :])
    return Assignment(scope, part[index].text.lower(), value, _text(code, part))


def reads_user_variables(assignment: Assignment) -> bool:
    """The value reads a user variable (`@x`, not `@@x`): its text cannot be replayed elsewhere."""
    return any(t.token_type == TokenType.PARAMETER for t in tokenize(assignment.value))


def _text(code: str, tokens: list[Token]) -> str:
    if not tokens:
        return ""
    return code[tokens[0].start : tokens[-1].end + 1].strip()


def unquoted(value: str) -> str:
    """A value's text without its quotes: 'ON' -> ON."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`":
        return value[1:-1]
    return value


@dataclass(slots=True, frozen=True)
class SavepointCommand:
    """`SAVEPOINT x`, `ROLLBACK [WORK] TO [SAVEPOINT] x` or `RELEASE SAVEPOINT x`."""

    action: str  # "SAVEPOINT" | "ROLLBACK" | "RELEASE"
    name: str  # unquoted, as written (compared without regard to case, as MariaDB does)


def savepoint_command(sql: str) -> SavepointCommand | None:
    """The action and the savepoint name (backticks removed), or None if not exactly that."""
    _, tokens = _tokens(sql)
    words = [word(t) for t in tokens]
    if words[:1] == ["SAVEPOINT"]:
        action, rest = "SAVEPOINT", tokens[1:]
    elif words[:2] == ["RELEASE", "SAVEPOINT"]:
        action, rest = "RELEASE", tokens[2:]
    elif words[:1] == ["ROLLBACK"]:
        index = 2 if words[1:2] == ["WORK"] else 1
        if words[index : index + 1] != ["TO"]:
            return None
        index += (
            2 if words[index + 1 : index + 2] == ["SAVEPOINT"] and len(tokens) > index + 2 else 1
        )
        action, rest = "ROLLBACK", tokens[index:]
    else:
        return None
    if len(rest) != 1 or rest[0].token_type in (TokenType.STRING, TokenType.NUMBER):
        return None
    return SavepointCommand(action, rest[0].text)


def use_target(sql: str) -> str | None:
    """The database of `USE db` (None when the statement is not exactly that)."""
    _, tokens = _tokens(sql)
    if len(tokens) == 2 and word(tokens[0]) == "USE":
        return tokens[1].text
    return None


def kill_target(sql: str) -> tuple[int, bool] | None:
    """(session id, query only) of `KILL [CONNECTION | QUERY] id`."""
    _, tokens = _tokens(sql)
    words = [word(t) for t in tokens]
    if words[:1] != ["KILL"]:
        return None
    query_only = words[1:2] == ["QUERY"]
    rest = tokens[2:] if words[1:2] in (["QUERY"], ["CONNECTION"]) else tokens[1:]
    if len(rest) != 1 or rest[0].token_type != TokenType.NUMBER or not rest[0].text.isdigit():
        return None
    return int(rest[0].text), query_only


def database_target(sql: str) -> tuple[str, str] | None:
    """(CREATE or DROP, name) of `CREATE|DROP DATABASE|SCHEMA [IF [NOT] EXISTS] name`."""
    _, tokens = _tokens(sql)
    words = [word(t) for t in tokens]
    if words[:1] not in (["CREATE"], ["DROP"]) or words[1:2] not in (["DATABASE"], ["SCHEMA"]):
        return None
    index = 2
    if words[index : index + 3] == ["IF", "NOT", "EXISTS"]:
        index += 3
    elif words[index : index + 2] == ["IF", "EXISTS"]:
        index += 2
    if index >= len(tokens):
        return None
    return words[0], tokens[index].text


@dataclass(slots=True, frozen=True)
class ShowOptions:
    full: bool
    database: str | None  # FROM / IN db
    like: str | None
    limit: tuple[int, int | None] | None  # LIMIT n or LIMIT offset, count


def show_options(sql: str) -> ShowOptions:
    """FULL, FROM/IN, LIKE and LIMIT of a SHOW statement."""
    code, tokens = _tokens(sql)
    words = [word(t) for t in tokens]
    database = like = limit = None
    for index, text in enumerate(words):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following is None:
            break
        if text in ("FROM", "IN") and database is None:
            database = following.text
        elif text == "LIKE" and following.token_type == TokenType.STRING:
            like = code[following.start + 1 : following.end]  # as written: `\\_` stays
        elif text == "LIMIT" and following.token_type == TokenType.NUMBER:
            numbers = [t for t in tokens[index + 1 : index + 4] if t.token_type == TokenType.NUMBER]
            limit = (int(numbers[0].text), int(numbers[1].text) if len(numbers) > 1 else None)
    return ShowOptions(words[1:2] == ["FULL"], database, like, limit)
