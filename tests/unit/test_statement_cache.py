"""The per-connection cache of shard prepared statements stays bounded, LRU first out."""

from __future__ import annotations

from xaproxy.shards.statements import CACHE_LIMIT, ShardStatement, StatementCache


def key(n: int) -> tuple[str | None, tuple[str, ...], str]:
    return ("db", (), f"SELECT {n}")


def test_the_least_recently_used_statement_is_evicted_for_closing() -> None:
    cache = StatementCache()
    for n in range(CACHE_LIMIT):
        assert cache.add(key(n), ShardStatement(n, 0)) is None
    assert cache.get(key(0)) is not None  # used again: now the most recent
    evicted = cache.add(key(CACHE_LIMIT), ShardStatement(CACHE_LIMIT, 0))
    assert evicted is not None and evicted.id == 1
    assert len(cache) == CACHE_LIMIT
    assert cache.get(key(1)) is None


def test_the_same_text_in_another_database_or_settings_is_another_statement() -> None:
    cache = StatementCache()
    cache.add(("a", (), "SELECT 1"), ShardStatement(1, 0))
    assert cache.get(("b", (), "SELECT 1")) is None
    assert cache.get(("a", ("SET sql_mode = 'ANSI_QUOTES'",), "SELECT 1")) is None


def test_drain_returns_every_statement_and_empties_the_cache() -> None:
    cache = StatementCache()
    for n in range(3):
        cache.add(key(n), ShardStatement(n, 0))
    assert sorted(e.id for e in cache.drain()) == [0, 1, 2]
    assert len(cache) == 0
