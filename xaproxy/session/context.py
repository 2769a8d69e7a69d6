"""What every session of one proxy process shares."""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..analysis import analyze
from ..analysis.parse import Parsed, parse
from ..config import Config
from ..metadata.model import Catalog
from ..metadata.reader import read_catalog
from ..routing.plan import Plan
from ..routing.planner import Planner
from ..shards.pool import Pools
from ..transactions.coordinator import Coordinator
from .login_guard import LoginGuard

if TYPE_CHECKING:
    from ..recovery.resolver import Resolver
    from .state import SessionState

log = logging.getLogger(__name__)


class ParseCache:
    """Parsed statements by text, so repeated statements skip sqlglot.

    `template()` looks statements up by their literal-normalized text, so
    `WHERE id = 1` and `WHERE id = 2` share one parse.
    """

    def __init__(self, size: int = 4096) -> None:
        self._entries: OrderedDict[str, Parsed] = OrderedDict()
        self._size = size

    def get(self, sql: str) -> Parsed:
        entry = self._entries.get(sql)
        if entry is not None:
            self._entries.move_to_end(sql)
            return entry
        entry = parse(sql)
        self._entries[sql] = entry
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry

    def template(self, sql: str) -> tuple[Parsed, list[object] | None]:
        """The parsed template of `sql` and its literal values (None: parsed as is)."""
        parsed, values, _ = self.template_with_key(sql)
        return parsed, values

    def template_with_key(self, sql: str) -> tuple[Parsed, list[object] | None, str | None]:
        """Also the cache key of the template; None for huge statements, which are not cached."""
        statement = analyze(sql)
        if statement.skeleton is not None:
            # Parsing megabytes of literals costs seconds: route on a skeleton whose
            # long string literals are emptied; the shard gets `sql`.
            return parse(statement.skeleton), None, None
        if statement.template is None:
            return self.get(sql), None, sql
        parsed = self.get(statement.template)
        if parsed.ast is None:  # a literal where a placeholder is not allowed: parse as is
            return self.get(sql), None, sql
        return parsed, list(statement.values or ()), statement.template


@dataclass
class ProxyContext:
    config: Config
    pools: Pools
    planner: Planner
    server_version: str
    coordinator: Coordinator
    max_allowed_packet: int = 64 * 1024 * 1024
    tls: ssl.SSLContext | None = None  # offered to clients when the config has `tls:`
    # CLIENT_SESSION_TRACK offered (not None) and whether a new session tracks its schema
    session_track_schema: bool | None = None
    login_guard: LoginGuard = field(default_factory=LoginGuard)
    resolver: Resolver | None = None
    parse_cache: ParseCache = field(default_factory=ParseCache)
    sessions: dict[int, SessionState] = field(default_factory=dict)
    shutting_down: bool = False
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    _static_routes: OrderedDict = field(default_factory=OrderedDict)
    _metadata_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload_metadata(self) -> Catalog:
        """Reads the configured tables' definitions from the shards; the planner uses them next.

        Reloads run one at a time, so the snapshot a statement sees after its DDL
        was read after that DDL.
        """
        async with self._metadata_lock:
            catalog = await read_catalog(self.config, self.pools)
            self.planner.metadata = catalog
            self._static_routes.clear()
            return catalog

    def next_connection_id(self) -> int:
        return next(self._ids)

    def set_connection_ids(self, start: int, step: int) -> None:
        """Worker processes number their sessions apart: start, start+step, ..."""
        self._ids = itertools.count(start, step)

    def route(self, sql: str, database: str | None) -> Plan:
        """Plans a statement; routes that do not depend on literal values are cached."""
        parsed, params, text = self.parse_cache.template_with_key(sql)
        if text is None:
            return self.planner.route(parsed, sql, database, params, remember=False)
        key = (text, database)
        cached = self._static_routes.get(key)
        if cached is not None:
            return cached
        route = self.planner.route(parsed, sql, database, params)
        if route.static:
            self._static_routes[key] = route
            if len(self._static_routes) > 4096:
                self._static_routes.popitem(last=False)
        return route
