"""Golden plan cases: each statement of tests/golden/plans.txt planned by the Planner alone.

No server is needed: the planner decides every plan from the statement and the
shard map (config/example.yaml, database `shop`), and its EXPLAIN tree (or its
refusal, as `ERROR <code> (<sqlstate>): <message>`) must equal the file's.

The planner gets a fixed metadata snapshot (`METADATA` below), as if read from
the shards: the definitions of orders, accounts and stores; order_items whose
shards disagree; invoices never read (absent when the proxy started).

The file is a list of cases, each `== <statement>` followed by the expected
lines, separated by blank lines. After a deliberate planner change, regenerate
it and review the diff:

    XAPROXY_GOLDEN_UPDATE=1 python -m pytest -q tests/unit/test_golden_plans.py
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from xaproxy import errors
from xaproxy.analysis import analyze
from xaproxy.analysis.parse import parse
from xaproxy.config import load_config
from xaproxy.metadata.model import Catalog, Column, TableMetadata, TableState
from xaproxy.routing import plan as primitives
from xaproxy.routing.planner import IdGenerator, Planner

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "plans.txt"
CONFIG = ROOT / "config" / "example.yaml"
DATABASE = "shop"


class _CountingIds(IdGenerator):
    """Ids 1001, 1002, ... so generated ids in the golden texts do not depend on the clock."""

    def __init__(self) -> None:
        super().__init__("golden")
        self._next = 1001

    def next_ids(self, count: int) -> list[int]:
        ids = list(range(self._next, self._next + count))
        self._next += count
        return ids


def _column(name: str, type_: str, **flags: object) -> Column:
    text = type_.startswith(("varchar", "char", "text"))
    return Column(
        name=name,
        type=type_,
        charset="utf8mb4" if text else None,
        collation="utf8mb4_general_ci" if text else None,
        nullable=bool(flags.get("nullable", False)),
        default=flags.get("default"),  # type: ignore[arg-type]
        generated=False,
        auto_increment=bool(flags.get("auto_increment", False)),
        invisible=bool(flags.get("invisible", False)),
    )


_ORDERS = TableMetadata(
    "shop",
    "orders",
    (
        _column("id", "bigint(20)", auto_increment=True),
        _column("user_id", "bigint(20)"),
        _column("total", "decimal(10,2)", nullable=True, default="NULL"),
        _column("note", "text", nullable=True, default="NULL"),
        _column("created", "datetime", nullable=True, default="NULL"),
    ),
    primary_key=("id",),
)
_ACCOUNTS = TableMetadata(
    "shop",
    "accounts",
    (
        _column("id", "int(11)"),
        _column("balance", "decimal(12,2)", default="0.00"),
        _column("rev", "int(11)", nullable=True, default="0", invisible=True),
    ),
    primary_key=("id",),
)
_STORES = TableMetadata(
    "shop",
    "stores",
    (_column("country", "char(2)", default="'DE'"), _column("name", "varchar(100)")),
    primary_key=("country", "name"),
    unique_keys=(("name",),),
)
_ITEMS = TableMetadata(
    "shop", "order_items", (_column("user_id", "bigint(20)"), _column("qty", "int(11)"))
)
_ITEMS_S1 = TableMetadata(
    "shop", "order_items", (_column("user_id", "bigint(20)"), _column("qty", "bigint(20)"))
)


def _state(definition: TableMetadata, s1: TableMetadata | None = None) -> TableState:
    per_shard = {"s0": definition, "s1": s1 or definition}
    return TableState("shop", definition.name, ("s0", "s1"), per_shard)


METADATA = Catalog.of(
    [
        _state(_ORDERS),
        _state(_ACCOUNTS),
        _state(_STORES),
        _state(_ITEMS, _ITEMS_S1),
        TableState("shop", "invoices", ("s0", "s1"), {"s0": None, "s1": None}),
    ]
)


def _read_cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []
    for block in GOLDEN.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines or not lines[0].startswith("== "):
            continue
        cases.append((lines[0][3:], lines[1:]))
    return cases


def plan_lines(sql: str, **settings: object) -> list[str]:
    """The EXPLAIN tree of `sql` (planned as a template with values), or its refusal;
    `settings` replace values of the configuration."""
    statement = analyze(sql)
    planner = Planner(dataclasses.replace(load_config(CONFIG), **settings))
    planner.ids = _CountingIds()
    planner.metadata = METADATA
    template = statement.template if statement.template is not None else sql
    values = list(statement.values) if statement.template is not None else None
    try:
        plan = planner.plan(statement.kind, parse(template), sql, DATABASE, values)
    except errors.ProxyError as exc:
        return [f"ERROR {exc.code} ({exc.sqlstate}): {exc.message}"]
    return plan.describe().splitlines()


def _write_cases(cases: list[tuple[str, list[str]]]) -> None:
    blocks = ["== " + sql + "\n" + "\n".join(plan_lines(sql)) for sql, _ in cases]
    GOLDEN.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


CASES = _read_cases()

if os.environ.get("XAPROXY_GOLDEN_UPDATE") == "1":
    _write_cases(CASES)
    CASES = _read_cases()


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[sql for sql, _ in CASES])
def test_the_planner_builds_the_golden_plan_for_each_statement(sql, expected):
    assert plan_lines(sql) == expected


def test_the_golden_cases_cover_every_primitive_merge_step_and_refusals():
    heads = {line.split()[0] for _, lines in CASES for line in lines if line.strip()}
    primitive_names = {"Route", "SplitInsert", "Everywhere", "ScatterWrite", "MergeRead", "Local"}
    steps = {cls.__name__ for cls in primitives.MergeStep.__subclasses__()}
    assert primitive_names | steps | {"ERROR", "Concatenate", "ColumnType"} <= heads


def test_every_kind_the_planner_answers_locally_has_a_session_handler():
    from xaproxy.analysis import Kind
    from xaproxy.routing.planner import ANSWERED_LOCALLY
    from xaproxy.session.statements import _HANDLERS

    # LOAD DATA LOCAL is planned (a Route, or LoadStaged); its handler checks the client's
    # LOCAL_FILES capability before it runs the plan
    assert set(_HANDLERS) - {Kind.LOAD_DATA_LOCAL} | {Kind.LOCAL_SELECT} == set(ANSWERED_LOCALLY)


def test_copies_are_planned_within_the_configured_bounds_and_not_at_all_under_zero():
    join = "SELECT * FROM orders o JOIN accounts a ON a.id = o.user_id"
    gathered = "SELECT VARIANCE(total) FROM orders"
    assert plan_lines(join)[1].startswith("  CopyTable")
    for sql, refusal in ((join, "cross-shard join"), (gathered, "aggregate VARIANCE()")):
        (line,) = plan_lines(sql, max_copy_mb=0)
        assert line.startswith("ERROR 1235") and refusal in line, line
