"""A multi-statement COM_QUERY as its statements, each analysed, cut as MariaDB cuts it."""

from __future__ import annotations

from .compound import piece_bounds
from .lexer import lex
from .statement import Statement, analyze
from .tokens import tokenize


def split_statements(sql: str) -> list[Statement]:
    """The statements of `sql`, in order; a body's inner `;` never ends one.

    Trailing `;` and whitespace end the text as on MariaDB; a trailing comment is a
    statement of its own (the server answers it OK); an empty statement between two
    others stays, so running it fails as the server's does.
    """
    if ";" not in sql:
        return [analyze(sql)]
    lexed = lex(sql)
    try:
        tokens = tokenize(lexed.code)
    except Exception:
        return [analyze(sql)]  # unreadable: one statement, which the session refuses or forwards
    bounds = piece_bounds(tokens)
    if len(bounds) <= 1:
        return [analyze(sql)]
    pieces: list[Statement] = []
    start = 0
    for index, (first, _) in enumerate(bounds):
        if index + 1 < len(bounds):
            next_first = bounds[index + 1][0]
            end = tokens[next_first - 1].start  # the `;` before the next statement
        else:
            end = len(sql)
        if first < len(tokens) and index > 0:
            start = tokens[first - 1].end + 1  # just after the `;` that ended the last one
        pieces.append(analyze(sql[start:end]))
        start = end + 1
    return pieces
