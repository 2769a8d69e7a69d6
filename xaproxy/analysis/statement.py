"""A client statement, analysed once: its kind, the names it uses, its template.

`analyze(text)` lexes the text as MariaDB does (executable comments are code,
other comments nothing), tokenizes the code once with sqlglot's MySQL tokenizer
and classifies it from its tokens. Results are cached by the exact text, so a
repeated statement costs one dict lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from . import classify
from .account import ACCOUNT_FUNCTIONS
from .compound import piece_bounds
from .kinds import Kind
from .lexer import lex
from .template import literal_template, skeleton_of
from .tokens import tokenize, word

# Names whose value the proxy owns, so a SELECT of them is answered locally.
LOCAL_FUNCTIONS = frozenset({"LAST_INSERT_ID", "CONNECTION_ID", "ROW_COUNT", "FOUND_ROWS"})
LOCAL_VARIABLES = frozenset(
    {
        "autocommit",
        "warning_count",
        "error_count",
        "in_transaction",
        "last_insert_id",
        "identity",
        "wait_timeout",
        "interactive_timeout",
    }
)
# A pooled shard connection may hold another session's database: the proxy answers these.
_SCHEMA_FUNCTIONS = frozenset({"DATABASE", "SCHEMA"})

_HUGE_STATEMENT = 256 * 1024
_NAMED_LOCK_FUNCTIONS = frozenset({"GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS"})


@dataclass(slots=True, frozen=True)
class Statement:
    """One statement as the proxy understands it; offsets agree across its three texts."""

    kind: Kind
    text: str  # as the client sent it
    effective: str  # executable comments resolved: what the server runs, what a shard gets
    code: str  # `effective` with every comment blanked: what was tokenized
    verb: str  # the first keyword of the code (after SET STATEMENT ... FOR), upper case
    has_executable_comment: bool = False
    is_locking_read: bool = False  # FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE
    multiple: bool = False  # more than one statement (multi-statement text)
    set_statement: str | None = None  # the `SET STATEMENT ... FOR` prefix, when there is one
    body_start: int = 0  # offset of the statement after that prefix (0 without one)
    template: str | None = None  # code with :pN for each literal (plan cache key)
    values: tuple[object, ...] | None = None  # the literal values, in :pN order
    skeleton: str | None = None  # huge statements: code with long string literals emptied
    error: str | None = None  # the text does not tokenize (an unterminated string...)
    # The first statement's tokens and words: names are read from them when first asked.
    tokens: tuple[Token, ...] = field(default=(), repr=False, compare=False)
    words: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _names: list[classify.Names] = field(default_factory=list, repr=False, compare=False)

    def _read_names(self) -> classify.Names:
        if not self._names:
            self._names.append(classify.Names(list(self.tokens), list(self.words)))
        return self._names[0]

    @property
    def tables(self) -> tuple[str, ...]:
        """Names after FROM/JOIN/INTO/UPDATE/TABLE...: `db.t` or `t`, as written."""
        return self._read_names().tables

    @property
    def table_refs(self) -> tuple[tuple[str | None, str], ...]:
        """The names of `tables` as (database or None, table), unquoted, as written."""
        return self._read_names().table_refs

    @property
    def qualifiers(self) -> frozenset[str]:
        """First parts of every dotted name (`d` of `d.t`, `t` of `t.col`), lower case."""
        return self._read_names().qualifiers

    @property
    def database_qualifiers(self) -> frozenset[str]:
        """Lower-case first parts that surely name a database: `d.t.col`, `d.f(...)`."""
        return self._read_names().database_qualifiers

    @property
    def into_file(self) -> bool:
        """`INTO OUTFILE` / `INTO DUMPFILE`: a file written on the server."""
        return self._read_names().into_file

    @property
    def names(self) -> frozenset[str]:
        """Every name-like word, lower case (for conservative checks)."""
        return self._read_names().names

    @property
    def functions(self) -> frozenset[str]:
        """Upper-case words directly followed by `(`."""
        return self._read_names().functions

    @property
    def user_variables(self) -> frozenset[str]:
        """@x, lower case."""
        return self._read_names().user_variables

    @property
    def assigned_user_variables(self) -> frozenset[str]:
        """The @x this statement may assign (`:=`, SET @x =, INTO @x; all of them in a CALL
        or a compound statement), lower case."""
        return self._read_names().assigned_user_variables

    @property
    def system_variables(self) -> frozenset[tuple[str, str]]:
        """(scope or '', name) of each @@x."""
        return self._read_names().system_variables

    @property
    def uses_session_values(self) -> bool:
        """It reads values the proxy owns (LAST_INSERT_ID(), @@autocommit, DATABASE()...)."""
        if "(" not in self.code and "@" not in self.code:
            # no call, no variable: the common case, without reading names
            return "current_user" in self.code.lower() and self.uses_account
        if self.functions & LOCAL_FUNCTIONS or self.functions & _SCHEMA_FUNCTIONS:
            return True
        if self.uses_account:
            return True
        return any(name in LOCAL_VARIABLES for _, name in self.system_variables)

    @property
    def uses_account(self) -> bool:
        """It calls USER(), CURRENT_USER (with or without parentheses), SESSION_USER()..."""
        return bool(self.functions & ACCOUNT_FUNCTIONS) or "current_user" in self.names

    @property
    def connection_state(self) -> str | None:
        """The connection-local state this statement may create or depend on that the
        proxy does not reproduce on another connection, named; None when there is none.

        A session that runs such a statement is pinned to the connection (ProxySQL's
        rules: user variables, named locks, temporary tables, LOCK TABLES, PREPARE).
        """
        if "@" in self.code and self.user_variables:
            return "user variables"
        kind = self.kind
        if kind is Kind.PREPARE:
            return "PREPARE"
        if kind is Kind.LOCK_TABLES:
            return "LOCK TABLES"
        if "(" in self.code and self.functions & _NAMED_LOCK_FUNCTIONS:
            return "GET_LOCK"
        if kind is Kind.DDL and self.words[1:2] == ("TEMPORARY",):
            return "temporary table"
        return None

    @property
    def is_read(self) -> bool:
        return self.kind in (Kind.SELECT, Kind.SHOW, Kind.EXPLAIN, Kind.DO) and not (
            self.is_locking_read
        )


_cache: OrderedDict[str, Statement] = OrderedDict()
_CACHE_SIZE = 8192


def analyze(text: str) -> Statement:
    """The analysis of one statement's text (cached by the exact text)."""
    statement = _cache.get(text)
    if statement is not None:
        _cache.move_to_end(text)
        return statement
    statement = _analyze(text)
    if len(text) <= _HUGE_STATEMENT:
        _cache[text] = statement
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return statement


