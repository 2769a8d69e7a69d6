"""CLIENT_SESSION_TRACK: what a client that tracks session state is told, compared with
one MariaDB: the same statements on a socket to a shard directly and through the proxy,
each reply's state-change flag, message and reported changes side by side.

MariaDB reports tracked variables in an order of its own (not the statement's, and not
the same on two servers), so the changes of one reply are compared as a set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import rawclient as rc
from tests.support.proxied import drop_databases, module_proxy, recreate_database
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "xp_tracking"
USER, PASSWORD = "app", "app-secret"
SESSION_TRACK = 1 << 23
STATE_CHANGED = 0x4000
COM_INIT_DB = 0x02
COM_CHANGE_USER = 0x11

# what applications send: each reply is compared; `!init <db>` is COM_INIT_DB
STEPS = [
    "SET time_zone = '+01:00'",
    "SET time_zone = '+01:00'",  # the same value: reported again
    "SET @@time_zone = '+03:00'",  # MariaDB does not report this spelling
    "SET @@session.time_zone = '+04:00'",
    "SET SESSION time_zone = '+01:00', @@time_zone = '+02:00'",
    "SET autocommit = 0",
    "SET autocommit = 1, time_zone = '+02:00'",
    "SET time_zone = '+05:00', autocommit = 0",
    "SET @@autocommit = 1",
    "SET SESSION autocommit = ON",
    "SET sql_mode = 'STRICT_ALL_TABLES', autocommit = 1",
    "SET NAMES latin1",
    "SET NAMES utf8mb4",
    "SET CHARACTER SET utf8mb4",
    "SET character_set_results = NULL",
    "SET NAMES utf8mb4",
    "SET @x = 1",
    "SET @y = 2, time_zone = 'SYSTEM'",
    "USE " + SCHEMA,
    "!init " + SCHEMA,
    "SELECT 1",
    "CREATE TABLE IF NOT EXISTS notes (id INT PRIMARY KEY, body VARCHAR(20))",
    "REPLACE INTO notes VALUES (1, 'a'), (2, 'b')",
    "UPDATE notes SET body = body",
    "INSERT INTO notes VALUES (3, 'c') ON DUPLICATE KEY UPDATE body = 'c'",
    "SET STATEMENT time_zone = '+06:00' FOR UPDATE notes SET body = body WHERE id = 1",
    "SET STATEMENT time_zone = '+06:00' FOR SELECT id FROM notes WHERE id = 1",
    "BEGIN",
    "UPDATE notes SET body = 'x' WHERE id = 2",
    "ROLLBACK",
    "CREATE TABLE IF NOT EXISTS spread (id INT PRIMARY KEY, n INT)",
    "REPLACE INTO spread VALUES (1, 1), (2, 2), (3, 3)",
    "UPDATE spread SET n = n + 1",
    "SELECT COUNT(*) FROM spread",
    "SET STATEMENT time_zone = '+06:00' FOR UPDATE spread SET n = n",
    "SET STATEMENT time_zone = '+06:00' FOR SELECT id FROM spread ORDER BY id",
    "SET STATEMENT time_zone = '+06:00' FOR UPDATE spread SET n = n WHERE id = 2",
    "SET STATEMENT time_zone = '+06:00' FOR DELETE FROM spread WHERE id > 100 RETURNING id",
    "SET STATEMENT time_zone = '+06:00' FOR INSERT INTO spread VALUES (7, 7), (8, 8) RETURNING id",
    "SET STATEMENT time_zone = '+06:00' FOR SELECT COUNT(*) FROM spread",
    "SET session_track_system_variables = 'time_zone,sql_mode'",
    "SET sql_mode = ''",
    "SET autocommit = 1",
    "SET session_track_system_variables = '*'",
    "SET autocommit = 1",
    "SET sql_mode = 'STRICT_ALL_TABLES', time_zone = '+00:00'",
    "SET session_track_schema = OFF",
    "USE " + SCHEMA,
    "SET session_track_schema = ON, time_zone = '+01:00'",
    "USE " + SCHEMA,
    "SET session_track_system_variables = DEFAULT",
    "SET time_zone = 'nowhere'",
    "SELECT * FROM no_such_table",
]


# a table over two shards; s2, which the proxy does not use for it, is the MariaDB
SPREAD = {"name": "spread", "shard_key": "id", "algorithm": "mod", "shards": ["s0", "s1"]}


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    recreate_database(cluster.servers, SCHEMA, [])
    config = proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": [SPREAD]}],
        users=[{"user": USER, "password": PASSWORD}],
    )
    with module_proxy(
        config, tmp_path_factory, "tracking", cleanup=lambda: drop_databases(cluster, [SCHEMA])
    ) as process:
        yield process


def _changes(state: bytes) -> list[tuple[int, bytes]]:
    """The reported changes (type, data) of an OK's session-state block."""
    changes = []
    pos = 0
    while pos < len(state):
        kind = state[pos]
        data, pos = rc.read_lenenc_str(state, pos + 1)
        changes.append((kind, data or b""))
    return changes


