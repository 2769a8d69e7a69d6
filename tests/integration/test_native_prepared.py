"""Prepared statements that one shard runs go to the shard's own prepared statement.

The proxy forwards the client's parameter block (parameters never become SQL
text), so bindings MariaDB accepts where a literal would not parse (`LIMIT ?` bound
as a string or a double, OUT parameters of `CALL p(?, ?)`) behave as on MariaDB.
Each case runs the same packets directly on MariaDB and through the proxy and
compares what the client gets: packet kinds, binary rows byte for byte, status
flags, errors, and what is left on the shards.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from tests.support import rawclient as rc
from tests.support.proxied import drop_databases, module_proxy, recreate_database
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

DIRECT = "xp_native_direct"
PLAIN = "xp_native"
SHARDED = "xp_native_sharded"
USER, PASSWORD = "app", "app-secret"
TABLE = "CREATE TABLE {db}.t (id INT PRIMARY KEY, name VARCHAR(40), score DOUBLE)"
ROWS = "INSERT INTO {db}.t VALUES (1, 'one', 1.5), (2, 'two', 2.5), (3, 'three', 3.5), (4, 'four', 4.5)"
PROCEDURE = (
    "CREATE PROCEDURE {db}.twice(IN a INT, OUT b INT) "
    "BEGIN SELECT a AS x, 'row' AS y; SET b = a * 2; END"
)

LONGLONG, DOUBLE, VAR_STRING, NULL = 0x08, 0x05, 0xFD, 0x06
COM_STMT_SEND_LONG_DATA, COM_STMT_RESET, COM_RESET_CONNECTION = 0x18, 0x1A, 0x1F
PS_OUT_PARAMS = 0x1000
# bits that depend on the plan the server chose, not on the session
_PLAN_BITS = 0x0010 | 0x0020


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for db in (DIRECT, PLAIN, SHARDED):
        recreate_database(cluster.servers, db, [TABLE.format(db=db)])
    for db in (DIRECT, PLAIN):
        cluster["s0"].execute(PROCEDURE.format(db=db))
    schemas = [
        {"name": PLAIN, "default_shard": "s0"},
        {
            "name": SHARDED,
            "default_shard": "s0",
            "tables": [
                {"name": "t", "shard_key": "id", "algorithm": "hash", "key_type": "integer"}
            ],
        },
    ]
    config = proxy_config(cluster, schemas=schemas, users=[{"user": USER, "password": PASSWORD}])
    dbs = (DIRECT, PLAIN, SHARDED)
    with module_proxy(
        config, tmp_path_factory, "native", cleanup=lambda: drop_databases(cluster, dbs)
    ) as process:
        yield process


@pytest.fixture(autouse=True)
def fresh_rows(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[None]:
    for server in cluster.servers:
        for db in (DIRECT, PLAIN, SHARDED):
            server.execute(f"DELETE FROM {db}.t")
    cluster["s0"].execute(ROWS.format(db=DIRECT))
    cluster["s0"].execute(ROWS.format(db=PLAIN))
    with _proxy(proxy, SHARDED) as client:
        client.simple_query(ROWS.format(db=SHARDED))
    yield


def _direct(cluster: LocalCluster) -> rc.RawClient:
    shard = cluster["s0"]
    return rc.connect(shard.host, shard.port, "root", "", database=DIRECT)


def _proxy(proxy: ProxyProcess, db: str = PLAIN) -> rc.RawClient:
    return rc.connect(proxy.host, proxy.port, USER, PASSWORD, database=db)


def _value(kind: int, value: object) -> bytes:
    if kind == LONGLONG:
        return struct.pack("<q", value)
    if kind == DOUBLE:
        return struct.pack("<d", value)
    return rc.lenenc_str(value)  # type: ignore[arg-type]


def _execute(
    client: rc.RawClient,
    statement_id: int,
    params: list[tuple[int, object]],
    *,
    bind: bool = True,
    long_data: frozenset[int] = frozenset(),
) -> None:
    """COM_STMT_EXECUTE with typed parameters; `bind` False sends new-params-bound = 0."""
    body = struct.pack("<IBI", statement_id, 0, 1)
    if params:
        bitmap = bytearray((len(params) + 7) // 8)
        for i, (_kind, value) in enumerate(params):
            if value is None:
                bitmap[i // 8] |= 1 << (i % 8)
        body += bytes(bitmap) + (b"\x01" if bind else b"\x00")
        if bind:
            body += b"".join(bytes([kind, 0]) for kind, _ in params)
        body += b"".join(
            _value(kind, value)
            for i, (kind, value) in enumerate(params)
            if value is not None and i not in long_data
        )
    client.command(rc.COM_STMT_EXECUTE, body)


def _results(client: rc.RawClient) -> list[tuple]:
    """Every result of an execute: kinds, binary rows, column names, flags, error code."""
    seen = []
    while True:
        result = client.read_result(binary=True)
        final = result.ok or result.end
        if isinstance(final, rc.Err):
            seen.append(("error", final.code))
            return seen
        status = final.status & ~_PLAN_BITS
        names = [rc.column_name(c) for c in result.columns]
        affected = result.ok.affected_rows if result.ok is not None else None
        seen.append((result.kinds, result.raw_rows, names, status, affected))
        if not status & rc.SERVER_MORE_RESULTS_EXISTS:
            return seen


def _run(client: rc.RawClient, sql: str, executions: list[list[tuple[int, object]]]) -> list:
    prepared = client.prepare(sql)
    outcomes = []
    for params in executions:
        _execute(client, prepared.statement_id, params)
        outcomes.append(_results(client))
    return outcomes


def _stmt_executes(cluster: LocalCluster) -> int:
    return sum(
        int(server.execute("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")[0][1])
        for server in cluster.servers
    )


def test_routed_executes_run_as_the_shards_own_prepared_statements(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    before = _stmt_executes(cluster)
    with _proxy(proxy, SHARDED) as client:
        outcomes = _run(
            client, "SELECT name FROM t WHERE id = ?", [[(LONGLONG, i % 4 + 1)] for i in range(20)]
        )
    assert [o[0][1] for o in outcomes[:4]] == [
        [b"\x00\x00" + rc.lenenc_str(name)] for name in (b"one", b"two", b"three", b"four")
    ]
    assert _stmt_executes(cluster) - before >= 20


@pytest.mark.parametrize(
    "binding",
    [(LONGLONG, 2), (VAR_STRING, b"2"), (DOUBLE, 2.0), (DOUBLE, 2.5), (VAR_STRING, b"x")],
    ids=["int", "string", "double", "fraction", "not-a-number"],
)
def test_limit_placeholder_takes_every_binding_mariadb_takes(
    cluster: LocalCluster, proxy: ProxyProcess, binding: tuple[int, object]
) -> None:
    sql = "SELECT id, name FROM t ORDER BY id LIMIT ?"
    with _direct(cluster) as direct:
        expected = _run(direct, sql, [[binding]])
    with _proxy(proxy) as client:
        assert _run(client, sql, [[binding]]) == expected


def test_call_with_out_parameters_returns_the_results_and_out_row_of_mariadb(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    sql = "CALL twice(?, ?)"
    executions = [[(LONGLONG, 21), (NULL, None)], [(LONGLONG, -4), (LONGLONG, 0)]]
    with _direct(cluster) as direct:
        expected = _run(direct, sql, executions)
    assert any(result[3] & PS_OUT_PARAMS for result in expected[0])  # the OUT row is there
    with _proxy(proxy) as client:
        assert _run(client, sql, executions) == expected


def test_types_bound_once_hold_on_every_shard_connection_the_statement_reaches(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    """new-params-bound = 0 after one bind: other sessions bind the same text with other
    types on the same pooled connections, and transactions move it between them."""
    sql = "SELECT CONCAT('v=', ?) AS v"
    clients = [_proxy(proxy) for _ in range(3)]
    kinds = [(LONGLONG, 7), (VAR_STRING, b"seven"), (DOUBLE, 0.5)]
    try:
        ids = [c.prepare(sql).statement_id for c in clients]
        for client, statement_id, param in zip(clients, ids, kinds, strict=True):
            _execute(client, statement_id, [param])
            _results(client)
        holder = clients[0]
        for round_ in range(6):
            if round_ % 2:
                holder.simple_query("BEGIN")
                holder.simple_query("SELECT COUNT(*) FROM t")
            for client, statement_id, param in zip(clients, ids, kinds, strict=True):
                _execute(client, statement_id, [param], bind=False)
                result = _results(client)
                assert result[0][1] == [b"\x00\x00" + rc.lenenc_str(_concat(param))], param
            if round_ % 2:
                holder.simple_query("COMMIT")
    finally:
        for client in clients:
            client.close()


def _concat(param: tuple[int, object]) -> bytes:
    kind, value = param
    if kind == VAR_STRING:
        return b"v=" + value  # type: ignore[operator]
    return b"v=" + str(value).encode()


def test_long_data_reaches_the_shard_statement_and_reset_discards_it(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    sql = "SELECT CONCAT(?, '|', ?) AS v"

    def session(client: rc.RawClient) -> list:
        prepared = client.prepare(sql)
        sid = prepared.statement_id
        seen = []
        for chunk in (b"long-", b"data"):
            client.command(COM_STMT_SEND_LONG_DATA, struct.pack("<IH", sid, 0) + chunk)
        _execute(client, sid, [(VAR_STRING, b""), (VAR_STRING, b"b")], long_data=frozenset({0}))
        seen.append(_results(client))
        client.command(COM_STMT_SEND_LONG_DATA, struct.pack("<IH", sid, 0) + b"dropped")
        client.command(COM_STMT_RESET, struct.pack("<I", sid))
        seen.append(client.read_result().kinds)
        _execute(client, sid, [(VAR_STRING, b"short"), (VAR_STRING, b"c")])
        seen.append(_results(client))
        return seen

    with _direct(cluster) as direct:
        expected = session(direct)
    with _proxy(proxy) as client:
        assert session(client) == expected


def test_result_metadata_follows_alter_table_as_on_mariadb(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    sql = "SELECT * FROM t WHERE id = ?"

    def session(client: rc.RawClient, db: str) -> list:
        prepared = client.prepare(sql)
        _execute(client, prepared.statement_id, [(LONGLONG, 1)])
        first = _results(client)
        client.simple_query(f"ALTER TABLE {db}.t ADD COLUMN extra INT DEFAULT 7")
        try:
            _execute(client, prepared.statement_id, [(LONGLONG, 1)], bind=False)
            return [first, _results(client)]
        finally:
            client.simple_query(f"ALTER TABLE {db}.t DROP COLUMN extra")

    with _direct(cluster) as direct:
        expected = session(direct, DIRECT)
    assert expected[1][0][2] == ["id", "name", "score", "extra"]
    with _proxy(proxy) as client:
        assert session(client, PLAIN) == expected


def test_status_flags_and_rollback_of_native_writes_match_mariadb(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    def session(client: rc.RawClient, db: str) -> list:
        insert = client.prepare("INSERT INTO t (id, name, score) VALUES (?, ?, ?)")
        select = client.prepare("SELECT COUNT(*) FROM t WHERE id >= ?")
        seen = []
        client.simple_query("SET autocommit = 0")
        for i in (10, 11):
            _execute(client, insert.statement_id, [(LONGLONG, i), (VAR_STRING, b"n"), (NULL, None)])
            seen.append(_results(client))
        _execute(client, select.statement_id, [(LONGLONG, 10)])
        seen.append(_results(client))
        client.simple_query("ROLLBACK")
        client.simple_query("SET autocommit = 1")
        _execute(client, select.statement_id, [(LONGLONG, 10)], bind=False)
        seen.append(_results(client))
        _execute(client, insert.statement_id, [(LONGLONG, 1), (VAR_STRING, b"dup"), (NULL, None)])
        seen.append(_results(client))
        return seen

    with _direct(cluster) as direct:
        expected = session(direct, DIRECT)
    for db in (PLAIN, SHARDED):
        with _proxy(proxy, db) as client:
            assert session(client, db) == expected, db
    for server in cluster.servers:
        for db in (PLAIN, SHARDED):
            assert server.execute(f"SELECT COUNT(*) FROM {db}.t WHERE id >= 10")[0][0] == 0


def test_reset_connection_and_reused_connections_prepare_again(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    """Sessions with different settings share pooled connections, which are reset
    between them (the shard forgets its statements): every execute still runs."""
    sql = "SELECT name FROM t WHERE id = ?"
    with _proxy(proxy) as plain, _proxy(proxy) as moded:
        moded.simple_query("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
        ids = [c.prepare(sql).statement_id for c in (plain, moded)]
        for round_ in range(8):
            for client, statement_id in zip((plain, moded), ids, strict=True):
                _execute(client, statement_id, [(LONGLONG, round_ % 4 + 1)])
                assert "ROW" in _results(client)[0][0]
            if round_ == 3:
                plain.command(COM_RESET_CONNECTION)
                assert plain.read_result().kinds == ["OK"]
                ids[0] = plain.prepare(sql).statement_id


KEY_BINDINGS = [
    (LONGLONG, 3),
    (VAR_STRING, b"3"),
    (VAR_STRING, b" 3"),
    (DOUBLE, 3.0),
    (VAR_STRING, b"3.0"),
    (VAR_STRING, b"3abc"),
    (DOUBLE, 2.5),
    (NULL, None),
]


@pytest.mark.parametrize("binding", KEY_BINDINGS, ids=[repr(b[1]) for b in KEY_BINDINGS])
def test_a_key_parameter_finds_the_rows_mariadb_finds_for_every_binding(
    cluster: LocalCluster, proxy: ProxyProcess, binding: tuple[int, object]
) -> None:
    """The shard a `WHERE id = ?` template goes to is computed from the value by the
    planner's rules; values MariaDB compares loosely ('3abc', 3.0) still find their rows."""
    statements = [
        "SELECT id, name FROM t WHERE id = ?",
        "SELECT name FROM t WHERE name <> 'x' AND id = ? FOR UPDATE",
    ]
    executions = [[binding]] * 3
    with _direct(cluster) as direct:
        expected = [_run(direct, sql, executions) for sql in statements]
    with _proxy(proxy, SHARDED) as client:
        assert [_run(client, sql, executions) for sql in statements] == expected


