"""What the executor needs from the layers above it, as interfaces.

The executor runs plans; it does not know sessions or transactions. The
transaction layer implements `Cursor` (transactions/access.py) and the session
hands it over together with its state (`Client`).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..protocol import wire
from ..protocol.stream import PacketStream
from ..shards.backend import Backend


class Client(Protocol):
    """The session state a statement's result updates (session/state.py)."""

    out: PacketStream
    deprecate_eof: bool
    autocommit: bool
    last_insert_id: int
    found_rows_count: int
    locked_shards: list[str]  # LOCK TABLES held there: no transaction may start
    warnings: list[tuple[str, int, str]]
    no_backslash_escapes: bool
    txn: Any  # the open transaction, or None
    merge_memory_limit: int  # bytes a fan-out merge may hold (0: unlimited)

    def status(self) -> int: ...

    def note_error(self, exc: Any) -> None: ...

    def note_result(self, affected: int | None = None, rows: int | None = None) -> None: ...


class Cursor(Protocol):
    """Shard access inside the session's transaction."""

    async def connection(
        self, shard: str, route: Any, holding: bool = False, *, defer_join: bool = False
    ) -> tuple[Backend, bool, list[str] | None]: ...

    async def autocommit_connection(self, shard: str, holding: bool) -> Backend: ...

    async def open_branch(
        self, backend: Backend, shard: str, opening: list[str], sql: str | None
    ) -> bool: ...

    def release(self, backend: Backend) -> None: ...

    def mark_wrote(self, shard: str) -> None: ...

    def lock_wait_watch(self, backend: Backend) -> Any: ...

    def start(self, implicit: bool) -> Any: ...

    async def end(self, commit: bool, reason: str = "client") -> list[str]: ...

    async def check_timeout(self) -> None: ...

    async def after_error(self, exc: Any, backend: Backend | None = None) -> None: ...

    async def guard_statement(self, backends: list[tuple[str, Backend]], writes: bool) -> Any: ...

    async def statement_failed(self, guard: Any, exc: Any, backends: list[Backend]) -> None: ...

    async def after_shard_loss(self, lost: Backend) -> None: ...

    def at_mode(self) -> bool: ...

    def at_may_write(self, sql: str) -> bool: ...

    async def at_write(self, shard: str, backend: Backend, sql: str) -> wire.OkInfo: ...

    async def at_locking_read(self, backend: Backend, sql: str) -> bool: ...

    async def at_locking_reads(self, backends: list[tuple[str, Backend]], sql: str) -> None: ...

    def at_autocommit(self, sql: str, route: Any) -> bool: ...

    async def at_scatter_write(
        self, backends: list[tuple[str, Backend]], route: Any, sql: str
    ) -> list[wire.OkInfo]: ...
