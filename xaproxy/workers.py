"""Several proxy processes on one listen port, to use more than one core.

The kernel spreads new client connections over the workers (SO_REUSEPORT). Each
worker is a complete proxy with its own shard pools and its own XA identity,
`<proxy_id>-w<n>`, so no worker ever mistakes another's in-flight transaction for
an abandoned one. Before the workers start, the parent finishes every in-doubt
transaction of `<proxy_id>` and all of its workers (whatever their number was in
the previous run). A worker that dies is started again; it first recovers its own
transactions. SIGTERM/SIGINT go to every worker, which shut down cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator

from .config import Config

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def worker_config(config: Config, index: int) -> Config:
    return dataclasses.replace(config, proxy_id=f"{config.proxy_id}-w{index}")


async def _recover_family(config: Config) -> None:
    from .recovery.resolver import Resolver
    from .shards.pool import Pools

    pools = Pools(config)
    try:
        resolver = Resolver(config, pools, None)
        await resolver.bootstrap()
        results = await resolver.resolve(own_now=True, family=True)
        done = [r for r in results if r.done]
        if done:
            log.warning("startup recovery resolved %d in-doubt branches", len(done))
    finally:
        pools.close()


def _run_worker(config: Config, index: int, count: int) -> int:
    import uvloop

    from .server import run_server

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_server(
            worker_config(config, index),
            stop=stop,
            reuse_port=True,
            recover_at_start=True,
            connection_ids=(index + 1, count),
        )

    try:
        uvloop.run(main())
    except Exception:
        log.exception("worker %d failed", index)
        return 1
    return 0


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Holds SIGTERM/SIGINT back, so a stop never runs between a fork and the pid's registration."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _spawn(config: Config, index: int, count: int) -> int:
    """Forks a worker; called with the stop signals blocked (the child resets, then unblocks them)."""
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        code = _run_worker(config, index, count)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return pid


def serve_workers(config: Config) -> int:
    """Runs `config.workers` worker processes until SIGTERM/SIGINT; returns the exit code.

    A stopping supervisor never starts a worker again: the stop signals are blocked
    from the `stopping` check until the new pid is registered, so a SIGTERM either
    comes before (no worker is started) or after (the new worker gets it too).
    """
    import uvloop

    from .config import ConfigError
    from .server import check_shard_connection_limits

    try:
        uvloop.run(check_shard_connection_limits(config))
    except ConfigError as exc:
        print(f"xaproxy: cannot serve with these shards:\n{exc}", file=sys.stderr)
        return 1
    uvloop.run(_recover_family(config))
    count = config.workers
    stopping = False
    workers: dict[int, int] = {}

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def start(index: int) -> None:
        with _stop_signals_blocked():
            if not stopping:
                workers[_spawn(config, index, count)] = index

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        start(index)
    log.info(
        "xaproxy %s: %d workers on %s:%d",
        config.proxy_id,
        count,
        config.listen_host,
        config.listen_port,
    )
    failed = False
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = workers.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code != 0
            continue
        log.error("worker %d exited with %d; starting it again", index, code)
        time.sleep(0.5)  # a worker that dies at once is not restarted in a tight loop
        start(index)
    return 1 if failed else 0
