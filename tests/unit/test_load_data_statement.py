"""The parts of a LOAD DATA|XML LOCAL INFILE statement the proxy reads from its tokens."""

import doctest

import pytest

from xaproxy import errors
from xaproxy.analysis import analyze, load_data


def test_the_module_examples_hold():
    assert doctest.testmod(load_data).failed == 0


@pytest.mark.parametrize(
    ("sql", "table", "database", "duplicates", "columns", "set_targets", "variables"),
    [
        ("LOAD DATA LOCAL INFILE 'f' INTO TABLE t", "t", None, "insert", None, (), set()),
        (
            "LOAD DATA LOW_PRIORITY LOCAL INFILE 'f' REPLACE INTO TABLE `d b`.`t 1` "
            "CHARACTER SET latin1 FIELDS TERMINATED BY ',' IGNORE 2 LINES (a, @x, `c d`) "
            "SET e = @x * 2, f = DEFAULT",
            "t 1", "d b", "replace", ("a", "@x", "c d"), ("e", "f"), {"x"},
        ),
        (
            "LOAD XML LOCAL INFILE 'f' IGNORE INTO TABLE t ROWS IDENTIFIED BY '<r>' "
            "SET a = CONCAT(@y, @@version)",
            "t", None, "ignore", None, ("a",), {"y"},
        ),
        (
            "LOAD DATA CONCURRENT LOCAL INFILE 'f' INTO TABLE t (a) SET b = IF(a > 1, 2, 3)",
            "t", None, "insert", ("a",), ("b",), set(),
        ),
    ],
)  # fmt: skip
def test_a_load_statement_names_its_table_columns_and_variables(
    sql, table, database, duplicates, columns, set_targets, variables
):
    load = load_data.parse(analyze(sql))
    assert (load.table, load.database, load.duplicates) == (table, database, duplicates)
    assert (load.columns, load.set_targets, set(load.variables)) == (
        columns,
        set_targets,
        variables,
    )


def test_the_column_list_is_found_where_it_is_or_where_it_would_go():
    sql = "LOAD DATA LOCAL INFILE 'f' INTO TABLE t CHARACTER SET utf8mb4 (a, b) SET c = 1"
    load = load_data.parse(analyze(sql))
    assert sql[load.list_start : load.list_end] == "(a, b)"
    assert sql[load.table_start : load.table_end] == "t"
    sql = "LOAD DATA LOCAL INFILE 'f' INTO TABLE t LINES TERMINATED BY '\\n' SET c = 1"
    load = load_data.parse(analyze(sql))
    assert load.list_start == load.list_end == sql.index("SET c")
    sql = "LOAD DATA LOCAL INFILE 'f' INTO TABLE db.t"
    load = load_data.parse(analyze(sql))
    assert load.list_start == load.list_end == len(sql)
    assert sql[load.table_start : load.table_end] == "db.t"


@pytest.mark.parametrize(
    "sql",
    [
        "LOAD DATA LOCAL INFILE 'f' INTO TABLE t (a + 1)",
        "LOAD DATA LOCAL INFILE 'f' INTO TABLE t (t.a)",
        "LOAD DATA LOCAL INFILE 'f' INTO TABLE t SET t.a = 1",
    ],
)
def test_column_lists_and_set_clauses_of_other_forms_are_refused(sql):
    with pytest.raises(errors.ProxyError) as refused:
        load_data.parse(analyze(sql))
    assert refused.value.code == errors.NOT_SUPPORTED
