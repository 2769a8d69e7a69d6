"""TLS between clients and the proxy: offered when configured, never silently skipped.

With `tls: {cert, key}` the greeting offers CLIENT_SSL; a client's SSLRequest
upgrades the connection and the handshake goes on inside TLS. Each client
library named in the issue connects with certificate verification, and the
session reports the TLS it really has (`SHOW STATUS LIKE 'Ssl_%'`). Without a
certificate, a client that asks for TLS gets a clear error, not plaintext.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mysql.connector
import MySQLdb
import pymysql
import pytest

from tests.support import rawclient as rc
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "xp_tls"
USER, PASSWORD = "app", "app-secret"
TLS_ONLY = "tls_only"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _proxy(
    cluster: LocalCluster, folder: Path, name: str, tls: dict[str, str] | None
) -> ProxyProcess:
    for server in cluster.servers:
        server.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    extra: dict[str, Any] = {"tls": tls} if tls else {}
    config = proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0"}],
        users=[
            {"user": USER, "password": PASSWORD},
            {"user": TLS_ONLY, "password": PASSWORD, "require_tls": True},
        ],
        **extra,
    )
    return ProxyProcess(config, folder, name=name)


@pytest.fixture(scope="module")
def proxy(
    cluster: LocalCluster,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    cert, key = certificate
    process = _proxy(
        cluster, tmp_path_factory.mktemp("tlsproxy"), "tls", {"cert": str(cert), "key": str(key)}
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def plain_proxy(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    process = _proxy(cluster, tmp_path_factory.mktemp("plainproxy"), "plain", None)
    process.start()
    yield process
    process.stop()


def _ssl_status(cursor: Any) -> dict[str, str]:
    cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_%'")
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in cursor.fetchall()
    }


def test_the_greeting_offers_tls_only_when_a_certificate_is_configured(
    proxy: ProxyProcess, plain_proxy: ProxyProcess
) -> None:
    with rc.RawClient(proxy.host, proxy.port) as client:
        assert client.read_greeting().capabilities & rc.CLIENT_SSL
    with rc.RawClient(plain_proxy.host, plain_proxy.port) as client:
        assert not client.read_greeting().capabilities & rc.CLIENT_SSL


def test_pymysql_connects_over_verified_tls(proxy: ProxyProcess, certificate: tuple) -> None:
    cert, _ = certificate
    conn = pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=USER,
        password=PASSWORD,
        database=SCHEMA,
        ssl_ca=str(cert),
        ssl_verify_cert=True,
        ssl_verify_identity=True,
    )
    try:
        assert isinstance(conn._sock, ssl.SSLSocket)
        with conn.cursor() as cursor:
            status = _ssl_status(cursor)
            assert status["Ssl_cipher"] == conn._sock.cipher()[0]
            assert status["Ssl_version"] == conn._sock.version()
            cursor.execute("SELECT 1 + 1")
            assert cursor.fetchall() == ((2,),)
    finally:
        conn.close()


def test_mysqlclient_connects_over_verified_tls(proxy: ProxyProcess, certificate: tuple) -> None:
    cert, _ = certificate
    conn = MySQLdb.connect(
        host=proxy.host,
        port=proxy.port,
        user=USER,
        password=PASSWORD,
        database=SCHEMA,
        ssl={"ca": str(cert)},
        ssl_mode="VERIFY_IDENTITY",
    )
    try:
        cursor = conn.cursor()
        status = _ssl_status(cursor)
        assert status["Ssl_cipher"] and status["Ssl_version"].startswith("TLSv1.")
    finally:
        conn.close()


@pytest.mark.parametrize("pure", [True, False], ids=["pure", "c-extension"])
def test_mysql_connector_connects_over_verified_tls(
    proxy: ProxyProcess, certificate: tuple, pure: bool
) -> None:
    cert, _ = certificate
    conn = mysql.connector.connect(
        host=proxy.host,
        port=proxy.port,
        user=USER,
        password=PASSWORD,
        database=SCHEMA,
        ssl_ca=str(cert),
        ssl_verify_cert=True,
        ssl_verify_identity=True,
        use_pure=pure,
    )
    try:
        cursor = conn.cursor()
        status = _ssl_status(cursor)
        assert status["Ssl_cipher"] and status["Ssl_version"].startswith("TLSv1.")
    finally:
        conn.close()


def _mariadb_cli(proxy: ProxyProcess, *args: str) -> subprocess.CompletedProcess:
    cli = shutil.which("mariadb") or shutil.which("mysql")
    assert cli is not None, "the mariadb client is installed by the test command"
    return subprocess.run(
        [cli, "-h", proxy.host, "-P", str(proxy.port), "-u", USER, f"-p{PASSWORD}",
         "--batch", "--skip-column-names", *args, SCHEMA],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_the_mariadb_cli_verifies_the_certificate(proxy: ProxyProcess, certificate: tuple) -> None:
    cert, _ = certificate
    done = _mariadb_cli(
        proxy,
        "--ssl",
        f"--ssl-ca={cert}",
        "--ssl-verify-server-cert",
        "-e",
        "SHOW STATUS LIKE 'Ssl_version'",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:1] == ["Ssl_version"]
    assert done.stdout.split()[1].startswith("TLSv1.")


def test_a_client_with_another_ca_does_not_get_in(
    proxy: ProxyProcess, tmp_path: Path, certificate: tuple
) -> None:
    other = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=other", "-keyout", str(tmp_path / "other.key"), "-out", str(other)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host=proxy.host,
            port=proxy.port,
            user=USER,
            password=PASSWORD,
            ssl_ca=str(other),
            ssl_verify_cert=True,
            connect_timeout=20,
        )
    assert proxy.is_running()


def test_asking_for_tls_without_a_certificate_is_an_error_not_plaintext(
    plain_proxy: ProxyProcess,
) -> None:
    with rc.RawClient(plain_proxy.host, plain_proxy.port) as client:
        greeting = client.read_greeting()
        caps = rc.DEFAULT_CAPABILITIES | rc.CLIENT_SSL
        client.seq = 1
        client.send_packet(
            (caps).to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + b"\x2d" + bytes(23)
        )
        answer = client.read_packet()
        assert rc.is_err(answer), answer
        err = rc.parse_err(answer)
        assert err.code == 1045 and "TLS" in err.message
        assert greeting.capabilities & rc.CLIENT_SSL == 0
    done = _mariadb_cli(plain_proxy, "--ssl", "--ssl-verify-server-cert", "-e", "SELECT 1")
    assert done.returncode != 0


def test_a_client_hello_sent_in_the_same_segment_as_the_ssl_request_is_read(
    proxy: ProxyProcess, certificate: tuple
) -> None:
    """Clients often write the SSLRequest and the TLS ClientHello in one go."""
    cert, _ = certificate
    context = ssl.create_default_context(cafile=str(cert))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with rc.RawClient(proxy.host, proxy.port) as client:
        client.read_greeting()
        caps = rc.DEFAULT_CAPABILITIES | rc.CLIENT_SSL
        request = caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + b"\x2d"
        request += bytes(23)
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        client.sock.sendall(len(request).to_bytes(3, "little") + b"\x01" + request + hello)
        client.sock.settimeout(30)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    client.sock.sendall(outgoing.read())
                data = client.sock.recv(65536)
                assert data, "the proxy closed the connection during the TLS handshake"
                incoming.write(data)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


# --- TLS from the proxy to a shard ----------------------------------------------------------

SHARD_USER, SHARD_SECRET = "xp_tls", "tls-secret"


@pytest.fixture(scope="module")
def tls_shard(
    certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """One shard with a certificate; the proxy's account there REQUIREs SSL."""
    cert, key = certificate
    shard = LocalCluster(tmp_path_factory.mktemp("tlsshard"), 1)
    shard.servers[0].options += [f"--ssl-cert={cert}", f"--ssl-key={key}"]
    shard.start()
    try:
        server = shard.servers[0]
        server.execute(f"CREATE USER '{SHARD_USER}'@'%' IDENTIFIED BY '{SHARD_SECRET}' REQUIRE SSL")
        server.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON `{SCHEMA}`.* "
            f"TO '{SHARD_USER}'@'%'"
        )
        server.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `xaproxy`.* TO '{SHARD_USER}'@'%'"
        )
        server.execute(f"CREATE DATABASE {SCHEMA}")
        yield shard
    finally:
        try:
            shard.stop()
        finally:
            shard.kill()


