"""Comments as MariaDB reads them, and the code its executable comments hold.

MariaDB runs the text of `/*! ... */`, `/*!50700 ... */` (when the server version
is at least 5.7.0), `/*M! ... */` and `/*M!100500 ... */` as code; every other
comment is nothing. This scanner follows the server's lexer (checked against
MariaDB 10.11) so the proxy classifies the code the server will run:

- `effective`: the text with executed comments' markers blanked and skipped
  comments blanked whole, other comments kept: what the shard gets.
- `code`: `effective` with every comment blanked too: what is tokenized.

Both have the original's length, so a token's offsets hold in all three texts.
"""

from __future__ import annotations

from dataclasses import dataclass

# The server version executable comments are compared with (MariaDB 10.11).
SERVER_VERSION_ID = 101100

_SPECIALS = frozenset("'\"`#-/*")
_QUICK_MARKERS = ("/*", "#", "--")
_DIGITS = frozenset("0123456789")


@dataclass(slots=True, frozen=True)
class Lexed:
    effective: str
    code: str
    has_executable_comment: bool
    has_comment: bool
    unterminated: bool  # a string or comment runs to the end of the text


def lex(sql: str) -> Lexed:
    """The effective text and the comment-free code of `sql`."""
    if not any(marker in sql for marker in _QUICK_MARKERS):
        return Lexed(sql, sql, False, False, False)
    return _Scanner(sql).run()


class _Scanner:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.effective = list(sql)
        self.code = list(sql)
        self.executable = False
        self.comment = False
        self.unterminated = False

    def run(self) -> Lexed:
        sql = self.sql
        length = len(sql)
        position = 0
        in_executable = False
        while position < length:
            char = sql[position]
            if char not in _SPECIALS:
                position += 1
            elif char in "'\"`":
                position = self._quoted(position, char)
            elif char == "#" or (char == "-" and _starts_dash_comment(sql, position)):
                end = sql.find("\n", position)
                end = length if end < 0 else end
                self._blank(self.code, position, end)
                self.comment = True
                position = end
            elif char == "*" and in_executable and sql.startswith("*/", position):
                self._blank_both(position, position + 2)
                in_executable = False
                position += 2
            elif char == "/" and sql.startswith("/*", position):
                opener = _executable_opener(sql, position)
                if opener is None:
                    position = self._plain_comment(position)
                    continue
                marker_end, version = opener
                self.executable = True
                if in_executable or _runs(sql, position, version):
                    self._blank_both(position, marker_end)
                    in_executable = True
                    position = marker_end
                else:
                    position = self._skipped_comment(position, marker_end)
            else:
                position += 1
        if in_executable:
            self.unterminated = True
        effective = "".join(self.effective) if self.executable else sql
        code = "".join(self.code)
        return Lexed(effective, code, self.executable, self.comment, self.unterminated)

    def _quoted(self, start: int, quote: str) -> int:
        sql = self.sql
        position = start + 1
        while True:
            end = sql.find(quote, position)
            if end < 0:
                self.unterminated = True
                return len(sql)
            if quote != "`":
                backslash = sql.find("\\", position, end)
                if backslash >= 0:
                    position = backslash + 2
                    continue
            if sql.startswith(quote * 2, end):
                position = end + 2
                continue
            return end + 1

    def _plain_comment(self, start: int) -> int:
        """A plain comment (hints `/*+ */` included: MariaDB ignores them) ends at the first `*/`."""
        end = self.sql.find("*/", start + 2)
        if end < 0:
            self.unterminated = True
            end = len(self.sql)
        else:
            end += 2
        self._blank(self.code, start, end)
        self.comment = True
        return end

    def _skipped_comment(self, start: int, body: int) -> int:
        """A versioned comment the server skips: strings are not seen, one nested /* */ is."""
        sql = self.sql
        depth = 0
        position = body
        while True:
            close = sql.find("*/", position)
            if close < 0:
                self.unterminated = True
                end = len(sql)
                break
            opening = sql.find("/*", position, close)
            if opening >= 0 and depth == 0:
                depth = 1
                position = opening + 2
                continue
            if depth:
                depth = 0
                position = close + 2
                continue
            end = close + 2
            break
        self._blank_both(start, end)
        self.comment = True
        return end

    def _blank_both(self, start: int, end: int) -> None:
        self._blank(self.effective, start, end)
        self._blank(self.code, start, end)

    @staticmethod
    def _blank(chars: list[str], start: int, end: int) -> None:
        for index in range(start, end):
            if chars[index] != "\n":
                chars[index] = " "


def _starts_dash_comment(sql: str, position: int) -> bool:
    """`-- ` needs a space or control character after the dashes (`1--1` is arithmetic)."""
    if not sql.startswith("--", position):
        return False
    after = sql[position + 2 : position + 3]
    return after == "" or after <= " "


def _runs(sql: str, position: int, version: int | None) -> bool:
    """MariaDB runs `/*!NNNNN` up to its version, except MySQL's 5.7 and 8.0 (50700..99999)."""
    if version is None:
        return True
    if version > SERVER_VERSION_ID:
        return False
    return sql.startswith("/*M!", position) or not 50700 <= version <= 99999


def _executable_opener(sql: str, position: int) -> tuple[int, int | None] | None:
    """(end of the marker, version or None) for `/*!` and `/*M!`; None for other comments."""
    if sql.startswith("/*!", position):
        cursor = position + 3
    elif sql.startswith("/*M!", position):
        cursor = position + 4
    else:
        return None
    digits = 0
    while digits < 6 and sql[cursor + digits : cursor + digits + 1] in _DIGITS:
        digits += 1
    if digits < 5:
        return cursor, None  # the server reads short digit runs as code (and then fails)
    return cursor + digits, int(sql[cursor : cursor + digits])
