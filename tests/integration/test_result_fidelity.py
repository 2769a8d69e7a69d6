"""Results of statements over several shards as one MariaDB gives them, compared with it.

Every script runs directly on shard s0 in database `rf_direct` (each table whole) and
through the proxy in `rf` (`items` split `id MOD 3` over s0, s1, s2; `gen` split on
`user_id` with ids the proxy generates). The client sees the same rows, in the same
order, and the same rows are left behind (read from the shards themselves).
Covered: INSERT / REPLACE / DELETE ... RETURNING over several shards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.support.proxied import assert_same_transcripts, connect_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

DB, DIRECT = "rf", "rf_direct"
SHARDS = ("s0", "s1", "s2")
ITEMS_DDL = "CREATE TABLE {db}.items (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL)"
CHECKED_DDL = "CREATE TABLE {db}.checked (id BIGINT PRIMARY KEY, n INT CHECK (n > 0))"
GEN_DDL = (
    "CREATE TABLE {db}.gen (id BIGINT {auto} PRIMARY KEY, user_id INT NOT NULL, "
    "v VARCHAR(20) NOT NULL)"
)


def _config(cluster: LocalCluster) -> dict[str, Any]:
    tables = [
        {"name": "items", "shard_key": "id", "algorithm": "mod", "shards": list(SHARDS)},
        {"name": "checked", "shard_key": "id", "algorithm": "mod", "shards": list(SHARDS)},
        {
            "name": "gen",
            "shard_key": "user_id",
            "algorithm": "mod",
            "shards": list(SHARDS),
            "auto_increment": "id",
        },
    ]
    schemas = [{"name": DB, "default_shard": "s0", "tables": tables}]
    return proxy_config(cluster, schemas=schemas, proxy_id="rf", pool_size=4)


def _reset(cluster: LocalCluster) -> None:
    for server in cluster.servers:
        server.execute(
            f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}; {ITEMS_DDL.format(db=DB)}; "
            f"{GEN_DDL.format(db=DB, auto='')}; {CHECKED_DDL.format(db=DB)}"
        )
    cluster["s0"].execute(
        f"DROP DATABASE IF EXISTS {DIRECT}; CREATE DATABASE {DIRECT}; "
        f"{ITEMS_DDL.format(db=DIRECT)}; {GEN_DDL.format(db=DIRECT, auto='AUTO_INCREMENT')}; "
        f"{CHECKED_DDL.format(db=DIRECT)}"
    )


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    _reset(cluster)
    process = ProxyProcess(_config(cluster), tmp_path_factory.mktemp("results"), name="rf")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def shards(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[LocalCluster]:
    _reset(cluster)
    with through(proxy) as conn, conn.cursor() as cur:
        cur.execute("XAPROXY RELOAD METADATA")
    yield cluster
    assert proxy.is_running(), proxy.log_tail()


def direct(cluster: LocalCluster, **kwargs: Any) -> pymysql.Connection:
    return cluster["s0"].connect(DIRECT, **kwargs)


def through(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    return connect_proxy(proxy, **({"database": DB} | kwargs))


def transcript(conn: pymysql.Connection, script: list[str]) -> list[tuple]:
    """What a client sees of each statement: rows (with column names) or the affected
    count and info text, or the error code."""
    seen: list[tuple] = []
    for sql in script:
        try:
            with conn.cursor() as cur:
                affected = cur.execute(sql)
                if cur.description:
                    names = tuple(d[0] for d in cur.description)
                    seen.append((sql, names, list(cur.fetchall())))
                else:
                    seen.append((sql, affected, conn._result.message))
        except pymysql.MySQLError as exc:
            seen.append((sql, "error", exc.args[0]))
    return seen


def both(cluster: LocalCluster, proxy: ProxyProcess, script: list[str]) -> list[tuple]:
    """Runs `script` directly and through the proxy; asserts the transcripts are equal."""
    return assert_same_transcripts(
        lambda: direct(cluster), lambda: through(proxy), transcript, script
    )


def rows_left(cluster: LocalCluster, table: str, columns: str = "*") -> tuple[list, list]:
    """(the direct table's rows, the sharded table's rows read from every shard), sorted."""
    mine = sorted(cluster["s0"].execute(f"SELECT {columns} FROM {DIRECT}.{table}"))
    theirs: list = []
    for server in cluster.servers:
        theirs.extend(server.execute(f"SELECT {columns} FROM {DB}.{table}"))
    return mine, sorted(theirs)


def open_transactions(cluster: LocalCluster) -> int:
    return sum(
        int(s.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")[0][0])
        for s in cluster.servers
    )


# --- 1. RETURNING -------------------------------------------------------------------------

RETURNING_SCRIPT = [
    "INSERT INTO items VALUES (5, 'e'), (1, 'a'), (3, 'c'), (4, 'd'), (2, 'b') RETURNING id, v",
    "INSERT INTO items (v, id) VALUES ('g', 7), ('f', 6) RETURNING *, id * 10 AS tenfold",
    "REPLACE INTO items VALUES (4, 'D'), (9, 'i'), (1, 'A') RETURNING v, id",
    # a duplicate on one shard: the whole statement fails, nothing of it is left anywhere
    "INSERT INTO items VALUES (10, 'j'), (3, 'dup'), (11, 'k') RETURNING id",
    "SELECT id, v FROM items ORDER BY id",
    "BEGIN",
    "INSERT INTO items VALUES (12, 'l'), (13, 'm') RETURNING id",
    "INSERT INTO items VALUES (14, 'n'), (13, 'dup') RETURNING id",
    "ROLLBACK",
    "INSERT INTO items SET id = 20, v = 't' RETURNING id, v",
    "SELECT COUNT(*) FROM items",
]


def test_insert_and_replace_returning_give_the_rows_in_values_order(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    seen = both(shards, proxy, RETURNING_SCRIPT)
    assert seen[0][2] == [(5, "e"), (1, "a"), (3, "c"), (4, "d"), (2, "b")]
    mine, theirs = rows_left(shards, "items")
    assert theirs == mine
    assert open_transactions(shards) == 0


def test_insert_ignore_returning_that_skips_rows_over_shards_is_refused_and_undone(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(shards, proxy, ["INSERT INTO items VALUES (1, 'a')"])
    with through(proxy) as conn, conn.cursor() as cur:
        cur.execute("INSERT IGNORE INTO items VALUES (2, 'b'), (3, 'c') RETURNING id")
        assert cur.fetchall() == ((2,), (3,))
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("INSERT IGNORE INTO items VALUES (4, 'd'), (1, 'x'), (5, 'e') RETURNING id")
        assert refused.value.args[0] == 1235 and "IGNORE" in refused.value.args[1]
    assert rows_left(shards, "items")[1] == [(1, "a"), (2, "b"), (3, "c")]
    assert open_transactions(shards) == 0


def test_delete_returning_over_shards_gives_every_deleted_row_once(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    setup = ["INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')"]
    both(shards, proxy, setup)
    script = ["DELETE FROM items WHERE id > 1 AND v <> 'd' RETURNING id, v", "DELETE FROM items"]
    conns = [direct(shards), through(proxy)]
    try:
        mine, theirs = (transcript(conn, script) for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    # MariaDB gives deleted rows in its scan order, the proxy shard by shard: same rows
    assert mine[0][1] == theirs[0][1] == ("id", "v")
    assert sorted(theirs[0][2]) == sorted(mine[0][2]) == [(2, "b"), (3, "c"), (5, "e")]
    assert theirs[1] == mine[1]


def test_generated_ids_are_returned_in_values_order_and_are_the_stored_ones(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """What Django's bulk_create sends on MariaDB >= 10.5 for a model with an auto id."""
    sql = "INSERT INTO gen (user_id, v) VALUES (5, 'e'), (1, 'a'), (3, 'c'), (4, 'd') RETURNING id"
    with direct(shards) as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert len(cur.fetchall()) == 4
    with through(proxy) as conn, conn.cursor() as cur:
        cur.execute(sql)
        ids = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchone()[0] == ids[0]
    assert ids == sorted(ids) and len(set(ids)) == 4
    stored = dict(rows_left(shards, "gen", "id, v")[1])
    assert [stored[i] for i in ids] == ["e", "a", "c", "d"]
    for server in shards.servers:  # each row on the shard of its user_id
        for (user_id,) in server.execute(f"SELECT user_id FROM {DB}.gen"):
            assert SHARDS[int(user_id) % 3] == server.name


