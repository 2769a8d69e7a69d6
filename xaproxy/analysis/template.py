"""A statement's literals lifted out, so statements differing only in them share a plan."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlglot.tokens import Token, TokenType

# Literals a template replaces with :pN placeholders. Numbers after ORDER BY,
# GROUP BY or LIMIT stay: there they are ordinals or row counts, not values.
_LITERAL_TOKENS = frozenset({TokenType.NUMBER, TokenType.STRING, TokenType.NATIONAL_STRING})
_CLAUSE_ENDS = frozenset({TokenType.ORDER_BY, TokenType.GROUP_BY, TokenType.LIMIT})
_LONG_LITERAL = 1024
_LITERAL_IDS = frozenset(id(t) for t in _LITERAL_TOKENS)
_CLAUSE_END_IDS = frozenset(id(t) for t in _CLAUSE_ENDS)


def literal_template(code: str, tokens: list[Token]) -> tuple[str, tuple[object, ...]] | None:
    """(code with :pN for each literal, the literal values), or None when there are none."""
    pieces: list[str] = []
    values: list[object] = []
    position = 0
    previous: Token | None = None
    for token in tokens:
        kind = token.token_type
        if id(kind) in _CLAUSE_END_IDS:
            break
        before, previous = previous, token
        if id(kind) not in _LITERAL_IDS:
            continue
        if before is not None and before.text.startswith("_") and kind != TokenType.NUMBER:
            continue  # _utf8mb4'x': the introducer and its string are one literal
        if kind == TokenType.NUMBER:
            text = token.text
            if not text[:1].isdigit() or code[token.start - 1 : token.start] == ".":
                continue  # `.5` and friends: keep the literal as written
            try:
                value: object = int(text)
            except ValueError:
                try:
                    value = Decimal(text)
                except InvalidOperation:
                    continue
        else:
            if "\\" in code[token.start : token.end + 1]:
                return None  # the token's text of an escaped string is not its value
            value = token.text
        pieces.append(code[position : token.start])
        pieces.append(f":p{len(values)}")
        values.append(value)
        position = token.end + 1
    if not values:
        return None
    pieces.append(code[position:])
    return "".join(pieces), tuple(values)


def skeleton_of(code: str, tokens: list[Token]) -> str:
    """`code` with string literals longer than 1 KiB emptied: enough to route a huge statement."""
    pieces: list[str] = []
    position = 0
    for token in tokens:
        if token.token_type in _LITERAL_TOKENS and token.end + 1 - token.start >= _LONG_LITERAL:
            pieces.append(code[position : token.start])
            pieces.append("''")
            position = token.end + 1
    pieces.append(code[position:])
    return "".join(pieces)
