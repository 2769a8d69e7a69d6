"""The statement allowlist (xaproxy/authz/): statement text -> allowed, or the error code.

Each refusal rule is tried in the spellings a client can use: comments between
keywords, executable comments (`/*! */`, `/*!40101 */`, `/*M!100100 */`), case,
backticks, multi-statements, PREPARE ... FROM / EXECUTE IMMEDIATE of a string,
and the body of a stored program.
"""

from __future__ import annotations

import pytest

from xaproxy import errors
from xaproxy.analysis import analyze, split_statements
from xaproxy.authz import UserGrants, authorize
from xaproxy.config.model import BOOKKEEPING_DATABASE
from xaproxy.transactions import at, decisions

KNOWN = frozenset({"shop", "other"})
APP = UserGrants("app", "127.0.0.1", KNOWN, ddl=True, known=KNOWN)
PLAIN = UserGrants("plain", "127.0.0.1", frozenset({"shop"}), known=KNOWN)
READER = UserGrants("reader", "127.0.0.1", frozenset({"shop"}), read_only=True, known=KNOWN)
ADMIN = UserGrants("ops", "127.0.0.1", frozenset({"shop"}), admin=True)
PERF = UserGrants("perf", "127.0.0.1", frozenset({"shop", "performance_schema"}))


def outcome(sql: str, grants: UserGrants = APP, database: str | None = "shop") -> int | None:
    """None when every statement of `sql` is allowed, else the first refusal's error code."""
    try:
        for statement in split_statements(sql):
            authorize(statement, grants, database)
    except errors.ProxyError as exc:
        return exc.code
    return None


