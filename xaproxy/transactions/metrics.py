"""Counters operators watch: how transactions end and what recovery did."""

from __future__ import annotations

from prometheus_client import Counter

COMMITS = Counter("xaproxy_commits", "Committed transactions by protocol", ["protocol"])
ROLLBACKS = Counter("xaproxy_rollbacks", "Rolled back transactions by reason", ["reason"])
RECOVERIES = Counter(
    "xaproxy_recovered_branches", "In-doubt branches resolved by recovery", ["outcome"]
)
DEFERRED = Counter(
    "xaproxy_deferred_commits", "Branches left to finish in the background after the decision"
)
PINNED = Counter(
    "xaproxy_pinned_sessions",
    "Sessions pinned to their shard connections (state only that connection holds), by cause",
    ["cause"],
)
