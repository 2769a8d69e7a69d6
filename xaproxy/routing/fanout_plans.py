"""Fan-out rewrites planned once per statement template.

Rewriting a fan-out SELECT (copying the tree, adding helper columns, generating
SQL) costs more than running it. When a template's placeholders only filter rows
(WHERE, JOIN ... ON), the rewrite and its merge spec do not depend on the values:
the rewritten text is kept with its placeholders, and each execution only splices
the values' literals into it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

from sqlglot import exp

from ..analysis.spans import split_at_placeholders
from .fanout import FanoutRewrite, rewrite_fanout_select
from .keys import bind_placeholders, literal_sql

_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class _Planned:
    ast: exp.Select  # the template the entry belongs to (ids are reused after GC)
    rewrite: FanoutRewrite
    pieces: tuple[str, ...]  # rewritten text between placeholders
    params: tuple[int, ...]  # the parameter after each piece but the last

    def render(self, values: list[object]) -> str:
        if not self.params:
            return self.rewrite.sql
        parts = []
        for piece, index in zip(self.pieces, self.params, strict=False):
            parts.append(piece)
            parts.append(literal_sql(values[index]))
        parts.append(self.pieces[-1])
        return "".join(parts)


class FanoutPlans:
    """Rewrites of templates whose placeholders only filter rows, by template."""

    def __init__(self) -> None:
        self._planned: OrderedDict[int, _Planned | exp.Select] = OrderedDict()

    def rewrite(self, ast: exp.Select, sql: str, params: list[object] | None) -> FanoutRewrite:
        entry = self._planned.get(id(ast))
        known = entry is ast or (isinstance(entry, _Planned) and entry.ast is ast)
        if not known:  # first sight (ids are reused once a tree is freed)
            entry = _plan(ast, sql) or ast  # the tree itself marks "not plannable once"
            self._planned[id(ast)] = entry
            if len(self._planned) > _CACHE_SIZE:
                self._planned.popitem(last=False)
        if isinstance(entry, _Planned) and not (entry.params and params is None):
            return _with_sql(entry.rewrite, entry.render(params or []))
        return rewrite_fanout_select(bind_placeholders(ast, params), sql)


def _plan(ast: exp.Select, sql: str) -> _Planned | None:
    if not _placeholders_only_filter(ast):
        return None
    rewrite = rewrite_fanout_select(ast, sql)
    split = split_at_placeholders(rewrite.sql)
    if split is None:
        return None
    pieces, params = split
    return _Planned(ast, rewrite, tuple(pieces), tuple(params))


def _placeholders_only_filter(ast: exp.Select) -> bool:
    total = sum(1 for _ in ast.find_all(exp.Placeholder))
    filters = [ast.args.get("where")]
    filters += [join.args.get("on") for join in ast.args.get("joins") or ()]
    inside = sum(1 for f in filters if f is not None for _ in f.find_all(exp.Placeholder))
    return total == inside


def _with_sql(rewrite: FanoutRewrite, sql: str) -> FanoutRewrite:
    return dataclasses.replace(rewrite, sql=sql)