ALLOWED = [
    "SELECT * FROM t",
    "select * from shop.t where id = 1",
    "SELECT * FROM `shop`.`t` AS x JOIN other.u ON x.id = u.id",
    "INSERT INTO t (a) VALUES (1)",
    "INSERT t VALUES (1)",
    "REPLACE INTO t VALUES (1)",
    "UPDATE t SET a = 1 WHERE id = 2",
    "DELETE FROM t WHERE id = 2",
    "SELECT * FROM t FOR UPDATE",
    "BEGIN",
    "START TRANSACTION READ ONLY",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "ROLLBACK TO SAVEPOINT a",
    "SET autocommit = 0",
    "SET NAMES utf8mb4",
    "SET sql_mode = 'STRICT_TRANS_TABLES'",
    "SET @@session.time_zone = '+00:00'",
    "SET @x = 1",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET STATEMENT max_statement_time = 5 FOR SELECT * FROM t",
    "USE shop",
    "USE information_schema",
    "SHOW DATABASES",
    "SHOW TABLES",
    "SHOW FULL TABLES FROM shop",
    "SHOW COLUMNS FROM t",
    "SHOW FULL COLUMNS FROM t FROM shop",
    "SHOW INDEX FROM shop.t",
    "SHOW CREATE TABLE t",
    "SHOW TABLE STATUS FROM shop LIKE 't%'",
    "SHOW VARIABLES LIKE 'sql_mode'",
    "SHOW SESSION STATUS",
    "SHOW COLLATION",
    "SHOW WARNINGS",
    "SHOW PROCESSLIST",
    "SELECT * FROM information_schema.COLUMNS WHERE table_schema = 'shop'",
    "DESCRIBE t",
    "EXPLAIN SELECT * FROM t",
    "CALL p(1)",
    "CALL shop.p()",
    "CREATE TABLE t2 (id INT PRIMARY KEY) ENGINE=InnoDB",
    "ALTER TABLE t ADD COLUMN c INT",
    "DROP TABLE IF EXISTS t2",
    "TRUNCATE TABLE t",
    "RENAME TABLE t TO t_old",
    "CREATE INDEX i ON t (a)",
    "CREATE VIEW v AS SELECT * FROM t",
    "CREATE DATABASE shop",
    "DROP DATABASE other",
    "CREATE PROCEDURE p() BEGIN SELECT * FROM t; UPDATE t SET a = a + 1; END",
    "CREATE DEFINER = CURRENT_USER PROCEDURE p() SELECT 1",
    "CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM t WHERE a < 0",
    "CREATE PROCEDURE p() BEGIN DECLARE CONTINUE HANDLER FOR SQLEXCEPTION SET @e = 1;"
    " IF (SELECT COUNT(*) FROM t) > 0 THEN UPDATE t SET a = 0; END IF; END",
    "PREPARE s FROM 'SELECT * FROM t WHERE id = ?'",
    "EXECUTE s USING @x",
    "DEALLOCATE PREPARE s",
    "EXECUTE IMMEDIATE 'SELECT 1'",
    "SELECT 1; SELECT 2",
    "KILL 12",
    "KILL QUERY 12",
    "XAPROXY VERSION",
    "XAPROXY EXPLAIN SELECT * FROM t",
    "/* a comment */ SELECT 1",
    "SELECT /*! 1 */",
    "LOCK TABLES t READ",
    "UNLOCK TABLES",
    "DO 1",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_statements_an_application_needs_are_allowed(sql: str) -> None:
    assert outcome(sql) is None


ACCOUNT = [
    "CREATE USER evil IDENTIFIED BY 'x'",
    "create /* hi */ user evil",
    "CREATE /*! USER */ evil",
    "DROP USER app",
    "ALTER USER root IDENTIFIED BY 'x'",
    "RENAME USER a TO b",
    "GRANT ALL ON *.* TO evil",
    "grant all privileges on *.* to 'evil'@'%' with grant option",
    "/*!40101 GRANT ALL ON *.* TO evil */",
    "/*M!100100 GRANT ALL ON *.* TO evil */",
    "REVOKE ALL ON *.* FROM app",
    "SET PASSWORD = PASSWORD('x')",
    "SET PASSWORD FOR root = 'x'",
    "SET DEFAULT ROLE r",
    "CREATE ROLE r",
]


@pytest.mark.parametrize("sql", ACCOUNT)
def test_account_management_is_refused_with_1227(sql: str) -> None:
    assert outcome(sql) == 1227


ADMINISTRATION = [
    "SHUTDOWN",
    "shutdown",
    "/*!SHUTDOWN*/",
    "/*M!100100 SHUTDOWN */",
    "FLUSH PRIVILEGES",
    "FLUSH TABLES",
    "RESET MASTER",
    "PURGE BINARY LOGS BEFORE NOW()",
    "CHANGE MASTER TO MASTER_HOST = 'x'",
    "START SLAVE",
    "STOP SLAVE",
    "INSTALL PLUGIN x SONAME 'x.so'",
    "INSTALL SONAME 'ha_connect'",
    "UNINSTALL PLUGIN x",
    "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'x')",
    "BINLOG 'AAAA'",
    "SET GLOBAL max_connections = 1",
    "set global max_connections=1",
    "SET @@global.max_connections = 1",
    "SET @@GLOBAL.max_connections = 1",
    "SET SESSION sql_mode = '', GLOBAL max_connections = 1",
    "SET PERSIST max_connections = 1",
    "SET /*! GLOBAL */ max_connections = 1",
    "SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET sql_log_bin = 0",
    "SET gtid_seq_no = 5",
    "SET STATEMENT sql_log_bin = 0 FOR DELETE FROM t",
    "SET ROLE admin",
    "SHOW MASTER STATUS",
    "SHOW SLAVE STATUS",
    "SHOW BINARY LOGS",
    "SHOW ENGINE INNODB STATUS",
    "SHOW GRANTS",
    "SHOW GRANTS FOR root",
    "SHOW CREATE USER root",
    "ANALYZE TABLE t",
    "OPTIMIZE TABLE t",
    "HANDLER t OPEN",
    "CACHE INDEX t IN c",
    "LOAD INDEX INTO CACHE t",
    "HELP 'x'",
    "BACKUP STAGE START",
    "SELECT LOAD_FILE('/etc/passwd')",
    "select load_file('/etc/passwd')",
    "SELECT /*! LOAD_FILE('/etc/passwd') */",
    "SELECT /*!40101 LOAD_FILE('/etc/passwd') */",
    "SELECT a FROM t WHERE b = LOAD_FILE('/etc/passwd')",
    "SET @x = LOAD_FILE('/etc/passwd')",
    "SELECT * FROM t INTO OUTFILE '/tmp/x'",
    "SELECT * FROM t /*! INTO DUMPFILE '/tmp/x' */",
    "SELECT * INTO OUTFILE '/tmp/x' FROM t",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
    "load data low_priority infile '/etc/passwd' into table t",
    "LOAD XML INFILE '/etc/x.xml' INTO TABLE t",
    "CREATE TABLE t3 (a INT) DATA DIRECTORY = '/tmp'",
    "CREATE TABLE t3 (a INT) ENGINE = CONNECT TABLE_TYPE = DOS FILE_NAME = '/etc/passwd'",
    "CREATE TABLE t3 (a INT) ENGINE=FEDERATED CONNECTION='mysql://u@h/db/t'",
    "CREATE DEFINER = root@localhost PROCEDURE p() SELECT 1",
    "CREATE FUNCTION f RETURNS STRING SONAME 'udf.so'",
]


@pytest.mark.parametrize("sql", ADMINISTRATION)
def test_server_administration_and_file_access_are_refused_with_1227(sql: str) -> None:
    assert outcome(sql) == 1227


XA = ["XA RECOVER", "xa commit 'x'", "XA ROLLBACK 'a','b',1", "/*! XA RECOVER */", "XA START 'x'"]


@pytest.mark.parametrize("sql", XA)
def test_xa_verbs_from_clients_are_refused(sql: str) -> None:
    assert outcome(sql) == 1399


OTHER_DATABASES = [
    "SELECT * FROM mysql.user",
    "SELECT * FROM MySQL.User",
    "SELECT * FROM `mysql`.`user`",
    "SELECT * FROM `mysql` . `user`",
    "SELECT * FROM mysql/**/./**/user",
    "SELECT * FROM /*! mysql.user */",
    "SELECT Password FROM t WHERE a IN (SELECT password FROM mysql.user)",
    "SELECT * FROM t JOIN mysql.user u ON u.User = t.a",
    "SELECT mysql.user.password FROM t",
    "SELECT * FROM sys.processlist",
    "SELECT * FROM performance_schema.events_statements_current",
    "SELECT * FROM notgranted.t",
    "INSERT INTO mysql.user (User) VALUES ('evil')",
    "INSERT mysql.user VALUES ('evil')",
    "UPDATE mysql.user SET Password = ''",
    "DELETE FROM mysql.user",
    "SELECT * FROM information_schema.PROCESSLIST",
    "SELECT * FROM INFORMATION_SCHEMA.processlist",
    "SHOW COLUMNS FROM user FROM mysql",
    "SHOW COLUMNS FROM mysql.user",
    "SHOW CREATE TABLE mysql.user",
    "CALL mysql.p()",
    "CREATE TABLE mysql.evil (a INT)",
    "RENAME TABLE t TO mysql.t",
    "CREATE TABLE t4 LIKE mysql.user",
    "CREATE VIEW v AS SELECT * FROM mysql.user",
    "PREPARE s FROM 'SELECT * FROM mysql.user'",
    "EXECUTE IMMEDIATE 'SELECT * FROM mysql.user'",
    "XAPROXY EXPLAIN SELECT * FROM mysql.user",
    "SELECT 1; SELECT * FROM mysql.user",
]


@pytest.mark.parametrize("sql", OTHER_DATABASES)
def test_other_databases_are_refused(sql: str) -> None:
    assert outcome(sql) in (1142, 1044)


INFORMATION_SCHEMA_WRITES = [
    "DELETE FROM information_schema.TABLES",
    "UPDATE information_schema.TABLES SET TABLE_NAME = 'x'",
    "CREATE TABLE information_schema.t (a INT)",
]


@pytest.mark.parametrize("sql", INFORMATION_SCHEMA_WRITES)
def test_information_schema_is_read_only(sql: str) -> None:
    assert outcome(sql) in (1044, 1142)


def test_performance_schema_is_readable_only_when_granted() -> None:
    sql = "SELECT * FROM performance_schema.threads"
    assert outcome(sql, PLAIN) == 1142
    assert outcome(sql, PERF) is None


BOOKKEEPING = [
    "SELECT * FROM xaproxy.decisions",
    "select * from XAPROXY.DECISIONS",
    "SELECT * FROM `xaproxy`.`decisions`",
    "SELECT * FROM `xaproxy` . decisions",
    "SELECT * FROM xaproxy/* c */./* c */decisions",
    "SELECT * FROM /*!xaproxy.decisions*/",
    "SELECT * FROM /*M!100100 xaproxy.decisions */",
    "SELECT * FROM t WHERE a IN (SELECT gtrid FROM xaproxy.decisions)",
    "DELETE FROM xaproxy.decisions",
    "DELETE d FROM t JOIN xaproxy.decisions d ON d.gtrid = t.a",
    "UPDATE xaproxy.decisions SET outcome = 'A'",
    "INSERT INTO xaproxy.decisions VALUES ('g', 'C', NOW())",
    "INSERT xaproxy.decisions VALUES ('g', 'C', NOW())",
    "REPLACE xaproxy.decisions VALUES ('g', 'C', NOW())",
    "DELETE FROM xaproxy.undo_log",
    "UPDATE xaproxy.undo_log SET status = 0",
    "DELETE FROM xaproxy.global_locks",
    "TRUNCATE TABLE xaproxy.global_locks",
    "DROP TABLE xaproxy.decisions",
    "ALTER TABLE xaproxy.decisions ENGINE = InnoDB",
    "RENAME TABLE xaproxy.decisions TO shop.d",
    "LOCK TABLES xaproxy.decisions WRITE",
    "DROP DATABASE xaproxy",
    "CREATE DATABASE xaproxy",
    "USE xaproxy",
    "use `xaproxy`",
    "SHOW TABLES FROM xaproxy",
    "SHOW COLUMNS FROM decisions FROM xaproxy",
    "SHOW CREATE TABLE xaproxy.decisions",
    "SELECT xaproxy.f()",
    "CREATE PROCEDURE p() BEGIN DELETE FROM xaproxy.decisions; END",
    "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW DELETE FROM xaproxy.undo_log",
    "CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO DELETE FROM xaproxy.global_locks",
    "CREATE VIEW v AS SELECT * FROM xaproxy.decisions",
    "PREPARE s FROM 'DELETE FROM xaproxy.decisions'",
    'PREPARE s FROM "DELETE FROM xaproxy.decisions"',
    "EXECUTE IMMEDIATE 'DELETE FROM xaproxy.decisions'",
    "EXECUTE IMMEDIATE 'DELETE FROM /*!xaproxy.decisions*/'",
    "SET @x = 1; DELETE FROM xaproxy.decisions",
    "BEGIN; DELETE FROM xaproxy.decisions; COMMIT",
    "SELECT 1 FROM t WHERE EXISTS (SELECT 1 FROM xaproxy.global_locks)",
]


@pytest.mark.parametrize("sql", BOOKKEEPING)
def test_the_bookkeeping_tables_are_refused_in_every_spelling(sql: str) -> None:
    assert outcome(sql) in (1142, 1044, 1227)


def test_unqualified_bookkeeping_names_are_refused_after_use_of_its_database() -> None:
    assert outcome("SELECT * FROM decisions", database="xaproxy") == 1142
    assert outcome("DELETE FROM undo_log", database="XAPROXY") == 1142


def test_unqualified_names_without_a_current_database_are_refused() -> None:
    # a pooled shard connection may still be in another session's database
    assert outcome("SELECT * FROM t", database=None) == 1046
    assert outcome("SELECT 1", database=None) is None


def test_the_bookkeeping_database_is_the_one_the_transaction_code_writes() -> None:
    assert decisions.DATABASE == BOOKKEEPING_DATABASE
    assert at.LOCKS.split(".")[0] == BOOKKEEPING_DATABASE
    assert at.UNDO.split(".")[0] == BOOKKEEPING_DATABASE


DYNAMIC = [
    "PREPARE s FROM @sql",
    "PREPARE s FROM CONCAT('SELECT ', '1')",
    "PREPARE s FROM x'53454c4543542031'",
    "PREPARE s FROM _latin1'SELECT 1'",
    "EXECUTE IMMEDIATE @sql",
    "EXECUTE IMMEDIATE CONCAT('SHUT', 'DOWN')",
    "PREPARE s FROM 'SELECT \\'1\\''",  # backslash escapes: the text is not authorized
    "PREPARE s FROM 'SHUTDOWN'",
    "PREPARE s FROM 'GRANT ALL ON *.* TO evil'",
    "PREPARE s FROM 'CREATE /*! USER */ evil'",
    "EXECUTE IMMEDIATE 'SET GLOBAL max_connections = 1'",
    "EXECUTE IMMEDIATE 'SELECT LOAD_FILE(''/etc/passwd'')'",
    "EXECUTE IMMEDIATE 'XA RECOVER'",
    "EXECUTE IMMEDIATE 'SELECT 1; SELECT 2'",
    "PREPARE s FROM 'PREPARE t FROM ''SHUTDOWN'''",
]


@pytest.mark.parametrize("sql", DYNAMIC)
def test_dynamic_sql_is_authorized_by_its_text_or_refused(sql: str) -> None:
    assert outcome(sql) is not None


PROGRAMS = [
    "CREATE PROCEDURE p() BEGIN SELECT 1; GRANT ALL ON *.* TO evil; END",
    "CREATE PROCEDURE p() GRANT ALL ON *.* TO evil",
    "CREATE PROCEDURE p() BEGIN SELECT 1; /*! SHUTDOWN */; END",
    "CREATE PROCEDURE p() BEGIN IF 1 THEN SHUTDOWN; END IF; END",
    "CREATE PROCEDURE p() BEGIN lbl: LOOP CREATE USER evil; END LOOP; END",
    "CREATE PROCEDURE p() BEGIN SET GLOBAL max_connections = 1; END",
    "CREATE PROCEDURE p() BEGIN SET @@global.max_connections = 1; END",
    "CREATE PROCEDURE p() BEGIN SET PASSWORD = 'x'; END",
    "CREATE PROCEDURE p() BEGIN SET sql_log_bin = 0; DELETE FROM t; END",
    "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END",
    "CREATE PROCEDURE p() BEGIN DECLARE EXIT HANDLER FOR SQLEXCEPTION DROP USER app; END",
    "CREATE PROCEDURE p() SELECT LOAD_FILE('/etc/passwd')",
    "CREATE PROCEDURE p() SELECT * FROM t INTO OUTFILE '/tmp/x'",
    "CREATE PROCEDURE p() SELECT * FROM mysql.user",
    "CREATE PROCEDURE p() BEGIN INSERT mysql.user VALUES ('x'); END",
    "CREATE PROCEDURE p() BEGIN CALL mysql.p(); END",
    "CREATE PROCEDURE p() BEGIN XA RECOVER; END",
    "CREATE PROCEDURE p() BEGIN LOAD DATA INFILE '/etc/passwd' INTO TABLE t; END",
    "CREATE FUNCTION f() RETURNS INT BEGIN DELETE FROM xaproxy.decisions; RETURN 1; END",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN FLUSH PRIVILEGES; END",
    "CREATE TRIGGER tr BEFORE INSERT ON mysql.user FOR EACH ROW SET NEW.a = 1",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SHUTDOWN",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO GRANT ALL ON *.* TO evil",
    "CREATE PROCEDURE mysql.p() SELECT 1",
    "BEGIN NOT ATOMIC GRANT ALL ON *.* TO evil; END",
    "BEGIN NOT ATOMIC SELECT * FROM mysql.user; END",
    "CREATE PACKAGE pk AS PROCEDURE p(); END",
]


@pytest.mark.parametrize("sql", PROGRAMS)
def test_stored_program_bodies_hold_only_allowed_statements(sql: str) -> None:
    assert outcome(sql) is not None


def test_ddl_needs_the_ddl_grant() -> None:
    for sql in (
        "CREATE TABLE t2 (a INT)",
        "DROP TABLE t",
        "ALTER TABLE t ADD c INT",
        "TRUNCATE t",
        "CREATE DATABASE shop",
        "CREATE PROCEDURE p() SELECT 1",
        "DROP PROCEDURE p",
    ):
        assert outcome(sql, PLAIN) == 1142, sql
        assert outcome(sql, APP) is None, sql


def test_databases_not_granted_are_refused() -> None:
    assert outcome("USE other", PLAIN) == 1044
    assert outcome("SELECT * FROM other.t", PLAIN) == 1142
    assert outcome("SHOW TABLES FROM other", PLAIN) == 1044
    developer = UserGrants("d", "h", frozenset({"shop"}), ddl=True, known=KNOWN)
    assert outcome("CREATE DATABASE other", developer) == 1044
    assert outcome("DROP DATABASE mysql") == 1044
    assert outcome("USE mysql") == 1044


def test_read_only_users_only_read() -> None:
    for sql in (
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "DELETE FROM t",
        "REPLACE INTO t VALUES (1)",
        "CALL p()",
        "/*! INSERT INTO t VALUES (1) */",
        "PREPARE s FROM 'DELETE FROM t'",
        "EXECUTE IMMEDIATE 'UPDATE t SET a = 1'",
        "SELECT 1; DELETE FROM t",
        "LOCK TABLES t WRITE",
    ):
        assert outcome(sql, READER) == 1142, sql
    for sql in ("SELECT * FROM t", "SELECT * FROM t FOR UPDATE", "SHOW TABLES", "BEGIN"):
        assert outcome(sql, READER) is None, sql


def test_operator_commands_need_admin_but_version_and_explain_do_not() -> None:
    for sql in (
        "XAPROXY SHOW SESSIONS",
        "XAPROXY SHOW POOLS",
        "XAPROXY SHOW TRANSACTIONS",
        "XAPROXY RESOLVE 'g' ACCEPT",
    ):
        assert outcome(sql, PLAIN) == 1227, sql
        assert outcome(sql, ADMIN) is None, sql
    assert outcome("XAPROXY VERSION", PLAIN) is None
    assert outcome("XAPROXY EXPLAIN SELECT * FROM t", PLAIN) is None


def test_refusals_say_what_is_refused_and_why() -> None:
    with pytest.raises(errors.ProxyError) as caught:
        authorize(analyze("GRANT ALL ON *.* TO evil"), APP, "shop")
    assert "GRANT" in caught.value.message and "account" in caught.value.message
    with pytest.raises(errors.ProxyError) as caught:
        authorize(analyze("SELECT * FROM xaproxy.decisions"), APP, "shop")
    assert "bookkeeping" in caught.value.message
    assert "'app'@'127.0.0.1'" in caught.value.message


def test_a_statement_that_does_not_tokenize_is_refused() -> None:
    assert outcome("SELECT 'unterminated") == 1064


def test_a_database_the_proxy_does_not_know_is_unknown() -> None:
    assert outcome("USE no_such_db") == 1049
    assert outcome("SHOW TABLES FROM no_such_db") == 1049


def test_a_native_password_hash_verifies_the_response_of_its_password() -> None:
    from xaproxy.protocol import auth

    scramble = auth.new_scramble()
    stored = auth.native_hash("ops-secret")
    assert stored == "*27FA2108D4BA1E19C8E7385D0F9D18568BAC0CA0"  # SELECT PASSWORD('ops-secret')
    assert auth.verify_native_hash(stored, scramble, auth.native_response("ops-secret", scramble))
    assert not auth.verify_native_hash(stored, scramble, auth.native_response("other", scramble))
    assert not auth.verify_native_hash(stored, scramble, b"")


def test_create_database_of_a_name_outside_the_config_is_left_to_the_session() -> None:
    # the session refuses it with 1235 and says to add it under schemas:
    assert outcome("CREATE DATABASE not_in_the_map") is None
    assert outcome("DROP DATABASE xaproxy") == 1044


def test_a_statement_no_mariadb_statement_begins_with_is_a_syntax_error() -> None:
    # as on MariaDB (1064), not an access error
    assert outcome("SELEC 1") == 1064
    assert outcome("SHUT/**/DOWN") == 1064
    assert outcome("WHATEVER 1") == 1064


# --- read_only: the shard connections refuse writes; nothing may lift that ------------------

READ_WRITE_SPELLINGS = [
    "START TRANSACTION READ WRITE",
    "start /* c */ transaction read   write",
    "/*!START TRANSACTION READ WRITE */",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE",
    "SET SESSION TRANSACTION READ WRITE",
    "SET /*M!100100 SESSION */ TRANSACTION READ WRITE",
    "SET tx_read_only = 0",
    "SET @@tx_read_only = OFF",
    "SET @@session.transaction_read_only = 0",
    "SET SESSION tx_read_only = 0, autocommit = 1",
    "SET STATEMENT tx_read_only = 0 FOR SELECT f()",
    "EXECUTE IMMEDIATE 'SET tx_read_only = 0'",
    "PREPARE s FROM 'START TRANSACTION READ WRITE'",
    "SELECT 1; SET SESSION TRANSACTION READ WRITE",
]


@pytest.mark.parametrize("sql", READ_WRITE_SPELLINGS)
def test_read_only_users_cannot_make_their_transactions_read_write(sql: str) -> None:
    assert outcome(sql, READER) == 1142
    assert outcome(sql, PLAIN) is None


def test_read_only_users_keep_read_only_transactions_and_reads() -> None:
    for sql in (
        "START TRANSACTION READ ONLY",
        "SET SESSION TRANSACTION READ ONLY",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET @tx_read_only = 0",  # a user variable
        "SELECT f()",  # the shard refuses what f writes (1792)
        "SELECT * FROM v",
    ):
        assert outcome(sql, READER) is None, sql


# --- sequences are tables: their database is checked -------------------------------------

SEQUENCES_ELSEWHERE = [
    "SELECT NEXTVAL(other.seq)",
    "SELECT nextval ( `other` . `seq` )",
    "SELECT LASTVAL(other.seq)",
    "SELECT SETVAL(other.seq, 1000)",
    "SELECT NEXT VALUE FOR other.seq",
    "SELECT PREVIOUS VALUE FOR other.seq",
    "SELECT /*!NEXTVAL(other.seq) */",
    "SELECT NEXTVAL(/* c */ other.seq)",
    "INSERT INTO t VALUES (NEXT VALUE FOR other.seq)",
    "UPDATE t SET a = NEXTVAL(other.seq)",
    "SET @v = NEXTVAL(other.seq)",
    "DO SETVAL(other.seq, 5)",
    "EXECUTE IMMEDIATE 'SELECT NEXTVAL(other.seq)'",
    "SELECT 1; SELECT NEXTVAL(other.seq)",
]


@pytest.mark.parametrize("sql", SEQUENCES_ELSEWHERE)
def test_sequence_functions_check_the_sequences_database(sql: str) -> None:
    assert outcome(sql, PLAIN) == 1142
    assert outcome(sql.replace("other", "shop"), PLAIN) is None


def test_sequences_of_server_and_bookkeeping_databases_are_refused() -> None:
    assert outcome("SELECT NEXTVAL(mysql.seq)", PLAIN) == 1142
    assert outcome(f"SELECT SETVAL({BOOKKEEPING_DATABASE}.decisions, 1)", PLAIN) == 1142
    assert outcome("SELECT NEXTVAL(seq)", PLAIN, None) == 1046


# --- USER() & co.: replaced by the session where exact, else refused -----------------------

ACCOUNT_FUNCTIONS_REFUSED = [
    "CREATE VIEW v AS SELECT USER() AS u",
    "CREATE FUNCTION f() RETURNS TEXT RETURN CURRENT_USER()",
    "CREATE FUNCTION f() RETURNS TEXT RETURN CURRENT_USER",
    "CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (SESSION_USER()); END",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.who = USER()",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO INSERT INTO t VALUES (SYSTEM_USER())",
    "CREATE TABLE t2 (who VARCHAR(200) DEFAULT (USER()))",
    "BEGIN NOT ATOMIC SELECT USER(); END",
    "PREPARE s FROM 'SELECT USER()'",
    "EXECUTE IMMEDIATE 'SET @u = CURRENT_USER()'",
    "SHOW VARIABLES WHERE Value = USER()",
]


@pytest.mark.parametrize("sql", ACCOUNT_FUNCTIONS_REFUSED)
def test_account_functions_that_would_run_on_a_shard_later_are_refused(sql: str) -> None:
    assert outcome(sql) == 1235


def test_account_functions_in_statements_the_session_rewrites_pass_the_allowlist() -> None:
    for sql in (
        "SET @v = USER()",
        "SELECT CURRENT_USER() INTO @c",
        "INSERT INTO t VALUES (CURRENT_USER)",
        "UPDATE t SET who = SESSION_USER() WHERE id = 1",
        "DELETE FROM t WHERE who = SYSTEM_USER()",
        "CREATE DEFINER = CURRENT_USER() PROCEDURE p() SELECT 1",
        "INSERT INTO user (a) VALUES (1)",  # a table named user
        "SELECT d.user() FROM t",  # a stored function of database d... refused as d is unknown
    ):
        assert outcome(sql) in (None, 1049), sql


def test_account_calls_are_found_where_they_are_calls() -> None:
    from xaproxy.analysis.account import account_calls

    def calls(sql: str) -> list[tuple[str, bool]] | None:
        found = account_calls(list(analyze(sql).tokens))
        return None if found is None else [(c.name, c.visible) for c in found]

    assert calls("SELECT USER()") == [("USER", True)]
    assert calls("SELECT a FROM t WHERE b = CURRENT_USER") == [("CURRENT_USER", False)]
    assert calls("SELECT a FROM t WHERE b IN (SELECT SESSION_USER())") == [("SESSION_USER", False)]
    assert calls("SELECT * FROM (SELECT USER()) d") == [("USER", True)]
    assert calls("SELECT a FROM t WHERE b UNION SELECT USER()") == [("USER", True)]
    assert calls("SELECT /*!USER()*/") == [("USER", True)]
    assert calls("SELECT 'USER()', `user`(), d.user()") == []
    assert calls("CREATE DEFINER = CURRENT_USER PROCEDURE p() SELECT 1") == []
    assert calls("SELECT USER(1)") is None


# --- information_schema: only rows of the user's schemas ------------------------------------

INFORMATION_SCHEMA_ALLOWED = [
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'",
    "SELECT * FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 't'",
    "SELECT * FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA IN ('shop')",
    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'",
    "SELECT c.COLUMN_NAME FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
    "ON t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = 'shop' AND t.TABLE_SCHEMA = 'shop'",
    "SELECT * FROM information_schema.KEY_COLUMN_USAGE WHERE (TABLE_SCHEMA = 'shop')",
    "SELECT * FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop'",
    "SELECT * FROM information_schema.COLLATIONS",
    "SELECT * FROM information_schema.CHARACTER_SETS",
    "SELECT * FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME = 'sql_mode'",
    "SHOW TABLES FROM information_schema",
    "SHOW COLUMNS FROM information_schema.TABLES",
    "EXPLAIN SELECT * FROM information_schema.TABLES",
]


@pytest.mark.parametrize("sql", INFORMATION_SCHEMA_ALLOWED)
def test_information_schema_reads_of_the_users_schemas_are_allowed(sql: str) -> None:
    assert outcome(sql, PLAIN) is None


INFORMATION_SCHEMA_REFUSED = [
    "SELECT * FROM information_schema.TABLES",
    "SELECT * FROM information_schema.SCHEMATA",
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'other'",
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('shop', 'other')",
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' OR 1 = 1",
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'sh%'",
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'xaproxy'",
    "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mysql'",
    "SELECT * FROM information_schema.TABLES t WHERE x.TABLE_SCHEMA = 'shop'",
    "SELECT COLUMN_NAME FROM information_schema.COLUMNS JOIN t ON 1 WHERE TABLE_SCHEMA = 'shop'",
    "SELECT c.COLUMN_NAME FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
    "ON t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = 'shop'",
    "SELECT * FROM t WHERE a IN (SELECT TABLE_NAME FROM information_schema.TABLES)",
    "SELECT * FROM (SELECT * FROM information_schema.TABLES) d WHERE d.TABLE_SCHEMA = 'shop'",
    "SET @n = (SELECT COUNT(*) FROM information_schema.TABLES)",
    "SELECT * FROM /*!information_schema.*/TABLES",
    "SELECT * FROM information_schema . /* c */ SCHEMATA",
    "SELECT * FROM information_schema.USER_PRIVILEGES",
    "SELECT * FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = 'shop'",
    "SELECT * FROM information_schema.TABLE_PRIVILEGES",
    "SELECT * FROM information_schema.APPLICABLE_ROLES",
    "SELECT * FROM information_schema.INNODB_TRX",
    "SELECT * FROM information_schema.PLUGINS",
    "SELECT * FROM information_schema.USER_STATISTICS",
    "SELECT * FROM information_schema.PROFILING",
    "EXECUTE IMMEDIATE 'SELECT * FROM information_schema.TABLES'",
    "PREPARE s FROM 'SELECT * FROM information_schema.SCHEMATA'",
    "SELECT 1; SELECT * FROM information_schema.TABLES",
]


@pytest.mark.parametrize("sql", INFORMATION_SCHEMA_REFUSED)
def test_information_schema_reads_beyond_the_users_schemas_are_refused(sql: str) -> None:
    assert outcome(sql, PLAIN) == 1142


def test_information_schema_as_the_current_database_is_checked_the_same_way() -> None:
    assert outcome("SELECT * FROM TABLES", PLAIN, "information_schema") == 1142
    assert outcome("SELECT * FROM SCHEMATA", PLAIN, "information_schema") == 1142
    sql = "SELECT * FROM TABLES WHERE TABLE_SCHEMA = 'shop'"
    assert outcome(sql, PLAIN, "information_schema") is None
    # DATABASE() is information_schema there: not a schema of the user's
    sql = "SELECT * FROM TABLES WHERE TABLE_SCHEMA = DATABASE()"
    assert outcome(sql, PLAIN, "information_schema") == 1142


SHOW_REFUSED = [
    "SHOW GRANTS",
    "SHOW GRANTS FOR CURRENT_USER()",
    "SHOW GRANTS FOR root@localhost",
    "show /* c */ grants",
    "/*!SHOW GRANTS */",
    "SHOW PROCEDURE STATUS",
    "SHOW FUNCTION STATUS WHERE Db = 'shop'",
    "SHOW OPEN TABLES",
    "SHOW STATUS WHERE Value IN (SELECT Password FROM mysql.user)",
    "SHOW SESSION STATUS WHERE Variable_name = (SELECT 1)",
]


@pytest.mark.parametrize("sql", SHOW_REFUSED)
def test_show_forms_about_the_shard_account_or_every_database_are_refused(sql: str) -> None:
    assert outcome(sql, PLAIN) in (1227, 1142)


def test_show_grants_refusal_says_where_the_grants_are() -> None:
    with pytest.raises(errors.ProxyError) as caught:
        authorize(analyze("SHOW GRANTS"), PLAIN, "shop")
    assert "shard account" in caught.value.message and "users[]" in caught.value.message


# --- spellings found on a second attacker's pass ---------------------------------------------

SECOND_PASS = [
    "SELECT `load_file`('/etc/passwd')",  # MariaDB finds native functions by quoted names
    "SELECT `LOAD_FILE` ('/etc/passwd')",
    "CREATE PROCEDURE p() BEGIN SELECT `load_file`('/etc/passwd'); END",
    # with ANSI_QUOTES "mysql"."user" is a name on the shard and a string to the proxy
    "SET sql_mode = 'ANSI_QUOTES'",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ansi_quotes'",
    "SET @@sql_mode = 'ANSI'",
    "SET sql_mode = 'ORACLE'",
    "SET /*!40101 sql_mode = 'POSTGRESQL' */",
    "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT 1",
    "SET STATEMENT sql_mode = 'ANSI_QUOT' 'ES' FOR SELECT 1",
    "SET STATEMENT sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES') FOR SELECT 1",
    "EXECUTE IMMEDIATE 'SET sql_mode = ''ANSI_QUOTES'''",
    # || and NOT parse differently on the shard from how the proxy reads them
    "SET sql_mode = 'PIPES_AS_CONCAT'",
    "SET STATEMENT sql_mode = 'high_not_precedence' FOR SELECT NOT 1 BETWEEN 0 AND 2",
    # a CREATE TABLE without ENGINE= would get the engine these name
    "SET default_storage_engine = CONNECT",
    "SET SESSION default_storage_engine = 'FEDERATED'",
    "SET @@default_tmp_storage_engine = SPIDER",
    "SET STATEMENT storage_engine = CONNECT FOR CREATE TABLE t2 (a INT)",
]


@pytest.mark.parametrize("sql", SECOND_PASS)
def test_second_pass_spellings_are_refused(sql: str) -> None:
    assert outcome(sql) == 1227


def test_sql_modes_and_engines_an_application_sets_are_allowed() -> None:
    for sql in (
        "SET sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE'",
        "SET sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')",  # read back by the session
        "SET STATEMENT sql_mode = '' FOR SELECT 1",
        "SET default_storage_engine = InnoDB",
        "SET @@default_tmp_storage_engine = 'Aria'",
    ):
        assert outcome(sql) is None, sql
