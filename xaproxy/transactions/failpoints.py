"""Named points in the commit protocol where tests make the proxy (or a shard) die.

Enabled only through the XAPROXY_FAILPOINTS environment variable, e.g.
`XAPROXY_FAILPOINTS=after_decision` (SIGKILL this proxy there) or
`XAPROXY_FAILPOINTS=after_prepare_all=kill_pid:1234` (SIGKILL another process,
such as a shard's mariadbd, and go on). Unset, every check is one dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)

POINTS = (
    "after_prepare_some",
    "after_prepare_all",
    "after_decision",
    "after_commit_some",
    "after_commit_all",
    "before_prepare",
    "at_after_local_commit_some",
    "at_after_local_commit_all",
    "at_after_decision",
    "at_after_release_some",
)


def _parse(spec: str) -> dict[str, str]:
    points: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        points[name] = action or "kill"
    return points


_active = _parse(os.environ.get("XAPROXY_FAILPOINTS", ""))


def enabled() -> bool:
    return bool(_active)


async def hit(name: str) -> None:
    action = _active.get(name)
    if action is None:
        return
    log.warning("failpoint %s: %s", name, action)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("kill_pid:"):
        pid_ref = action.split(":", 1)[1]
        if pid_ref.isdigit():
            pid = int(pid_ref)
        else:
            with open(pid_ref) as pid_file:
                pid = int(pid_file.read().strip())
        os.kill(pid, signal.SIGKILL)
        _active.pop(name, None)  # once: the shard stays dead until the test restarts it
    elif action.startswith("sleep:"):
        await asyncio.sleep(float(action.split(":", 1)[1]))
