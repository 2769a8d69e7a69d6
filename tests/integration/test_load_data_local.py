"""LOAD DATA|XML LOCAL INFILE as one MariaDB answers it, compared with it step by step.

Every script runs directly on shard s0 in database `ld_direct` (each table whole) and
through the proxy in `ld` (`items` split `id MOD 3` over s0, s1, s2; `gen` split on
`user_id` with ids the proxy generates; `codes` broadcast; `notes` unsharded), with the
same files. The client sees the same affected rows, info text (`Records: n  Deleted: d
Skipped: s  Warnings: w`), warnings and rows, and the same rows are left on the shards,
each on its own shard. The one deliberate difference: over several shards SHOW WARNINGS
lists the file's warnings before the duplicates' (sorted here before comparing).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.constants import CLIENT

from tests.support.proxied import assert_same_transcripts, connect_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

DB, DIRECT = "ld", "ld_direct"
SHARDS = ("s0", "s1", "s2")
DDL = [
    "CREATE TABLE {db}.items (id BIGINT PRIMARY KEY, v VARCHAR(8) NOT NULL, n INT, "
    "f FLOAT, d DECIMAL(6,2), b BIT(4), ts TIMESTAMP(3) NULL, dt DATETIME, j JSON, "
    "e ENUM('x', 'y'), bin VARBINARY(8))",
    "CREATE TABLE {db}.gen (id BIGINT {auto} PRIMARY KEY, user_id INT NOT NULL, "
    "v VARCHAR(20) NOT NULL DEFAULT 'none')",
    "CREATE TABLE {db}.codes (code CHAR(2) PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE {db}.notes (id INT PRIMARY KEY, body VARCHAR(10) NOT NULL)",
]

ITEMS_TSV = (
    "1\tone\t10\t1.1\t1.25\t5\t2024-03-01 10:00:00.123\t2024-03-01 10:00:00\t"
    '{"a": 1}\tx\tab\n'
    "2\ttwo\t20\t16777217\t2.5\t15\t\\N\t\\N\t\\N\ty\t\\N\n"
    "2\tdup\t21\t0\t0\t0\t\\N\t\\N\t\\N\tx\t\\N\n"  # the same key: skipped, 1062
    "3\t\\N\tnotanint\t3.3e38\t12345.678\t1\t0000-00-00 00:00:00\t2024-02-30\t[]\tz\tcd\n"
    "4\ttoo long value\t40\n"  # short row (1261), truncated string (1265)
    "5\tfive\t50\t5\t5\t5\t\\N\t\\N\t\\N\tx\tef\textra\n"  # a field too many (1262)
    "6\tsix\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n"
    "7\tseven\t70\t-0.0\t-1\t0\t1970-01-01 00:00:01\t1000-01-01 00:00:00\t\\N\t\tgh\n"
)
ITEMS_CSV = (
    "id,name,qty\r\n"
    '8,"eight, with comma",80\r\n'
    '9,"nine ""quoted""",90\r\n'
    "10,ten,100\r\n"
    "1,one again,11\r\n"
)
GEN_TSV = "".join(f"{u}\tg{u}_{i}\n" for i, u in enumerate((7, 8, 9, 7, 10, 11)))
CODES_TSV = "fr\tFrance\nde\tGermany\nfr\tduplicate\n"
NOTES_TSV = "1\tfirst\n2\tsecond\n2\tdup\n3\tthird one long\n"
ITEMS_XML = (
    "<list><row><field name='id'>20</field><field name='v'>xml</field></row>"
    "<row id='21' v='attr'/></list>"
)


def _many(count: int) -> str:
    return "".join(f"{i}\tm{i % 97}\t{i * 3}\t{i}.5\t{i % 1000}.25\n" for i in range(100, count))


def _config(cluster: LocalCluster) -> dict[str, Any]:
    tables = [
        {"name": "items", "shard_key": "id", "algorithm": "mod", "shards": list(SHARDS)},
        {
            "name": "gen",
            "shard_key": "user_id",
            "algorithm": "mod",
            "shards": list(SHARDS),
            "auto_increment": "id",
        },
        {"name": "codes", "broadcast": True, "shards": list(SHARDS)},
    ]
    schemas = [{"name": DB, "default_shard": "s0", "tables": tables}]
    return proxy_config(cluster, schemas=schemas, proxy_id="ld", pool_size=4)


