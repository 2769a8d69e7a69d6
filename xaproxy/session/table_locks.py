"""`LOCK TABLES` / `UNLOCK TABLES` naming sharded or broadcast tables.

A logical table lives on several shards, so its lock is taken on each of them: every
shard holding a listed table gets `LOCK TABLES` of the listed tables it holds, on the
connection the session keeps (pinned) until the locks are released, shards in the
config's order (two sessions never wait for each other in opposite orders). Once every
shard's READ lock is held no write can happen anywhere, so what the session reads
(`mariadb-dump` with its default options) is one consistent state. The proxy also
answers MariaDB's 1100 for a table the session did not lock (a shard holding none of
the listed tables would not). A write over several shards while locks are held needs
XA, which MariaDB refuses under table locks: it is refused, as are statements with
autocommit off (a shard's START TRANSACTION would release its locks).
"""

from __future__ import annotations

from sqlglot.tokens import Token, TokenType

from .. import errors
from ..analysis import Kind, Statement
from ..routing.plan import Plan
from .state import SessionState

CAUSE = "LOCK TABLES"
_DATA_KINDS = frozenset({Kind.SELECT, Kind.INSERT, Kind.UPDATE, Kind.DELETE, Kind.REPLACE, Kind.DO})
_ALWAYS_READABLE = frozenset({"information_schema", "performance_schema"})


def _items(statement: Statement) -> list[tuple[str | None, str, str, int, int]]:
    """(database, table, alias or table, start, end) of each `tbl [[AS] alias] type`."""
    tokens: list[Token] = list(statement.tokens)
    at = 2 if len(tokens) > 1 and tokens[1].text.upper() in ("TABLES", "TABLE") else 1
    items: list[list[Token]] = [[]]
    for token in tokens[at:]:
        if token.token_type is TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(token)
    found = []
    for item in items:
        if not item:
            raise errors.parse_error("expected LOCK TABLES <table> READ | WRITE, ...")
        database, table, rest = None, item[0].text, item[1:]
        if len(item) > 2 and item[1].token_type is TokenType.DOT:
            database, table, rest = item[0].text, item[2].text, item[3:]
        alias = table
        words = [t.text.upper() for t in rest]
        if words[:1] == ["AS"] and len(rest) > 1:
            alias, words = rest[1].text, words[2:]
        elif words and words[0] not in ("READ", "WRITE", "LOW_PRIORITY"):
            alias, words = rest[0].text, words[1:]
        found.append((database, table, alias, item[0].start, item[-1].end + 1))
    return found


def _placed(s: SessionState, database: str | None, table: str) -> tuple[str, ...] | None:
    """The shards of a sharded or broadcast table, None for any other table."""
    schema = s.ctx.config.schema(database or s.database or "")
    config = schema.tables.get(table) if schema is not None else None
    if config is None:
        lowered = {name.lower(): c for name, c in (schema.tables.items() if schema else ())}
        config = lowered.get(table.lower())
    if config is None or not (config.sharded or config.broadcast):
        return None
    return tuple(config.shards)


async def lock(s: SessionState, statement: Statement) -> bool:
    """Takes the locks on each shard; False when no listed table is sharded or broadcast
    (the statement then goes to its shard as before)."""
    items = _items(statement)
    places = [_placed(s, database, table) for database, table, _, _, _ in items]
    if all(p is None for p in places):
        return False
    if not s.autocommit:
        raise errors.not_supported(
            "LOCK TABLES of sharded or broadcast tables with autocommit off (a shard's "
            "transaction would release its table locks)",
            "SET autocommit = 1 first",
        )
    if s.txn is not None:
        await s.shards.end(commit=True)  # LOCK TABLES commits, as on MariaDB
    await unlock(s)
    default = s.ctx.planner.default_shard(s.database)
    per_shard: dict[str, list[str]] = {}
    text = statement.effective
    for (_, _, _, start, end), shards in zip(items, places, strict=True):
        for shard in shards or (default,):
            per_shard.setdefault(shard, []).append(text[start:end])
    order = [shard for shard in s.ctx.config.shards if shard in per_shard]
    try:
        for shard in order:
            backend = await s.shards.pinned_connection(shard, CAUSE)
            s.locked_shards.append(shard)
            await backend.execute_ok("LOCK TABLES " + ", ".join(per_shard[shard]))
    except BaseException:
        await unlock(s)
        raise
    s.locked_tables = frozenset(
        name.lower() for _, table, alias, _, _ in items for name in (table, alias)
    )
    return True


