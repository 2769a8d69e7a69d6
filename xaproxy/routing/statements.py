"""What kind of statement a client sent, decided before any routing.

Control statements (transactions, session settings, USE, SHOW of proxy state)
are recognised from their leading keywords so they never pay a full parse;
everything else is parsed once with sqlglot and cached by its text.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

logging.getLogger("sqlglot").setLevel(logging.ERROR)

_DIALECT = "mysql"
_tokenizer = MySQL.Tokenizer()


class _MarkerTokenizer(MySQL.Tokenizer):
    # MySQL's tokenizer swallows everything after a leading REPLACE into one
    # string token, which hid the `?` markers of prepared REPLACE statements.
    COMMANDS = MySQL.Tokenizer.COMMANDS - {TokenType.REPLACE}


_marker_tokenizer = _MarkerTokenizer()


class Kind(enum.Enum):
    ROUTED = "routed"  # runs on shards
    BEGIN = "begin"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SAVEPOINT = "savepoint"  # SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT
    SET = "set"
    USE = "use"
    SHOW_DATABASES = "show_databases"
    SHOW_TABLES = "show_tables"
    SHOW_WARNINGS = "show_warnings"
    SHOW_ERRORS = "show_errors"
    SHOW_WARNING_COUNT = "show_warning_count"
    SHOW_ERROR_COUNT = "show_error_count"
    LOCAL_SELECT = "local_select"  # answered from session state
    XA = "xa"
    KILL = "kill"
    CREATE_DATABASE = "create_database"
    DROP_DATABASE = "drop_database"
    PROXY = "proxy"  # the proxy's own commands (XAPROXY ...)
    LOAD_DATA_LOCAL = "load_data_local"
    EMPTY = "empty"


_LEADING_NOISE = re.compile(
    r"(?:\s+|/\*(?!!).*?\*/|#[^\n]*(?:\n|$)|--(?:\s[^\n]*)?(?:\n|$))*", re.S
)

_KEYWORD_KINDS: list[tuple[re.Pattern[str], Kind]] = [
    (re.compile(r"(?:BEGIN(?:\s+WORK)?|START\s+TRANSACTION\b.*)\s*$", re.I | re.S), Kind.BEGIN),
    (
        re.compile(r"COMMIT(?:\s+WORK)?(?:\s+AND\s+NO\s+CHAIN)?(?:\s+NO\s+RELEASE)?\s*$", re.I),
        Kind.COMMIT,
    ),
    (
        re.compile(r"ROLLBACK(?:\s+WORK)?(?:\s+AND\s+NO\s+CHAIN)?(?:\s+NO\s+RELEASE)?\s*$", re.I),
        Kind.ROLLBACK,
    ),
    (
        re.compile(r"(?:SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK(?:\s+WORK)?\s+TO)\b", re.I),
        Kind.SAVEPOINT,
    ),
    (re.compile(r"SET\b", re.I), Kind.SET),
    (re.compile(r"USE\b", re.I), Kind.USE),
    (re.compile(r"SHOW\s+(?:DATABASES|SCHEMAS)\b", re.I), Kind.SHOW_DATABASES),
    (re.compile(r"SHOW\s+(?:FULL\s+)?TABLES\b", re.I), Kind.SHOW_TABLES),
    (re.compile(r"SHOW\s+COUNT\s*\(\s*\*\s*\)\s+WARNINGS\s*$", re.I), Kind.SHOW_WARNING_COUNT),
    (re.compile(r"SHOW\s+COUNT\s*\(\s*\*\s*\)\s+ERRORS\s*$", re.I), Kind.SHOW_ERROR_COUNT),
    (re.compile(r"SHOW\s+WARNINGS\b", re.I), Kind.SHOW_WARNINGS),
    (re.compile(r"SHOW\s+ERRORS\b", re.I), Kind.SHOW_ERRORS),
    (re.compile(r"XA\b", re.I), Kind.XA),
    (re.compile(r"KILL\b", re.I), Kind.KILL),
    (re.compile(r"(?:CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b", re.I), Kind.CREATE_DATABASE),
    (re.compile(r"XAPROXY\b", re.I), Kind.PROXY),
    (
        re.compile(r"LOAD\s+(?:DATA|XML)\s+(?:LOW_PRIORITY\s+|CONCURRENT\s+)?LOCAL\b", re.I),
        Kind.LOAD_DATA_LOCAL,
    ),
]

# Names whose value the proxy owns, so a SELECT of them is answered locally.
LOCAL_FUNCTIONS = {"LAST_INSERT_ID", "CONNECTION_ID"}
LOCAL_VARIABLES = {
    "autocommit",
    "warning_count",
    "error_count",
    "in_transaction",
    "last_insert_id",
    "identity",
}
_LOCAL_HINT = re.compile(
    r"last_insert_id|connection_id|autocommit|warning_count|error_count|in_transaction|identity",
    re.I,
)
# DATABASE() / SCHEMA(): a pooled shard connection may hold another session's
# database. Only short statements are checked, to keep huge INSERTs cheap.
_SCHEMA_CALL_HINT = re.compile(r"(?:database|schema)\s*\(", re.I)


def strip_leading_noise(sql: str) -> str:
    return sql[_LEADING_NOISE.match(sql).end() :]


def classify_keywords(sql: str) -> Kind | None:
    """The kind of a control statement, or None when the statement must be parsed."""
    body = strip_leading_noise(sql)
    if not body or body.startswith(";"):
        return Kind.EMPTY
    for pattern, kind in _KEYWORD_KINDS:
        if pattern.match(body):
            if kind is Kind.CREATE_DATABASE and body[:4].upper() == "DROP":
                return Kind.DROP_DATABASE
            return kind
    return None


def needs_local_answer(sql: str) -> bool:
    if len(sql) < 2048 and _SCHEMA_CALL_HINT.search(sql) is not None:
        return True
    return _LOCAL_HINT.search(sql) is not None


@dataclass(slots=True, frozen=True)
class Parsed:
    ast: exp.Expression | None
    error: str | None = None


def parse(sql: str) -> Parsed:
    try:
        ast = sqlglot.parse_one(sql, read=_DIALECT)
    except (ParseError, TokenError) as exc:
        return Parsed(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:  # sqlglot raises others on odd input; never crash the session
        return Parsed(None, f"{type(exc).__name__}: {exc}")
    return Parsed(ast)


def split_statements(sql: str) -> list[str]:
    """Splits a multi-statement COM_QUERY at top-level semicolons, keeping original text."""
    if ";" not in sql:
        return [sql]
    try:
        tokens = _tokenizer.tokenize(sql)
    except Exception:
        return [sql]
    pieces: list[str] = []
    start = 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            piece = sql[start : token.start]
            if piece.strip():
                pieces.append(piece)
            start = token.end + 1
    tail = sql[start:]
    if tail.strip() or not pieces:
        pieces.append(tail)
    return pieces


def placeholder_offsets(sql: str) -> list[int]:
    """Character offsets of the `?` parameter markers (not those inside strings or comments)."""
    if "?" not in sql:
        return []
    tokens = _marker_tokenizer.tokenize(sql)
    return [t.start for t in tokens if t.token_type == TokenType.PLACEHOLDER]


def select_item_texts(sql: str) -> list[str]:
    """Original text of each top-level select-list item: MySQL names columns after it."""
    tokens = _tokenizer.tokenize(sql)
    items: list[str] = []
    depth = 0
    start = None
    end = None
    stop = {
        TokenType.FROM,
        TokenType.LIMIT,
        TokenType.WHERE,
        TokenType.INTO,
        TokenType.ORDER_BY,
        TokenType.GROUP_BY,
        TokenType.HAVING,
        TokenType.SEMICOLON,
    }
    for token in tokens:
        if start is None:
            if token.token_type == TokenType.SELECT:
                start = -1
            continue
        if depth == 0 and token.token_type in stop:
            break
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        if depth == 0 and token.token_type == TokenType.COMMA:
            items.append(sql[start:end])
            start = -1
            continue
        if start == -1:
            start = token.start
        end = token.end + 1
    if start not in (None, -1):
        items.append(sql[start:end])
    return [item.strip() for item in items]


# Literals a template replaces with :pN placeholders. Numbers after ORDER BY,
# GROUP BY or LIMIT stay: there they are ordinals or row counts, not values.
_LITERAL_TOKENS = {TokenType.NUMBER, TokenType.STRING, TokenType.NATIONAL_STRING}
_CLAUSE_ENDS = {TokenType.ORDER_BY, TokenType.GROUP_BY, TokenType.LIMIT}


def split_at_placeholders(sql: str) -> tuple[list[str], list[int]] | None:
    """Text around each :pN placeholder, and each N; None if the text does not tokenize."""
    try:
        tokens = _tokenizer.tokenize(sql)
    except Exception:
        return None
    pieces: list[str] = []
    params: list[int] = []
    position = 0
    for token in tokens:
        text = token.text
        if (
            token.token_type == TokenType.VAR
            and text[:1] == "p"
            and text[1:].isdigit()
            and sql[token.start - 1 : token.start] == ":"
        ):
            pieces.append(sql[position : token.start - 1])
            params.append(int(text[1:]))
            position = token.end + 1
    pieces.append(sql[position:])
    return pieces, params


def normalize(sql: str) -> tuple[str, list[object]] | None:
    """(template text with :pN for each literal, the literal values), or None if none.

    Statements differing only in their literals share one template, so they share
    one parse; the values are bound again for routing.
    """
    if "\\" in sql:
        return None  # the tokenizer's text of an escaped string is not its value: parse as is
    try:
        tokens = _tokenizer.tokenize(sql)
    except Exception:
        return None
    pieces: list[str] = []
    values: list[object] = []
    position = 0
    for token in tokens:
        kind = token.token_type
        if kind in _CLAUSE_ENDS:
            break
        if kind not in _LITERAL_TOKENS:
            continue
        if kind == TokenType.NUMBER:
            text = token.text
            if not text[:1].isdigit() or sql[token.start - 1 : token.start] == ".":
                continue  # `.5` and friends: keep the literal as written
            try:
                value: object = int(text)
            except ValueError:
                try:
                    value = Decimal(text)
                except InvalidOperation:
                    continue
        else:
            value = token.text
        pieces.append(sql[position : token.start])
        pieces.append(f":p{len(values)}")
        values.append(value)
        position = token.end + 1
    if not values:
        return None
    pieces.append(sql[position:])
    return "".join(pieces), values


_LONG_LITERAL = re.compile(r"'(?:[^'\\]+|\\.|'')*'|\"(?:[^\"\\]+|\\.|\"\")*\"", re.S)


def skeleton(sql: str) -> str:
    """`sql` with string literals longer than 1 KiB emptied: enough to route a huge statement."""
    return _LONG_LITERAL.sub(lambda m: m.group(0) if len(m.group(0)) < 1024 else "''", sql)