def _reset(cluster: LocalCluster) -> None:
    for server in cluster.servers:
        ddl = ";".join(d.format(db=DB, auto="") for d in DDL)
        server.execute(f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}; {ddl}")
    ddl = ";".join(d.format(db=DIRECT, auto="AUTO_INCREMENT") for d in DDL)
    cluster["s0"].execute(f"DROP DATABASE IF EXISTS {DIRECT}; CREATE DATABASE {DIRECT}; {ddl}")


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    _reset(cluster)
    process = ProxyProcess(_config(cluster), tmp_path_factory.mktemp("load"), name="ld")
    process.start()
    yield process
    code = process.stop()
    assert code == 0, process.log_tail()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("load-files")
    made = {}
    for name, text in {
        "items.tsv": ITEMS_TSV,
        "items.csv": ITEMS_CSV,
        "gen.tsv": GEN_TSV,
        "codes.tsv": CODES_TSV,
        "notes.tsv": NOTES_TSV,
        "items.xml": ITEMS_XML,
        "many.tsv": _many(6000),
        "empty.tsv": "",
        "badjson.tsv": "10\tone\t1\t1\t1\t1\t\\N\t\\N\tnot json\n",
        "somejson.tsv": "11\ta\t1\t1\t1\t1\t\\N\t\\N\t[1]\n12\tb\t1\t1\t1\t1\t\\N\t\\N\t{\n",
    }.items():
        path = folder / name
        path.write_bytes(text.encode())
        made[name] = path
    return made