def _reply(status: int, tail: bytes) -> dict:
    """What a tracking client reads from an OK's status and the bytes after warnings."""
    message, state = b"", b""
    if tail:
        message, pos = rc.read_lenenc_str(tail, 0)
        if status & STATE_CHANGED and pos < len(tail):
            state, _ = rc.read_lenenc_str(tail, pos)
    return {
        "changed": bool(status & STATE_CHANGED),
        "message": message,
        "changes": sorted(_changes(state or b"")),
    }


def _read(client: rc.RawClient) -> list[dict]:
    replies = []
    for result in client.read_results():
        end = result.ok or result.end
        if isinstance(end, rc.Err):
            replies.append({"error": end.code})
        elif isinstance(end, rc.Ok):
            replies.append(_reply(end.status, end.info) | {"kinds": result.kinds[:1]})
        else:  # an old EOF: the flag only
            replies.append({"changed": bool(end.status & STATE_CHANGED), "kinds": ["EOF"]})
    return replies


def _transcript(host: str, port: int, user: str, password: str, capabilities: int) -> list:
    client = rc.RawClient(host, port)
    try:
        login = client.login(user, password, database=SCHEMA, capabilities=capabilities)
        assert isinstance(login, rc.Ok), login
        steps: list = [("login", [_reply(login.status, login.info)])]
        for step in STEPS:
            if step.startswith("!init "):
                client.command(COM_INIT_DB, step.removeprefix("!init ").encode())
            else:
                client.query(step)
            steps.append((step, _read(client)))
        return steps
    finally:
        client.close()


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["eof", "deprecate-eof"])
def test_a_tracking_client_is_told_the_changes_mariadb_reports(
    proxy: ProxyProcess, cluster: LocalCluster, deprecate_eof: bool
) -> None:
    capabilities = rc.DEFAULT_CAPABILITIES | SESSION_TRACK | rc.CLIENT_MULTI_STATEMENTS
    if deprecate_eof:
        capabilities |= rc.CLIENT_DEPRECATE_EOF
    direct_server = cluster["s2"]
    direct = _transcript(direct_server.host, direct_server.port, "root", "", capabilities)
    proxied = _transcript(proxy.host, proxy.port, USER, PASSWORD, capabilities)
    differing = [
        f"{step}:\n  MariaDB: {d}\n  proxy:   {p}"
        for (step, d), (_, p) in zip(direct, proxied, strict=True)
        if d != p
    ]
    assert not differing, "\n".join(differing)
    reported = [step for step, replies in direct if any(r.get("changes") for r in replies)]
    assert "USE " + SCHEMA in reported and "SET autocommit = 0" in reported  # it tests something


