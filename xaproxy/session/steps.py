"""Statements the proxy runs as steps of one client statement, their answers held.

INSERT ... SELECT and UPDATE/DELETE ... ORDER BY ... LIMIT across shards are each a
read followed by writes. Each step is planned and run exactly as a client's statement
would be (connection_state.run_routed), with the packets it would send the client
held here instead (`run_held`), bounded by HELD_LIMIT. `as_one_statement` makes the
steps one statement to the client: in autocommit a transaction of their own, inside a
transaction the proxy's savepoint, so a failure undoes all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from .. import errors
from ..protocol import wire
from ..transactions import statements as tsql
from .state import SessionState

# Runs a statement text as the client's (connection_state.run_routed), result queued;
# the flag: more results follow (MORE_RESULTS_EXISTS).
Runner = Callable[[SessionState, str, bool], Awaitable[None]]

# Bytes of packets one step's answer may hold (the rows read between reading and writing).
HELD_LIMIT = 4 << 20

# Bytes of values per statement the proxy writes: planning one (sqlglot's parse of its
# literals) holds the event loop for tens of milliseconds at most.
BATCH_BYTES = 32 << 10

# The proxy's savepoint around the steps of one statement inside a transaction (a
# client may not use the name: transaction_control.savepoint).
SAVEPOINT = "xaproxy_statement_steps"


class HeldResult:
    """Stands in for the client's packet stream while a step runs: keeps its packets (up
    to HELD_LIMIT bytes of them; past it only counts), so the executor's relay and merge
    run exactly as they would for the client."""

    __slots__ = ("over", "packets", "seq", "size")
    session_track = False  # what the step reports of session state is not the client's

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.packets: list[bytes] = []
        self.size = 0
        self.over = False

    def write(self, payload: bytes) -> None:
        self.size += len(payload)
        if self.size > HELD_LIMIT:
            self.over = True
            self.packets.clear()
        elif not self.over:
            self.packets.append(payload)

    def write_column(self, coldef: bytes) -> None:
        self.write(coldef)  # kept as the shard sent it: the proxy reads it, not a client

    def write_wire(self, data: bytes, next_seq: int) -> None:
        pos = 0
        while pos + 4 <= len(data):
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            self.write(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
        self.seq = next_seq

    def write_error(self, error: errors.ProxyError) -> None:
        self.write(wire.err_packet(error.code, error.sqlstate, error.message))

    @property
    def pending(self) -> int:
        return 0

    async def flush(self) -> None:
        return None


async def run_held(s: SessionState, sql: str, runner: Runner) -> HeldResult:
    """Runs `sql` as a client's statement with its answer held instead of sent."""
    held = HeldResult(s.out.seq)
    client = s.out
    s.out = held  # type: ignore[assignment]
    try:
        await runner(s, sql, False)
    finally:
        s.out = client
    return held


async def read_rows(
    s: SessionState, sql: str, runner: Runner, what: str, escalate: bool = False
) -> tuple[list[bytes], list[list[bytes | None]]]:
    """The column definitions and text rows a SELECT step reads, within HELD_LIMIT.
    `escalate`: a warning under a strict sql_mode refuses the statement
    (refuse_strict_warnings), as for an INSERT ... SELECT without IGNORE."""
    held = await run_held(s, sql, runner)
    if held.over:
        raise errors.not_supported(
            f"{what} that reads more than {HELD_LIMIT >> 20} MiB of rows over sharded or "
            "broadcast tables (the proxy holds them between reading and writing)",
            "work in batches: narrow the statement by a key range or LIMIT",
        )
    result = result_set(held, s.deprecate_eof)
    if escalate:
        await refuse_strict_warnings(s, list(s.warnings), runner, what)
    return result


def result_set(
    held: HeldResult, deprecate_eof: bool
) -> tuple[list[bytes], list[list[bytes | None]]]:
    """The column definitions and text rows of a held result (its error raised)."""
    packets = held.packets
    if packets and wire.is_err(packets[-1]):
        raise wire.parse_err(packets[-1])
    if not packets or packets[0][:1] == b"\x00":
        return [], []  # an OK: no result set
    count, _ = wire.read_lenenc_int(packets[0], 0)
    coldefs = packets[1 : 1 + (count or 0)]
    rows: list[list[bytes | None]] = []
    for payload in packets[1 + len(coldefs) + (0 if deprecate_eof else 1) :]:
        if wire.rows_end(payload, deprecate_eof) is not None:
            break
        values: list[bytes | None] = []
        pos = 0
        for _ in coldefs:
            value, pos = wire.read_lenenc_bytes(payload, pos)
            values.append(value)
        rows.append(values)
    return coldefs, rows


def written(held: HeldResult) -> wire.OkInfo:
    """The OK of a held write (its error raised)."""
    packet = held.packets[-1] if held.packets else b"\xff"
    if wire.is_err(packet):
        raise wire.parse_err(packet)
    return wire.parse_ok(packet)


async def refuse_strict_warnings(
    s: SessionState, warnings: list[tuple[str, int, str]], runner: Runner, what: str
) -> None:
    """Under a strict sql_mode MariaDB fails an INSERT ... SELECT at a warning of its
    SELECT, but whether a `WHERE k = '5abc'` warns before or during the statement (and so
    fails it or not) is its plan's choice. A read step that warned under a strict
    sql_mode is therefore refused: nothing has been written."""
    first = next((w for w in warnings if w[0] == "Warning"), None)
    if first is None:
        return
    held = await run_held(s, "SELECT @@session.sql_mode", runner)
    _, rows = result_set(held, s.deprecate_eof)
    mode = (rows[0][0] or b"").upper() if rows else b""
    if b"STRICT_TRANS_TABLES" in mode or b"STRICT_ALL_TABLES" in mode:
        s.warnings = warnings
        raise errors.not_supported(
            f"{what} whose SELECT warns under a strict sql_mode ({first[1]}: {first[2]}): "
            "MariaDB fails or completes it as its plan decides",
            "compare columns with values of their own type, or write INSERT IGNORE",
        )


def batches(items: list[bytes]) -> list[list[bytes]]:
    """`items` (value texts) in runs of about BATCH_BYTES, each at least one item."""
    runs: list[list[bytes]] = [[]]
    size = 0
    for item in items:
        if runs[-1] and size + len(item) > BATCH_BYTES:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += len(item) + 2
    return runs


@contextlib.asynccontextmanager
async def as_one_statement(s: SessionState, needed: bool = True):
    """Steps inside are one statement to the client: in autocommit an implicit transaction
    (a failure rolls it back whole), inside a transaction under the proxy's savepoint (a
    failure undoes the steps, the transaction goes on). Yields a list the commit's
    warnings are appended to. `needed` False: one step, atomic by itself."""
    commit_warnings: list[str] = []
    if not needed:
        yield commit_warnings
        return
    own = s.txn is None and s.autocommit
    if own:
        s.shards.start(implicit=True, begin_sql=tsql.START)
    else:
        await s.shards.savepoint("SAVEPOINT", SAVEPOINT)
    try:
        yield commit_warnings
    except BaseException:
        with contextlib.suppress(errors.ProxyError):
            if own:
                await s.shards.end(commit=False, reason="statement_failed")
            else:
                await s.shards.savepoint("ROLLBACK", SAVEPOINT)
                await s.shards.savepoint("RELEASE", SAVEPOINT)
        raise
    if own:
        commit_warnings.extend(await s.shards.end(commit=True))
    else:
        await s.shards.savepoint("RELEASE", SAVEPOINT)
