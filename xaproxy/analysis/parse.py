"""sqlglot's parse of a statement's code, with the error as text when it has none."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from .lexer import lex

logging.getLogger("sqlglot").setLevel(logging.ERROR)


@dataclass(slots=True, frozen=True)
class Parsed:
    ast: exp.Expression | None
    error: str | None = None


def parse(sql: str) -> Parsed:
    """The syntax tree of `sql`'s code (executable comments resolved); never raises."""
    try:
        ast = sqlglot.parse_one(lex(sql).code, read="mysql")
    except (ParseError, TokenError) as exc:
        return Parsed(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:
        return Parsed(None, f"{type(exc).__name__}: {exc}")
    return Parsed(ast)
