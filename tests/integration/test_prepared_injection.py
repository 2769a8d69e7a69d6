"""Prepared-statement parameters cannot inject SQL, whatever the client character set.

Where the proxy inlines a parameter into statement text, it escapes it for the
session's character set and sql_mode. The sets in which a two-byte character can
end in 0x5c (gbk, big5, sjis, cp932, gb18030) are refused for the client
connection: there `0xbf 0x5c 0x27` is one character and a quote to the server
but an escaped quote to a reader of UTF-8, so even the client's own text could
end a string literal at a different place for the proxy and the server.

The accepted cases run the same prepared statements with the same crafted
parameters directly on MariaDB (which binds them natively) and through the
proxy, compare what the client gets, and then compare the rows left on the
shards: the secrets are unchanged and the stored values are equal.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import rawclient as rc
from tests.support.proxied import drop_databases, module_proxy, recreate_database
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

DIRECT = "xp_inject_direct"
PLAIN = "xp_inject"
SHARDED = "xp_inject_sharded"
USER, PASSWORD = "app", "app-secret"
# the refused sets, with the id of a collation of each for the handshake
UNREADABLE = {"gbk": 28, "big5": 1, "sjis": 13, "cp932": 95}
CHARSETS = ["utf8mb4", "latin1"]
# A lead byte of a two-byte character of gbk/big5/sjis, then a quote: escaped byte by
# byte, the backslash would become the character's trail byte there; quotes, backslashes
# and NUL must stay data in every set.
ATTACKS = [
    b"x' OR 1=1 -- ",
    b"x\\' OR 1=1 -- ",
    b"\\",
    b"\x00' OR '1'='1",
    b"\xbf' OR 1=1 -- ",
    b"\x95' OR '1'='1",
    b"\x81\\' OR 1=1 -- ",
    b"\xa4' UNION SELECT secret FROM secrets -- ",
    b"\xe0'; UPDATE secrets SET secret = 'pwned' -- ",
    b"\xbf",
]
TABLE = (
    "CREATE TABLE IF NOT EXISTS {db}.secrets (id INT PRIMARY KEY, "
    "name VARBINARY(200), secret VARCHAR(64))"
)
ROWS = "INSERT INTO {db}.secrets (id, name, secret) VALUES (1, 'alice', 's3cret-1'), (2, 'bob', 's3cret-2')"


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    for db in (DIRECT, PLAIN, SHARDED):
        recreate_database(cluster.servers, db, [TABLE.format(db=db)])
    schemas = [
        {"name": PLAIN, "default_shard": "s0"},
        {
            "name": SHARDED,
            "default_shard": "s0",
            "tables": [
                {
                    "name": "secrets",
                    "shard_key": "id",
                    "algorithm": "hash",
                    "key_type": "integer",
                }
            ],
        },
    ]
    config = proxy_config(cluster, schemas=schemas, users=[{"user": USER, "password": PASSWORD}])
    dbs = (DIRECT, PLAIN, SHARDED)
    with module_proxy(
        config, tmp_path_factory, "inject", cleanup=lambda: drop_databases(cluster, dbs)
    ) as process:
        yield process


@pytest.fixture(autouse=True)
def fresh_rows(cluster: LocalCluster, proxy: ProxyProcess) -> Iterator[None]:
    for server in cluster.servers:
        for db in (DIRECT, PLAIN, SHARDED) if server.name == "s0" else (SHARDED,):
            server.execute(f"DELETE FROM {db}.secrets")
    cluster["s0"].execute(ROWS.format(db=DIRECT))
    cluster["s0"].execute(ROWS.format(db=PLAIN))
    yield


def _outcome(client: rc.RawClient, sql: str, params: list[bytes]) -> tuple:
    """What a client sees of one prepared execution: the error, or the rows / affected count."""
    prepared = client.prepare(sql)
    client.execute(prepared.statement_id, params)
    result = client.read_result(binary=True)
    if isinstance(result.end, rc.Err):
        return ("error", result.end.code)
    if result.ok is not None:
        return ("ok", result.ok.affected_rows)
    return ("rows", sorted(result.raw_rows))


def _session(
    host: str, port: int, user: str, password: str, db: str, charset: str, sql_mode: str = ""
) -> rc.RawClient:
    client = rc.connect(host, port, user, password, database=db)
    client.simple_query(f"SET NAMES {charset}")
    if sql_mode:
        client.simple_query(f"SET sql_mode = '{sql_mode}'")
    return client


def _stored(cluster: LocalCluster, db: str) -> list[tuple]:
    rows: list[tuple] = []
    for server in cluster.servers:
        rows += server.execute(f"SELECT id, HEX(name), secret FROM {db}.secrets")
    return sorted(rows)


STATEMENTS = [
    "SELECT id, secret FROM secrets WHERE name = ?",
    "SELECT COUNT(*) FROM secrets WHERE name = ? OR name = ?",
    "UPDATE secrets SET name = ? WHERE id = 2",
    "INSERT INTO secrets (id, name, secret) VALUES (3, ?, 'new')",
]


def _run_all(client: rc.RawClient, attack: bytes) -> list[tuple]:
    outcomes = []
    for sql in STATEMENTS:
        params = [attack] * sql.count("?")
        outcomes.append((sql, _outcome(client, sql, params)))
    return outcomes


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.hex() for a in ATTACKS])
def test_a_crafted_parameter_is_data_on_an_unsharded_table(
    cluster: LocalCluster, proxy: ProxyProcess, charset: str, attack: bytes, sql_mode: str
) -> None:
    shard = cluster["s0"]
    with _session(shard.host, shard.port, "root", "", DIRECT, charset, sql_mode) as direct:
        expected = _run_all(direct, attack)
    with _session(proxy.host, proxy.port, USER, PASSWORD, PLAIN, charset, sql_mode) as client:
        assert _run_all(client, attack) == expected
    assert _stored(cluster, PLAIN) == _stored(cluster, DIRECT)
    assert {row[2] for row in _stored(cluster, PLAIN)} <= {"s3cret-1", "s3cret-2", "new"}


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("attack", ATTACKS[:6], ids=[a.hex() for a in ATTACKS[:6]])
def test_a_crafted_parameter_is_data_on_a_sharded_table(
    cluster: LocalCluster, proxy: ProxyProcess, charset: str, attack: bytes
) -> None:
    with _session(proxy.host, proxy.port, USER, PASSWORD, SHARDED, charset) as client:
        client.simple_query(ROWS.format(db=SHARDED))
        outcomes = _run_all(client, attack)
    shard = cluster["s0"]
    with _session(shard.host, shard.port, "root", "", DIRECT, charset) as direct:
        expected = _run_all(direct, attack)
    assert outcomes == expected
    assert _stored(cluster, SHARDED) == _stored(cluster, DIRECT)


@pytest.mark.parametrize("charset", sorted(UNREADABLE))
@pytest.mark.parametrize(
    "statement", ["SET NAMES {cs}", "SET CHARACTER SET {cs}", "SET character_set_client = {cs}"]
)
def test_a_charset_whose_characters_can_end_in_a_backslash_is_refused(
    proxy: ProxyProcess, charset: str, statement: str
) -> None:
    with rc.connect(proxy.host, proxy.port, USER, PASSWORD, database=PLAIN) as client:
        client.query(statement.format(cs=charset))
        result = client.read_result()
        assert isinstance(result.end, rc.Err) and result.end.code == 1115, result
        assert charset in result.end.message
        # the session goes on in the character set it had
        rows = client.simple_query("SELECT @@character_set_client").rows
        assert rows == [[b"utf8mb4"]]
        prepared = client.prepare("SELECT secret FROM secrets WHERE name = ?")
        client.execute(prepared.statement_id, [b"\xbf' OR 1=1 -- "])
        assert client.read_result(binary=True).raw_rows == []


@pytest.mark.parametrize("charset", sorted(UNREADABLE))
def test_a_login_asking_for_such_a_charset_is_refused(proxy: ProxyProcess, charset: str) -> None:
    client = rc.RawClient(proxy.host, proxy.port)
    try:
        result = client.login(USER, PASSWORD, database=PLAIN, charset=UNREADABLE[charset])
    finally:
        client.close()
    assert isinstance(result, rc.Err) and result.code == 1115, result
