"""SQL-level `PREPARE s FROM '...'` / `EXECUTE s USING ...` / `DEALLOCATE PREPARE s` of
statements on sharded or broadcast tables.

Such a statement cannot live on one shard's connection: which shards run it depends on
the values it is executed with. The proxy keeps its text (after one shard checked it
with a PREPARE of its own, so errors come at PREPARE as on MariaDB) and, at each
EXECUTE, writes the USING values in as literals and runs the result as any statement:
planned, routed, merged. User variables in USING are read from the connection they
live on. PREPAREs of other statements are left to the shard (the session is pinned).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlglot.tokens import Token, TokenType

from .. import errors
from ..analysis import Kind, Statement, analyze, spans
from ..protocol import wire
from ..protocol.binary import sql_literal
from ..protocol.constants import FieldType
from .limit_values import using_limit_count
from .state import SessionState

_PREPARED_INFO = b"Statement prepared"
_INTEGER_TYPES = frozenset(
    {FieldType.TINY, FieldType.SHORT, FieldType.LONG, FieldType.LONGLONG, FieldType.INT24}
)
_LITERAL_TOKENS = frozenset({TokenType.NUMBER, TokenType.STRING, TokenType.NULL})


@dataclass(frozen=True, slots=True)
class SqlPrepared:
    """A statement the proxy keeps for EXECUTE: its text and where its `?` are."""

    text: str
    placeholders: tuple[int, ...]  # character offsets of each `?` in `text`
    limit_params: frozenset[int]  # which of them are a LIMIT's row count or offset


def _kept(inner: Statement) -> SqlPrepared:
    offsets = tuple(t.start for t in inner.tokens if t.token_type is TokenType.PLACEHOLDER)
    found, in_limit = spans.placeholders(inner.effective)
    if len(found) != len(offsets):  # both count the same markers; never seen otherwise
        raise errors.not_supported("this statement as a prepared statement", "")
    return SqlPrepared(inner.effective, offsets, in_limit)


def _name(token: Token) -> str:
    return token.text.lower()  # prepared statement names are case-insensitive


def _places_tables(s: SessionState, inner: Statement) -> bool:
    """The text names a sharded or broadcast table (conservatively: any such name)."""
    names = inner.names
    return any(
        table.lower() in names and (config.sharded or config.broadcast)
        for schema in s.ctx.config.schemas.values()
        for table, config in schema.tables.items()
    )


async def prepare(s: SessionState, statement: Statement) -> bytes | None:
    """Keeps a PREPARE of a statement on placed tables; returns the OK to send, or None
    when the shard should hold it (the session is then pinned as before)."""
    tokens = statement.tokens
    name = _name(tokens[1])
    literal = tokens[3]
    inner = analyze(literal.text)
    if not _places_tables(s, inner) or inner.multiple:
        s.sql_prepared.pop(name, None)  # the shard's PREPARE replaces ours
        return None
    await _check_on_a_shard(s, inner, statement.effective[literal.start : literal.end + 1])
    s.sql_prepared[name] = _kept(inner)
    return wire.lenenc_int(len(_PREPARED_INFO)) + _PREPARED_INFO


async def _check_on_a_shard(s: SessionState, inner: Statement, written: str) -> None:
    """MariaDB's own verdict on the text (syntax, unknown columns...), from a PREPARE under
    a name of the proxy's, deallocated at once."""
    shard = s.ctx.planner.default_shard(s.database)
    for schema in s.ctx.config.schemas.values():
        for table, config in schema.tables.items():
            if table.lower() in inner.names and (config.sharded or config.broadcast):
                shard = config.shards[0]
    backend, borrowed = await s.shards.connection_outside_writes(shard)
    try:
        await backend.execute_ok(f"PREPARE xaproxy_check FROM {written}")
        await backend.execute_ok("DEALLOCATE PREPARE xaproxy_check")
    finally:
        if borrowed:
            s.shards.release(backend)


def deallocate(s: SessionState, statement: Statement) -> bool:
    """True if the proxy held it (and forgot it); False: the shard's to deallocate."""
    return s.sql_prepared.pop(_name(statement.tokens[2]), None) is not None


async def execute_text(s: SessionState, statement: Statement) -> str | None:
    """The text an EXECUTE of a kept statement runs, its USING values written in; None
    when the proxy does not hold that name (the shard does)."""
    tokens = statement.tokens
    if len(tokens) < 2:
        return None
    kept = s.sql_prepared.get(_name(tokens[1]))
    if kept is None:
        return None
    return await _bind(s, statement, kept, list(tokens[2:]))


async def immediate_text(s: SessionState, statement: Statement) -> str | None:
    """`EXECUTE IMMEDIATE '<text>' [USING ...]` of a statement on placed tables: the text
    to run, its USING values written in; None for other statements (the shard runs them)."""
    tokens = statement.tokens
    if len(tokens) < 3 or tokens[2].token_type is not TokenType.STRING:
        return None
    inner = analyze(tokens[2].text)
    if not _places_tables(s, inner) or inner.multiple:
        return None
    return await _bind(s, statement, _kept(inner), list(tokens[3:]))


