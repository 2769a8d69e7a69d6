"""Original-text spans of an INSERT's parts, so a split INSERT keeps the client's bytes.

Regenerating SQL from the syntax tree could re-quote strings or change
literals; slicing the client's own text cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import TokenType

_tokenizer = MySQL.Tokenizer()

_ASSIGN = (TokenType.EQ, TokenType.COLON_EQ)


@dataclass(slots=True)
class InsertSpans:
    """Offsets into the statement text; every span is [start, end)."""

    columns_close: int  # the `)` closing the column list; -1 when there is none
    values_start: int  # the VALUES keyword (SET form: the SET keyword)
    values_end: int  # just after VALUES (SET form: just after SET)
    tuples: list[tuple[int, int]]  # each `( ... )` row (SET form: the assignment list)
    tail_start: int  # ON DUPLICATE KEY UPDATE ... / RETURNING ... (or end of text)
    items: list[list[tuple[int, int]]] = field(default_factory=list)  # each value of each row
    set_form: bool = False  # INSERT ... SET col = value, ...


def _insert_tokens(sql: str) -> list:
    tokens = _tokenizer.tokenize(sql)
    if tokens and tokens[0].token_type == TokenType.REPLACE and len(tokens[0].text) == 7:
        # the tokenizer reads the rest of a REPLACE as one command string; REPLACE has
        # INSERT's syntax and "INSERT " its length, so the offsets stay those of `sql`
        at = tokens[0].start
        tokens = _tokenizer.tokenize(sql[:at] + "INSERT " + sql[at + 7 :])
    return tokens


def insert_tuple_spans(sql: str) -> InsertSpans | None:
    """The spans of `INSERT ... VALUES (...), ...` or `INSERT ... SET a = 1, ...`; None otherwise."""
    try:
        tokens = _insert_tokens(sql)
    except Exception:
        return None
    depth = 0
    columns_close = -1
    for index, token in enumerate(tokens):
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
            if depth == 0 and columns_close < 0:
                columns_close = token.start
        elif depth == 0 and kind == TokenType.VALUES:
            return _values(sql, tokens, index, columns_close)
        elif depth == 0 and kind == TokenType.SET:
            return _assignments(sql, tokens, index, columns_close)
    return None


def _values(sql: str, tokens: list, at: int, columns_close: int) -> InsertSpans | None:
    depth = 0
    tuples: list[tuple[int, int]] = []
    items: list[list[tuple[int, int]]] = []
    start = item_start = item_end = -1
    tail_start = len(sql)
    for token in tokens[at + 1 :]:
        kind = token.token_type
        if depth == 1 and kind in (TokenType.COMMA, TokenType.R_PAREN):
            if item_start >= 0:
                items[-1].append((item_start, item_end))
            elif kind == TokenType.COMMA or items[-1]:
                return None  # an empty value: `(1, , 2)`
            item_start = -1
        if kind == TokenType.L_PAREN:
            if depth == 0:
                start = token.start
                items.append([])
                depth += 1
                continue
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                tuples.append((start, token.end + 1))
                continue
        elif depth == 0:
            if kind != TokenType.COMMA:
                tail_start = token.start
                break
            continue
        if depth >= 1 and not (depth == 1 and kind == TokenType.COMMA):
            if item_start < 0:
                item_start = token.start
            item_end = token.end + 1
    if not tuples or depth != 0:
        return None
    return InsertSpans(
        columns_close, tokens[at].start, tokens[at].end + 1, tuples, tail_start, items
    )


def _assignments(sql: str, tokens: list, at: int, columns_close: int) -> InsertSpans | None:
    depth = 0
    values: list[tuple[int, int]] = []
    value_start = value_end = -1
    assigned = False
    tail_start = len(sql)
    for token in tokens[at + 1 :]:
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and kind == TokenType.COMMA:
            if value_start < 0:
                return None
            values.append((value_start, value_end))
            value_start, assigned = -1, False
            continue
        elif depth == 0 and kind in (TokenType.ON, TokenType.RETURNING):
            tail_start = token.start
            break
        elif depth == 0 and kind in _ASSIGN and not assigned:
            assigned = True
            continue
        if assigned:
            if value_start < 0:
                value_start = token.start
            value_end = token.end + 1
    if value_start < 0 or depth != 0:
        return None
    values.append((value_start, value_end))
    set_token = tokens[at]
    assignments = (set_token.end + 1, value_end)
    return InsertSpans(
        columns_close, set_token.start, set_token.end + 1, [assignments], tail_start, [values], True
    )


@dataclass(frozen=True, slots=True)
class InsertSelectSpans:
    """Offsets of `INSERT ... [(cols)] SELECT ... [ON DUPLICATE KEY UPDATE ...]`."""

    select_start: int  # SELECT, WITH, or the `(` around the SELECT
    select_end: int  # just after the SELECT's last token
    tail_start: int  # ON DUPLICATE KEY UPDATE ... (or end of text)


def insert_select_spans(sql: str) -> InsertSelectSpans | None:
    """The spans of an INSERT (or REPLACE) whose rows come from a SELECT; None otherwise."""
    try:
        tokens = _insert_tokens(sql)
    except Exception:
        return None
    depth = 0
    start = -1
    end = len(sql)
    last_end = -1
    for index, token in enumerate(tokens):
        kind = token.token_type
        if start < 0:
            following = tokens[index + 1].token_type if index + 1 < len(tokens) else None
            if depth == 0 and (
                kind in (TokenType.SELECT, TokenType.WITH)
                or (kind == TokenType.L_PAREN and following in (TokenType.SELECT, TokenType.WITH))
            ):
                start = token.start
            elif kind == TokenType.L_PAREN:
                depth += 1
                continue
            elif kind == TokenType.R_PAREN:
                depth -= 1
                continue
            else:
                continue
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif (
            depth == 0
            and kind == TokenType.ON
            and index + 1 < len(tokens)
            and tokens[index + 1].text.upper() == "DUPLICATE"
        ):
            end = token.start
            break
        last_end = token.end + 1
    if start < 0 or last_end <= start:
        return None
    return InsertSelectSpans(start, last_end, end)
