"""A multi-statement COM_QUERY as its statements, each analysed, cut as MariaDB cuts it."""

from __future__ import annotations

from sqlglot.errors import TokenError

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
    whole = analyze(sql)
    if ";" not in sql or (not whole.multiple and whole.code == whole.effective):
        return [whole]  # one statement and no comment after it: tokenized once
    try:
        tokens = tokenize(lex(sql).code)
    except TokenError:
        return [whole]  # unreadable: one statement, which fails as a whole
    bounds = piece_bounds(tokens)
    texts: list[str] = []
    start = 0
    for _, end in bounds:
        if end >= len(tokens):
            texts.append(sql[start:])
            start = len(sql)
            break
        texts.append(sql[start : tokens[end].start])
        start = tokens[end].end + 1
    rest = sql[start:]
    if rest.strip(" \t\r\n;"):
        texts.append(rest)  # only comments (MariaDB answers OK), or `; /* */` (an error)
    if len(texts) == 1 and texts[0] is sql:
        return [whole]
    return [analyze(text) for text in texts] or [whole]
