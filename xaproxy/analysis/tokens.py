"""The one tokenizer of client statements: sqlglot's MySQL tokenizer on the code text."""

from __future__ import annotations

from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import Token, TokenType


class _StatementTokenizer(MySQL.Tokenizer):
    # sqlglot folds the rest of a REPLACE, LOCK TABLES, RENAME ... into one string
    # token; the analysis needs their names and `?` markers as tokens.
    COMMANDS: set[TokenType] = set()


_tokenizer = _StatementTokenizer()

# Token types that carry no keyword: their text is a value or a name, never a word.
VALUE_TYPES = frozenset(
    {
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.HEX_STRING,
        TokenType.BIT_STRING,
        TokenType.BYTE_STRING,
        TokenType.NUMBER,
        TokenType.IDENTIFIER,
    }
)


# Enum members hash in Python code: sets of their ids are looked up several times faster.
def type_ids(types: frozenset[TokenType] | set[TokenType]) -> frozenset[int]:
    """Ids of token types, for `id(token.token_type) in ...` on hot paths."""
    return frozenset(id(t) for t in types)


_VALUE_IDS = type_ids(VALUE_TYPES)


def tokenize(code: str) -> list[Token]:
    """Tokens of comment-free code (raises sqlglot's TokenError on text it cannot read)."""
    return _tokenizer.tokenize(code)


def word(token: Token) -> str:
    """The upper-case keyword text of a token ('' for strings, numbers, quoted names)."""
    if id(token.token_type) in _VALUE_IDS:
        return ""
    text = token.text
    if " " in text or "\t" in text or "\n" in text:
        return " ".join(text.split()).upper()
    return text.upper()
