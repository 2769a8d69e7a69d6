"""Fan-out rewrites planned once per template give the text a fresh rewrite gives."""

from __future__ import annotations

import pytest

from xaproxy.analysis import analyze
from xaproxy.analysis.parse import parse
from xaproxy.routing.fanout import rewrite_fanout_select
from xaproxy.routing.fanout_plans import FanoutPlans
from xaproxy.routing.keys import bind_placeholders

CASES = [
    "SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 104 ORDER BY c",
    "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 5 AND 104 ORDER BY c",
    "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 5 AND 104",
    "SELECT name, AVG(x) FROM t WHERE name IN ('a', 'b''c', 'd\\\\e') GROUP BY name",
    "SELECT a.id FROM t a JOIN u b ON b.id = a.id AND b.kind = 'x' WHERE a.v > -3.5",
    "SELECT id FROM t WHERE created < '2024-01-02 03:04:05' ORDER BY id LIMIT 10",
    "SELECT id, 'lit' FROM t WHERE id > 3 ORDER BY id",  # a literal outside the filter
]


def _normalize(sql: str) -> tuple[str, list[object] | None]:
    statement = analyze(sql)
    if statement.template is None:
        return sql, None
    return statement.template, list(statement.values)


def _fresh(sql: str) -> str:
    template, values = _normalize(sql)
    return rewrite_fanout_select(bind_placeholders(parse(template).ast, values), sql).sql


@pytest.mark.parametrize("sql", CASES)
def test_a_template_planned_once_renders_each_execution_as_a_fresh_rewrite_would(sql):
    plans = FanoutPlans()
    template, values = _normalize(sql)
    ast = parse(template).ast
    first = plans.rewrite(ast, sql, values)
    again = plans.rewrite(ast, sql, values)
    assert first.sql == again.sql == _fresh(sql)
    assert first.spec == again.spec


def test_the_second_execution_of_a_template_gets_its_own_values():
    plans = FanoutPlans()
    one = "SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 104 ORDER BY c"
    two = "SELECT c FROM sbtest1 WHERE id BETWEEN 7000 AND 7099 ORDER BY c"
    template, values_one = _normalize(one)
    _, values_two = _normalize(two)
    ast = parse(template).ast
    assert plans.rewrite(ast, one, values_one).sql == _fresh(one)
    assert plans.rewrite(ast, two, values_two).sql == _fresh(two)
    assert "7099" in plans.rewrite(ast, two, values_two).sql
