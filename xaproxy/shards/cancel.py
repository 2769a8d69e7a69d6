"""KILL QUERY of a proxy session: the statements it runs on shards are interrupted there.

A session waits on its shard connections; each of them is a thread on its
shard, which a second connection can interrupt with `KILL QUERY <thread id>`.
The interrupted statement then fails on the shard with 1317 ("Query execution
was interrupted"), and that error reaches the session's client as on MariaDB.
"""

from __future__ import annotations

import asyncio
import logging

from .. import errors
from ..config import ShardConfig
from .backend import Backend, running_for

log = logging.getLogger(__name__)


async def cancel_session_queries(session_id: int, shards: dict[str, ShardConfig]) -> int:
    """Interrupts what session `session_id` runs on every shard now; how many were asked."""
    running = running_for(session_id)
    results = await asyncio.gather(*(_cancel(b, shards[b.shard]) for b in running))
    return sum(results)


async def _cancel(backend: Backend, shard: ShardConfig) -> bool:
    thread_id = backend.conn.thread_id()
    try:
        killer = await Backend.connect(shard, found_rows=False)
    except errors.ProxyError as exc:
        log.warning("KILL QUERY on shard %s: %s", shard.name, exc.message)
        return False
    try:
        await killer.execute_ok(f"KILL QUERY {int(thread_id)}")
        return True
    except errors.ProxyError as exc:
        log.info("KILL QUERY %s on shard %s: %s", thread_id, shard.name, exc.message)
        return False
    finally:
        killer.close()
