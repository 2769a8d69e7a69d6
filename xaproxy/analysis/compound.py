"""Where one statement ends in a multi-statement text, knowing compound statements.

A stored program's body (`CREATE PROCEDURE ... BEGIN ...; ...; END`), a trigger's,
an event's and a top-level `BEGIN NOT ATOMIC ... END` hold `;` that do not end
the statement: blocks are counted (BEGIN/END, IF/END IF, CASE/END [CASE],
LOOP/REPEAT/WHILE/FOR ... END LOOP/REPEAT/WHILE/FOR, labels) and only a `;`
outside every block ends it.
"""

from __future__ import annotations

from sqlglot.tokens import Token

from .classify import skip_definer
from .tokens import word

_PROGRAMS = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE"})
_HEADER_WORDS = frozenset(
    {"OR", "REPLACE", "DEFINER", "=", "", "@", "CURRENT_USER", "(", ")", "AGGREGATE", "NONE"}
)
_TOP_LEVEL_BLOCKS = frozenset({"IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR"})
# After these a new statement starts inside a body, so IF/LOOP/... there open a block.
_STATEMENT_STARTS = frozenset({";", "BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT", ":"})
# Where a routine's header ends and its body (with an IF...) may start without BEGIN.
_BODY_STARTS = frozenset({")", "DETERMINISTIC", "DATA", "SQL", "INVOKER", "DEFINER", "ROW", ""})
_CLOSABLE = frozenset({"IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR"})


def piece_bounds(tokens: list[Token], words: list[str] | None = None) -> list[tuple[int, int]]:
    """[start, end) token ranges of each statement, `;` excluded; trailing empty ones dropped.

    `words`: the tokens' words (tokens.word), when the caller has them already.
    """
    if words is None:
        words = [word(t) for t in tokens]
    pieces: list[tuple[int, int]] = []
    start = 0
    count = len(tokens)
    if ";" not in words:
        return [(0, count)] if count else []
    while start <= count:
        end = _piece_end(words, start)
        pieces.append((start, end))
        start = end + 1
    while pieces and pieces[-1][0] >= pieces[-1][1]:
        pieces.pop()
    return pieces


def _piece_end(words: list[str], start: int) -> int:
    """Index of the `;` that ends the statement starting at `start` (or len(words))."""
    if not _is_compound(words, start):
        for index in range(start, len(words)):
            if words[index] == ";":
                return index
        return len(words)
    depth = 0
    index = start
    count = len(words)
    while index < count:
        text = words[index]
        previous = words[index - 1] if index > start else ";"
        if text == ";" and depth == 0:
            return index
        if text == "END":
            depth = max(depth - 1, 0)
            if index + 1 < count and words[index + 1] in _CLOSABLE:
                index += 1
        elif text in ("BEGIN", "CASE") or _opens_block(words, index, previous, depth):
            depth += 1
        index += 1
    return count


def _opens_block(words: list[str], index: int, previous: str, depth: int) -> bool:
    text = words[index]
    if text == "REPEAT" and words[index + 1 : index + 2] == ["("]:
        return False  # REPEAT('x', 3), the function
    if text in ("LOOP", "WHILE", "REPEAT"):
        return True
    if text not in ("IF", "FOR"):
        return False
    return previous in _STATEMENT_STARTS or (
        text == "IF" and depth == 0 and previous in _BODY_STARTS and index > 0
    )


def _is_compound(words: list[str], start: int) -> bool:
    """CREATE/ALTER of a stored program, BEGIN NOT ATOMIC, or a top-level IF/CASE/loop."""
    head = words[start] if start < len(words) else ""
    if head == "BEGIN":
        return words[start + 1 : start + 3] == ["NOT", "ATOMIC"]
    if head in _TOP_LEVEL_BLOCKS:
        return not (head == "REPEAT" and words[start + 1 : start + 2] == ["("])
    if words[start + 1 : start + 2] == [":"]:
        return True  # label: BEGIN NOT ATOMIC / LOOP ...
    if head not in ("CREATE", "ALTER"):
        return False
    index = start + 1
    while index < min(len(words), start + 16):
        text = words[index]
        index += 1
        if text in _PROGRAMS:
            return True
        if text == "DEFINER":
            index = skip_definer(words, index)
        elif text not in _HEADER_WORDS:
            return False
    return False
