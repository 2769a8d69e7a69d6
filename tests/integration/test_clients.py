"""The client matrix: every common MySQL client works through the proxy unchanged.

One proxy serves schema ``matrix`` (unsharded, default shard s0).  Each client
gets a table of its own on s0 and goes through the same checks: a SELECT of
several column types, INSERT and read back, ``lastrowid``/``LAST_INSERT_ID()``,
a committed and a rolled-back transaction (checked on the shard directly), and
server-side prepared statements where the driver has them.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import shutil
import struct
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import LargeBinary, Numeric, String
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tests.support.proxied import drop_databases, module_proxy
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "matrix"
USER = "app"
PASSWORD = "app-secret"

LABEL = "héllo wörld 🐬🚀 ünïcödé"
AMOUNT = Decimal("12345.6789")
AT = datetime.datetime(2024, 2, 29, 13, 14, 15, 123456)
# Every byte value, so NUL, quote and backslash all have to survive the trip.
PAYLOAD = bytes(range(256))

TYPES_SQL = (
    "SELECT CAST(42 AS SIGNED) AS i, _utf8mb4'héllo wörld 🐬🚀 ünïcödé' AS s, "
    "CAST('12345.6789' AS DECIMAL(12,4)) AS d, "
    "CAST('2024-02-29 13:14:15.123456' AS DATETIME(6)) AS dt, NULL AS n, "
    "CAST(X'00FF41' AS BINARY) AS b"
)
TYPES_ROW = (42, LABEL, AMOUNT, AT, None, b"\x00\xffA")

TABLE_DDL = """
CREATE TABLE {table} (
    id INT AUTO_INCREMENT PRIMARY KEY,
    label VARCHAR(100) CHARACTER SET utf8mb4 NOT NULL,
    amount DECIMAL(12,4) NULL,
    at DATETIME(6) NULL,
    note VARCHAR(50) NULL,
    payload BLOB NULL
) ENGINE=InnoDB
"""

DBAPI_CLIENTS = [
    "pymysql",
    "mysqldb",
    "aiomysql",
    "asyncmy",
    "connector_pure",
    "connector_cext",
]
SQLALCHEMY_URLS = {
    "mysql_pymysql": "mysql+pymysql",
    "mysql_mysqldb": "mysql+mysqldb",
    "mariadb_pymysql": "mariadb+pymysql",
    "mariadb_mysqldb": "mariadb+mysqldb",
    "mysql_connector": "mysql+mysqlconnector",
    "mariadb_connector": "mariadb+mariadbconnector",
}
TABLES = [
    "cli",
    "raw",
    *DBAPI_CLIENTS,
    *(f"core_{name}" for name in SQLALCHEMY_URLS),
    *(f"orm_{name}" for name in SQLALCHEMY_URLS),
]


def _table_name(client: str) -> str:
    return f"t_{client}"


@pytest.fixture(scope="module")
def matrix_proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """A proxy in front of the cluster with the unsharded schema ``matrix`` on s0."""
    for server in cluster.servers:
        server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}")
    s0 = cluster.servers[0]
    for client in TABLES:
        s0.execute(TABLE_DDL.format(table=_table_name(client)), SCHEMA)
    config = proxy_config(cluster, schemas=[{"name": SCHEMA, "default_shard": "s0"}])
    with module_proxy(
        config, tmp_path_factory, "matrix", cleanup=lambda: drop_databases(cluster, [SCHEMA])
    ) as proxy:
        yield proxy


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def shard_rows(cluster: LocalCluster, table: str, label: str) -> list[tuple]:
    """Rows with ``label`` as a fresh connection straight to s0 sees them (committed only)."""
    return cluster.servers[0].execute(
        f"SELECT id, label, amount, at, note, payload FROM {table} WHERE label = "
        f"'{label}' ORDER BY id",
        SCHEMA,
    )


def _plain(value: Any) -> Any:
    # mysql-connector returns bytearray for binary columns; compare as bytes.
    return bytes(value) if isinstance(value, bytearray) else value


# --- one interface over the DB-API drivers, sync and async --------------------------------


class Client:
    """What every driver's test needs; methods are async so asyncio drivers fit too."""

    async def rows(self, sql: str, params: tuple | None = None) -> list[tuple]:
        raise NotImplementedError

    async def execute(self, sql: str, params: tuple | None = None) -> int:
        """Runs a write and returns the cursor's lastrowid."""
        raise NotImplementedError

    async def begin(self) -> None:
        raise NotImplementedError

    async def commit(self) -> None:
        raise NotImplementedError

    async def rollback(self) -> None:
        raise NotImplementedError

    async def set_autocommit(self, on: bool) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SyncClient(Client):
    """PyMySQL, MySQLdb and mysql-connector (``%s`` parameters, client-side inlining)."""

    def __init__(self, conn: Any, kind: str) -> None:
        self.conn = conn
        self.kind = kind

    async def rows(self, sql: str, params: tuple | None = None) -> list[tuple]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return [tuple(_plain(v) for v in row) for row in cur.fetchall()]
        finally:
            cur.close()

    async def execute(self, sql: str, params: tuple | None = None) -> int:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return int(cur.lastrowid)
        finally:
            cur.close()

    async def begin(self) -> None:
        if self.kind.startswith("connector"):
            self.conn.start_transaction()
        else:
            self.conn.begin()

    async def commit(self) -> None:
        self.conn.commit()

    async def rollback(self) -> None:
        self.conn.rollback()

    async def set_autocommit(self, on: bool) -> None:
        if self.kind.startswith("connector"):
            self.conn.autocommit = on
        else:
            self.conn.autocommit(on)

    async def close(self) -> None:
        self.conn.close()


