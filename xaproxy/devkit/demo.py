"""A one-command demo: two local MariaDB shards and the proxy in front of them.

It exists so that someone trying xaproxy sees sharding and cross-shard
transactions work with nothing but MariaDB installed.  The setup half
(``prepare_demo``) is separate from serving so that tests can check it
without binding the demo port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import proxy_config

DEMO_SCHEMA = "shop"
DEMO_USER = "app"
DEMO_PASSWORD = "app-secret"
DEMO_PROXY_ID = "demo"

ORDERS_DDL = (
    "CREATE TABLE IF NOT EXISTS orders ("
    "id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, item VARCHAR(100), amount DECIMAL(10,2))"
)
COUNTRIES_DDL = "CREATE TABLE IF NOT EXISTS countries (code CHAR(2) PRIMARY KEY, name VARCHAR(100))"
NOTES_DDL = "CREATE TABLE IF NOT EXISTS notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)"

COUNTRIES = (
    ("DE", "Germany"),
    ("FR", "France"),
    ("JP", "Japan"),
    ("US", "United States"),
    ("BR", "Brazil"),
)


def start_demo_shards(workdir: Path) -> LocalCluster:
    """Start the two demo shards (s0, s1) under ``workdir``."""
    cluster = LocalCluster(workdir, 2)
    cluster.start()
    return cluster


def create_demo_schema(cluster: LocalCluster) -> None:
    """Create ``shop`` and its tables on the shards the config says they live on.

    Idempotent, so that a demo restarted on the same work directory keeps its data.
    """
    values = ", ".join(f"('{code}', '{name}')" for code, name in COUNTRIES)
    for server in cluster.servers:
        server.execute(f"CREATE DATABASE IF NOT EXISTS {DEMO_SCHEMA}")
        # orders: sharded by user_id, so every shard has the (partial) table.
        server.execute(ORDERS_DDL, DEMO_SCHEMA)
        # countries: broadcast, an identical full copy on every shard.
        server.execute(COUNTRIES_DDL, DEMO_SCHEMA)
        server.execute(f"INSERT IGNORE INTO countries (code, name) VALUES {values}", DEMO_SCHEMA)
    # notes: unsharded, it lives on the schema's default shard only.
    cluster.servers[0].execute(NOTES_DDL, DEMO_SCHEMA)


def demo_config(cluster: LocalCluster, listen_port: int = 3307) -> dict[str, Any]:
    """The proxy configuration for the demo shards, as the YAML file would hold it."""
    shard_names = [server.name for server in cluster.servers]
    return proxy_config(
        cluster,
        listen_port=listen_port,
        proxy_id=DEMO_PROXY_ID,
        users=[{"user": DEMO_USER, "password": DEMO_PASSWORD}],
        schemas=[
            {
                "name": DEMO_SCHEMA,
                "default_shard": shard_names[0],
                "tables": [
                    {
                        "name": "orders",
                        "shard_key": "user_id",
                        "algorithm": "hash",
                        "key_type": "integer",
                        "shards": shard_names,
                    },
                    {"name": "countries", "broadcast": True},
                ],
            }
        ],
        transactions={"mode": "xa", "timeout_s": 60},
    )


def prepare_demo(workdir: Path, listen_port: int = 3307) -> tuple[LocalCluster, dict[str, Any]]:
    """Start the shards, create the schema and return them with the config dict.

    The caller owns the returned cluster and must stop it.
    """
    cluster = start_demo_shards(workdir)
    try:
        create_demo_schema(cluster)
    except BaseException:
        cluster.kill()
        raise
    return cluster, demo_config(cluster, listen_port)


def connect_command(listen_port: int = 3307) -> str:
    return f"mariadb -h 127.0.0.1 -P {listen_port} -u {DEMO_USER} -p{DEMO_PASSWORD} {DEMO_SCHEMA}"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM during setup unwind like Ctrl-C, so the shards get stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def _serve(config: Any, listen_port: int) -> None:
    """Run the proxy until SIGINT or SIGTERM, then let it shut down cleanly."""
    from xaproxy.server import run_server

    stop = asyncio.Event()
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        # The first signal asks for a graceful stop; a second one gives up waiting.
        if stop.is_set() and main is not None:
            main.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    async def announce() -> None:
        await ready.wait()
        print(f"xaproxy is listening on 127.0.0.1:{listen_port}; Ctrl-C stops the demo.")

    announcer = asyncio.create_task(announce())
    try:
        await run_server(config, stop=stop, ready=ready)
    finally:
        announcer.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # the proxy works on the default loop too, only slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_demo(workdir: str | None = None, listen_port: int = 3307) -> int:
    """Start the demo shards and serve the proxy in the foreground until interrupted."""
    from xaproxy.config import parse_config

    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="xaproxy-demo-"))
    print(f"Work directory: {base}")
    cluster: LocalCluster | None = None
    try:
        with _sigterm_as_interrupt():
            print("Starting two MariaDB shards ...")
            cluster, raw_config = prepare_demo(base, listen_port)
            for server in cluster.servers:
                print(f"  shard {server.name}: {server.host}:{server.port} (data in {server.dir})")
            config = parse_config(raw_config)
        print()
        print("Connect with:")
        print(f"  {connect_command(listen_port)}")
        print()
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(_serve(config, listen_port))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except Exception as exc:
        traceback.print_exc()
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if cluster is not None:
            print("Stopping the shards ...")
            try:
                cluster.stop()
            finally:
                cluster.kill()
    return 0
