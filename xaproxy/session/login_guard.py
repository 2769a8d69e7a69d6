"""Failed logins per source address: past a few, each failure waits longer for its answer.

A client guessing passwords gets its answers ever more slowly (1 s, 2 s, 4 s, then
5 s each, after three free failures), so guessing through the proxy is slow;
a successful login from the address forgets its failures, and failures older
than ten minutes are forgotten. Bounded: at most `capacity` addresses are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict

FREE_FAILURES = 3
MAX_DELAY_S = 5.0
FORGET_AFTER_S = 600.0


class LoginGuard:
    def __init__(self, capacity: int = 10000) -> None:
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._capacity = capacity

    def failed(self, host: str, now: float | None = None) -> float:
        """Records a failed login from `host`; returns how long its answer should wait."""
        now = time.monotonic() if now is None else now
        count, last = self._failures.pop(host, (0, now))
        if now - last > FORGET_AFTER_S:
            count = 0
        count += 1
        self._failures[host] = (count, now)
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)
        if count <= FREE_FAILURES:
            return 0.0
        return min(MAX_DELAY_S, 2.0 ** (count - FREE_FAILURES - 1))

    def succeeded(self, host: str) -> None:
        self._failures.pop(host, None)
