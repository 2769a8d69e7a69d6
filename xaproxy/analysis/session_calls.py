"""ROW_COUNT() and FOUND_ROWS() written into a statement as the values the session has.

Both return what the session's previous statement left, fixed for the whole statement,
and the proxy keeps them (a pooled shard connection may have run another session's
statement since). A statement that uses them anywhere but alone in a SELECT is sent with
each call replaced by its value, so whichever shard runs it computes what MariaDB would.
"""

from __future__ import annotations

from sqlglot.tokens import TokenType

from .statement import Statement

COUNT_FUNCTIONS = frozenset({"ROW_COUNT", "FOUND_ROWS"})


def with_values(statement: Statement, values: dict[str, int]) -> str:
    """The statement's effective text with every `ROW_COUNT()` / `FOUND_ROWS()` call (not
    `db.row_count()`, a stored function) replaced by `(value)`."""
    tokens = statement.tokens
    text = statement.effective
    edits: list[tuple[int, int, str]] = []
    for index in range(len(tokens) - 2):
        token = tokens[index]
        name = token.text.upper()
        if (
            name in values
            and token.token_type is TokenType.VAR
            and tokens[index + 1].token_type is TokenType.L_PAREN
            and tokens[index + 2].token_type is TokenType.R_PAREN
            and (index == 0 or tokens[index - 1].token_type is not TokenType.DOT)
        ):
            edits.append((token.start, tokens[index + 2].end + 1, f"({values[name]})"))
    pieces = []
    at = 0
    for start, end, value in edits:
        pieces.append(text[at:start])
        pieces.append(value)
        at = end
    pieces.append(text[at:])
    return "".join(pieces)