def test_keyed_updates_and_deletes_change_the_rows_mariadb_changes(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    def session(client: rc.RawClient) -> list:
        update = client.prepare("UPDATE t SET name = ? WHERE id = ?")
        delete = client.prepare("DELETE FROM t WHERE id = ?")
        seen = []
        for key in (1, 2, 3, 4, 5):
            _execute(client, update.statement_id, [(VAR_STRING, b"u%d" % key), (LONGLONG, key)])
            seen.append(_results(client))
        for key in (b"2", b"4.0", b"9"):
            _execute(client, delete.statement_id, [(VAR_STRING, key)])
            seen.append(_results(client))
        return seen

    with _direct(cluster) as direct:
        expected = session(direct)
    with _proxy(proxy, SHARDED) as client:
        assert session(client) == expected
    left = sorted(row for s in cluster.servers for row in s.execute(f"SELECT * FROM {SHARDED}.t"))
    assert left == sorted(cluster["s0"].execute(f"SELECT * FROM {DIRECT}.t"))


def test_a_prepared_statement_reading_the_sessions_last_insert_id_gets_the_sessions_value(
    cluster: LocalCluster, proxy: ProxyProcess
) -> None:
    """LAST_INSERT_ID() is the session's: a pooled shard connection's own value (another
    session's insert) must not answer it, prepared or not."""
    with _proxy(proxy) as first, _proxy(proxy) as other:
        first.simple_query("DO LAST_INSERT_ID(41)")
        other.simple_query("DO LAST_INSERT_ID(99)")  # may run on the same pooled connection
        statement = first.prepare("SELECT LAST_INSERT_ID() + ? AS v")
        _execute(first, statement.statement_id, [(LONGLONG, 1)])
        rows = _results(first)[0][1]
        assert len(rows) == 1 and struct.pack("<q", 42) in rows[0], rows
        assert first.simple_query("SELECT LAST_INSERT_ID() + 1 AS v").rows == [[b"42"]]
        assert first.simple_query("SELECT LAST_INSERT_ID()").rows == [[b"41"]]


NEWDECIMAL = 0xF6
LIMIT_BINDINGS = {
    "int": (LONGLONG, 3),
    "zero": (LONGLONG, 0),
    "negative": (LONGLONG, -1),
    "string": (VAR_STRING, b"2"),
    "string-fraction": (VAR_STRING, b"2.9"),
    "string-prefix": (VAR_STRING, b" 3abc"),
    "string-negative": (VAR_STRING, b"-1"),
    "not-a-number": (VAR_STRING, b"x"),
    "double": (DOUBLE, 2.0),
    "double-fraction": (DOUBLE, 2.9),
    "double-negative-fraction": (DOUBLE, -0.5),
    "double-half-even": (DOUBLE, 2.5),
    "double-half-odd": (DOUBLE, 3.5),
    "double-negative": (DOUBLE, -1.0),
    "double-huge": (DOUBLE, 1e30),
    "decimal-half": (NEWDECIMAL, b"2.5"),
    "decimal-negative-half": (NEWDECIMAL, b"-0.5"),
    "decimal-small-negative": (NEWDECIMAL, b"-0.4"),
    "string-huge": (VAR_STRING, b"99999999999999999999"),
    "string-minus-zero": (VAR_STRING, b"-0"),
    "null": (NULL, None),
}


@pytest.mark.parametrize("binding", LIMIT_BINDINGS.values(), ids=LIMIT_BINDINGS.keys())
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, name FROM t ORDER BY id LIMIT ?",
        "SELECT id, name FROM t ORDER BY id LIMIT 1, ?",
        "SELECT id, name FROM t ORDER BY id DESC LIMIT ? OFFSET 1",
        "SELECT id FROM t WHERE id > ? ORDER BY id LIMIT ?, ?",
    ],
    ids=["count", "count-after-offset", "offset-keyword", "offset-and-count"],
)
def test_limit_placeholders_over_several_shards_convert_bindings_as_mariadb(
    cluster: LocalCluster, proxy: ProxyProcess, sql: str, binding: tuple[int, object]
) -> None:
    """The merge applies the LIMIT, so the proxy converts the bound value itself: DOUBLE
    rounded half to even, DECIMAL half away from zero, strings by their leading digits,
    NULL as 0, negatives and overflows as a count past every row."""
    params = [binding] * sql.count("?")
    if sql.count("?") == 3:
        params = [(LONGLONG, 0), binding, binding]
    with _direct(cluster) as direct:
        expected = _run(direct, sql, [params])
    with _proxy(proxy, SHARDED) as client:
        assert _run(client, sql, [params]) == expected
