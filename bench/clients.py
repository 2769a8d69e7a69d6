"""Shared pieces of the asyncio client workloads (transfers, oversell).

The clients are coroutines on one uvloop event loop in the harness process,
each with its own asyncmy connection: on two cores one process of coroutines
drives 500 connections where 500 PyMySQL threads would spend the CPU on the GIL
and context switches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field
from typing import Any

import asyncmy
from asyncmy.errors import MySQLError

# Deadlock, lock wait timeout, and the proxy's "all pool connections busy".
RETRYABLE = {1213, 1205, 1040}
# The connection is gone: reconnect before the next attempt.
CONNECTION_LOST = {2003, 2006, 2013, 2014, 2055, 1053, 1927}


@dataclass
class RunStats:
    done: int = 0
    failed: int = 0
    retries: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    messages: dict[Any, str] = field(default_factory=dict)  # first message per error code

    def error(self, exc: BaseException) -> int:
        code = error_code(exc)
        self.errors[code] += 1
        if code not in self.messages:
            text = exc.args[1] if len(exc.args) > 1 else (exc.args[0] if exc.args else repr(exc))
            self.messages[code] = str(text)[:300]
        return code

    def first_messages(self) -> str:
        return "; ".join(f"ERROR {code}: {msg}" for code, msg in self.messages.items())

    def error_summary(self) -> str:
        return ", ".join(f"{code}x{n}" for code, n in self.errors.most_common()) or "none"


class WrongRowCount(Exception):
    """An UPDATE that should change exactly one row did not (reported as code -2)."""


def error_code(exc: BaseException) -> int:
    if isinstance(exc, WrongRowCount):
        return -2
    if isinstance(exc, MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    if isinstance(exc, (ConnectionError, OSError, asyncio.IncompleteReadError)):
        return 2013
    return -1


async def connect(
    host: str, port: int, user: str, password: str, db: str | None, *, attempts: int = 5
) -> Any:
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            return await asyncmy.connect(
                host=host,
                port=port,
                user=user,
                password=password,
                db=db,
                autocommit=True,
                connect_timeout=30,
            )
        except (MySQLError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.2 * (attempt + 1))
    assert last is not None
    raise last


async def connect_many(count: int, factory: Any, *, parallel: int = 32) -> list[Any]:
    """``count`` results of ``await factory(i)``, at most ``parallel`` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> Any:
        async with gate:
            return await factory(i)

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await close_all([r for r in results if not isinstance(r, BaseException)])
        raise errors[0]
    return list(results)


async def close_all(items: list[Any]) -> None:
    for item in items:
        conns = item if isinstance(item, (list, tuple)) else [item]
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
    await asyncio.sleep(0)
