"""The listening socket, the sessions it spawns, and an orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from . import errors
from .authz.rules import MISREAD_MODES, misread_mode
from .config import Config, ConfigError
from .protocol.stream import PacketStream
from .recovery.resolver import Resolver
from .routing.planner import Planner
from .session.context import ProxyContext
from .session.session import Session
from .shards.backend import expire_stalled_reads
from .shards.grants import check_accounts
from .shards.pool import Pools
from .shards.survey import ShardSurvey, survey
from .transactions.coordinator import Coordinator

log = logging.getLogger(__name__)

_FALLBACK_VERSION = "10.11.0-MariaDB-xaproxy"


def _backend_facts(surveys: list[ShardSurvey]) -> tuple[str, int]:
    """The version string and max_allowed_packet of the first reachable shard."""
    for found in surveys:
        if found.unreachable is None:
            return found.version, found.max_allowed_packet
        log.warning("shard %s not reachable at start: %s", found.shard, found.unreachable)
    return _FALLBACK_VERSION, 16 * 1024 * 1024


def _session_tracking(surveys: list[ShardSurvey], version: str) -> bool | None:
    """Whether a new session tracks its schema, or None when the proxy does not offer
    CLIENT_SESSION_TRACK: its shards are not MariaDB (whose tracking the proxy relays
    and, for what it answers itself, reproduces) or track more than the schema and
    system variables for every session."""
    reached = [found for found in surveys if found.unreachable is None]
    if "MariaDB" not in version or not reached:
        return None
    if not all(found.tracks_only_schema_and_variables for found in reached):
        return None
    return all(found.track_schema for found in reached)


# connections beyond the pools' own: the coordinator's and recovery's work, a DBA's login
_OTHER_CONNECTIONS = 4


async def check_shard_connection_limits(
    config: Config, surveys: list[ShardSurvey] | None = None
) -> None:
    """Refuses to start when the pools could take a shard's last connection slots.

    Each worker's pool may open pool_size connections and as many overflow ones;
    together they must leave room below the shard's max_connections, so the DBA
    can still log in when the proxy is at its busiest. A shard unreachable now is
    checked when it is reachable at the next start.
    """
    if surveys is None:
        surveys = await survey(config)
    problems = []
    for found in surveys:
        shard = config.shards[found.shard]
        limit = found.max_connections
        if limit is None:
            continue
        # each worker also keeps one connection per shard for AT lock checks (peek.py)
        needed = (2 * shard.pool_size + 1) * config.workers + _OTHER_CONNECTIONS
        if needed >= limit:
            problems.append(
                f"shards[{shard.name}]: (pool_size {shard.pool_size} x 2 (overflow) + 1 (AT "
                f"lock checks)) x {config.workers} worker(s) + {_OTHER_CONNECTIONS} = {needed} "
                "connections "
                f"would reach the shard's max_connections ({limit}); lower pool_size or "
                "raise max_connections on the shard"
            )
    if problems:
        raise ConfigError(problems)


def check_shard_sql_modes(surveys: list[ShardSurvey]) -> None:
    """Refuses to start when a shard's connections start in a sql_mode that parses
    statements differently from how the proxy reads them (ANSI_QUOTES, PIPES_AS_CONCAT...):
    sessions would start in it, and the proxy would route and check other statements
    than the shard runs."""
    problems = []
    for found in surveys:
        mode = misread_mode(found.sql_mode) if found.unreachable is None else None
        if mode is not None:
            problems.append(
                f"shards[{found.shard}]: new connections start with sql_mode {mode} "
                f"({MISREAD_MODES[mode]}); remove it from the shard's global sql_mode"
            )
    if problems:
        raise ConfigError(problems)


class ProxyServer:
    def __init__(
        self,
        config: Config,
        *,
        reuse_port: bool = False,
        recover_at_start: bool = True,
        connection_ids: tuple[int, int] = (1, 1),
    ) -> None:
        self.config = config
        self.reuse_port = reuse_port
        self.recover_at_start = recover_at_start
        self.connection_ids = connection_ids
        self.ctx: ProxyContext | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: dict[asyncio.Task, Session] = {}
        self._background: list[asyncio.Task] = []
        self.resolver: Resolver | None = None

    async def start(self) -> None:
        config = self.config
        surveys = await survey(config)  # one visit per shard for every start-up check
        await check_shard_connection_limits(config, surveys)
        check_shard_sql_modes(surveys)
        for finding in await check_accounts(config, surveys):
            log.warning("%s", finding)
        version, max_packet = _backend_facts(surveys)
        pools = Pools(config)
        coordinator = Coordinator(config, pools)
        self.ctx = ProxyContext(
            config=config,
            pools=pools,
            planner=Planner(config),
            server_version=config.server_version or version,
            coordinator=coordinator,
            max_allowed_packet=max_packet,
            tls=_client_tls_context(config),
            session_track_schema=_session_tracking(surveys, version),
        )
        if config.transactions.abandon_age_s <= config.transactions.timeout_s:
            log.warning(
                "transactions.abandon_age_s (%gs) is not above timeout_s (%gs): another proxy may "
                "abort this proxy's slow but live transactions (atomicity holds; clients see errors)",
                config.transactions.abandon_age_s,
                config.transactions.timeout_s,
            )
        self.resolver = Resolver(config, pools, coordinator)
        self.ctx.resolver = self.resolver
        await self.resolver.bootstrap()
        if self.recover_at_start:
            # Branches this proxy_id left in doubt when it last died are finished before serving.
            resolved = await self.resolver.resolve(own_now=True)
            done = [r for r in resolved if r.done]
            if done:
                log.warning("startup recovery resolved %d in-doubt branches", len(done))
        # Table definitions for the planner (INSERT without a column list, REPLACE ...).
        await self.ctx.reload_metadata()
        self._background = [
            asyncio.ensure_future(self.resolver.run_forever()),
            asyncio.ensure_future(self._expire_transactions()),
            asyncio.ensure_future(self._expire_stalled_shard_reads()),
            asyncio.ensure_future(self._expire_idle_sessions()),
        ]
        if config.metrics_listen is not None:
            from prometheus_client import start_http_server

            start_http_server(config.metrics_listen[1], config.metrics_listen[0])
        self.ctx.set_connection_ids(*self.connection_ids)
        self._server = await asyncio.start_server(
            self._accept,
            config.listen_host,
            config.listen_port,
            backlog=4096,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        log.info(
            "xaproxy %s listening on %s:%d (%d shards)",
            config.proxy_id,
            config.listen_host,
            config.listen_port,
            len(config.shards),
        )

    async def _expire_transactions(self) -> None:
        """Rolls back idle client transactions older than transactions.timeout_s."""
        interval = max(0.5, min(5.0, self.config.transactions.timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            for session in list(self._tasks.values()):
                try:
                    if await session.expire_transaction():
                        log.warning(
                            "session %d: transaction timed out and was rolled back", session.id
                        )
                except Exception:
                    log.exception("expiring the transaction of session %d", session.id)

    async def _expire_idle_sessions(self) -> None:
        """Closes sessions idle past their wait_timeout (config wait_timeout_s, or SET)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for session in list(self._tasks.values()):
                if session.expire_idle(now):
                    log.info("session %d: idle past wait_timeout, closed", session.id)

    async def _expire_stalled_shard_reads(self) -> None:
        """Closes shard connections that sent nothing within their shard's read_timeout_s."""
        timeouts = [s.read_timeout_s for s in self.config.shards.values() if s.read_timeout_s]
        if not timeouts:
            return
        interval = max(0.2, min(1.0, min(timeouts) / 4))
        while True:
            await asyncio.sleep(interval)
            for backend in expire_stalled_reads():
                log.warning(
                    "shard %s sent nothing for %gs (read_timeout_s): connection closed",
                    backend.shard,
                    backend.read_timeout_s,
                )

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ctx = self.ctx
        assert ctx is not None
        logging_in = len(self._tasks) - len(ctx.sessions)
        if (
            ctx.shutting_down
            or len(ctx.sessions) >= self.config.max_connections
            or logging_in >= self.config.max_connections
        ):
            stream = PacketStream(reader, writer, 1024)
            stream.write_error(errors.ProxyError(1040, "08004", "Too many connections"))
            with contextlib.suppress(Exception):
                await stream.flush()
            stream.close()
            return
        session = Session(ctx, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks[task] = session
        try:
            await session.run()
        finally:
            self._tasks.pop(task, None)

    async def shutdown(self) -> None:
        """Stop accepting, let running statements finish, roll back the rest, close shards."""
        ctx = self.ctx
        if self._server is not None:
            self._server.close()
        if ctx is None:
            return
        ctx.shutting_down = True
        for task, session in list(self._tasks.items()):
            if not session.busy:
                task.cancel()
        busy = [t for t, s in self._tasks.items() if s.busy]
        if busy:
            log.info(
                "waiting up to %.0fs for %d running statements",
                self.config.shutdown_timeout_s,
                len(busy),
            )
            _, pending = await asyncio.wait(busy, timeout=self.config.shutdown_timeout_s)
            for task in pending:
                task.cancel()
        remaining = list(self._tasks)
        for task in remaining:
            task.cancel()
        if remaining:
            await asyncio.wait(remaining, timeout=5)
        for task in self._background:
            task.cancel()
        await ctx.coordinator.close()
        ctx.pools.close()
        log.info("xaproxy stopped")


async def run_server(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    **options: object,
) -> None:
    """Serves until `stop` is set (or forever), then shuts down in order.

    `options` go to ProxyServer (reuse_port, recover_at_start, connection_ids: used
    by the worker processes of xaproxy.workers).
    """
    server = ProxyServer(config, **options)
    await server.start()
    if ready is not None:
        ready.set()
    try:
        if stop is None:
            stop = asyncio.Event()
        await stop.wait()
    finally:
        await server.shutdown()


def _client_tls_context(config: Config) -> ssl.SSLContext | None:
    """The server-side TLS context for clients, TLS 1.2 at least; None without `tls:`."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context
