"""Workload 4: many idle client connections to one xaproxy process.

Opens N connections (each: TCP connect, HandshakeV10, mysql_native_password
login with a database) with a minimal asyncio client, at most ``PARALLEL`` in
flight, and keeps them all open and idle. Reports the time to get all of them
logged in, per-login latency, and the proxy's resident memory (VmRSS) before
and after, i.e. KiB per idle connection. Then every connection sends COM_PING
to prove it is still served, and all are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, raise_nofile_limit

from .harness import Harness
from .stats import percentiles_ms

DB = "conns"
PARALLEL = 200

CLIENT_LONG_PASSWORD = 1
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_PLUGIN_AUTH = 1 << 19
UTF8MB4_GENERAL_CI = 45
COM_PING = 0x0E


@dataclass
class ConnOptions:
    connections: int
    notes: list[str] = field(default_factory=list)


class LoginError(Exception):
    pass


def _native_password(password: str, scramble: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mask = hashlib.sha1(scramble + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


class RawConnection:
    """Just enough of the client protocol to log in, ping and quit."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self) -> tuple[int, bytes]:
        header = await self.reader.readexactly(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        return header[3], await self.reader.readexactly(length)

    def send(self, seq: int, payload: bytes) -> None:
        self.writer.write(len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload)

    @classmethod
    async def login(
        cls, host: str, port: int, user: str, password: str, db: str | None
    ) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        conn = cls(reader, writer)
        try:
            seq, greeting = await conn.read()
            if greeting[0] == 0xFF:
                raise LoginError(greeting[3:].decode(errors="replace"))
            pos = greeting.index(b"\0", 1) + 1  # protocol version, server version
            pos += 4  # connection id
            scramble = greeting[pos : pos + 8]
            pos += 9  # auth data part 1 + filler
            caps = struct.unpack_from("<H", greeting, pos)[0]
            pos += 2
            if len(greeting) > pos:
                pos += 3  # charset, status flags
                caps |= struct.unpack_from("<H", greeting, pos)[0] << 16
                pos += 2
                auth_len = greeting[pos]
                pos += 11
                part2 = greeting[pos : pos + max(13, auth_len - 8)]
                scramble += part2.rstrip(b"\0")[:12]
            flags = (
                CLIENT_LONG_PASSWORD
                | CLIENT_PROTOCOL_41
                | CLIENT_TRANSACTIONS
                | CLIENT_SECURE_CONNECTION
                | CLIENT_PLUGIN_AUTH
                | (CLIENT_CONNECT_WITH_DB if db else 0)
            ) & (caps | CLIENT_CONNECT_WITH_DB)
            auth = _native_password(password, scramble)
            response = (
                struct.pack("<IIB23x", flags, 1 << 24, UTF8MB4_GENERAL_CI)
                + user.encode()
                + b"\0"
                + bytes([len(auth)])
                + auth
                + ((db.encode() + b"\0") if db else b"")
                + b"mysql_native_password\0"
            )
            conn.send(seq + 1, response)
            await writer.drain()
            seq, reply = await conn.read()
            if reply[0] == 0xFE:  # auth switch request
                end = reply.index(b"\0", 1)
                plugin = reply[1:end].decode()
                if plugin != "mysql_native_password":
                    raise LoginError(f"server asks for auth plugin {plugin}")
                conn.send(seq + 1, _native_password(password, reply[end + 1 :].rstrip(b"\0")[:20]))
                await writer.drain()
                seq, reply = await conn.read()
            if reply[0] != 0x00:
                raise LoginError(
                    reply[3:].decode(errors="replace") if reply[0] == 0xFF else repr(reply[:20])
                )
        except BaseException:
            writer.close()
            raise
        return conn

    async def ping(self) -> None:
        self.send(0, bytes([COM_PING]))
        await self.writer.drain()
        _, reply = await self.read()
        if reply[0] != 0x00:
            raise LoginError(f"COM_PING failed: {reply[3:].decode(errors='replace')}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send(0, b"\x01")  # COM_QUIT
        with contextlib.suppress(Exception):
            self.writer.close()


async def _open_all(
    host: str, port: int, count: int
) -> tuple[list[RawConnection], list[float], list[BaseException], float]:
    gate = asyncio.Semaphore(PARALLEL)
    latencies: list[float] = []
    failures: list[BaseException] = []

    async def one() -> RawConnection | None:
        async with gate:
            t0 = time.perf_counter()
            try:
                conn = await asyncio.wait_for(
                    RawConnection.login(host, port, PROXY_USER, PROXY_PASSWORD, DB), 60
                )
            except (OSError, LoginError, asyncio.IncompleteReadError, TimeoutError) as exc:
                failures.append(exc)
                return None
            latencies.append(time.perf_counter() - t0)
            return conn

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - t0
    return [c for c in results if c is not None], latencies, failures, elapsed


async def _ping_all(conns: list[RawConnection]) -> tuple[int, float]:
    gate = asyncio.Semaphore(PARALLEL * 5)

    async def one(conn: RawConnection) -> bool:
        async with gate:
            try:
                await asyncio.wait_for(conn.ping(), 60)
                return True
            except (OSError, LoginError, asyncio.IncompleteReadError, TimeoutError):
                return False

    t0 = time.perf_counter()
    ok = await asyncio.gather(*(one(c) for c in conns))
    return sum(1 for x in ok if not x), time.perf_counter() - t0


def run(h: Harness, opts: ConnOptions, log: Any, runner: Any) -> list[dict[str, Any]]:
    n = opts.connections
    wanted = n + 2048
    limit = raise_nofile_limit(wanted)
    if limit < n + 100:
        opts.notes.append(
            f"connections: RLIMIT_NOFILE of the harness is only {limit}; opening {n} connections "
            "may fail (raise the hard limit: ulimit -Hn)"
        )
    for server in h.cluster.servers:
        server.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
    log(f"connections: {n} idle connections to xaproxy (RLIMIT_NOFILE {limit})")
    service = h.start_proxy(
        "xaproxy-connections",
        [{"name": DB, "default_shard": "s0"}],
        max_connections=max(10001, n + 100),
        nofile=wanted,
        workers=1,  # memory per connection of one process
    )
    try:

        async def scenario() -> dict[str, Any]:
            warm = await RawConnection.login(
                service.host, service.port, PROXY_USER, PROXY_PASSWORD, DB
            )
            await warm.ping()
            warm.close()
            await asyncio.sleep(0.5)
            before = service.rss_kib()
            conns, latencies, failures, elapsed = await _open_all(service.host, service.port, n)
            try:
                await asyncio.sleep(1.0)
                after = service.rss_kib()
                ping_failures, ping_time = await _ping_all(conns)
                after_ping = service.rss_kib()
            finally:
                for conn in conns:
                    conn.close()
                await asyncio.sleep(0.5)
            return {
                "before": before,
                "after": after,
                "after_ping": after_ping,
                "opened": len(conns),
                "latencies": latencies,
                "failures": failures,
                "elapsed": elapsed,
                "ping_failures": ping_failures,
                "ping_time": ping_time,
            }

        result = runner(scenario())
    finally:
        h.stop_service(service, opts.notes)
    opened = result["opened"]
    per_conn = (result["after"] - result["before"]) / opened if opened else 0.0
    per_conn_ping = (result["after_ping"] - result["before"]) / opened if opened else 0.0
    failures = result["failures"]
    first_failure = f"; first failure: {failures[0]!r}"[:200] if failures else ""
    row = {
        "workload": "connections",
        "target": "xaproxy",
        "concurrency": n,
        "unit": "logins/s",
        "throughput": opened / result["elapsed"] if result["elapsed"] else 0.0,
        **percentiles_ms(result["latencies"]),
        "errors": f"{len(failures)} failed logins, {result['ping_failures']} failed pings",
        "check": f"{per_conn:.1f} KiB/conn idle ({per_conn_ping:.1f} after a ping each)",
        "note": (
            f"{opened} logged in after {result['elapsed']:.2f} s; proxy VmRSS "
            f"{result['before'] / 1024:.1f} MiB -> {result['after'] / 1024:.1f} MiB idle -> "
            f"{result['after_ping'] / 1024:.1f} MiB after pinging all "
            f"(took {result['ping_time']:.2f} s)"
            f"{first_failure}"
        ),
        "kib_per_conn": per_conn,
        "ok": not failures and not result["ping_failures"],
    }
    log(f"  connections: {row['check']}; {row['note']}; {row['errors']}")
    return [row]
