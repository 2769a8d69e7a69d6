"""Where a statement calls USER() & co., and whether the proxy can put its own value there.

On a shard these functions answer the shard's account, never the client's, so the
session replaces each call with the proxy user's value before the statement goes
on (session/local.py), or refuses the statement when the replacement would not be
exact: where a call's text would become a result column's name, or where it runs
later in another context (a view, a stored program, a prepared text).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.tokens import Token, TokenType

from .tokens import word

# The client's account, which a shard would answer with its own.
ACCOUNT_FUNCTIONS = frozenset({"USER", "CURRENT_USER", "SESSION_USER", "SYSTEM_USER"})
# A name followed by `(` after these is a table, index or routine, not a call.
_NAMING_WORDS = frozenset(
    {"INTO", "TABLE", "EXISTS", "REFERENCES", "JOIN", "FROM", "UPDATE", "ON", "INDEX", "CALL"}
    | {"PROCEDURE", "FUNCTION", "KEY", "REPLACE", "INSERT", "VIEW", "TRIGGER", "EVENT"}
    | {"USER", "DEFINER", "GRANT", "TO", "DROP", "ALTER", "RENAME", "LIKE", "EXISTS"}
)
# Clauses after which a value never names a result column.
_HIDDEN_CLAUSES = frozenset({"WHERE", "HAVING", "GROUP", "ORDER", "LIMIT", "INTO", "ON"})
_SET_OPERATORS = frozenset({"UNION", "INTERSECT", "EXCEPT"})


@dataclass(frozen=True, slots=True)
class AccountCall:
    """One call: `name` (CURRENT_USER or another), its offsets in the code [start, end)."""

    name: str
    start: int
    end: int
    # it stands where its text could name a result column: a select list (of the
    # statement, a derived table or a set operation), not WHERE/HAVING/ORDER BY/ON
    visible: bool


def account_calls(tokens: list[Token]) -> list[AccountCall] | None:
    """Every call of USER(), CURRENT_USER[()], SESSION_USER(), SYSTEM_USER() in `tokens`;
    None when one is written in a form the proxy does not rewrite (with arguments)."""
    found: list[AccountCall] = []
    words = [word(t) for t in tokens]
    depth = 0
    hidden_at_depth: set[int] = set()
    set_operation = False
    count = len(tokens)
    index = 0
    while index < count:
        token = tokens[index]
        text = words[index]
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            hidden_at_depth.discard(depth)
            depth -= 1
        elif text in _HIDDEN_CLAUSES:
            hidden_at_depth.add(depth)
        elif text == "SELECT":
            hidden_at_depth.discard(depth)
        elif text in _SET_OPERATORS:
            set_operation = True
        if text not in ACCOUNT_FUNCTIONS or token.token_type == TokenType.IDENTIFIER:
            index += 1
            continue
        before = words[index - 1] if index else ""
        if before in _NAMING_WORDS or before == "." or _after_definer(words, index):
            index += 1
            continue
        visible = set_operation or not any(d <= depth for d in hidden_at_depth)
        if words[index + 1 : index + 2] == ["("]:
            if words[index + 2 : index + 3] != [")"]:
                return None
            end = tokens[index + 2].end + 1
            found.append(AccountCall(text, token.start, end, visible))
            index += 3
            continue
        if text == "CURRENT_USER":
            found.append(AccountCall(text, token.start, token.end + 1, visible))
        index += 1
    return found


def _after_definer(words: list[str], index: int) -> bool:
    """`DEFINER = CURRENT_USER`: the clause, not a call (the allowlist reads it)."""
    return index >= 2 and words[index - 1] == "=" and words[index - 2] == "DEFINER"
