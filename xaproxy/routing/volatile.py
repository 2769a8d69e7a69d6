"""Expressions whose value differs from one evaluation to the next.

A write that runs on several shards evaluates them once per shard: the copies
of a broadcast row would differ, and the rows of one multi-row INSERT split
over shards would get several NOW()s where one server gives one. In an INSERT's
values the proxy evaluates each such call once and writes its value everywhere
(`volatile_spans`, session/volatile_values.py); other such writes are refused.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import TokenType

_tokenizer = MySQL.Tokenizer()

_VOLATILE_NODES: dict[type, str] = {
    exp.Rand: "RAND()",
    exp.Uuid: "UUID()",
    exp.CurrentTimestamp: "CURRENT_TIMESTAMP",
    exp.CurrentDate: "CURRENT_DATE",
    exp.CurrentTime: "CURRENT_TIME",
    exp.UtcTimestamp: "UTC_TIMESTAMP()",
    exp.UtcDate: "UTC_DATE()",
    exp.UtcTime: "UTC_TIME()",
}

# The clock's functions: one value for the whole statement (MariaDB's start time).
STATEMENT_CONSTANT = frozenset(
    {
        "NOW",
        "CURDATE",
        "CURTIME",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "CURRENT_TIMESTAMP",
        "CURRENT_TIME",
        "CURRENT_DATE",
        "UTC_TIMESTAMP",
        "UTC_DATE",
        "UTC_TIME",
        "UNIX_TIMESTAMP",
    }
)
# Calls one evaluation can stand for in an INSERT's VALUES: MariaDB evaluates each
# occurrence once for its row (NOW() once per statement), so the proxy may evaluate each
# occurrence once and write its value on every shard.
_ONCE_PER_OCCURRENCE = STATEMENT_CONSTANT | {"SYSDATE", "RAND", "UUID", "UUID_SHORT"}

_VOLATILE_NAMES = _ONCE_PER_OCCURRENCE | {
    "RANDOM_BYTES",
    "SYS_GUID",
    "CONNECTION_ID",
    "LAST_INSERT_ID",
    "NEXTVAL",
    "LASTVAL",
    "SETVAL",
    "ROW_COUNT",
    "FOUND_ROWS",
    "SLEEP",
    "BENCHMARK",
}


def volatile_expression(ast: exp.Expression) -> str | None:
    """The first non-deterministic call in `ast` (as MariaDB spells it), else None."""
    for node in ast.walk():
        for cls, name in _VOLATILE_NODES.items():
            if isinstance(node, cls):
                return name
        if isinstance(node, exp.Anonymous) and str(node.name).upper() in _VOLATILE_NAMES:
            return f"{str(node.name).upper()}()"
        if isinstance(node, exp.Func) and node.sql_name().upper() in _VOLATILE_NAMES:
            return f"{node.sql_name().upper()}()"
    return None


# Volatile calls also written without parentheses
_BARE = frozenset(
    {
        "CURRENT_TIMESTAMP",
        "CURRENT_TIME",
        "CURRENT_DATE",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "UTC_TIMESTAMP",
        "UTC_DATE",
        "UTC_TIME",
    }
)
_CONSTANT_ARGUMENTS = frozenset({TokenType.NUMBER, TokenType.COMMA, TokenType.STRING})


def volatile_spans(sql: str) -> list[tuple[int, int]] | None:
    """The [start, end) spans of each volatile call in `sql` that can be evaluated once
    (`NOW()`, `NOW(6)`, `UUID()`, `CURRENT_TIMESTAMP`, `RAND()`); None when some call
    cannot (arguments that are not constants, another volatile function)."""
    try:
        tokens = _tokenizer.tokenize(sql)
    except Exception:
        return None
    spans: list[tuple[int, int]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name = token.text.upper()
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        opens = following is not None and following.token_type == TokenType.L_PAREN
        if token.token_type in (TokenType.IDENTIFIER, TokenType.STRING) or (
            name not in _VOLATILE_NAMES and name not in _BARE
        ):
            index += 1
            continue
        if name not in _ONCE_PER_OCCURRENCE:
            return None
        if not opens:
            if name not in _BARE:
                index += 1  # NOW without parentheses is a name, not a call
                continue
            spans.append((token.start, token.end + 1))
            index += 1
            continue
        close = index + 2
        while close < len(tokens) and tokens[close].token_type in _CONSTANT_ARGUMENTS:
            close += 1
        if close >= len(tokens) or tokens[close].token_type != TokenType.R_PAREN:
            return None
        spans.append((token.start, tokens[close].end + 1))
        index = close + 1
    return spans
