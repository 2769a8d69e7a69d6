"""One statement analysis: kinds, names, flags, templates and the multi-statement splitter.

The kinds are in statement_kinds.txt (text -> kind). The executable-comment and
splitting rules were checked against MariaDB 10.11 (see xaproxy/analysis/lexer.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xaproxy.analysis import Kind, analyze, split_statements
from xaproxy.analysis.clauses import (
    Assignment,
    SavepointCommand,
    ShowOptions,
    database_target,
    is_set_transaction,
    kill_target,
    reads_user_variables,
    savepoint_command,
    set_assignments,
    show_options,
    use_target,
)
from xaproxy.analysis.lexer import lex
from xaproxy.analysis.spans import placeholder_offsets, select_item_texts


def _kind_cases() -> list[tuple[str, str]]:
    cases = []
    for line in (Path(__file__).parent / "statement_kinds.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, _, text = line.partition(" | ")
        cases.append((kind.strip(), text.replace("\\n", "\n")))
    return cases


@pytest.mark.parametrize(("kind", "text"), _kind_cases())
def test_statement_kind_is_read_from_the_code_the_server_runs(kind: str, text: str) -> None:
    assert analyze(text).kind is Kind[kind]


@pytest.mark.parametrize(("kind", "text"), _kind_cases())
def test_a_trailing_semicolon_and_comments_never_change_the_kind(kind: str, text: str) -> None:
    if Kind[kind] in (Kind.EMPTY, Kind.COMMENT):
        return
    assert analyze(f"/* lead */ {text} ; -- tail").kind is Kind[kind]
    assert analyze(f"{text}\n# tail\n").kind is Kind[kind]


# --- executable comments ---------------------------------------------------------------


def test_executed_comment_markers_are_blanked_and_skipped_comments_dropped() -> None:
    text = "SELECT 1 /*!, 2 */ /*!99999 , 3 */ /*M!100100 , 4 */ /* c */"
    lexed = lex(text)
    assert lexed.has_executable_comment
    assert lexed.effective.split() == ["SELECT", "1", ",", "2", ",", "4", "/*", "c", "*/"]
    assert lexed.code.split() == ["SELECT", "1", ",", "2", ",", "4"]
    assert len(lexed.effective) == len(lexed.code) == len(text)


def test_offsets_agree_between_the_original_effective_and_code_texts() -> None:
    text = "SELECT /*!a,*/ b FROM t -- c"
    statement = analyze(text)
    assert len(statement.text) == len(statement.effective) == len(statement.code)
    assert statement.code.index("a") == text.index("a")


def test_a_comment_marker_inside_a_string_is_text() -> None:
    statement = analyze("SELECT '/*!, 2 */', \"-- x\", `#y` FROM t")
    assert not statement.has_executable_comment
    assert statement.code == statement.text


def test_a_string_inside_an_executed_comment_may_hold_the_closing_marker() -> None:
    assert lex("SELECT 1 /*! , '*/' */").code.split() == ["SELECT", "1", ",", "'*/'"]


def test_a_skipped_versioned_comment_ignores_strings_and_allows_one_nested_comment() -> None:
    assert lex("SELECT 1 /*!99999 , /* x */ 3 */").code.split() == ["SELECT", "1"]


def test_dash_dash_needs_a_space_to_start_a_comment() -> None:
    assert analyze("SELECT 1--1").code == "SELECT 1--1"
    assert analyze("SELECT 1 -- 1").code.split() == ["SELECT", "1"]


def test_backslash_escapes_keep_a_quote_inside_a_string() -> None:
    statement = analyze("SELECT 'it\\'s -- not a comment' FROM t")
    assert statement.code == statement.text
    assert statement.tables == ("t",)


def test_short_version_digits_stay_code_as_on_the_server() -> None:
    assert lex("SELECT 1 /*!1 , 2 */").code.split() == ["SELECT", "1", "1", ",", "2"]


# --- names and flags --------------------------------------------------------------------


def test_tables_are_read_from_every_clause_that_names_one() -> None:
    statement = analyze(
        "SELECT * FROM bank.accounts a, other o JOIN `transfers` t ON a.id = t.src "
        "WHERE a.id IN (SELECT id FROM inner_t)"
    )
    assert statement.tables == ("bank.accounts", "other", "transfers", "inner_t")
    assert analyze("INSERT INTO t (a) VALUES (1)").tables == ("t",)
    assert analyze("UPDATE a, b SET a.x = b.x").tables == ("a", "b")
    assert analyze("LOCK TABLES t WRITE, d.u AS x READ").tables == ("t", "d.u")
    assert analyze("CREATE INDEX i ON t (a)").tables == ("t",)
    assert analyze("LOAD DATA INFILE 'f' INTO TABLE t").tables == ("t",)


def test_names_hold_every_name_like_word() -> None:
    assert {"accounts", "balance", "id"} <= analyze(
        "SHOW COLUMNS FROM `accounts` WHERE balance > id"
    ).names


def test_locking_reads_are_flagged() -> None:
    assert analyze("SELECT * FROM t WHERE id = 1 FOR UPDATE").is_locking_read
    assert analyze("SELECT * FROM t FOR SHARE").is_locking_read
    assert analyze("SELECT * FROM t LOCK IN SHARE MODE").is_locking_read
    assert not analyze("SELECT * FROM t").is_locking_read
    assert not analyze("SET STATEMENT a=1 FOR UPDATE t SET b = 2").is_locking_read


def test_session_owned_values_are_found_by_their_tokens() -> None:
    assert analyze("SELECT LAST_INSERT_ID()").uses_session_values
    assert analyze("select connection_id()").uses_session_values
    assert analyze("SELECT DATABASE()").uses_session_values
    assert analyze("SELECT @@autocommit").uses_session_values
    assert analyze("SELECT @@session.in_transaction").uses_session_values
    assert not analyze("SELECT autocommit, identity FROM t").uses_session_values
    assert not analyze("SELECT 'last_insert_id()'").uses_session_values


def test_user_and_system_variables_are_listed() -> None:
    statement = analyze("SELECT @a, @`b`, @@global.max_connections, @@sql_mode")
    assert statement.user_variables == {"a", "b"}
    assert statement.system_variables == {("global", "max_connections"), ("", "sql_mode")}
    assert analyze("CREATE DEFINER=root@localhost PROCEDURE p() SELECT 1").user_variables == set()


def test_functions_called_are_listed() -> None:
    statement = analyze("SELECT GET_LOCK('x', 1), IF(a, 1, 2) FROM t WHERE b IN (1)")
    assert {"GET_LOCK", "IF"} <= statement.functions
    assert "IN" not in statement.functions


def test_set_statement_keeps_its_prefix_and_classifies_the_inner_statement() -> None:
    statement = analyze("SET STATEMENT max_statement_time=1 FOR UPDATE t SET a = 1")
    assert statement.kind is Kind.UPDATE
    assert statement.verb == "UPDATE"
    assert statement.set_statement == "SET STATEMENT max_statement_time=1 FOR"
    assert statement.tables == ("t",)


def test_executable_comments_are_flagged() -> None:
    assert analyze("/*!40101 SET NAMES utf8 */").has_executable_comment
    assert not analyze("/* SET NAMES utf8 */ SELECT 1").has_executable_comment


def test_an_unterminated_string_is_an_error_not_a_crash() -> None:
    statement = analyze("SELECT 'abc")
    assert statement.error is not None
    assert statement.kind is Kind.OTHER


def test_two_statements_in_one_text_are_flagged_multiple() -> None:
    assert analyze("START TRANSACTION; DROP TABLE t").multiple
    assert analyze("START TRANSACTION; DROP TABLE t").kind is Kind.BEGIN
    assert not analyze("SELECT 1;").multiple
    assert not analyze("CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END").multiple


# --- templates --------------------------------------------------------------------------


def test_statements_differing_only_in_literals_share_a_template() -> None:
    one = analyze("SELECT name FROM users WHERE id = 5 AND tag = 'a'")
    two = analyze("SELECT name FROM users WHERE id = 6 AND tag = 'b'")
    assert one.template == two.template == "SELECT name FROM users WHERE id = :p0 AND tag = :p1"
    assert one.values == (5, "a")
    assert two.values == (6, "b")


def test_numbers_after_order_by_and_limit_stay_in_the_template() -> None:
    statement = analyze("SELECT a FROM t WHERE b = 1 ORDER BY 1 LIMIT 10")
    assert statement.template == "SELECT a FROM t WHERE b = :p0 ORDER BY 1 LIMIT 10"


def test_escaped_strings_are_not_templated() -> None:
    assert analyze("SELECT * FROM t WHERE a = 'x\\'y'").template is None


def test_the_template_comes_from_the_code_without_comments() -> None:
    assert analyze("SELECT 1 /* c */ FROM t").template == "SELECT :p0         FROM t"


# --- helpers ------------------------------------------------------------------------------


def test_placeholders_in_strings_and_comments_are_not_markers() -> None:
    text = "SELECT ?, '?' /* ? */ FROM t WHERE a = ? -- ?"
    assert placeholder_offsets(text) == [7, text.index("= ?") + 2]
    assert placeholder_offsets("REPLACE INTO t VALUES (?, ?)") == [23, 26]


def test_select_item_texts_skip_select_options() -> None:
    assert select_item_texts("SELECT SQL_CALC_FOUND_ROWS DISTINCT a + 1, b FROM t") == [
        "a + 1",
        "b",
    ]


# --- splitting ----------------------------------------------------------------------------


def _texts(sql: str) -> list[str]:
    return [s.text.strip() for s in split_statements(sql)]


def test_a_trailing_semicolon_ends_the_only_statement() -> None:
    assert _texts("SELECT 1;") == ["SELECT 1;"]
    assert _texts("SELECT 1;;") == ["SELECT 1;;"]
    assert _texts("SELECT 1; ;") == ["SELECT 1; ;"]


def test_statements_are_split_at_top_level_semicolons_only() -> None:
    sql = "SELECT ';', \"a;b\", `c;d` FROM t; -- x; y\nSELECT 2 /* ; */; # ;"
    statements = split_statements(sql)
    assert [s.kind for s in statements] == [Kind.SELECT, Kind.SELECT, Kind.COMMENT]
    assert statements[1].code.split() == ["SELECT", "2"]


def test_a_trailing_comment_is_a_statement_the_server_answers_ok() -> None:
    assert [s.kind for s in split_statements("SELECT 1; -- c")] == [Kind.SELECT, Kind.COMMENT]


def test_an_empty_statement_between_two_stays_so_it_fails() -> None:
    kinds = [s.kind for s in split_statements("SELECT 1; ;SELECT 2")]
    assert kinds == [Kind.SELECT, Kind.EMPTY, Kind.SELECT]


def test_transaction_control_in_a_multi_statement() -> None:
    kinds = [s.kind for s in split_statements("BEGIN; UPDATE t SET a = 1; COMMIT;")]
    assert kinds == [Kind.BEGIN, Kind.UPDATE, Kind.COMMIT]


BODIES = [
    "CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END",
    "CREATE DEFINER=`root`@`localhost` PROCEDURE p(IN x INT) BEGIN DECLARE i INT DEFAULT 0; "
    "lbl: LOOP SET i = i + 1; IF i > x THEN LEAVE lbl; END IF; END LOOP lbl; "
    "WHILE i > 0 DO SET i = i - 1; END WHILE; REPEAT SET i = i + 1; UNTIL i > 3 END REPEAT; "
    "CASE i WHEN 1 THEN SELECT 1; ELSE SELECT 2; END CASE; "
    "SELECT CASE WHEN i THEN 1 ELSE 2 END, IF(i, 1, 2), REPEAT('a', 2); "
    "BEGIN SELECT 'END;'; END; END",
    "CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC BEGIN IF x > 0 THEN RETURN 1; "
    "END IF; RETURN 0; END",
    "CREATE FUNCTION f(x INT) RETURNS INT RETURN x + 1",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; SET NEW.b = 2; END",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM t; INSERT INTO t VALUES (1); END",
    "CREATE PROCEDURE p() IF 1 THEN SELECT 1; ELSE SELECT 2; END IF",
    "CREATE PROCEDURE p() BEGIN /* ; */ SELECT 1; -- ;\n SELECT 2; END",
    "BEGIN NOT ATOMIC SELECT 1; SELECT 2; END",
    "lbl: BEGIN NOT ATOMIC SELECT 1; END lbl",
    "FOR i IN 1..3 DO SELECT i; END FOR",
]


@pytest.mark.parametrize("body", BODIES)
def test_a_compound_statement_is_never_cut_at_its_inner_semicolons(body: str) -> None:
    assert _texts(f"{body}; SELECT 9") == [body, "SELECT 9"]
    assert _texts(f"SELECT 8; {body}") == ["SELECT 8", body]


def test_a_begin_that_starts_a_transaction_is_not_a_block() -> None:
    assert _texts("BEGIN; SELECT 1; END") == ["BEGIN", "SELECT 1", "END"]


# --- clauses of control statements --------------------------------------------------------


def test_set_assignments_are_read_with_their_scopes() -> None:
    assert set_assignments("SET @@session.autocommit = 0;") == [
        Assignment("session", "autocommit", "0")
    ]
    assert set_assignments("SET LOCAL autocommit := 'ON'") == [
        Assignment("local", "autocommit", "'ON'")
    ]
    assert [a.scope for a in set_assignments("SET a = 1, GLOBAL b = 2, @@global.c = (1)")] == [
        "",
        "global",
        "global",
    ]
    assert set_assignments("/*!40101 SET NAMES utf8mb4 */") == [Assignment("names", "", "utf8mb4")]
    assert set_assignments("SET CHARACTER SET utf8")[0].scope == "charset"
    assert set_assignments("SET @x = IF(1, 2, 3), PERSIST y = 1")[1].scope == "persist"
    assert is_set_transaction("SET TRANSACTION READ ONLY")
    assert not is_set_transaction("SET SESSION TRANSACTION READ ONLY")


def test_use_kill_and_database_targets_are_read_from_tokens() -> None:
    assert use_target("USE `my db`;") == "my db"
    assert use_target("use bank -- c") == "bank"
    assert use_target("USE a b") is None
    assert kill_target("KILL QUERY 5") == (5, True)
    assert kill_target("kill connection 7;") == (7, False)
    assert kill_target("KILL 8") == (8, False)
    assert kill_target("KILL USER x") is None
    assert database_target("CREATE DATABASE IF NOT EXISTS `d`") == ("CREATE", "d")
    assert database_target("drop schema if exists d") == ("DROP", "d")


def test_show_options_are_read_from_tokens() -> None:
    options = show_options("SHOW FULL TABLES IN bank LIKE 'a\\_%'")
    assert options == ShowOptions(True, "bank", "a\\_%", None)
    assert show_options("SHOW WARNINGS LIMIT 1, 2").limit == (1, 2)
    assert show_options("SHOW WARNINGS LIMIT 3").limit == (3, None)


def test_savepoint_commands_are_read_with_their_names_unquoted() -> None:
    assert savepoint_command("SAVEPOINT `a b`;") == SavepointCommand("SAVEPOINT", "a b")
    assert savepoint_command("ROLLBACK WORK TO SAVEPOINT `x``y`") == SavepointCommand(
        "ROLLBACK", "x`y"
    )
    assert savepoint_command("rollback to a") == SavepointCommand("ROLLBACK", "a")
    assert savepoint_command("RELEASE SAVEPOINT A -- c") == SavepointCommand("RELEASE", "A")
    assert savepoint_command("SAVEPOINT 'a'") is None
    assert savepoint_command("SAVEPOINT a b") is None


def test_set_assignments_keep_their_text_and_say_when_they_read_user_variables() -> None:
    first, second, third = set_assignments(
        "SET autocommit=1, sql_mode = concat(@@sql_mode,',X'), @@session.time_zone = @old"
    )
    assert first.text == "autocommit=1"
    assert second.text == "sql_mode = concat(@@sql_mode,',X')"
    assert not reads_user_variables(second)
    assert reads_user_variables(third)


@pytest.mark.parametrize(
    ("sql", "assigned"),
    [
        ("SELECT @v := balance FROM a", {"v"}),
        ("SELECT 1, 2 INTO @w, @x", {"w", "x"}),
        ("SELECT b INTO @w FROM a WHERE id = @k", {"w"}),
        ("SET @a = 1, @b := 2, @c = @d", {"a", "b", "c"}),
        ("SET sql_mode = @m", set()),
        ("SELECT @a = 1, @b", set()),
        ("CALL p(@o, @i)", {"o", "i"}),
        ("SET STATEMENT max_statement_time = 1 FOR SELECT @a := 1", {"a"}),
    ],
)
def test_user_variables_a_statement_may_assign_are_told_apart(sql: str, assigned: set) -> None:
    assert analyze(sql).assigned_user_variables == assigned


@pytest.mark.parametrize(
    ("sql", "cause"),
    [
        ("SELECT @v", "user variables"),
        ("CREATE TEMPORARY TABLE t (a INT)", "temporary table"),
        ("SELECT GET_LOCK('a', 1)", "GET_LOCK"),
        ("LOCK TABLES t READ", "LOCK TABLES"),
        ("PREPARE s FROM 'SELECT 1'", "PREPARE"),
        ("SELECT @@sql_mode", None),
        ("CREATE TABLE t (a INT)", None),
        ("SELECT 'a@b'", None),
    ],
)
def test_connection_local_state_a_statement_creates_is_named(sql: str, cause: str | None) -> None:
    assert analyze(sql).connection_state == cause


def test_set_statement_prefix_and_body_are_located() -> None:
    statement = analyze("SET STATEMENT max_statement_time=1 FOR UPDATE t SET a = 1")
    assert statement.kind is Kind.UPDATE
    assert statement.effective[statement.body_start :] == "UPDATE t SET a = 1"
    assert statement.effective[: statement.body_start] == "SET STATEMENT max_statement_time=1 FOR "
