"""Offsets and slices of a statement's own text: `?` markers, select items, :pN holes.

Slicing the client's text keeps its bytes (quoting, literals) exactly as sent.
"""

from __future__ import annotations

from sqlglot.tokens import TokenType

from .lexer import lex
from .tokens import tokenize, word


def placeholders(sql: str) -> tuple[list[int], frozenset[int]]:
    """The `?` parameter markers (not those inside strings or comments), in one pass:
    their character offsets, and the numbers (0-based) of those that are a LIMIT's row
    count or offset (`LIMIT ?`, `LIMIT 1, ?`, `LIMIT ? OFFSET ?`), whose bound values
    MariaDB converts by its own rules (session/limit_values.py)."""
    if "?" not in sql:
        return [], frozenset()
    offsets: list[int] = []
    in_limit: set[int] = set()
    expecting = 0  # 1: a LIMIT's first operand, 2: after it, 3: its second operand
    for token in tokenize(lex(sql).code):
        kind = token.token_type
        if kind == TokenType.PLACEHOLDER:
            if expecting in (1, 3):
                in_limit.add(len(offsets))
            offsets.append(token.start)
        if expecting in (1, 3) and kind in (TokenType.PLACEHOLDER, TokenType.NUMBER):
            expecting = 2 if expecting == 1 else 0
        elif expecting == 2 and (kind == TokenType.COMMA or word(token) == "OFFSET"):
            expecting = 3
        else:
            expecting = 1 if word(token) == "LIMIT" else 0
    return offsets, frozenset(in_limit)


def placeholder_offsets(sql: str) -> list[int]:
    """Character offsets of the `?` parameter markers (see `placeholders`)."""
    return placeholders(sql)[0]


def limit_placeholders(sql: str) -> frozenset[int]:
    """Numbers of the `?` markers that are a LIMIT's operands (see `placeholders`)."""
    return placeholders(sql)[1]


_SELECT_ITEM_ENDS = frozenset(
    {
        TokenType.FROM,
        TokenType.LIMIT,
        TokenType.WHERE,
        TokenType.INTO,
        TokenType.ORDER_BY,
        TokenType.GROUP_BY,
        TokenType.HAVING,
        TokenType.SEMICOLON,
        TokenType.UNION,
        TokenType.EXCEPT,
        TokenType.INTERSECT,
    }
)
# Select options before the first item; MySQL does not name the column after them.
_SELECT_OPTIONS = frozenset(
    {
        "ALL",
        "DISTINCT",
        "DISTINCTROW",
        "HIGH_PRIORITY",
        "STRAIGHT_JOIN",
        "SQL_SMALL_RESULT",
        "SQL_BIG_RESULT",
        "SQL_BUFFER_RESULT",
        "SQL_NO_CACHE",
        "SQL_CACHE",
        "SQL_CALC_FOUND_ROWS",
    }
)


def select_item_texts(sql: str) -> list[str]:
    """Original text of each top-level select-list item: MySQL names columns after it."""
    items: list[str] = []
    depth = 0
    start = None
    end = None
    for token in tokenize(sql):
        if start is None:
            if token.token_type == TokenType.SELECT:
                start = -1
            continue
        if depth == 0 and token.token_type in _SELECT_ITEM_ENDS:
            break
        if not items and start == -1 and word(token) in _SELECT_OPTIONS:
            continue
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


def split_at_placeholders(sql: str) -> tuple[list[str], list[int]] | None:
    """Text around each :pN placeholder, and each N; None if the text does not tokenize."""
    try:
        tokens = tokenize(sql)
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
