"""INSERT ... SELECT across shards: the rows are read by a SELECT of their own, then inserted.

MariaDB reads a SELECT's rows and inserts them in one statement. When either side spans
shards the proxy does the same in two steps (plan.InsertSelect): the SELECT is planned
and run as a client's SELECT would be (so it may merge several shards), its result held
(at most HELD_LIMIT bytes; past it nothing is written and the statement is refused),
every value written back as a literal of its own type, and the INSERT ... VALUES made of
them planned and run as a client's: split by shard key, ids generated, one transaction
across its shards. The reply is MariaDB's for an INSERT ... SELECT
(`Records: n  Duplicates: d  Warnings: w`).

In a transaction both steps are the transaction's. In autocommit the read is a statement
of its own just before the write, as any read across shards sees each shard at its own
moment.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asyncmy.charset import charset_by_id

from .. import errors
from ..execution.scatter import one_row_duplicates
from ..protocol import wire
from ..protocol.binary import LiteralStyle
from ..protocol.constants import ColumnFlag, FieldType, Status
from ..routing.plan import InsertSelect
from ..transactions import statements as tsql
from .state import SessionState

# Runs a statement text as the client's (connection_state.run_routed), result queued.
Runner = Callable[[SessionState, str], Awaitable[None]]

# Bytes of row packets an INSERT ... SELECT across shards may hold between its two steps.
HELD_LIMIT = 4 << 20

_MORE = int(Status.MORE_RESULTS_EXISTS)
_BINARY_CHARSET = 63

_INTEGERS = frozenset(
    {FieldType.TINY, FieldType.SHORT, FieldType.LONG, FieldType.LONGLONG, FieldType.INT24}
)
_DECIMALS = frozenset({FieldType.DECIMAL, FieldType.NEWDECIMAL})
_STRINGS = frozenset(
    {
        FieldType.VARCHAR,
        FieldType.VAR_STRING,
        FieldType.STRING,
        FieldType.TINY_BLOB,
        FieldType.MEDIUM_BLOB,
        FieldType.LONG_BLOB,
        FieldType.BLOB,
        FieldType.JSON,
    }
)
_TEMPORALS = {
    FieldType.DATE: "DATE",
    FieldType.NEWDATE: "DATE",
    FieldType.DATETIME: "TIMESTAMP",  # MariaDB's TIMESTAMP'...' literal is a DATETIME
    FieldType.TIME: "TIME",
}
_NUMERIC_TARGET = re.compile(
    r"(tinyint|smallint|mediumint|int|bigint|decimal|numeric|float|double|real|bit|bool|year)\b"
)
_STRING_TARGET = re.compile(
    r"(char|varchar|tinytext|text|mediumtext|longtext|enum|set|json|binary|varbinary"
    r"|tinyblob|blob|mediumblob|longblob)\b"
)


class _HeldResult:
    """Stands in for the client's packet stream while the SELECT runs: keeps its packets
    (up to HELD_LIMIT bytes of them; past it only counts), so the executor's relay and
    merge run exactly as they would for the client."""

    __slots__ = ("over", "packets", "seq", "size")

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


def _result_set(
    held: _HeldResult, deprecate_eof: bool
) -> tuple[list[bytes], list[list[bytes | None]]]:
    """The column definitions and text rows of the held SELECT result (its error raised)."""
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


def _refused(what: str, fix: str) -> errors.ProxyError:
    return errors.not_supported(
        f"{what} in INSERT ... SELECT over sharded or broadcast tables", fix
    )


def literal_writer(
    coldef: bytes, name: str, target_type: str, style: LiteralStyle
) -> Callable[[bytes], bytes]:
    """How a value of this result column is written as a literal that MariaDB stores into
    a column of `target_type` exactly as it stores the selected value; refused when the
    proxy cannot say (FLOAT, BIT, TIMESTAMP, ...). A string in the session's character
    set is a plain quoted literal (the planner reads a shard key from it), any other in
    hex with its character set's introducer."""
    ftype, flags, charset = wire.column_type_and_flags(coldef)
    target = target_type.lower()
    numeric_target = _NUMERIC_TARGET.match(target) is not None
    if ftype in _INTEGERS or ftype == FieldType.YEAR:
        if (flags & ColumnFlag.ZEROFILL or ftype == FieldType.YEAR) and not numeric_target:
            raise _refused(
                f"ZEROFILL or YEAR column '{name}' into a column that is not a number",
                "select CAST(column AS CHAR) for its text",
            )
        return _digits
    if ftype in _DECIMALS:
        return _digits
    if ftype == FieldType.DOUBLE:
        return _double
    if ftype == FieldType.FLOAT:
        if target.startswith("float"):
            return _digits
        raise _refused(
            f"FLOAT column '{name}' (its text is shorter than its value)",
            "select CAST(column AS DOUBLE)",
        )
    if ftype == FieldType.NULL:
        return _digits
    temporal = _TEMPORALS.get(ftype)
    if temporal is not None:
        prefix = temporal.encode()
        return lambda value: prefix + b"'" + value + b"'"
    if ftype in _STRINGS:
        if flags & (ColumnFlag.ENUM | ColumnFlag.SET) and _STRING_TARGET.match(target) is None:
            raise _refused(
                f"ENUM or SET column '{name}' into a column that is not a string "
                "(MariaDB stores its index)",
                "select column + 0 for the index, or insert into a string column",
            )
        introducer = b"_binary" if charset == _BINARY_CHARSET else _introducer(charset, name)
        if introducer[1:].decode() == style.charset:
            return style.literal
        return lambda value: introducer + b" X'" + value.hex().encode() + b"'"
    kinds = {FieldType.TIMESTAMP: "TIMESTAMP", FieldType.BIT: "BIT", FieldType.GEOMETRY: "geometry"}
    raise _refused(
        f"{kinds.get(FieldType(ftype), 'this type of')} column '{name}'",
        "select it converted (CAST(column AS DATETIME|UNSIGNED|...)) or insert with VALUES",
    )


