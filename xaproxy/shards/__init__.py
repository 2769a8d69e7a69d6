"""Shard connections and their pools: below execution and transactions alike."""