@pytest.fixture
def shards(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[LocalCluster]:
    _reset(cluster)
    with connect_proxy(proxy, database=DB) as conn, conn.cursor() as cur:
        cur.execute("XAPROXY RELOAD METADATA")
    yield cluster
    assert proxy.is_running(), proxy.log_tail()


def transcript(conn: pymysql.Connection, script: list[str]) -> list[tuple]:
    """Each statement's rows, or its affected count, info text and warning count, or its
    error; SHOW WARNINGS sorted (the documented difference in order)."""
    seen: list[tuple] = []
    for sql in script:
        try:
            with conn.cursor() as cur:
                affected = cur.execute(sql)
                if cur.description:
                    rows = list(cur.fetchall())
                    if sql == "SHOW WARNINGS" and len(rows) >= 64:  # max_error_count: the
                        rows = [len(rows)]  # first 64 in MariaDB's order (documented)
                    elif sql == "SHOW WARNINGS":  # messages name the direct database too
                        rows = sorted(
                            (r[0], r[1], r[2].replace(f"`{DIRECT}`", f"`{DB}`")) for r in rows
                        )
                    seen.append((sql, [d[0] for d in cur.description], rows))
                else:
                    result = conn._result
                    seen.append((sql, affected, result.message, result.warning_count))
        except pymysql.MySQLError as exc:
            seen.append((sql, "error", exc.args[0]))
    return seen


def both(
    cluster: LocalCluster, proxy: ProxyProcess, script: list[str], proxied_setup: str = ""
) -> list[tuple]:
    def proxied() -> pymysql.Connection:
        conn = connect_proxy(proxy, database=DB, local_infile=True)
        if proxied_setup:
            with conn.cursor() as cur:
                cur.execute(proxied_setup)
        return conn

    theirs = assert_same_transcripts(
        lambda: cluster["s0"].connect(DIRECT, local_infile=True), proxied, transcript, script
    )
    return theirs


def rows_left(cluster: LocalCluster, table: str, columns: str = "*") -> tuple[list, list]:
    """(the direct table's rows, the proxied table's rows from every shard), sorted."""
    mine = sorted(cluster["s0"].execute(f"SELECT {columns} FROM {DIRECT}.{table}"))
    theirs: list = []
    for server in cluster.servers:
        theirs.extend(server.execute(f"SELECT {columns} FROM {DB}.{table}"))
    return mine, sorted(theirs)


def _load(path: Path, rest: str) -> str:
    return f"LOAD DATA LOCAL INFILE '{path}' {rest}"


def test_a_file_loads_into_a_sharded_table_as_into_one_mariadb(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    both(
        shards,
        proxy,
        [
            "SET time_zone = '+02:00'",
            "INSERT INTO items (id, v) VALUES (1, 'old')",
            _load(files["items.tsv"], "INTO TABLE items"),
            "SHOW WARNINGS",
            "SELECT @@warning_count, ROW_COUNT()",
            "SELECT id, v, n, f, d, b + 0, ts, dt, j, e, HEX(bin) FROM items ORDER BY id",
            _load(
                files["items.csv"],
                "IGNORE INTO TABLE items FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
                "LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES (id, @name, n) "
                "SET v = LEFT(UPPER(@name), 8), d = n / 8",
            ),
            "SHOW WARNINGS",
            "SELECT @name",
            "SELECT id, v, n, d FROM items WHERE id >= 8 ORDER BY id",
            _load(files["empty.tsv"], "INTO TABLE items"),
            _load(files["many.tsv"], "INTO TABLE items (id, v, n, f, d)"),
            "SELECT COUNT(*), SUM(n), SUM(f), SUM(d), MAX(v) FROM items",
        ],
    )
    mine, theirs = rows_left(shards, "items")
    assert theirs == mine
    for server in shards.servers:  # each row on its shard, no staging table left
        for (i,) in server.execute(f"SELECT id FROM {DB}.items"):
            assert SHARDS[int(i) % 3] == server.name


def test_replace_and_strict_errors_load_as_on_one_mariadb(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    both(
        shards,
        proxy,
        [
            "INSERT INTO items (id, v) VALUES (1, 'old'), (6, 'old six')",
            # strict: REPLACE (unlike LOCAL alone) fails at the NULL for a NOT NULL column
            _load(files["items.tsv"], "REPLACE INTO TABLE items"),
            "SHOW WARNINGS",  # every condition up to the failing row, as MariaDB lists them
            "SELECT id, v FROM items ORDER BY id",
            "SET sql_mode = ''",
            _load(files["items.tsv"], "REPLACE INTO TABLE items"),
            "SHOW WARNINGS",
            "SELECT id, v, n FROM items ORDER BY id",
            _load(files["items.tsv"], "INTO TABLE nothere"),
            _load(files["items.tsv"], "INTO TABLE items (id, nocolumn)"),
            _load(files["items.tsv"], "INTO TABLE items (id) SET nocolumn = 1"),
            # as SQL-level prepared statements too
            f"EXECUTE IMMEDIATE 'LOAD DATA LOCAL INFILE ''{files['items.tsv']}'' INTO TABLE items'",
            f"PREPARE p FROM 'LOAD DATA LOCAL INFILE ''{files['items.tsv']}'' INTO TABLE items'",
            "DELETE FROM items WHERE id > 3",
            "EXECUTE p",
            "SELECT id, v FROM items ORDER BY id",
        ],
    )
    assert rows_left(shards, "items")[1] == rows_left(shards, "items")[0]


def test_generated_ids_broadcast_and_unsharded_tables_load_as_on_one_mariadb(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    both(
        shards,
        proxy,
        [
            _load(files["gen.tsv"], "INTO TABLE gen (user_id, v)"),
            "SHOW WARNINGS",
            "SELECT v FROM gen WHERE id = LAST_INSERT_ID()",  # the first row's id
            "SELECT user_id, v FROM gen ORDER BY user_id, v",
            _load(files["gen.tsv"], "INTO TABLE gen (user_id)"),
            "SELECT COUNT(*) FROM gen WHERE v = 'none'",
            _load(files["codes.tsv"], "INTO TABLE codes"),
            "SHOW WARNINGS",
            "SELECT * FROM codes ORDER BY code",
            _load(files["notes.tsv"], "INTO TABLE notes"),
            "SHOW WARNINGS",
            "SELECT * FROM notes ORDER BY id",
            "DELETE FROM notes",
            _load(files["notes.tsv"], "REPLACE INTO TABLE notes"),  # strict: fails at row 4
            "SHOW WARNINGS",
            "SELECT COUNT(*) FROM notes",
            f"LOAD XML LOCAL INFILE '{files['items.xml']}' INTO TABLE items ROWS IDENTIFIED BY "
            "'<row>'",
            "SELECT id, v FROM items ORDER BY id",
        ],
    )
    mine, theirs = rows_left(shards, "gen", "user_id, v")  # the proxy's ids are its own
    assert theirs == mine
    mine, theirs = rows_left(shards, "notes")
    assert theirs == mine
    codes = [sorted(server.execute(f"SELECT * FROM {DB}.codes")) for server in shards.servers]
    assert (
        codes[0]
        == codes[1]
        == codes[2]
        == sorted(shards["s0"].execute(f"SELECT * FROM {DIRECT}.codes"))
    )


def test_a_load_in_a_transaction_is_undone_with_it_and_a_failed_one_undoes_only_itself(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    both(
        shards,
        proxy,
        [
            "BEGIN",
            "INSERT INTO items (id, v) VALUES (50, 'kept')",
            _load(files["items.tsv"], "INTO TABLE items"),
            "SELECT COUNT(*) FROM items",
            "ROLLBACK",
            "SELECT COUNT(*) FROM items",
            "BEGIN",
            "INSERT INTO items (id, v) VALUES (50, 'kept')",
            _load(files["items.tsv"], "REPLACE INTO TABLE items"),  # fails (strict): alone
            "SELECT id, v FROM items ORDER BY id",
            _load(files["notes.tsv"], "INTO TABLE notes"),
            "COMMIT",
            "SELECT id, v FROM items ORDER BY id",
            "SELECT COUNT(*) FROM notes",
        ],
    )
    assert rows_left(shards, "items")[1] == rows_left(shards, "items")[0]
    for server in shards.servers:
        assert server.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX") == [(0,)]


def test_a_client_that_did_not_enable_local_files_gets_mariadbs_4166(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    both_ways = []
    for conn in (
        shards["s0"].connect(DIRECT, local_infile=False),
        connect_proxy(proxy, database=DB, local_infile=False),
    ):
        with conn, conn.cursor() as cur:
            for table in ("items", "notes"):
                with pytest.raises(pymysql.MySQLError) as refused:
                    cur.execute(_load(files["items.tsv"], f"INTO TABLE {table}"))
                both_ways.append(refused.value.args[0])
    assert both_ways == [4166] * 4


def test_in_at_mode_a_load_is_staged_and_inserted_with_undo_images(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    """AT-mode writes keep undo images, which a LOAD gives none of: even an unsharded
    table's file is staged and inserted as rows (in autocommit: inside an AT-mode
    transaction a LOAD is refused, as its INSERT IGNORE would be)."""
    both(
        shards,
        proxy,
        [
            _load(files["notes.tsv"], "INTO TABLE notes"),
            "SHOW WARNINGS",
            _load(
                files["items.csv"],
                "INTO TABLE items FIELDS TERMINATED BY ',' IGNORE 1 LINES (id, v)",
            ),
            "SELECT id, v FROM items ORDER BY id",
            "SELECT * FROM notes ORDER BY id",
        ],
        proxied_setup="SET xaproxy_transaction_mode = 'at'",
    )
    assert rows_left(shards, "items")[1] == rows_left(shards, "items")[0]
    with connect_proxy(proxy, database=DB, local_infile=True) as conn, conn.cursor() as cur:
        cur.execute("SET xaproxy_transaction_mode = 'at'")
        cur.execute("BEGIN")
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute(_load(files["notes.tsv"], "INTO TABLE notes"))
        assert refused.value.args[0] == 1235
        assert "inside an AT-mode transaction" in refused.value.args[1]
        cur.execute("ROLLBACK")


def test_a_staged_load_under_lock_tables_is_refused_before_the_file_is_read(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    """Its staging connection would wait on the session's own table locks; an unsharded
    table's load runs on the locked connection itself, as on MariaDB."""
    with connect_proxy(proxy, database=DB, local_infile=True) as conn, conn.cursor() as cur:
        cur.execute("LOCK TABLES items WRITE, notes WRITE")
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute(_load(files["items.tsv"], "INTO TABLE items"))
        assert refused.value.args[0] == 1235
        assert "LOCK TABLES" in refused.value.args[1]
        assert cur.execute(_load(files["notes.tsv"], "INTO TABLE notes")) == 3
        cur.execute("UNLOCK TABLES")
        cur.execute("SELECT COUNT(*) FROM items")
        assert cur.fetchall() == ((0,),)


def test_a_timestamp_the_set_clause_computes_loads_only_where_it_reads_back_exactly(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    """Read back as the session's zone shows it, a computed TIMESTAMP in an hour a
    daylight-saving change repeats would map to the other instant: refused in such a
    zone, loaded where every local time is one instant."""
    load = _load(files["notes.tsv"], "INTO TABLE items (id, @v) SET v = LEFT(@v, 8), ts = NOW()")
    zone = subprocess.run(
        ["mariadb-tzinfo-to-sql", "/usr/share/zoneinfo/Europe/Paris", "Europe/Paris"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for server in shards.servers:  # the zone on every shard (the staging one is s0)
        subprocess.run(
            ["mariadb", f"--host={server.host}", f"--port={server.port}", "--user=root", "mysql"],
            input=zone,
            capture_output=True,
            text=True,
            check=True,
        )
    with connect_proxy(proxy, database=DB, local_infile=True) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = 'Europe/Paris'")
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute(load)
        assert refused.value.args[0] == 1235
        assert "Europe/Paris" in refused.value.args[1]
        cur.execute("SET time_zone = '+01:00'")
        assert cur.execute(load) == 3


# --- random files: whatever MariaDB makes of a file, the proxy makes of it too ----------

LOAD_EXAMPLES = int(os.environ.get("XAPROXY_LOAD_EXAMPLES", "30"))
_PIECES = (
    "1", "2", "3", "7", "-4", "0", "12", "abc", "", "\\N", "x", "y", "z", "99999.999",
    "1e3", "too long a value", "é", "🐬", '"', "'", "\\", "\\t", " 5", "2024-01-02",
)  # fmt: skip
_SEPARATORS = ("\t", ",", ";")


@st.composite
def load_files(draw: st.DrawFn) -> tuple[str, str]:
    """(the file's text, the LOAD options and column list) drawn together."""
    separator = draw(st.sampled_from(_SEPARATORS))
    enclosed = draw(st.booleans())
    line_end = draw(st.sampled_from(("\n", "\r\n")))
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        fields = []
        for _ in range(draw(st.integers(1, 6))):
            value = "".join(draw(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=2)))
            if enclosed and draw(st.booleans()):
                value = '"' + value.replace('"', '""') + '"'
            fields.append(value)
        rows.append(separator.join(fields))
    text = line_end.join(rows) + (line_end if rows and draw(st.booleans()) else "")
    duplicates = draw(st.sampled_from(("", "IGNORE ", "REPLACE ")))
    options = f"{duplicates}INTO TABLE items FIELDS TERMINATED BY '{separator}'"
    if enclosed:
        options += " OPTIONALLY ENCLOSED BY '\"'"
    options += f" LINES TERMINATED BY '{line_end.encode('unicode_escape').decode()}'"
    if draw(st.booleans()):
        options += f" IGNORE {draw(st.integers(0, 2))} LINES"
    columns = draw(
        st.sampled_from(
            ("", " (id, v, n, d, e)", " (id, @a, n) SET v = LEFT(@a, 8)", " (n, id, v)")
        )
    )
    return text, options + columns


@settings(
    max_examples=LOAD_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("XAPROXY_DIFF_RANDOM", "") != "1",
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=load_files(), strict=st.booleans())
def test_random_files_load_as_on_one_mariadb(
    shards: LocalCluster,
    proxy: ProxyProcess,
    tmp_path: Path,
    drawn: tuple[str, str],
    strict: bool,
) -> None:
    text, options = drawn
    path = tmp_path / "random.txt"
    path.write_bytes(text.encode())
    mode = "STRICT_TRANS_TABLES" if strict else ""
    both(
        shards,
        proxy,
        [
            f"SET sql_mode = '{mode}'",
            "DELETE FROM items",
            "INSERT INTO items (id, v, n) VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)",
            _load(path, options),
            "SHOW WARNINGS",
            "SELECT id, v, n, d, e FROM items ORDER BY id",
        ],
    )


def test_rows_a_check_constraint_turns_away_are_skipped_as_on_one_mariadb(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    """A JSON column's CHECK: the LOAD skips the row with a 4025 warning and does not count
    it as a record, also when it is the only row of an INSERT the proxy sends."""
    both(
        shards,
        proxy,
        [
            _load(files["badjson.tsv"], "INTO TABLE items (id, v, n, f, d, b, ts, dt, j)"),
            "SHOW WARNINGS",
            _load(files["somejson.tsv"], "INTO TABLE items (id, v, n, f, d, b, ts, dt, j)"),
            "SHOW WARNINGS",
            "SELECT id, j FROM items ORDER BY id",
        ],
    )


def test_warnings_after_a_row_a_check_turns_away_are_numbered_as_on_one_mariadb(
    shards: LocalCluster, proxy: ProxyProcess, tmp_path: Path
) -> None:
    """MariaDB's row count for a LOAD's warnings does not move past a row a CHECK
    constraint skipped: the next row's warnings name the skipped row's number."""
    path = tmp_path / "skipped.tsv"
    path.write_bytes(b"5\ta\tabc\n6\n7\tb\t[1\n8\n9\tlong value here\t[]\n")
    both(
        shards,
        proxy,
        [
            "SET sql_mode = ''",
            _load(path, "INTO TABLE items (id, v, j)"),
            "SHOW WARNINGS",
            "SELECT id, v, j FROM items ORDER BY id",
        ],
    )


def test_a_replace_a_check_stops_lists_the_files_warnings_up_to_that_row(
    shards: LocalCluster, proxy: ProxyProcess, tmp_path: Path
) -> None:
    """REPLACE fails at the first row a CHECK refuses (4025); SHOW WARNINGS then lists the
    file's warnings of the rows before and of that row, then its conditions."""
    one = tmp_path / "one.tsv"
    one.write_bytes(b"5\tvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\tabc\n")
    two = tmp_path / "two.tsv"
    two.write_bytes(b"5\tvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\t[1]\n6\tw\tabc\n7\n")
    both(
        shards,
        proxy,
        [
            "SET sql_mode = ''",
            _load(one, "REPLACE INTO TABLE items (id, v, j)"),
            "SHOW WARNINGS",
            _load(two, "REPLACE INTO TABLE items (id, v, j)"),
            "SHOW WARNINGS",
            "SELECT id, v, j FROM items ORDER BY id",
        ],
    )


def test_a_load_in_every_spelling_loads_as_on_one_mariadb(
    shards: LocalCluster, proxy: ProxyProcess, files: dict[str, Path]
) -> None:
    """Lower case, comments between its words, an executable comment around it, and as
    one statement of a multi-statement: the same rows on the shards as on MariaDB."""
    path = files["notes.tsv"]
    both(
        shards,
        proxy,
        [
            f"load data local infile '{path}' into table items (id, v)",
            "DELETE FROM items",
            f"LOAD /* a */ DATA LOCAL INFILE '{path}' /* b */ INTO TABLE `items` (id, v) -- c",
            "DELETE FROM items",
            f"/*!LOAD DATA LOCAL INFILE '{path}' INTO TABLE items (id, v) */",
            "DELETE FROM items",
            f"/*!40000 LOAD DATA LOCAL INFILE '{path}' */ INTO TABLE items (id, v)",
            "SELECT id, v FROM items ORDER BY id",
        ],
    )
    outcome = []
    for conn in (
        shards["s0"].connect(DIRECT, local_infile=True, client_flag=CLIENT.MULTI_STATEMENTS),
        connect_proxy(proxy, database=DB, local_infile=True, client_flag=CLIENT.MULTI_STATEMENTS),
    ):
        with conn, conn.cursor() as cur:
            cur.execute(
                f"DELETE FROM items; LOAD DATA LOCAL INFILE '{path}' INTO TABLE items (id, v); "
                "SELECT COUNT(*) FROM items"
            )
            counts = [cur.rowcount]
            while cur.nextset():
                counts.append(cur.fetchall() if cur.description else cur.rowcount)
            outcome.append(counts)
    assert outcome[0] == outcome[1] == [3, 3, ((3,),)]  # deleted, loaded, counted
    mine, theirs = rows_left(shards, "items")
    assert theirs == mine
