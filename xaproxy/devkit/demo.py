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

from xaproxy.config import TableConfig
from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import proxy_config
from xaproxy.routing.sharding import shard_for

DEMO_SCHEMA = "shop"
DEMO_USER = "app"
DEMO_PASSWORD = "app-secret"
DEMO_PROXY_ID = "demo"

# The proxy generates orders.id (`auto_increment: id` in the shard map): ids unique across
# the shards, where each shard's own AUTO_INCREMENT would hand out 1, 2, 3 ... on both.
ORDERS_DDL = (
    "CREATE TABLE IF NOT EXISTS orders ("
    "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL, "
    "item VARCHAR(100), amount DECIMAL(10,2))"
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


# Sample orders (id, user_id, item, amount); each is written on the shard its user_id hashes to.
SAMPLE_ORDERS = (
    (1, 1, "keyboard", "49.90"),
    (2, 2, "monitor", "189.00"),
    (3, 3, "cable", "7.50"),
    (4, 4, "mouse", "19.99"),
    (5, 1, "lamp", "24.00"),
    (6, 2, "chair", "129.00"),
)


def _orders_table(config: dict[str, Any]) -> TableConfig:
    from xaproxy.config import parse_config

    schema = parse_config(config).schema(DEMO_SCHEMA)
    assert schema is not None
    table = schema.table("orders")
    assert table is not None
    return table


def users_on_two_shards(config: dict[str, Any]) -> tuple[int, int]:
    """Two sample users whose orders live on different shards (for the banner's transaction)."""
    table = _orders_table(config)
    first = SAMPLE_ORDERS[0][1]
    home = shard_for(table, first)
    other = next(u for _, u, _, _ in SAMPLE_ORDERS if shard_for(table, u) != home)
    return first, other


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
    # sample orders, each on the shard the shard map puts its user_id on
    table = _orders_table(demo_config(cluster))
    by_name = {server.name: server for server in cluster.servers}
    for order_id, user_id, item, amount in SAMPLE_ORDERS:
        by_name[shard_for(table, user_id)].execute(
            "INSERT IGNORE INTO orders (id, user_id, item, amount) "
            f"VALUES ({order_id}, {user_id}, '{item}', {amount})",
            DEMO_SCHEMA,
        )


def demo_config(cluster: LocalCluster, listen_port: int = 3307) -> dict[str, Any]:
    """The proxy configuration for the demo shards, as the YAML file would hold it."""
    shard_names = [server.name for server in cluster.servers]
    return proxy_config(
        cluster,
        listen_port=listen_port,
        proxy_id=DEMO_PROXY_ID,
        users=[{"user": DEMO_USER, "password": DEMO_PASSWORD, "ddl": True, "admin": True}],
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
                        "auto_increment": "id",
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


def cross_shard_transaction(config: dict[str, Any]) -> list[str]:
    """The statements the banner suggests: one transaction writing on both shards."""
    a, b = users_on_two_shards(config)
    return [
        "BEGIN;",
        "INSERT INTO orders (user_id, amount) VALUES (7, 1.5);",
        f"UPDATE orders SET amount = amount - 10 WHERE user_id = {a};",
        f"UPDATE orders SET amount = amount + 10 WHERE user_id = {b};",
        "XAPROXY SHOW TRANSACTIONS;",
        "COMMIT;",
    ]


def banner(config: dict[str, Any], listen_port: int = 3307) -> str:
    """What the demo prints once the shards run: how to connect and what to try."""
    a, b = users_on_two_shards(config)
    lines = [
        "Connect with:",
        f"  {connect_command(listen_port)}",
        "",
        "Tables: orders (sharded by user_id over s0 and s1, ids generated by xaproxy),",
        "        countries (a copy on every shard), notes (unsharded, on s0).",
        "",
        "See where a statement goes:",
        f"  XAPROXY EXPLAIN SELECT * FROM orders WHERE user_id = {a};",
        "  XAPROXY EXPLAIN SELECT user_id, SUM(amount) FROM orders GROUP BY user_id;",
        "",
        f"A transaction across both shards (user {a} and user {b} live on different ones);",
        "XAPROXY SHOW TRANSACTIONS inside it shows its branch on each shard:",
        *(f"  {line}" for line in cross_shard_transaction(config)),
    ]
    return "\n".join(lines)


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
        print(banner(raw_config, listen_port))
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
