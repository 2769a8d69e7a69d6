"""Which prepared templates are placed by one parameter alone (planned once per shard)."""

from __future__ import annotations

import pytest
from sqlglot import exp

from xaproxy.analysis.parse import parse
from xaproxy.config import TableConfig
from xaproxy.routing.key_templates import key_parameter

TABLE = TableConfig("t", "id", "hash", ("s0", "s1"), False, key_type="integer")


def placed_by(sql: str) -> int | None:
    ast = parse(sql).ast
    assert ast is not None, sql
    table = next(ast.find_all(exp.Table))
    return key_parameter(ast, table, TABLE)


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT c FROM t WHERE id = :p0", 0),
        ("SELECT id, c FROM t WHERE :p0 = id", 0),
        ("SELECT c FROM t AS x WHERE x.id = :p1 AND c = :p0", 1),
        ("SELECT c FROM t WHERE (c > :p0 AND t.id = :p1) AND k = 3 LIMIT :p2", 1),
        ("UPDATE t SET c = :p0 WHERE id = :p1", 1),
        ("DELETE FROM t WHERE id = :p0", 0),
        ("SELECT c FROM t WHERE id = :p0 FOR UPDATE", 0),
    ],
)
def test_a_key_equality_with_a_parameter_places_the_template(sql: str, index: int) -> None:
    assert placed_by(sql) == index


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c FROM t WHERE id = 5",  # no parameter: the planner's static plan
        "SELECT c FROM t WHERE id = :p0 OR c = :p1",
        "SELECT c FROM t WHERE id = :p0 AND id = :p1",
        "SELECT c FROM t WHERE id IN (:p0, :p1)",
        "SELECT c FROM t WHERE id = :p0 AND c IN (SELECT c FROM t)",
        "SELECT c FROM t WHERE id = :p0 + 1",
        "SELECT c FROM t WHERE id <=> :p0",
        "SELECT c FROM t",
        "SELECT c FROM t WHERE id = :p0 UNION SELECT c FROM t WHERE id = :p1",
        "SELECT t.c FROM t JOIN t AS u ON t.id = u.id WHERE t.id = :p0",
        "INSERT INTO t (id, c) VALUES (:p0, :p1)",
    ],
)
def test_other_shapes_are_planned_per_execute(sql: str) -> None:
    assert placed_by(sql) is None