def _introducer(collation: int, name: str) -> bytes:
    try:
        charset = charset_by_id(collation).name
    except Exception:
        raise _refused(
            f"column '{name}' of character set {collation}", "select it CONVERTed to utf8mb4"
        ) from None
    return b"_" + (b"utf8mb3" if charset == "utf8" else charset.encode())


def _digits(value: bytes) -> bytes:
    return value


def _double(value: bytes) -> bytes:
    return value if b"e" in value.lower() else value + b"e0"


async def run(s: SessionState, root: InsertSelect, more: bool, runner: Runner) -> None:
    """Reads the SELECT's rows, inserts them as VALUES, answers as MariaDB's INSERT ... SELECT."""
    held = await _run_held(s, root.select, runner)
    if held.over:
        raise errors.not_supported(
            f"INSERT ... SELECT of more than {HELD_LIMIT >> 20} MiB of rows over sharded or "
            "broadcast tables (the proxy holds them between reading and writing)",
            "insert in batches: narrow the SELECT by a key range or LIMIT",
        )
    coldefs, rows = _result_set(held, s.deprecate_eof)
    read_warnings = list(s.warnings)
    await _check_strict(s, read_warnings, runner)
    if root.column_types and len(coldefs) != len(root.column_types):
        raise errors.ProxyError(1136, "21S01", "Column count doesn't match value count at row 1")
    types = root.column_types or ("",) * len(coldefs)
    style = LiteralStyle(not s.no_backslash_escapes, s.client_charset)
    writers = [
        literal_writer(c, wire.column_name(c), t, style)
        for c, t in zip(coldefs, types, strict=True)
    ]
    tuples = [
        b"("
        + b", ".join(b"NULL" if v is None else w(v) for v, w in zip(row, writers, strict=True))
        + b")"
        for row in rows
    ]
    del rows, held
    written = await _write(s, root, _batches(tuples), runner) if tuples else _Written()
    warnings = len(read_warnings) + written.warnings
    s.warnings = read_warnings + (s.warnings if tuples else [])
    info = f"Records: {len(tuples)}  Duplicates: {written.duplicates}  Warnings: {warnings}"
    status = s.status() | (_MORE if more else 0)
    s.out.write(
        wire.ok_packet(
            status,
            written.affected,
            written.insert_id,
            min(warnings, 0xFFFF),
            wire.lenenc_bytes(info.encode()),
        )
    )
    s.note_result(affected=written.affected)


# Bytes of VALUES rows per INSERT the proxy writes: planning one such statement (sqlglot's
# parse of its literals) holds the event loop for tens of milliseconds at most.
BATCH_BYTES = 32 << 10

# The proxy's savepoint around the INSERTs of one INSERT ... SELECT inside a transaction.
_SAVEPOINT = "xaproxy_insert_select"


