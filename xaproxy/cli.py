"""Command line: serve, check-config, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .config import Config


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from .config import ConfigError, load_config
    from .server import run_server

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration:\n{exc}", file=sys.stderr)
        return 1

    if config.workers > 1:
        from .workers import serve_workers

        return serve_workers(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_server(config, stop=stop)

    try:
        uvloop.run(main())
    except OSError as exc:
        print(f"xaproxy: cannot serve: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"xaproxy: cannot serve with these shards:\n{exc}", file=sys.stderr)
        return 1
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from .config import check_config

    problems = check_config(args.config)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    if args.connect:
        return _check_shard_accounts(args)
    print(f"{args.config}: OK")
    return 0


def _check_shard_accounts(args: argparse.Namespace) -> int:
    """Connects to every shard and reviews the proxy's account there (least privilege)."""
    import uvloop

    from .config import load_config
    from .shards.grants import check_accounts

    config = load_config(args.config)
    findings = uvloop.run(check_accounts(config))
    for finding in findings:
        print(finding)
    keys = uvloop.run(_hash_key_problems(config))
    for problem in keys:
        print(problem)
    if any(f.kind != "excess" for f in findings) or keys:
        return 1
    print(f"{args.config}: OK" + (" (with warnings)" if findings else ""))
    return 0


async def _hash_key_problems(config: Config) -> list[str]:
    """Hash tables whose string key has a collation the proxy cannot weigh, read from the shards."""
    from .metadata.reader import hash_key_problems, read_catalog
    from .shards.pool import Pools

    pools = Pools(config)
    try:
        return hash_key_problems(config, await read_catalog(config, pools))
    finally:
        pools.close()


def _recover(args: argparse.Namespace) -> int:
    """Resolves every in-doubt branch of ours now, whatever its age."""
    import uvloop

    from .config import ConfigError, load_config
    from .recovery.resolver import Resolver
    from .shards.pool import Pools

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration:\n{exc}", file=sys.stderr)
        return 1

    async def main() -> int:
        pools = Pools(config)
        try:
            resolver = Resolver(config, pools, None)
            results = await resolver.resolve(own_now=True, any_age=True, dry_run=args.dry_run)
        finally:
            pools.close()
        for r in results:
            state = "planned" if args.dry_run else ("done" if r.done else "not done")
            print(f"{r.shard}\t{r.gtrid}\t{r.action}\t{state}")
        if not resolver.scan_complete:
            print("warning: some shards could not be reached; run again when they are back")
            return 2
        return 0

    return uvloop.run(main())


def _demo(args: argparse.Namespace) -> int:
    # The demo is development tooling (xaproxy.devkit): imported only for this command.
    try:
        from .devkit.demo import run_demo
    except ImportError as exc:
        print(
            f"xaproxy demo needs the development tools ({exc}); "
            "install them with: pip install 'xaproxy[dev]'",
            file=sys.stderr,
        )
        return 1

    return run_demo(args.workdir, args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xaproxy", description="MySQL sharding proxy with XA")
    parser.add_argument("--version", action="version", version=f"xaproxy {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy in the foreground")
    serve.add_argument("-c", "--config", required=True, help="YAML shard map")
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("-c", "--config", required=True)
    check.add_argument(
        "--connect",
        action="store_true",
        help="also connect to every shard and check the account's privileges",
    )
    check.set_defaults(run=_check_config)
    recover = commands.add_parser("recover", help="resolve in-doubt XA branches now")
    recover.add_argument("-c", "--config", required=True)
    recover.add_argument("--dry-run", action="store_true", help="only print what would be done")
    recover.set_defaults(run=_recover)
    demo = commands.add_parser("demo", help="start two local shards and serve a demo schema")
    demo.add_argument("--workdir", default=None, help="where the shards keep their data")
    demo.add_argument("--port", type=int, default=3307, help="proxy listen port")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.run(args)