def test_a_client_without_session_track_never_sees_state_changes(proxy: ProxyProcess) -> None:
    client = rc.connect(proxy.host, proxy.port, USER, PASSWORD, database=SCHEMA)
    try:
        for sql in ("SET time_zone = '+01:00'", "USE " + SCHEMA, "SET autocommit = 0", "SET NAMES latin1", "UPDATE notes SET body = body"):  # fmt: skip
            client.query(sql)
            for result in client.read_results():
                end = result.ok or result.end
                assert not end.status & STATE_CHANGED, (sql, end)
                if isinstance(end, rc.Ok) and sql.startswith("UPDATE"):
                    message, pos = rc.read_lenenc_str(end.info, 0)
                    assert message.startswith(b"Rows matched") and pos == len(end.info)
                elif isinstance(end, rc.Ok):
                    assert end.info == b"", (sql, end.info)
    finally:
        client.close()


def test_change_user_with_a_database_reports_the_schema_as_mariadb_does(
    proxy: ProxyProcess,
) -> None:
    capabilities = rc.DEFAULT_CAPABILITIES | SESSION_TRACK
    client = rc.connect(proxy.host, proxy.port, USER, PASSWORD, capabilities=capabilities)
    try:
        body = USER.encode() + b"\0" + b"\0" + SCHEMA.encode() + b"\0" + b"\x2d\x00"
        client.command(COM_CHANGE_USER, body + b"mysql_native_password\0")
        reply = client.read_packet()
        if reply[:1] == b"\xfe":  # the proxy asks for a fresh proof
            end = reply.index(b"\0", 1)
            client.send_packet(rc.native_password(PASSWORD, reply[end + 1 :].rstrip(b"\0")))
            reply = client.read_packet()
        ok = rc.parse_ok(reply)
        # MariaDB 10.11: 00 00 00 02 40 00 00 00 <len> 01 <len> <lenenc schema>
        assert _reply(ok.status, ok.info) == {
            "changed": True,
            "message": b"",
            "changes": [(1, rc.lenenc_str(SCHEMA.encode()))],
        }
    finally:
        client.close()


def test_a_set_of_autocommit_with_what_the_proxy_refuses_never_reaches_a_shard(
    proxy: ProxyProcess, cluster: LocalCluster
) -> None:
    """The probe that reads MariaDB's report runs only a SET the proxy accepted."""
    before = [server.execute("SELECT @@global.max_connections") for server in cluster.servers]
    capabilities = rc.DEFAULT_CAPABILITIES | SESSION_TRACK
    client = rc.connect(proxy.host, proxy.port, USER, PASSWORD, database=SCHEMA, capabilities=capabilities)  # fmt: skip
    try:
        for sql, code in (
            ("SET autocommit = 0, @@global.max_connections = 77", 1227),
            ("SET SESSION autocommit = 1, GLOBAL max_connections = 77", 1227),
            ("SET autocommit = 1, sql_mode = (SELECT MAX(n) FROM spread)", 1235),
        ):
            client.query(sql)
            (result,) = client.read_results()
            assert isinstance(result.end, rc.Err) and result.end.code == code, (sql, result.end)
    finally:
        client.close()
    after = [server.execute("SELECT @@global.max_connections") for server in cluster.servers]
    assert after == before


def test_tracking_what_the_proxy_cannot_report_is_refused_clearly(proxy: ProxyProcess) -> None:
    capabilities = rc.DEFAULT_CAPABILITIES | SESSION_TRACK
    client = rc.connect(proxy.host, proxy.port, USER, PASSWORD, database=SCHEMA, capabilities=capabilities)  # fmt: skip
    try:
        for sql in ("SET session_track_state_change = ON", "SET session_track_transaction_info = STATE"):  # fmt: skip
            client.query(sql)
            (result,) = client.read_results()
            assert isinstance(result.end, rc.Err) and result.end.code == 1235, result.end
            assert "track" in result.end.message
        client.query("SET session_track_state_change = OFF")
        (result,) = client.read_results()
        assert result.ok is not None
    finally:
        client.close()
