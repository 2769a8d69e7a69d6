"""Original-text spans of an INSERT's parts, so a split INSERT keeps the client's bytes.

Regenerating SQL from the syntax tree could re-quote strings or change
literals; slicing the client's own text cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import TokenType

_tokenizer = MySQL.Tokenizer()


@dataclass(slots=True)
class InsertSpans:
    columns_close: int  # offset of the `)` closing the column list
    values_end: int  # offset just after the VALUES keyword
    tuples: list[tuple[int, int]]  # [start, end) of each `( ... )` row
    tail_start: int  # ON DUPLICATE KEY UPDATE ... (or end of text)


def insert_tuple_spans(sql: str) -> InsertSpans | None:
    try:
        tokens = _tokenizer.tokenize(sql)
    except Exception:
        return None
    depth = 0
    columns_close = -1
    values_end = -1
    tuples: list[tuple[int, int]] = []
    start = -1
    tail_start = len(sql)
    for token in tokens:
        kind = token.token_type
        if values_end < 0:
            if kind == TokenType.L_PAREN:
                depth += 1
            elif kind == TokenType.R_PAREN:
                depth -= 1
                if depth == 0 and columns_close < 0:
                    columns_close = token.start
            elif kind == TokenType.VALUES and depth == 0:
                values_end = token.end + 1
            continue
        if kind == TokenType.L_PAREN:
            if depth == 0:
                start = token.start
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                tuples.append((start, token.end + 1))
        elif depth == 0 and kind not in (TokenType.COMMA,):
            tail_start = token.start
            break
    if values_end < 0 or not tuples:
        return None
    return InsertSpans(columns_close, values_end, tuples, tail_start)