def test_returning_through_prepared_statements_gives_the_same_rows(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    import mysql.connector

    def run(**params: Any) -> list[tuple]:
        conn = mysql.connector.connect(autocommit=True, **params)
        try:
            cur = conn.cursor(prepared=True)
            cur.execute(
                "INSERT INTO items VALUES (?, ?), (?, ?), (?, ?) RETURNING id, v",
                (4, "d", 2, "b", 3, "c"),
            )
            return [tuple(r) for r in cur.fetchall()]
        finally:
            conn.close()

    server = shards["s0"]
    mine = run(host=server.host, port=server.port, user="root", password="", database=DIRECT)
    theirs = run(
        host=proxy.host, port=proxy.port, user=PROXY_USER, password=PROXY_PASSWORD, database=DB
    )
    assert theirs == mine == [(4, "d"), (2, "b"), (3, "c")]


def test_a_prepared_returning_of_a_float_over_several_shards_is_refused_and_undone(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """Its binary rows would be made from the shards' text, which prints a FLOAT with six
    digits (16777217 as 16777200): refused, and nothing of the write is left."""
    import mysql.connector

    conn = mysql.connector.connect(
        host=proxy.host,
        port=proxy.port,
        user=PROXY_USER,
        password=PROXY_PASSWORD,
        database=DB,
        use_pure=True,  # the C extension reports a prepared statement's error as -1
    )
    try:
        cur = conn.cursor(prepared=True)
        for autocommit in (True, False):
            conn.autocommit = autocommit
            with pytest.raises(mysql.connector.Error) as refused:
                cur.execute(
                    "INSERT INTO items VALUES (?, ?), (?, ?) "
                    "RETURNING id, CAST(id + 16777216 AS FLOAT) AS f",
                    (1, "a", 2, "b"),
                )
            assert refused.value.errno == 1235
            assert "the statement was undone" in refused.value.msg
            if not autocommit:
                conn.rollback()
    finally:
        conn.close()
    assert rows_left(shards, "items") == ([], [])


AT_WARNINGS_SCRIPT = [
    "SET sql_mode = ''",
    "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
    "UPDATE items SET v = 'a value far too long for twenty' WHERE id = 1",
    "SHOW WARNINGS",
    "UPDATE items SET v = CONCAT(v, ' and then far too long a tail') WHERE id = 2 AND v = 'b'",
    "SHOW WARNINGS",
    "INSERT INTO items VALUES (5, 'another value far too long')",
    "SHOW WARNINGS",
    "BEGIN",
    "UPDATE items SET v = 'in a transaction, too long a text' WHERE id = 5",
    "SHOW WARNINGS",
    "INSERT INTO items VALUES (6, 'one more value that is too long')",
    "SHOW WARNINGS",
    "DELETE FROM items WHERE id = 4",
    "SHOW WARNINGS",
    "COMMIT",
    "SELECT id, v FROM items ORDER BY id",
]


def test_at_mode_writes_keep_their_warnings(shards: LocalCluster, proxy: ProxyProcess) -> None:
    """AT mode reads each write's images after it, which would clear its warnings: they
    are read first, on one shard and on several."""

    def at_session() -> pymysql.Connection:
        conn = through(proxy)
        with conn.cursor() as cur:
            cur.execute("SET xaproxy_transaction_mode = 'at'")
        return conn

    assert_same_transcripts(lambda: direct(shards), at_session, transcript, AT_WARNINGS_SCRIPT)
    # over several shards each shard numbers its own rows ("at row 1"): the same as the
    # proxy's XA mode gives, shard by shard
    several = [
        "SET sql_mode = ''",
        "UPDATE items SET v = 'b' WHERE id IN (2, 3, 6)",  # the same rows for both runs
        "UPDATE items SET v = CONCAT(v, ' made far too long again') WHERE id IN (2, 3, 6)",
        "SHOW WARNINGS",
    ]
    assert_same_transcripts(lambda: through(proxy), at_session, transcript, several)


# --- 7. OK packet info text ---------------------------------------------------------------

OK_INFO_SCRIPT = [
    "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')",
    "INSERT INTO items VALUES (7, 'g')",
    # one row per shard, one of them a duplicate: the shards answer without text
    "INSERT IGNORE INTO items VALUES (1, 'x'), (8, 'h'), (9, 'i')",
    "INSERT IGNORE INTO items VALUES (1, 'x'), (4, 'y'), (10, 'j'), (2, 'z')",
    "REPLACE INTO items VALUES (1, 'A'), (11, 'k'), (2, 'B'), (12, 'l')",
    "REPLACE INTO items VALUES (3, 'C'), (13, 'm')",
    "INSERT INTO items VALUES (4, 'x'), (14, 'n'), (5, 'e') ON DUPLICATE KEY UPDATE v = 'D'",
    "INSERT INTO items VALUES (6, 'F'), (15, 'o') ON DUPLICATE KEY UPDATE v = VALUES(v)",
    "UPDATE items SET v = CONCAT(v, '!') WHERE id < 5",
    "UPDATE items SET v = 'same' WHERE id IN (1, 2, 3)",
    "UPDATE items SET v = 'same' WHERE id IN (1, 2, 3, 4)",
    "UPDATE items SET v = 'none' WHERE id > 100",
    "DELETE FROM items WHERE id > 12",
    "INSERT INTO gen (user_id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    "INSERT INTO gen (user_id, v) VALUES (4, 'd')",
    "SELECT id, v FROM items ORDER BY id",
    # a row a CHECK constraint turns away is neither a record nor a duplicate
    "INSERT IGNORE INTO checked VALUES (1, 1), (2, -1), (3, 3)",  # (2, -1) alone on s2
    "SELECT @@warning_count",
    "INSERT IGNORE INTO checked VALUES (1, 5), (4, -4), (5, 5), (6, -6), (7, 7), (8, 8)",
    "SELECT * FROM checked ORDER BY id",
]


def test_ok_info_of_multi_shard_writes_is_mariadbs(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    seen = both(shards, proxy, OK_INFO_SCRIPT)
    assert seen[0][2] == b"&Records: 6  Duplicates: 0  Warnings: 0"
    mine, theirs = rows_left(shards, "items")
    assert theirs == mine


MID_RESULT_ERROR_SCRIPT = [
    "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f'), "
    "(7, 'g'), (8, 'h'), (9, 'i')",
    # every shard sends a row, then fails on its second row (1690, out of range) while the others stream
    "SELECT id, EXP(IF(id > 3, 1000, 0)) AS m FROM items",
    "SELECT COUNT(*) FROM items",
    "SELECT id, EXP(IF(id > 3, 1000, 0)) AS m FROM items",
    "SELECT id, v FROM items ORDER BY id",
    "SELECT id, EXP(IF(id > 3, 1000, 0)) AS m FROM items ORDER BY id",
    "SELECT id, EXP(IF(id > 3, 1000, 0)) AS m FROM items ORDER BY id LIMIT 1",
    "SELECT v FROM items WHERE id > 6 ORDER BY v DESC",
]


def test_a_read_that_fails_on_several_shards_mid_result_leaves_every_connection_usable(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """When one shard's error ends a merged result, the other shards' answers are read to
    their end, errors included, before their connections serve anyone again."""
    seen = both(shards, proxy, MID_RESULT_ERROR_SCRIPT)
    assert seen[1][1:] == ("error", 1690)
    for _ in range(3):  # fresh sessions on the same pooled connections
        assert transcript(through(proxy), MID_RESULT_ERROR_SCRIPT[2:3]) == [
            (MID_RESULT_ERROR_SCRIPT[2], ("COUNT(*)",), [(9,)])
        ]


def test_a_statement_mariadb_cannot_parse_gets_its_syntax_error_not_a_refusal(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """`LIMIT '2'` (PDO's emulated prepares bind strings) is no SQL MariaDB parses: its
    1064, with the same text, not the proxy's 1235 for a LIMIT it cannot read. A valid
    statement the proxy cannot run over several shards keeps its refusal."""
    answers = []
    for connect in (lambda: direct(shards), lambda: through(proxy)):
        conn = connect()
        seen = []
        try:
            for sql in (
                "SELECT id FROM items ORDER BY id LIMIT '2'",
                "SELECT id FROM items ORDER BY id LIMIT 1.5",
                "SELECT id, v FROM items ORDER BY id LIMIT '1' OFFSET 2",
            ):
                with pytest.raises(pymysql.MySQLError) as caught, conn.cursor() as cur:
                    cur.execute(sql)
                seen.append(caught.value.args)
        finally:
            conn.close()
        answers.append(seen)
    assert answers[1] == answers[0]
    assert all(code == 1064 for code, _ in answers[1])
    with through(proxy) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("SELECT id FROM items WHERE id = 1.5")  # MariaDB answers it by plan
        assert refused.value.args[0] == 1235


# --- 2. session-local ROW_COUNT(), FOUND_ROWS(), LAST_INSERT_ID(), warnings -------------------

SESSION_VALUES_SCRIPT = [
    "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
    "SELECT ROW_COUNT()",
    "SELECT ROW_COUNT(), FOUND_ROWS()",
    "SELECT id, v FROM items WHERE id IN (1, 2, 4) ORDER BY id",
    "SELECT FOUND_ROWS()",
    "UPDATE items SET v = 'x' WHERE id > 1",
    "SELECT ROW_COUNT() AS n",
    "DELETE FROM items WHERE id = 4",
    "SET @rc = ROW_COUNT()",
    "SELECT @rc",
    "DELETE FROM items WHERE id = 3",
    "INSERT INTO items VALUES (10, CONCAT('rc=', ROW_COUNT()))",
    "SELECT v FROM items WHERE id = 10",
    "SELECT id, v, FOUND_ROWS() AS f FROM items WHERE id = 10",
    "SELECT SQL_CALC_FOUND_ROWS id FROM items ORDER BY id LIMIT 2",
    "SELECT FOUND_ROWS()",
    "SELECT SQL_CALC_FOUND_ROWS id FROM items WHERE id = 1 LIMIT 0",
    "SELECT FOUND_ROWS()",
    "SELECT * FROM nothere",
    "SELECT ROW_COUNT(), FOUND_ROWS()",
    "UPDATE items SET v = 'y' WHERE id = 99",
    "SELECT ROW_COUNT() AS n, FOUND_ROWS() AS f",
    "INSERT INTO gen (user_id, v) VALUES (7, 'mine')",
    "SELECT v FROM gen WHERE id = LAST_INSERT_ID()",
    "SELECT v FROM gen WHERE user_id = 7 AND id = LAST_INSERT_ID()",
    "INSERT IGNORE INTO items VALUES (1, 'dup'), (2, 'dup'), (11, 'k')",
    "SHOW WARNINGS",
    "SELECT @@warning_count",
    "SELECT CAST('1x' AS SIGNED) AS c, id FROM items WHERE id IN (1, 2) ORDER BY id",
    "SHOW WARNINGS",
    "SELECT @@warning_count, ROW_COUNT() AS n",
]
# What another client runs between the steps, on the proxy's pooled connections.
NOISE = [
    "INSERT INTO gen (user_id, v) VALUES (1, 'n'), (2, 'n'), (3, 'n')",
    "SELECT * FROM gen",
    "UPDATE gen SET v = 'm' WHERE user_id < 3",
    "SELECT CAST('2y' AS SIGNED) FROM gen",
]


def _interleaved(main: pymysql.Connection, other: pymysql.Connection, script: list[str]) -> list:
    seen = []
    for index, sql in enumerate(script):
        with other.cursor() as cur:
            cur.execute(NOISE[index % len(NOISE)])
            cur.fetchall()
        seen.extend(transcript(main, [sql]))
    return seen


def test_row_count_found_rows_last_insert_id_and_warnings_are_the_sessions_own(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """Another client's statements on the same pooled shard connections change nothing."""
    runs = []
    for connect in (lambda: direct(shards), lambda: through(proxy)):
        main, other = connect(), connect()
        try:
            runs.append(_interleaved(main, other, SESSION_VALUES_SCRIPT))
        finally:
            main.close()
            other.close()
    mine, theirs = runs
    for expected, got in zip(mine, theirs, strict=True):
        assert got == expected, f"MariaDB: {expected}\nxaproxy: {got}"
    assert theirs[4][2] == [(3,)]  # FOUND_ROWS() of the merged SELECT before it
    assert theirs[15][2] == [(3,)]  # SQL_CALC_FOUND_ROWS over the shards, summed


def test_sql_calc_found_rows_the_shards_cannot_count_is_counted_over_copies(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """Grouped or DISTINCT: the shards' own counts are not the statement's, so one shard
    runs it over a copy of the table and its FOUND_ROWS() is the answer."""
    script = [
        "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'b'), (4, 'c'), (5, 'c')",
        "SELECT SQL_CALC_FOUND_ROWS COUNT(*) FROM items",
        "SELECT FOUND_ROWS()",
        "SELECT DISTINCT SQL_CALC_FOUND_ROWS v FROM items ORDER BY v LIMIT 1",
        "SELECT FOUND_ROWS()",
        "SELECT SQL_CALC_FOUND_ROWS v, COUNT(*) FROM items GROUP BY v ORDER BY v LIMIT 1",
        "SELECT FOUND_ROWS()",
        "DELETE FROM items",
    ]
    assert_same_transcripts(lambda: direct(shards), lambda: through(proxy), transcript, script)
    with through(proxy) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("SELECT id, ROW_COUNT() FROM items")
        assert refused.value.args[0] == 1235 and "alias" in refused.value.args[1]


# --- 3. SQL-level PREPARE / EXECUTE / DEALLOCATE on sharded tables -----------------------

SQL_PREPARE_SCRIPT = [
    "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')",
    "PREPARE s FROM 'SELECT id, v FROM items WHERE id > ? ORDER BY id'",
    "SET @low = 1",
    "EXECUTE s USING @low",
    "SET @low = 3",
    "EXECUTE s USING @low",
    "EXECUTE s USING 4",
    "EXECUTE s",
    "EXECUTE s USING @low, @low",
    "EXECUTE s USING @never_set",
    "PREPARE `S` FROM 'SELECT COUNT(*) FROM items WHERE v IN (?, ?)'",
    "SET @v1 = 'b', @v2 = 'e'",
    "EXECUTE s USING @v1, @v2",
    "EXECUTE S USING 'a', NULL",
    "PREPARE w FROM 'UPDATE items SET v = ? WHERE id = ?'",
    "SET @nv = 'it''s', @id = 2",
    "EXECUTE w USING @nv, @id",
    "SET @d = 2.50",
    "EXECUTE w USING @d, 3",
    "SELECT id, v FROM items ORDER BY id",
    "PREPARE i FROM 'INSERT INTO items VALUES (?, ?), (?, ?)'",
    "EXECUTE i USING 6, 'f', 7, 'g'",
    "EXECUTE i USING 6, 'f', 8, 'h'",
    "SELECT COUNT(*) FROM items",
    "DEALLOCATE PREPARE w",
    "EXECUTE w USING @nv, @id",
    "DROP PREPARE s",
    "EXECUTE s USING 1",
    "PREPARE bad FROM 'SELECT nope FROM items WHERE id = ?'",
    "EXECUTE bad USING 1",
    "PREPARE bad FROM 'SELEC id FROM items'",
    "EXECUTE IMMEDIATE 'SELECT id FROM items WHERE id < ? ORDER BY id' USING 3",
    "EXECUTE IMMEDIATE 'DELETE FROM items WHERE id > ?' USING @low",
    "SELECT id, v FROM items ORDER BY id",
]


def test_sql_prepared_statements_on_sharded_tables_run_on_the_shards_of_each_execute(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(shards, proxy, SQL_PREPARE_SCRIPT)
    mine, theirs = rows_left(shards, "items")
    assert theirs == mine
    for server in shards.servers:  # each row on its shard
        for (i,) in server.execute(f"SELECT id FROM {DB}.items"):
            assert SHARDS[int(i) % 3] == server.name


SQL_PREPARE_LIMIT_SCRIPT = [
    "INSERT INTO items VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(1, 13)),
    "PREPARE s FROM 'SELECT id FROM items ORDER BY id LIMIT ?'",
    "PREPARE o FROM 'SELECT id FROM items ORDER BY id DESC LIMIT ?, ?'",
    "PREPARE f FROM 'SELECT id FROM items ORDER BY id LIMIT ? OFFSET ?'",
    # each type a user variable can hold, converted as MariaDB converts it for EXECUTE
    *[
        step
        for value in (
            "2",
            "'3'",
            "' 4abc'",
            "'2.9'",
            "'+3'",
            "'- 5'",
            "'x'",
            "''",
            "'-0'",
            "X'33'",
            "2.5",
            "3.5",
            "-0.4",
            "2.9e0",
            "-0.9e0",
            "1e1",
            "NULL",
            "TRUE",
            "CAST(-3 AS UNSIGNED)",
            "9223372036854775808",
            # errors (1210), as on MariaDB
            "-1",
            "'-1'",
            "'-2.9'",
            "-0.5",
            "-1e0",
            "9.3e18",
            "'9223372036854775808'",
        )
        for step in (f"SET @n = {value}", "EXECUTE s USING @n", "SHOW WARNINGS")
    ],
    "EXECUTE s USING @never_set",
    "SET @a = '1', @b = 2.5",
    "EXECUTE o USING @a, @b",
    "EXECUTE f USING @b, @a",
    "EXECUTE o USING 1, 3",
    "EXECUTE o USING 0, 1.5",
    "EXECUTE f USING 2, NULL",
    "EXECUTE f USING 2, -1",
    "EXECUTE IMMEDIATE 'SELECT id FROM items ORDER BY id LIMIT ?' USING @b",
    "EXECUTE IMMEDIATE 'SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?' USING 3, @a",
]


def test_sql_prepared_limit_markers_over_several_shards_take_the_values_mariadb_takes(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(shards, proxy, SQL_PREPARE_LIMIT_SCRIPT)


def test_sql_prepared_limit_literals_mariadb_converts_otherwise_are_refused(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    """`USING 1e20` is no limit on MariaDB while `@v := 1e20` is an error, and a string
    literal warns where a variable does not: such literals are refused, saying so."""
    with through(proxy) as conn, conn.cursor() as cur:
        cur.execute("PREPARE s FROM 'SELECT id FROM items ORDER BY id LIMIT ?'")
        for literal in ("1e20", "' 3abc'", "'2'"):
            with pytest.raises(pymysql.MySQLError) as refused:
                cur.execute(f"EXECUTE s USING {literal}")
            assert refused.value.args[0] == 1235
            assert "pass an integer or a user variable" in refused.value.args[1]


# --- 4. the handshake's collation on every shard connection ------------------------------

COLLATION_QUERIES = [
    "SELECT @@collation_connection, @@character_set_client, @@character_set_connection, "
    "@@character_set_results",
    "SELECT 'a' = 'A' AS ci, 'x' < 'Y' AS ordered",
    "SELECT id, 'a' = 'A' AS ci FROM items ORDER BY id",
    "SELECT COUNT(*) FROM items WHERE 'b' = 'B'",
]
UNICODE_QUERIES = ["SELECT 'ß' = 'ss' AS eszett, 'é' = 'e' AS accent"]


@pytest.mark.parametrize(
    "collation_id",
    [224, 46, 8, 33],
    ids=["utf8mb4_unicode_ci", "utf8mb4_bin", "latin1_swedish_ci", "utf8mb3_general_ci"],
)
def test_the_handshake_collation_is_the_sessions_on_every_shard(
    shards: LocalCluster, proxy: ProxyProcess, collation_id: int
) -> None:
    from tests.support import rawclient as rc

    both(shards, proxy, ["INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')"])
    queries = COLLATION_QUERIES + (UNICODE_QUERIES if collation_id != 8 else [])
    server = shards["s0"]
    answers = []
    for host, port, user, password, database in (
        (server.host, server.port, "root", "", DIRECT),
        (proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB),
    ):
        client = rc.connect(host, port, user, password, database=database, charset=collation_id)
        try:  # every query twice: a second pooled connection must have it too
            answers.append([client.simple_query(q).rows for q in queries + queries])
        finally:
            client.close()
    assert answers[1] == answers[0]


# --- 5. LOCK TABLES of sharded tables, mariadb-dump with default options ------------------

LOCK_SCRIPT = [
    "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
    "LOCK TABLES items READ LOCAL",
    "SELECT id, v FROM items ORDER BY id",
    "SELECT COUNT(*) FROM gen",
    "INSERT INTO items VALUES (5, 'e')",
    "UNLOCK TABLES",
    "LOCK TABLES items WRITE, gen AS g READ",
    "INSERT INTO items VALUES (5, 'e')",
    "UPDATE items SET v = 'A' WHERE id = 1",
    "SELECT id, v FROM items WHERE id IN (1, 5) ORDER BY id",
    "UNLOCK TABLES",
    "UNLOCK TABLES",
    "SELECT COUNT(*) FROM gen",
]


def _locked_on(cluster: LocalCluster) -> dict[str, set[str]]:
    found = {}
    for server in cluster.servers:
        rows = server.execute(f"SHOW OPEN TABLES FROM {DB} WHERE In_use > 0")
        found[server.name] = {str(r[1]) for r in rows}
    return found


def test_lock_tables_of_a_sharded_table_locks_it_on_every_shard_as_mariadb_answers(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    both(shards, proxy, LOCK_SCRIPT)
    with through(proxy) as conn, conn.cursor() as cur:
        cur.execute("LOCK TABLES items READ")
        assert _locked_on(shards) == {name: {"items"} for name in SHARDS}
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("INSERT INTO items VALUES (8, 'h'), (9, 'i')")
        assert refused.value.args[0] in (1099, 1235)  # MariaDB: 1099 (read lock)
        cur.execute("UNLOCK TABLES")
        assert _locked_on(shards) == {name: set() for name in SHARDS}
        cur.execute("LOCK TABLES items WRITE")
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("INSERT INTO items VALUES (8, 'h'), (9, 'i')")
        assert refused.value.args[0] == 1235 and "LOCK TABLES" in refused.value.args[1]
        cur.execute("BEGIN")  # releases the locks, as on MariaDB
        assert _locked_on(shards) == {name: set() for name in SHARDS}
        cur.execute("ROLLBACK")
    mine, theirs = rows_left(shards, "items")
    assert theirs == mine


def _dump(host: str, port: int, user: str, password: str, db: str, *options: str) -> str:
    import subprocess

    proc = subprocess.run(
        ["mariadb-dump", f"-h{host}", f"-P{port}", f"-u{user}", f"-p{password}", *options, db],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_mariadb_dump_with_default_options_dumps_a_sharded_schema_and_reloads_without_locks(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    import subprocess

    both(
        shards,
        proxy,
        [
            "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'it''s'), (4, 'd')",
            "INSERT INTO gen (id, user_id, v) VALUES (10, 1, 'x'), (11, 2, 'y')",
        ],
    )
    server = shards["s0"]
    mine = _dump(server.host, server.port, "root", "", DIRECT)
    theirs = _dump(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB)
    assert "LOCK TABLES `items` WRITE" in theirs
    assert open_transactions(shards) == 0 and _locked_on(shards) == {n: set() for n in SHARDS}

    def rows_of(dump: str) -> list[str]:  # the dumped rows, in any order (shard by shard)
        lines = [line.strip().rstrip(",;") for line in dump.splitlines()]
        return sorted(line for line in lines if line.startswith("("))

    assert rows_of(theirs) == rows_of(mine)
    reload = _dump(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB, "--skip-add-locks")
    with through(proxy) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM items")
        cur.execute("DELETE FROM gen")
    proc = subprocess.run(
        [
            "mariadb",
            f"-h{proxy.host}",
            f"-P{proxy.port}",
            f"-u{PROXY_USER}",
            f"-p{PROXY_PASSWORD}",
            DB,
        ],
        input=reload,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    mine_items, theirs_items = rows_left(shards, "items")
    assert theirs_items == mine_items
    assert rows_left(shards, "gen")[1] == rows_left(shards, "gen")[0]


# --- 8. COM_SET_OPTION -------------------------------------------------------------------


def _set_option_transcript(host: str, port: int, user: str, password: str, db: str) -> list:
    from tests.support import rawclient as rc

    caps = rc.DEFAULT_CAPABILITIES & ~rc.CLIENT_MULTI_STATEMENTS
    client = rc.connect(host, port, user, password, database=db, capabilities=caps)
    seen: list = []

    def multi() -> None:
        client.query("SELECT 1 AS a; SELECT 2 AS b")
        results = client.read_results()
        seen.append(
            [r.end.code if isinstance(r.end, rc.Err) else (r.columns and r.rows) for r in results]
        )

    def set_option(option: int) -> None:
        client.command(0x1B, option.to_bytes(2, "little"))
        packet = client.read_packet()
        seen.append((packet[0], rc.parse_err(packet).code if packet[0] == 0xFF else None))

    try:
        multi()
        set_option(0)  # MYSQL_OPTION_MULTI_STATEMENTS_ON
        multi()
        set_option(1)  # OFF
        multi()
        set_option(9)  # no such option
        seen.append(client.simple_query("SELECT 3").rows)
    finally:
        client.close()
    return seen


def test_com_set_option_turns_multi_statements_on_and_off_as_mariadb(
    shards: LocalCluster, proxy: ProxyProcess
) -> None:
    server = shards["s0"]
    mine = _set_option_transcript(server.host, server.port, "root", "", DIRECT)
    theirs = _set_option_transcript(proxy.host, proxy.port, PROXY_USER, PROXY_PASSWORD, DB)
    assert theirs == mine
    assert mine[2] == [[[b"1"]], [[b"2"]]]
