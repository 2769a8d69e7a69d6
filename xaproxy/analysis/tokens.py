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


# Tokens that are names as written: bare words the tokenizer did not take as keywords,
# and quoted identifiers.
NAME_TYPES = frozenset({TokenType.VAR, TokenType.IDENTIFIER})


def dotted_name(
    tokens: list[Token], index: int, stop_words: frozenset[str] = frozenset()
) -> tuple[list[str], int]:
    """The parts of a possibly dotted name at `index` (`d.t`, `` `d`.`t` ``, a keyword
    used as a name) and the index after it; a bare word in `stop_words` ends the name."""
    parts: list[str] = []
    while index < len(tokens):
        token = tokens[index]
        if token.token_type not in NAME_TYPES and not (
            token.token_type != TokenType.STRING and token.text[:1].isalpha()
        ):
            break
        if token.token_type != TokenType.IDENTIFIER and word(token) in stop_words:
            break
        parts.append(token.text)
        index += 1
        if index < len(tokens) and tokens[index].token_type == TokenType.DOT:
            index += 1
            continue
        break
    return parts, index
