"""The parts of a `LOAD DATA|XML LOCAL INFILE` statement the proxy acts on, read from its
tokens: the target table, how duplicates are handled, the column list and the SET
targets. Everything else (the file's format, character set, lines to skip) is left as
written: the shard that reads the file applies it.

>>> load = parse(analyze("LOAD DATA LOCAL INFILE 'f' IGNORE INTO TABLE db.t (a, @v) SET b = @v"))
>>> load.table, load.database, load.duplicates, load.columns, load.set_targets
('t', 'db', 'ignore', ('a', '@v'), ('b',))
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.tokens import Token, TokenType

from .. import errors
from .statement import Statement, analyze
from .tokens import word

__all__ = ["LoadData", "analyze", "parse"]

_NAME_TYPES = frozenset({TokenType.VAR, TokenType.IDENTIFIER})


@dataclass(frozen=True, slots=True)
class LoadData:
    """Offsets are into the statement's effective text; `end` offsets are exclusive."""

    xml: bool
    database: str | None
    table: str
    table_start: int
    table_end: int
    duplicates: str  # "insert" (neither keyword: LOCAL skips duplicates), "ignore", "replace"
    partition: bool
    columns: tuple[str, ...] | None  # as written: names, and `@name` for user variables
    list_start: int  # where the column list starts, or where one would go
    list_end: int  # after it (list_start when there is none)
    set_targets: tuple[str, ...]
    variables: frozenset[str]  # user variables named anywhere after the table (lower case)


def _malformed() -> errors.ProxyError:
    return errors.parse_error("expected LOAD DATA|XML LOCAL INFILE 'file' ... INTO TABLE name")


def parse(statement: Statement) -> LoadData:
    """The LOAD statement's parts; a syntax error when it does not have the expected form
    (MariaDB's own error comes from the shard when the proxy forwards it unchanged)."""
    tokens = list(statement.tokens)
    words = [word(t) for t in tokens]
    if words[:1] != ["LOAD"] or words[1:2] not in (["DATA"], ["XML"]):
        raise _malformed()
    i = 2
    while i < len(words) and words[i] in ("LOW_PRIORITY", "CONCURRENT"):
        i += 1
    if words[i : i + 2] != ["LOCAL", "INFILE"] or i + 2 >= len(tokens):
        raise _malformed()
    if tokens[i + 2].token_type is not TokenType.STRING:
        raise _malformed()
    i += 3
    duplicates = "insert"
    if i < len(words) and words[i] in ("REPLACE", "IGNORE"):
        duplicates = words[i].lower()
        i += 1
    if words[i : i + 2] != ["INTO", "TABLE"] or i + 2 >= len(tokens):
        raise _malformed()
    i += 2
    database, table, table_start, table_end, i = _table_name(tokens, i)
    partition = i < len(words) and words[i] == "PARTITION"
    if partition:
        i = _past_parentheses(tokens, i + 1)
    end = tokens[-1].end + 1
    list_start = list_end = end
    columns: tuple[str, ...] | None = None
    variables: set[str] = set()
    set_at = None
    j = i
    while j < len(tokens):
        kind = tokens[j].token_type
        if kind is TokenType.L_PAREN and columns is None and set_at is None:
            close = _past_parentheses(tokens, j)
            columns = tuple(_column_items(tokens[j + 1 : close - 1]))
            list_start, list_end = tokens[j].start, tokens[close - 1].end + 1
            j = close
            continue
        if kind is TokenType.SET and words[j - 1] not in ("CHARACTER", "CHAR"):
            set_at = j
            break
        j += 1
    set_targets: tuple[str, ...] = ()
    if set_at is not None:
        if columns is None:
            list_start = list_end = tokens[set_at].start
        set_targets = _set_targets(tokens[set_at + 1 :])
    for k in range(i, len(tokens) - 1):
        if (
            tokens[k].token_type is TokenType.PARAMETER
            and tokens[k + 1].token_type in _NAME_TYPES
            and tokens[k - 1].token_type is not TokenType.PARAMETER  # not @@system
        ):
            variables.add(tokens[k + 1].text.lower())
    return LoadData(
        xml=words[1] == "XML",
        database=database,
        table=table,
        table_start=table_start,
        table_end=table_end,
        duplicates=duplicates,
        partition=partition,
        columns=columns,
        list_start=list_start,
        list_end=list_end,
        set_targets=set_targets,
        variables=frozenset(variables),
    )


def _table_name(tokens: list[Token], i: int) -> tuple[str | None, str, int, int, int]:
    if i >= len(tokens) or tokens[i].token_type not in _NAME_TYPES:
        raise _malformed()
    first = tokens[i]
    if i + 2 < len(tokens) and tokens[i + 1].token_type is TokenType.DOT:
        second = tokens[i + 2]
        if second.token_type not in _NAME_TYPES:
            raise _malformed()
        return first.text, second.text, first.start, second.end + 1, i + 3
    return None, first.text, first.start, first.end + 1, i + 1


def _past_parentheses(tokens: list[Token], i: int) -> int:
    """The index after the parenthesis that closes the one at `i`."""
    if i >= len(tokens) or tokens[i].token_type is not TokenType.L_PAREN:
        raise _malformed()
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].token_type is TokenType.L_PAREN:
            depth += 1
        elif tokens[j].token_type is TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return j + 1
    raise _malformed()


def _column_items(tokens: list[Token]) -> list[str]:
    """`a, @v, `b c``: column names as written, variables as `@name`."""
    items: list[str] = []
    pieces: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type is TokenType.COMMA:
            pieces.append([])
        else:
            pieces[-1].append(token)
    for piece in pieces:
        kinds = [t.token_type for t in piece]
        if len(piece) == 1 and kinds[0] in _NAME_TYPES:
            items.append(piece[0].text)
        elif len(piece) == 2 and kinds[0] is TokenType.PARAMETER and kinds[1] in _NAME_TYPES:
            items.append("@" + piece[1].text)
        else:
            raise errors.not_supported(
                "this column list in LOAD DATA LOCAL (only column names and @variables)",
                "name each column or user variable once, unqualified",
            )
    return items


def _set_targets(tokens: list[Token]) -> tuple[str, ...]:
    """The column each `col = expr` of the SET clause assigns, in order."""
    targets: list[str] = []
    depth = 0
    expecting = True
    for j, token in enumerate(tokens):
        kind = token.token_type
        if kind is TokenType.L_PAREN:
            depth += 1
        elif kind is TokenType.R_PAREN:
            depth -= 1
        elif kind is TokenType.COMMA and depth == 0:
            expecting = True
            continue
        if expecting:
            following = tokens[j + 1].token_type if j + 1 < len(tokens) else None
            if kind not in _NAME_TYPES or following is not TokenType.EQ:
                raise errors.not_supported(
                    "this SET clause in LOAD DATA LOCAL (only `column = expression, ...`)",
                    "assign unqualified column names",
                )
            targets.append(token.text)
            expecting = False
    return tuple(targets)