@dataclass(slots=True)
class _Written:
    affected: int = 0
    duplicates: int = 0
    warnings: int = 0
    insert_id: int = 0


def _batches(tuples: list[bytes]) -> list[list[bytes]]:
    batches: list[list[bytes]] = [[]]
    size = 0
    for item in tuples:
        if batches[-1] and size + len(item) > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += len(item) + 2
    return batches


async def _write(
    s: SessionState, root: InsertSelect, batches: list[list[bytes]], runner: Runner
) -> _Written:
    """The INSERTs of the rows read, batch by batch. Several batches are one statement
    to the client: in autocommit they run in a transaction of their own, in a transaction
    under the proxy's savepoint, so a failure undoes every batch (statement atomicity)."""
    if len(batches) == 1:
        return await _insert_batches(s, root, batches, runner)
    own = s.txn is None and s.autocommit
    if own:  # implicit: the transaction is this statement, a failure rolls it back whole
        s.shards.start(implicit=True, begin_sql=tsql.START)
    else:
        await s.shards.savepoint("SAVEPOINT", _SAVEPOINT)
    try:
        written = await _insert_batches(s, root, batches, runner)
    except BaseException:
        with contextlib.suppress(errors.ProxyError):
            if own:
                await s.shards.end(commit=False, reason="statement_failed")
            else:
                await s.shards.savepoint("ROLLBACK", _SAVEPOINT)
                await s.shards.savepoint("RELEASE", _SAVEPOINT)
        raise
    if own:
        written.warnings += len(await s.shards.end(commit=True))
    else:
        await s.shards.savepoint("RELEASE", _SAVEPOINT)
    return written


async def _insert_batches(
    s: SessionState, root: InsertSelect, batches: list[list[bytes]], runner: Runner
) -> _Written:
    written = _Written()
    for batch in batches:
        values = b", ".join(batch).decode("utf-8", "surrogateescape")
        ok = _written(await _run_held(s, f"{root.head} VALUES {values}{root.tail}", runner))
        written.affected += ok.affected_rows
        written.warnings += ok.warnings
        written.duplicates += _duplicates(ok, len(batch), root.duplicates)
        written.insert_id = written.insert_id or ok.last_insert_id
    if written.insert_id:
        s.last_insert_id = written.insert_id  # the first row's, as MariaDB's
    return written


# SQLSTATEs of the warnings strict mode turns into errors (others: HY000)
_STRICT_SQLSTATES = {1264: "22003", 1265: "01000", 1292: "22007", 1366: "22007", 1365: "22012"}


async def _check_strict(
    s: SessionState, warnings: list[tuple[str, int, str]], runner: Runner
) -> None:
    """MariaDB fails an INSERT ... SELECT under a strict sql_mode at the SELECT's first
    warning (`WHERE k = '5abc'`: 1292); a SELECT alone only warns. So the read's first
    warning becomes the statement's error when the session's sql_mode is strict."""
    first = next((w for w in warnings if w[0] == "Warning"), None)
    if first is None:
        return
    held = await _run_held(s, "SELECT @@session.sql_mode", runner)
    _, rows = _result_set(held, s.deprecate_eof)
    mode = (rows[0][0] or b"").upper() if rows else b""
    if b"STRICT_TRANS_TABLES" in mode or b"STRICT_ALL_TABLES" in mode:
        s.warnings = warnings
        raise errors.ProxyError(first[1], _STRICT_SQLSTATES.get(first[1], "HY000"), first[2])


async def _run_held(s: SessionState, sql: str, runner: Runner) -> _HeldResult:
    """Runs `sql` as a client's statement with its answer held instead of sent."""
    held = _HeldResult(s.out.seq)
    client = s.out
    s.out = held  # type: ignore[assignment]
    try:
        await runner(s, sql)
    finally:
        s.out = client
    return held


def _written(held: _HeldResult) -> wire.OkInfo:
    packet = held.packets[-1] if held.packets else b"\xff"
    if wire.is_err(packet):
        raise wire.parse_err(packet)
    return wire.parse_ok(packet)


_DUPLICATES = re.compile(rb"Duplicates: (\d+)")


def _duplicates(ok: wire.OkInfo, rows: int, rule: str) -> int:
    """The Duplicates of the INSERT's info (a one-row INSERT's OK has none)."""
    found = _DUPLICATES.search(ok.info)
    if found is not None:
        return int(found.group(1))
    return one_row_duplicates(rule, ok.affected_rows) if rows == 1 else 0