def analyze_tokens(text: str) -> tuple[Statement, list[Token]]:
    """The analysis and the tokens of its code, for the splitter (not cached)."""
    lexed = lex(text)
    try:
        tokens = tokenize(lexed.code)
    except TokenError as exc:
        return _unreadable(text, lexed, str(exc)), []
    return _build(text, lexed, tokens), tokens


def _analyze(text: str) -> Statement:
    return analyze_tokens(text)[0]


def _unreadable(text: str, lexed, error: str) -> Statement:
    verb = lexed.code.split(None, 1)[0].upper() if lexed.code.strip() else ""
    return Statement(
        Kind.OTHER,
        text,
        lexed.effective,
        lexed.code,
        verb,
        has_executable_comment=lexed.has_executable_comment,
        error=error.splitlines()[0] if error else "unreadable statement",
    )


def _build(text: str, lexed, tokens: list[Token]) -> Statement:
    code = lexed.code
    error = "unterminated string or comment" if lexed.unterminated else None
    all_words = [word(t) for t in tokens]
    pieces = piece_bounds(tokens, all_words)
    multiple = len(pieces) > 1
    first = tokens[pieces[0][0] : pieces[0][1]] if pieces else []
    words = all_words[pieces[0][0] : pieces[0][1]] if pieces else []
    if not first:
        has_semicolon = any(t.token_type == TokenType.SEMICOLON for t in tokens)
        kind = Kind.COMMENT if lexed.has_comment and not has_semicolon else Kind.EMPTY
        return Statement(kind, text, lexed.effective, code, "", error=error)
    set_statement = None
    start = body_start = 0
    if words[0] == "SET" and len(words) > 1 and words[1] == "STATEMENT":
        start = classify.set_statement_end(words)
        if start is not None:
            set_statement = code[first[0].start : first[start - 1].end + 1].strip()
            body_start = first[start].start
        else:
            start = 0
    kind = classify.kind_of(words[start:])
    template = values = skeleton = None
    if len(text) > _HUGE_STATEMENT:
        skeleton = skeleton_of(code, first)
    elif not multiple:
        found = literal_template(code, tokens)
        if found is not None:
            template, values = found
    return Statement(
        kind,
        text,
        lexed.effective,
        code,
        words[start] if start < len(words) else "",
        has_executable_comment=lexed.has_executable_comment,
        is_locking_read=classify.is_locking_read(words[start:], kind),
        multiple=multiple,
        set_statement=set_statement,
        body_start=body_start,
        template=template,
        values=values,
        skeleton=skeleton,
        error=error,
        tokens=tuple(first),
        words=tuple(words),
    )
