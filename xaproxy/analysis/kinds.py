"""The kinds of statement the analysis tells apart."""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    """What a statement is. OTHER is everything not named here: easy to refuse."""

    BEGIN = "begin"  # BEGIN [WORK], START TRANSACTION ...
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SAVEPOINT = "savepoint"  # SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT
    SET = "set"
    USE = "use"
    SHOW_DATABASES = "show_databases"
    SHOW_TABLES = "show_tables"
    SHOW_WARNINGS = "show_warnings"
    SHOW_ERRORS = "show_errors"
    SHOW_WARNING_COUNT = "show_warning_count"
    SHOW_ERROR_COUNT = "show_error_count"
    SHOW_PROCESSLIST = "show_processlist"
    SHOW_SESSION_STATUS = "show_session_status"  # the session's TLS status is the proxy's
    SHOW = "show"  # every other SHOW
    SELECT = "select"  # SELECT, WITH ... SELECT, (SELECT ...) UNION ..., VALUES
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    EXPLAIN = "explain"  # EXPLAIN, DESC, DESCRIBE
    DDL = "ddl"  # CREATE/ALTER/DROP/TRUNCATE/RENAME of tables, views, indexes, sequences
    ROUTINE_DDL = "routine_ddl"  # CREATE/ALTER/DROP of procedures, functions, triggers, events
    CREATE_DATABASE = "create_database"
    DROP_DATABASE = "drop_database"
    ACCOUNT = "account"  # CREATE/DROP/ALTER/RENAME USER or ROLE, GRANT, REVOKE, SET PASSWORD
    CALL = "call"
    DO = "do"
    COMPOUND = "compound"  # BEGIN NOT ATOMIC ... END
    XA = "xa"
    KILL = "kill"
    PREPARE = "prepare"  # SQL-level PREPARE s FROM ...
    EXECUTE = "execute"  # EXECUTE s [USING ...]
    EXECUTE_IMMEDIATE = "execute_immediate"
    DEALLOCATE = "deallocate"  # DEALLOCATE / DROP PREPARE
    LOCK_TABLES = "lock_tables"
    UNLOCK_TABLES = "unlock_tables"
    LOAD_DATA = "load_data"  # LOAD DATA/XML INFILE: a file on the server
    LOAD_DATA_LOCAL = "load_data_local"
    PROXY = "proxy"  # the proxy's own commands (XAPROXY ...)
    LOCAL_SELECT = "local_select"  # set by the session: a SELECT it answers itself
    COMMENT = "comment"  # only comments: the server answers OK
    EMPTY = "empty"  # nothing at all: the server answers 1065
    OTHER = "other"