def _shard_proxy(
    shard: LocalCluster, folder: Path, tls: object
) -> tuple[ProxyProcess, dict[str, Any]]:
    config = proxy_config(
        shard,
        schemas=[{"name": SCHEMA, "default_shard": "s0"}],
        users=[{"user": USER, "password": PASSWORD}],
    )
    for entry in config["shards"]:
        entry["user"], entry["password"] = SHARD_USER, SHARD_SECRET
        if tls is not None:
            entry["tls"] = tls
    return ProxyProcess(config, folder, name="tlsshard"), config


def _query_through(proxy: ProxyProcess, sql: str) -> Any:
    conn = pymysql.connect(
        host=proxy.host, port=proxy.port, user=USER, password=PASSWORD, database=SCHEMA
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        conn.close()


def test_the_proxy_reaches_a_shard_over_verified_tls(
    tls_shard: LocalCluster, certificate: tuple, tmp_path: Path
) -> None:
    cert, _ = certificate
    proxy, _ = _shard_proxy(tls_shard, tmp_path, {"ca": str(cert)})
    with proxy:
        # the account REQUIREs SSL: any answer proves the shard connection is TLS
        assert _query_through(proxy, "SELECT @@hostname IS NOT NULL") == ((1,),)


@pytest.mark.parametrize("tls", [None, "other-ca"], ids=["plaintext", "unknown-ca"])
def test_a_shard_connection_without_trusted_tls_is_never_made(
    tls_shard: LocalCluster, tmp_path: Path, tls: str | None
) -> None:
    setting: object = None
    if tls == "other-ca":
        other = tmp_path / "other.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "o.key"), "-out", str(other)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        setting = {"ca": str(other)}
    proxy, _ = _shard_proxy(tls_shard, tmp_path, setting)
    with proxy:
        with pytest.raises(pymysql.err.MySQLError) as info:
            _query_through(proxy, "SELECT 1")
        assert "s0" in str(info.value), info.value


def test_a_user_that_requires_tls_cannot_log_in_over_plaintext(
    proxy: ProxyProcess, certificate: tuple
) -> None:
    cert, _ = certificate
    with pytest.raises(rc.ProtocolError, match=r"1045.*require_tls"):
        rc.connect(proxy.host, proxy.port, TLS_ONLY, PASSWORD)  # plaintext: no SSLRequest
    conn = pymysql.connect(
        host=proxy.host, port=proxy.port, user=TLS_ONLY, password=PASSWORD, ssl_ca=str(cert)
    )
    conn.close()