async def unlock(s: SessionState) -> bool:
    """UNLOCK TABLES on every shard the session locked; False if it locked none here."""
    if not s.locked_shards:
        return False
    shards, s.locked_shards, s.locked_tables = list(s.locked_shards), [], frozenset()
    failure: errors.ProxyError | None = None
    for shard in shards:
        backend = s.pinned.get(shard)
        if backend is None:
            continue
        try:
            await backend.execute_ok("UNLOCK TABLES")
        except errors.ProxyError as exc:
            backend.usable = False
            failure = failure or exc
    if failure is not None:
        raise failure
    return True


def check(s: SessionState, statement: Statement, route: Plan) -> None:
    """What MariaDB answers while the session holds table locks, where the shards would
    not: 1100 for a table not locked; and the statements the proxy cannot run then."""
    if not s.locked_shards:
        return
    if not s.autocommit:
        raise errors.not_supported(
            "statements with autocommit off while LOCK TABLES of sharded tables is held",
            "UNLOCK TABLES first, or SET autocommit = 1",
        )
    if statement.kind in _DATA_KINDS:
        for database, table in statement.table_refs:
            if database is not None and database.lower() in _ALWAYS_READABLE:
                continue
            if table.lower() not in s.locked_tables:
                raise errors.ProxyError(
                    1100, "HY000", f"Table '{table}' was not locked with LOCK TABLES"
                )
    if len(route.shards) > 1 and route.write:
        raise errors.not_supported(
            "a write over several shards while LOCK TABLES is held (XA, which makes it "
            "atomic, cannot run under table locks)",
            "UNLOCK TABLES first; to reload a dump, make it with --skip-add-locks",
        )


def _keys_target(statement: Statement) -> tuple[str | None, str] | None:
    """(database, table) of `ALTER TABLE t DISABLE KEYS` / `ENABLE KEYS`, else None."""
    words = [w.upper() for w in statement.words]
    tokens = statement.tokens
    if statement.kind is not Kind.DDL or words[:2] != ["ALTER", "TABLE"]:
        return None
    if len(words) == 5 and words[3:] in (["DISABLE", "KEYS"], ["ENABLE", "KEYS"]):
        return None, tokens[2].text
    toggles = words[5:] in (["DISABLE", "KEYS"], ["ENABLE", "KEYS"])
    if len(words) == 7 and tokens[3].token_type is TokenType.DOT and toggles:
        return tokens[2].text, tokens[4].text
    return None


async def toggle_keys(s: SessionState, statement: Statement) -> int | None:
    """`ALTER TABLE t DISABLE|ENABLE KEYS` of a sharded or broadcast table (every dump has
    it): run on each shard holding the table, on the connection holding the session's
    table locks if it has them (another connection would wait for them forever); the
    warnings of one copy (InnoDB: note 1031). None when it is not such a statement."""
    target = _keys_target(statement)
    shards = _placed(s, *target) if target is not None else None
    if shards is None:
        return None
    if s.txn is not None:
        await s.shards.end(commit=True)  # ALTER TABLE commits, as on MariaDB
    warnings: list[tuple[str, int, str]] = []
    for index, shard in enumerate(shards):
        backend, borrowed = await s.shards.connection_outside_writes(shard)
        try:
            ok = await backend.execute_ok(statement.effective)
            if index == 0 and ok.warnings:
                rows = await backend.query_rows("SHOW WARNINGS")
                warnings = [
                    ((r[0] or b"").decode(), int(r[1] or 0), (r[2] or b"").decode()) for r in rows
                ]
        finally:
            if borrowed:
                s.shards.release(backend)
    s.warnings = warnings
    return len(warnings)