class AsyncClient(Client):
    """aiomysql and asyncmy, whose APIs match closely enough."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def rows(self, sql: str, params: tuple | None = None) -> list[tuple]:
        async with self.conn.cursor() as cur:
            await cur.execute(sql, params)
            return [tuple(row) for row in await cur.fetchall()]

    async def execute(self, sql: str, params: tuple | None = None) -> int:
        async with self.conn.cursor() as cur:
            await cur.execute(sql, params)
            return int(cur.lastrowid)

    async def begin(self) -> None:
        await self.conn.begin()

    async def commit(self) -> None:
        await self.conn.commit()

    async def rollback(self) -> None:
        await self.conn.rollback()

    async def set_autocommit(self, on: bool) -> None:
        await self.conn.autocommit(on)

    async def close(self) -> None:
        self.conn.close()
        if hasattr(self.conn, "ensure_closed"):
            await self.conn.ensure_closed()


def _connector_kwargs(proxy: ProxyProcess) -> dict[str, Any]:
    return {
        "host": proxy.host,
        "port": proxy.port,
        "user": USER,
        "password": PASSWORD,
        "database": SCHEMA,
        "charset": "utf8mb4",
        "autocommit": True,
    }


def _require_connector_cext() -> None:
    try:
        import _mysql_connector  # noqa: F401
        from mysql.connector import HAVE_CEXT
    except ImportError as exc:
        pytest.skip(f"mysql-connector C extension is not available: {exc}")
    if not HAVE_CEXT:
        pytest.skip("mysql-connector C extension is not available (HAVE_CEXT is False)")


def _patch_aiomysql_bytes_escaping() -> None:
    """aiomysql 0.3 imports ``escape_bytes_prefixed``, which PyMySQL 1.2 turned into a string.

    Without this, aiomysql cannot send any bytes parameter at all (a driver bug,
    PyMySQL issue #1274), which has nothing to do with the proxy.
    """
    import aiomysql.connection
    import pymysql.converters

    if not callable(aiomysql.connection.escape_bytes_prefixed):
        aiomysql.connection.escape_bytes_prefixed = pymysql.converters.escape_bytes


async def connect(kind: str, proxy: ProxyProcess) -> Client:
    """A connection through the proxy with autocommit on, utf8mb4, database ``matrix``."""
    host, port = proxy.host, proxy.port
    if kind == "pymysql":
        import pymysql

        conn = pymysql.connect(
            host=host,
            port=port,
            user=USER,
            password=PASSWORD,
            database=SCHEMA,
            charset="utf8mb4",
            autocommit=True,
        )
        return SyncClient(conn, kind)
    if kind == "mysqldb":
        import MySQLdb

        conn = MySQLdb.connect(
            host=host,
            port=port,
            user=USER,
            password=PASSWORD,
            database=SCHEMA,
            charset="utf8mb4",
            autocommit=True,
        )
        return SyncClient(conn, kind)
    if kind in ("connector_pure", "connector_cext"):
        import mysql.connector

        if kind == "connector_cext":
            _require_connector_cext()
        conn = mysql.connector.connect(
            use_pure=kind == "connector_pure", **_connector_kwargs(proxy)
        )
        return SyncClient(conn, kind)
    if kind == "aiomysql":
        import aiomysql

        _patch_aiomysql_bytes_escaping()

        conn = await aiomysql.connect(
            host=host,
            port=port,
            user=USER,
            password=PASSWORD,
            db=SCHEMA,
            charset="utf8mb4",
            autocommit=True,
        )
        return AsyncClient(conn)
    if kind == "asyncmy":
        import asyncmy

        conn = await asyncmy.connect(
            host=host,
            port=port,
            user=USER,
            password=PASSWORD,
            database=SCHEMA,
            charset="utf8mb4",
            autocommit=True,
        )
        return AsyncClient(conn)
    raise AssertionError(f"unknown client {kind}")


def run_with(kind: str, proxy: ProxyProcess, scenario: Callable[[Client], Awaitable[None]]) -> None:
    """Connects ``kind`` through the proxy and runs ``scenario`` on it under asyncio.run."""
    if kind == "connector_cext":
        _require_connector_cext()

    async def main() -> None:
        client = await connect(kind, proxy)
        try:
            await scenario(client)
        finally:
            await client.close()

    asyncio.run(main())


INSERT_SQL = "INSERT INTO {table} (label, amount, at, note, payload) VALUES (%s, %s, %s, %s, %s)"
SELECT_SQL = "SELECT id, label, amount, at, note, payload FROM {table} WHERE label = %s ORDER BY id"


@pytest.mark.parametrize("kind", DBAPI_CLIENTS)
def test_select_returns_int_utf8mb4_decimal_datetime6_null_and_binary_intact(
    kind: str, matrix_proxy: ProxyProcess
) -> None:
    async def scenario(client: Client) -> None:
        assert await client.rows(TYPES_SQL) == [TYPES_ROW]
        # The same again, so a pooled shard connection is reused with the same settings.
        assert await client.rows(TYPES_SQL) == [TYPES_ROW]

    run_with(kind, matrix_proxy, scenario)


@pytest.mark.parametrize("kind", DBAPI_CLIENTS)
def test_inserted_row_reads_back_identically_and_lastrowid_matches_last_insert_id(
    kind: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name(kind)
    label = _unique(f"{kind} {LABEL}")

    async def scenario(client: Client) -> None:
        insert = INSERT_SQL.format(table=table)
        first = await client.execute(insert, (label, AMOUNT, AT, None, PAYLOAD))
        assert first > 0
        assert await client.rows("SELECT LAST_INSERT_ID()") == [(first,)]
        second = await client.execute(insert, (label, None, None, "second", None))
        assert second == first + 1
        assert await client.rows("SELECT LAST_INSERT_ID()") == [(second,)]

        expected = [
            (first, label, AMOUNT, AT, None, PAYLOAD),
            (second, label, None, None, "second", None),
        ]
        assert await client.rows(SELECT_SQL.format(table=table), (label,)) == expected
        assert shard_rows(cluster, table, label) == expected

        # A multi-row INSERT reports the first generated id, as MySQL does.
        multi = await client.execute(
            f"INSERT INTO {table} (label, note) VALUES (%s, 'a'), (%s, 'b'), (%s, 'c')",
            (label, label, label),
        )
        assert multi == second + 1
        assert await client.rows("SELECT LAST_INSERT_ID()") == [(multi,)]
        ids = [row[0] for row in shard_rows(cluster, table, label)]
        assert ids == [first, second, multi, multi + 1, multi + 2]

    run_with(kind, matrix_proxy, scenario)


@pytest.mark.parametrize("kind", DBAPI_CLIENTS)
def test_committed_transaction_becomes_visible_on_the_shard_only_at_commit(
    kind: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name(kind)
    label = _unique(kind)

    async def scenario(client: Client) -> None:
        await client.begin()
        await client.execute(INSERT_SQL.format(table=table), (label, AMOUNT, AT, "txn", b"x"))
        await client.execute(INSERT_SQL.format(table=table), (label, AMOUNT, AT, "txn", b"y"))
        # Inside the transaction the client sees its rows; nobody else does yet.
        assert len(await client.rows(SELECT_SQL.format(table=table), (label,))) == 2
        assert shard_rows(cluster, table, label) == []
        await client.commit()
        assert [r[5] for r in shard_rows(cluster, table, label)] == [b"x", b"y"]
        assert len(await client.rows(SELECT_SQL.format(table=table), (label,))) == 2

    run_with(kind, matrix_proxy, scenario)


@pytest.mark.parametrize("kind", DBAPI_CLIENTS)
def test_rolled_back_transaction_leaves_no_row_on_the_shard(
    kind: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name(kind)
    label = _unique(kind)

    async def scenario(client: Client) -> None:
        await client.begin()
        await client.execute(INSERT_SQL.format(table=table), (label, AMOUNT, AT, "gone", None))
        assert len(await client.rows(SELECT_SQL.format(table=table), (label,))) == 1
        await client.rollback()
        assert await client.rows(SELECT_SQL.format(table=table), (label,)) == []
        assert shard_rows(cluster, table, label) == []
        # The connection is still good for autocommit work afterwards.
        await client.execute(INSERT_SQL.format(table=table), (label, None, None, "kept", None))
        assert [r[4] for r in shard_rows(cluster, table, label)] == ["kept"]

    run_with(kind, matrix_proxy, scenario)


@pytest.mark.parametrize("kind", DBAPI_CLIENTS)
def test_autocommit_off_keeps_writes_private_until_commit_and_rollback_discards_them(
    kind: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name(kind)
    label = _unique(kind)

    async def scenario(client: Client) -> None:
        await client.set_autocommit(False)
        await client.execute(INSERT_SQL.format(table=table), (label, None, None, "rolled", None))
        assert shard_rows(cluster, table, label) == []
        await client.rollback()
        assert shard_rows(cluster, table, label) == []
        await client.execute(INSERT_SQL.format(table=table), (label, None, None, "kept", None))
        assert shard_rows(cluster, table, label) == []
        await client.commit()
        assert [r[4] for r in shard_rows(cluster, table, label)] == ["kept"]
        await client.set_autocommit(True)
        await client.execute(INSERT_SQL.format(table=table), (label, None, None, "auto", None))
        assert [r[4] for r in shard_rows(cluster, table, label)] == ["kept", "auto"]

    run_with(kind, matrix_proxy, scenario)


# --- server-side prepared statements (mysql-connector, pure and C extension) -------------


@pytest.mark.parametrize("kind", ["connector_pure", "connector_cext"])
def test_connector_prepared_statements_reexecute_with_changing_and_null_params(
    kind: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    import mysql.connector

    if kind == "connector_cext":
        _require_connector_cext()
    table = _table_name(kind)
    label = _unique(f"ps {kind}")
    conn = mysql.connector.connect(
        use_pure=kind == "connector_pure", **_connector_kwargs(matrix_proxy)
    )
    try:
        cur = conn.cursor(prepared=True)
        insert = f"INSERT INTO {table} (label, amount, at, note, payload) VALUES (?, ?, ?, ?, ?)"
        rows_in = [
            (label, AMOUNT, AT, "first", PAYLOAD),
            (label, None, None, None, None),  # all-NULL parameters
            (label, Decimal("-0.0001"), AT.replace(microsecond=0), "third", b"'\\\x00"),
            (label, AMOUNT, AT, None, b""),
        ]
        ids = []
        # The same statement executed again and again: the C extension (libmysqlclient)
        # sends the parameter types only the first time (new-params-bound = 0 after).
        for params in rows_in:
            cur.execute(insert, params)
            ids.append(cur.lastrowid)
        assert ids == list(range(ids[0], ids[0] + len(rows_in)))
        assert ids[0] > 0

        select = f"SELECT id, label, amount, at, note, payload FROM {table} WHERE id = ?"
        for row_id, params in zip(ids, rows_in, strict=True):
            cur.execute(select, (row_id,))
            got = [tuple(_plain(v) for v in row) for row in cur.fetchall()]
            assert got == [(row_id, *params)]

        # NULL as a parameter in a comparison, then a typed SELECT of parameters.
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE label = ? AND note IS NULL", (label,))
        assert cur.fetchall() == [(2,)]
        cur.execute("SELECT ? AS a, ? AS b, ? AS c", (7, None, LABEL))
        assert [tuple(_plain(v) for v in r) for r in cur.fetchall()] == [(7, None, LABEL)]
        cur.execute("SELECT ? AS a, ? AS b, ? AS c", (None, 8, "x"))
        assert [tuple(_plain(v) for v in r) for r in cur.fetchall()] == [(None, 8, "x")]

        # A prepared statement inside a transaction that rolls back.
        conn.start_transaction()
        cur.execute(insert, (label, None, None, "rolled back", None))
        conn.rollback()
        cur.close()
    finally:
        conn.close()
    on_shard = shard_rows(cluster, table, label)
    assert [r[0] for r in on_shard] == ids
    assert [r[5] for r in on_shard] == [p[4] for p in rows_in]


@pytest.mark.parametrize("kind", ["connector_pure", "connector_cext"])
def test_connector_prepared_select_of_types_decodes_binary_rows(
    kind: str, matrix_proxy: ProxyProcess
) -> None:
    import mysql.connector

    if kind == "connector_cext":
        _require_connector_cext()
    pure = kind == "connector_pure"
    conn = mysql.connector.connect(use_pure=pure, **_connector_kwargs(matrix_proxy))
    try:
        cur = conn.cursor(prepared=True)
        for _ in range(3):
            cur.execute(TYPES_SQL)
            assert [tuple(_plain(v) for v in r) for r in cur.fetchall()] == [TYPES_ROW]
        cur.close()
    finally:
        conn.close()


def test_connector_prepared_statement_streams_a_blob_with_send_long_data(
    matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    """A file-like parameter goes as COM_STMT_SEND_LONG_DATA chunks (pure Python only:
    the C extension cannot convert file objects)."""
    import mysql.connector

    table = _table_name("connector_pure")
    label = _unique("long-data")
    blob = PAYLOAD * 200  # 51200 bytes, below BLOB's 64 KiB
    conn = mysql.connector.connect(use_pure=True, **_connector_kwargs(matrix_proxy))
    try:
        cur = conn.cursor(prepared=True)
        insert = f"INSERT INTO {table} (label, note, payload) VALUES (?, ?, ?)"
        cur.execute(insert, (label, "streamed", io.BytesIO(blob)))
        cur.execute(insert, (label, "inline", blob))
        cur.execute(insert, (label, "streamed again", io.BytesIO(PAYLOAD)))
        cur.execute(f"SELECT note, payload FROM {table} WHERE label = ? ORDER BY id", (label,))
        got = [(note, _plain(payload)) for note, payload in cur.fetchall()]
        cur.close()
    finally:
        conn.close()
    expected = [("streamed", blob), ("inline", blob), ("streamed again", PAYLOAD)]
    assert got == expected
    assert [(r[4], r[5]) for r in shard_rows(cluster, table, label)] == expected


@pytest.mark.parametrize("kind", ["connector_pure", "connector_cext"])
def test_connector_pool_hands_out_a_clean_session_to_the_next_borrower(
    kind: str, matrix_proxy: ProxyProcess
) -> None:
    """The pool resets the session (COM_RESET_CONNECTION or COM_CHANGE_USER) on return."""
    import mysql.connector.pooling

    if kind == "connector_cext":
        _require_connector_cext()
    pool = mysql.connector.pooling.MySQLConnectionPool(
        pool_name=f"matrix_{kind}",
        pool_size=1,
        use_pure=kind == "connector_pure",
        **_connector_kwargs(matrix_proxy),
    )
    for _ in range(2):
        conn = pool.get_connection()
        try:
            cur = conn.cursor()
            cur.execute("SELECT @leftover, DATABASE()")
            assert cur.fetchall() == [(None, SCHEMA)]
            cur.execute("SET @leftover = 5")
            # A temporary table pins a shard connection; the reset must drop it.
            cur.execute("CREATE TEMPORARY TABLE scratch (a INT)")
            cur.execute("INSERT INTO scratch VALUES (1)")
            cur.close()
        finally:
            conn.close()  # back to the pool


def _lenenc_bytes(data: bytes) -> bytes:
    assert len(data) < 251
    return bytes([len(data)]) + data


def test_prepared_insert_reexecuted_without_resending_types_binds_the_new_values(
    matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    """libmariadb clients (sysbench, C programs) send new-params-bound = 0 on re-executes.

    No Python driver of the matrix does (mysql-connector rebinds every time, in
    both flavours), so the COM_STMT_* packets are built here on a PyMySQL connection.
    """
    from pymysql.constants import COMMAND, FIELD_TYPE
    from pymysql.protocol import OKPacketWrapper

    table = _table_name("raw")
    label = _unique("raw")
    conn = _pymysql(matrix_proxy)
    try:
        conn._execute_command(
            COMMAND.COM_STMT_PREPARE,
            f"INSERT INTO {table} (label, note, amount) VALUES (?, ?, ?)",
        )
        first = conn._read_packet()
        stmt_id, columns, params = struct.unpack_from("<IHH", first.get_all_data(), 1)
        assert (columns, params) == (0, 3)
        for _ in range(params):
            conn._read_packet()
        assert conn._read_packet().is_eof_packet()  # PyMySQL does not ask for DEPRECATE_EOF

        types = struct.pack(
            "<HHH", FIELD_TYPE.VAR_STRING, FIELD_TYPE.VAR_STRING, FIELD_TYPE.LONGLONG
        )

        def execute(values: tuple, send_types: bool) -> int:
            nulls, body = 0, b""
            for index, value in enumerate(values):
                if value is None:
                    nulls |= 1 << index
                elif isinstance(value, int):
                    body += struct.pack("<q", value)
                else:
                    body += _lenenc_bytes(value.encode())
            payload = struct.pack("<IBI", stmt_id, 0, 1) + bytes([nulls])
            payload += (b"\x01" + types) if send_types else b"\x00"
            conn._execute_command(COMMAND.COM_STMT_EXECUTE, payload + body)
            return OKPacketWrapper(conn._read_packet()).insert_id

        rows_in = [(label, "one", 100), (label, "two", 200), (label, None, 300), (label, "4", None)]
        ids = [execute(values, send_types=index == 0) for index, values in enumerate(rows_in)]
        assert ids == list(range(ids[0], ids[0] + 4))
        conn._execute_command(COMMAND.COM_STMT_CLOSE, struct.pack("<I", stmt_id))
        with conn.cursor() as cur:  # the connection is in step after the raw commands
            cur.execute("SELECT LAST_INSERT_ID()")
            assert cur.fetchall() == ((ids[-1],),)
    finally:
        conn.close()
    assert [(r[0], r[4], r[2]) for r in shard_rows(cluster, table, label)] == [
        (ids[0], "one", Decimal(100)),
        (ids[1], "two", Decimal(200)),
        (ids[2], None, Decimal(300)),
        (ids[3], "4", None),
    ]


# --- the mariadb command-line client ------------------------------------------------------


def _mariadb_cli(proxy: ProxyProcess, sql: str, *, check: bool = True) -> list[list[str]]:
    """Runs ``mariadb --batch -e sql`` through the proxy; the rows of all result sets."""
    binary = shutil.which("mariadb")
    if binary is None:
        pytest.skip("the mariadb command-line client is not installed")
    done = subprocess.run(
        [
            binary,
            "--no-defaults",
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            "-h",
            proxy.host,
            "-P",
            str(proxy.port),
            "-u",
            USER,
            f"-p{PASSWORD}",
            SCHEMA,
            "-e",
            sql,
        ],
        capture_output=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [line.split("\t") for line in done.stdout.decode().splitlines()]


def test_mariadb_cli_selects_every_type(matrix_proxy: ProxyProcess) -> None:
    sql = (
        "SELECT CAST(42 AS SIGNED), _utf8mb4'héllo wörld 🐬🚀 ünïcödé', "
        "CAST('12345.6789' AS DECIMAL(12,4)), CAST('2024-02-29 13:14:15.123456' AS DATETIME(6)), "
        "NULL, HEX(CAST(X'00FF41' AS BINARY)); SELECT 1 + 1"
    )
    assert _mariadb_cli(matrix_proxy, sql) == [
        ["42", LABEL, "12345.6789", "2024-02-29 13:14:15.123456", "NULL", "00FF41"],
        ["2"],
    ]


def test_mariadb_cli_insert_reads_back_with_last_insert_id(
    matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name("cli")
    label = _unique("cli 🐬")
    out = _mariadb_cli(
        matrix_proxy,
        f"INSERT INTO {table} (label, amount, at, note, payload) VALUES "
        f"('{label}', 12345.6789, '2024-02-29 13:14:15.123456', NULL, X'00FF41');"
        "SELECT LAST_INSERT_ID();"
        f"SELECT id, label, amount, at, note, HEX(payload) FROM {table} "
        "WHERE id = LAST_INSERT_ID();",
    )
    assert len(out) == 2
    new_id = out[0][0]
    assert int(new_id) > 0
    assert out[1] == [new_id, label, "12345.6789", "2024-02-29 13:14:15.123456", "NULL", "00FF41"]
    assert shard_rows(cluster, table, label) == [
        (int(new_id), label, AMOUNT, AT, None, b"\x00\xffA")
    ]


def test_mariadb_cli_commits_one_transaction_and_rolls_back_another(
    matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name("cli")
    label = _unique("cli-txn")
    out = _mariadb_cli(
        matrix_proxy,
        f"BEGIN; INSERT INTO {table} (label, note) VALUES ('{label}', 'committed'); COMMIT;"
        f"START TRANSACTION; INSERT INTO {table} (label, note) VALUES ('{label}', 'rolled');"
        f"SELECT COUNT(*) FROM {table} WHERE label = '{label}'; ROLLBACK;"
        f"SELECT note FROM {table} WHERE label = '{label}' ORDER BY id",
    )
    assert out == [["2"], ["committed"]]
    assert [r[4] for r in shard_rows(cluster, table, label)] == ["committed"]


def test_mariadb_cli_sql_prepare_and_execute(
    matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    table = _table_name("cli")
    label = _unique("cli-ps")
    out = _mariadb_cli(
        matrix_proxy,
        f"PREPARE ins FROM 'INSERT INTO {table} (label, note) VALUES (?, ?)';"
        f"SET @label = '{label}', @note = 'one'; EXECUTE ins USING @label, @note;"
        "SET @note = NULL; EXECUTE ins USING @label, @note; DEALLOCATE PREPARE ins;"
        f"PREPARE sel FROM 'SELECT COUNT(*), COUNT(note) FROM {table} WHERE label = ?';"
        "EXECUTE sel USING @label;",
    )
    assert out == [["2", "1"]]
    assert [r[4] for r in shard_rows(cluster, table, label)] == ["one", None]


def _pymysql(proxy: ProxyProcess, **kwargs: Any):
    import pymysql

    return pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=USER,
        password=PASSWORD,
        database=SCHEMA,
        charset="utf8mb4",
        autocommit=True,
        **kwargs,
    )


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in_transaction"])
def test_sql_prepare_keeps_its_shard_connection_while_other_clients_use_the_pool(
    in_transaction: bool, matrix_proxy: ProxyProcess
) -> None:
    """PREPARE lives in one shard connection; EXECUTE must run there, not on a pooled one."""
    a, b = _pymysql(matrix_proxy), _pymysql(matrix_proxy)
    try:
        with a.cursor() as ca, b.cursor() as cb:
            if in_transaction:
                ca.execute("BEGIN")
            ca.execute("PREPARE plus FROM 'SELECT ? + 1'")
            if in_transaction:
                ca.execute("COMMIT")
            # b takes an idle shard connection (the one that ran PREPARE, if it went back).
            cb.execute("BEGIN")
            cb.execute("SELECT COUNT(*) FROM t_cli")
            ca.execute("SET @x = 41")
            ca.execute("EXECUTE plus USING @x")
            assert ca.fetchall() == ((42,),)
            # The other client never sees a's statement.
            with pytest.raises(Exception, match="Unknown prepared statement"):
                cb.execute("EXECUTE plus USING @x")
            cb.execute("ROLLBACK")
            ca.execute("DEALLOCATE PREPARE plus")
    finally:
        a.close()
        b.close()


# --- SQLAlchemy Core and ORM ---------------------------------------------------------------


def _engine(name: str, proxy: ProxyProcess):
    import sqlalchemy

    scheme = SQLALCHEMY_URLS[name]
    driver = scheme.split("+", 1)[1]
    module = {
        "pymysql": "pymysql",
        "mysqldb": "MySQLdb",
        "mysqlconnector": "mysql.connector",
        "mariadbconnector": "mariadb",
    }[driver]
    pytest.importorskip(module, reason=f"{scheme}:// needs the {module} driver, not installed")
    url = f"{scheme}://{USER}:{PASSWORD}@{proxy.host}:{proxy.port}/{SCHEMA}?charset=utf8mb4"
    # pre-ping: every checkout also sends COM_PING through the proxy
    return sqlalchemy.create_engine(url, pool_size=2, pool_pre_ping=True)


def _matrix_table(metadata: Any, table: str):
    from sqlalchemy import (
        Column,
        DateTime,
        Integer,
        LargeBinary,
        Numeric,
        String,
        Table,
    )
    from sqlalchemy.dialects.mysql import DATETIME

    return Table(
        table,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("label", String(100), nullable=False),
        Column("amount", Numeric(12, 4)),
        Column("at", DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")),
        Column("note", String(50)),
        Column("payload", LargeBinary),
    )


@pytest.mark.parametrize("name", list(SQLALCHEMY_URLS))
def test_sqlalchemy_core_text_insert_select_commit_and_rollback(
    name: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    from sqlalchemy import MetaData, func, inspect, select, text

    engine = _engine(name, matrix_proxy)
    table_name = _table_name(f"core_{name}")
    table = _matrix_table(MetaData(), table_name)
    label = _unique(f"core {LABEL}")
    try:
        with engine.connect() as conn:
            assert tuple(conn.execute(text(TYPES_SQL)).one()) == TYPES_ROW
            got = conn.execute(text("SELECT :a + 1 AS x, :b AS y"), {"a": 41, "b": LABEL}).one()
            assert tuple(got) == (42, LABEL)
        assert inspect(engine).has_table(table_name)

        with engine.begin() as conn:  # commits at the end of the block
            result = conn.execute(
                table.insert(),
                {"label": label, "amount": AMOUNT, "at": AT, "note": None, "payload": PAYLOAD},
            )
            (new_id,) = result.inserted_primary_key
            assert new_id > 0
            assert conn.execute(text("SELECT LAST_INSERT_ID()")).scalar() == new_id
            assert shard_rows(cluster, table_name, label) == []
        assert shard_rows(cluster, table_name, label) == [
            (new_id, label, AMOUNT, AT, None, PAYLOAD)
        ]

        with engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == new_id)).one()
            assert tuple(row) == (new_id, label, AMOUNT, AT, None, PAYLOAD)
            conn.commit()  # ends the autobegun transaction of the SELECT
            trans = conn.begin()
            conn.execute(table.insert(), [{"label": label, "note": "rolled"}] * 2)
            count = select(func.count()).select_from(table).where(table.c.label == label)
            assert conn.execute(count).scalar() == 3
            trans.rollback()
            assert conn.execute(count).scalar() == 1
        assert [r[0] for r in shard_rows(cluster, table_name, label)] == [new_id]
    finally:
        engine.dispose()


def _orm_model(table_name: str) -> type:
    """A declarative model of a matrix table (a fresh registry per table)."""

    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = table_name
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
        label: Mapped[str] = mapped_column(String(100))
        amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
        at: Mapped[datetime.datetime | None] = mapped_column(DATETIME(fsp=6))
        note: Mapped[str | None] = mapped_column(String(50))
        payload: Mapped[bytes | None] = mapped_column(LargeBinary)

    return Note


@pytest.mark.parametrize("name", list(SQLALCHEMY_URLS))
def test_sqlalchemy_orm_add_commit_query_and_rollback(
    name: str, matrix_proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    engine = _engine(name, matrix_proxy)
    table_name = _table_name(f"orm_{name}")
    Note = _orm_model(table_name)
    label = _unique(f"orm {LABEL}")
    try:
        with Session(engine) as session:
            note = Note(label=label, amount=AMOUNT, at=AT, note=None, payload=PAYLOAD)
            session.add(note)
            session.commit()
            assert note.id > 0
            first_id = note.id
        assert shard_rows(cluster, table_name, label) == [
            (first_id, label, AMOUNT, AT, None, PAYLOAD)
        ]

        with Session(engine) as session:
            loaded = session.scalars(select(Note).where(Note.label == label)).one()
            assert (loaded.id, loaded.label, loaded.amount, loaded.at, loaded.payload) == (
                first_id,
                label,
                AMOUNT,
                AT,
                PAYLOAD,
            )
            loaded.note = "updated"
            session.add(Note(label=label, note="discarded"))
            session.flush()  # both statements ran on the shard, uncommitted
            assert len(session.scalars(select(Note).where(Note.label == label)).all()) == 2
            assert [r[4] for r in shard_rows(cluster, table_name, label)] == [None]
            session.rollback()
            again = session.scalars(select(Note).where(Note.label == label)).all()
            assert [(n.id, n.note) for n in again] == [(first_id, None)]
        assert [(r[0], r[4]) for r in shard_rows(cluster, table_name, label)] == [(first_id, None)]
    finally:
        engine.dispose()


def test_every_client_left_the_proxy_healthy(matrix_proxy: ProxyProcess) -> None:
    """After the whole matrix the proxy still runs and logged no session crash."""
    assert matrix_proxy.is_running()
    log = matrix_proxy.log_text()
    assert "Traceback" not in log, matrix_proxy.log_tail(80)