async def _bind(s: SessionState, statement: Statement, kept: SqlPrepared, rest: list[Token]) -> str:
    items = _using_items(rest)
    if len(items) != len(kept.placeholders):
        raise errors.ProxyError(1210, "HY000", "Incorrect arguments to EXECUTE")
    pieces = []
    at = 0
    for i, (offset, item) in enumerate(zip(kept.placeholders, items, strict=True)):
        pieces.append(kept.text[at:offset])
        if i in kept.limit_params:  # the merge applies the LIMIT: it needs the integer
            pieces.append(str(using_limit_count(await _limit_operand(s, statement, item))))
        else:
            pieces.append(await _item_text(s, statement, item))
        at = offset + 1
    pieces.append(kept.text[at:])
    return "".join(pieces)


def _using_items(rest: list[Token]) -> list[list[Token]]:
    """The tokens of each USING item."""
    if not rest:
        return []
    if rest[0].token_type is not TokenType.USING:
        raise errors.parse_error("expected EXECUTE <name> [USING @var, ...]")
    items: list[list[Token]] = [[]]
    for token in rest[1:]:
        if token.token_type is TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(token)
    return items


def _variable_name(item: list[Token]) -> str | None:
    kinds = [t.token_type for t in item]
    if kinds in ([TokenType.PARAMETER, TokenType.VAR], [TokenType.PARAMETER, TokenType.IDENTIFIER]):
        return item[1].text
    return None


def _literal_text(statement: Statement, item: list[Token]) -> str | None:
    kinds = [t.token_type for t in item]
    if (len(item) == 1 and kinds[0] in _LITERAL_TOKENS) or kinds == [
        TokenType.DASH,
        TokenType.NUMBER,
    ]:
        return statement.effective[item[0].start : item[-1].end + 1]
    return None


def _not_an_operand() -> errors.ProxyError:
    return errors.not_supported(
        "an expression in EXECUTE ... USING of a statement on sharded tables",
        "pass user variables or literals",
    )


async def _item_text(s: SessionState, statement: Statement, item: list[Token]) -> str:
    """A USING item as SQL text: a literal as written, a user variable as its value."""
    name = _variable_name(item)
    if name is not None:
        value = await _variable_value(s, name)
        if value is None:
            return "NULL"
        style_escapes = not s.no_backslash_escapes
        literal = sql_literal(value, style_escapes, s.client_charset)
        return literal.decode("utf-8", "surrogateescape")
    text = _literal_text(statement, item)
    if text is None:
        raise _not_an_operand()
    return text


async def _limit_operand(s: SessionState, statement: Statement, item: list[Token]) -> object:
    """The value of a USING item bound to a LIMIT marker. Literals other than integers,
    decimals and NULL are refused: MariaDB converts them by other rules than variables
    (`USING 1e20` is no limit, `@v := 1e20` an error; `' 3abc'` warns only as a literal)."""
    name = _variable_name(item)
    if name is not None:
        return await _variable_value(s, name)
    text = _literal_text(statement, item)
    if text is None:
        raise _not_an_operand()
    if item[-1].token_type is TokenType.NULL:
        return None
    digits = item[-1].text
    if item[-1].token_type is TokenType.NUMBER and digits.isdigit():
        return -int(digits) if len(item) == 2 else int(digits)
    if item[-1].token_type is TokenType.NUMBER and re.fullmatch(r"[0-9]*\.[0-9]*", digits):
        return -Decimal(digits) if len(item) == 2 else Decimal(digits)
    raise errors.not_supported(
        "this literal for a LIMIT marker in EXECUTE ... USING over several shards",
        "pass an integer or a user variable",
    )


async def _variable_value(s: SessionState, name: str) -> object:
    """A user variable's value as a Python value of its type, read where it lives
    (None: NULL or never assigned in this session)."""
    home = s.variable_homes.get(name.lower())
    backend = s.pinned.get(home) if home is not None else None
    if backend is None:
        return None  # never assigned in this session
    quoted = "`" + name.replace("`", "``") + "`"
    coldefs, rows = await backend.query_table(f"SELECT @{quoted}")
    raw = rows[0][0] if rows else None
    if raw is None:
        return None
    ftype, _, charset = wire.column_type_and_flags(coldefs[0])
    if ftype in _INTEGER_TYPES:
        return int(raw)
    if ftype in (FieldType.NEWDECIMAL, FieldType.DECIMAL):
        return Decimal(raw.decode("ascii"))
    if ftype in (FieldType.DOUBLE, FieldType.FLOAT):
        return float(raw)
    if charset == 63:
        return bytes(raw)
    return raw.decode("utf-8", "surrogateescape")


def is_managed(kind: Kind) -> bool:
    return kind in (Kind.PREPARE, Kind.EXECUTE, Kind.DEALLOCATE, Kind.EXECUTE_IMMEDIATE)
