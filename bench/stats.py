"""Latency percentiles from raw samples or from sysbench's histogram."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def percentiles_ms(latencies_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds of latencies given in seconds."""
    values = sorted(latencies_s)
    return {
        f"p{p}": (None if (v := percentile(values, p)) is None else v * 1000) for p in (50, 95, 99)
    }


def histogram_percentiles(buckets: Sequence[tuple[float, int]]) -> dict[str, float | None]:
    """p50/p95/p99 from (value, count) buckets in ascending order.

    This is how sysbench computes its own ``--percentile`` figure from the same
    histogram: the value of the first bucket at which the cumulative count
    reaches the rank.
    """
    total = sum(count for _, count in buckets)
    result: dict[str, float | None] = {}
    for p in (50, 95, 99):
        if total == 0:
            result[f"p{p}"] = None
            continue
        rank = max(1, math.ceil(p / 100 * total))
        seen = 0
        value = buckets[-1][0]
        for bucket_value, count in buckets:
            seen += count
            if seen >= rank:
                value = bucket_value
                break
        result[f"p{p}"] = value
    return result
