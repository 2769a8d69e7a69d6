"""Running one statement on several shards: fan-out reads merged, fan-out writes summed.

All shards get their statement before the proxy waits for any answer, so the
shards work in parallel and the statement costs the slowest shard, not the sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from .. import errors
from ..protocol import wire
from ..protocol.binary import make_row_converter, text_is_short_of_value
from ..protocol.constants import Command, Status
from ..protocol.resultset import write_columns
from ..protocol.stream import PacketStream
from ..routing.plan import (
    UNMATCHED_KEYS_LIMIT,
    UNMATCHED_MARK,
    Compute,
    DropHidden,
    MergeRead,
    Plan,
    Primitive,
    ScatterWrite,
    SplitInsert,
)
from ..shards.backend import Backend
from .compute import compute_items, partials_of, with_flags
from .merge import MergeBudget, before_ordering, finish_rows, merge, refuse_inexact
from .sortkeys import join_row, split_row

_FLUSH_BYTES = 256 * 1024


@dataclass(slots=True)
class WriteSummary:
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    backend_status: int = 0
    info: bytes = b""  # the OK packet's info text, framed as MariaDB sends it
    state: bytes = b""  # the session-state changes a shard reported (session/tracking.py)
    # each backend's warning count, in order (0 for the copies not counted)
    shard_warnings: list[int] = field(default_factory=list)
    # warnings known without asking the shard: see _turned_away
    known_warnings: dict[Backend, list[tuple[str, int, str]]] = field(default_factory=dict)


async def _send_all(backends: list[tuple[str, Backend]], route: Plan, sql: str) -> None:
    for shard, backend in backends:
        await backend.send(
            Command.QUERY, route.sql_for(shard, sql).encode("utf-8", "surrogateescape")
        )


async def _settle(
    backends: list[tuple[str, Backend]], reader: Callable[[Backend], Awaitable]
) -> list:
    """Reads every shard's answer, even after a failure, so no connection is left desynced."""
    results = await asyncio.gather(*(reader(b) for _, b in backends), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, errors.ProxyError):
            raise result
    return results


async def _read_conditions(
    backends: list[tuple[str, Backend]], results: list, failure: errors.ProxyError
) -> None:
    """SHOW WARNINGS after a failed write lists what the failing shard's does (its notes
    before the error, as one server's), read before anything else runs there."""
    if not isinstance(failure, errors.BackendError) or failure.conditions is not None:
        return
    backend = backends[results.index(failure)][1]
    if not backend.broken:
        with contextlib.suppress(errors.ProxyError):
            failure.conditions = await backend.show_warnings()


async def scatter_write(backends: list[tuple[str, Backend]], route: Plan, sql: str) -> WriteSummary:
    """Runs a write on every shard; raises the first shard error after all have answered."""
    await _send_all(backends, route, sql)
    results = await _settle(backends, lambda b: b.read_ok())
    known = await _turned_away(backends, route.root, results)
    failure = next((r for r in results if isinstance(r, errors.ProxyError)), None)
    if failure is not None:
        await _read_conditions(backends, results, failure)
        raise failure
    summary = summarize_writes(results, route.root, set(known))
    summary.known_warnings = {backends[i][1]: found for i, found in known.items()}
    return summary


async def _turned_away(
    backends: list[tuple[str, Backend]], root: Primitive, results: list
) -> dict[int, list[tuple[str, int, str]]]:
    """MariaDB's multi-row INSERT IGNORE skips a row a CHECK constraint rejects, with a
    warning; a one-row INSERT IGNORE fails with 4025 instead. A shard given one row of
    a split INSERT IGNORE that failed so is answered as the multi-row statement would
    have been: no row, that warning, not counted as a record (its statement changed
    nothing there; the others' rows stand). `results` is changed in place."""
    if not isinstance(root, SplitInsert) or root.duplicates != "ignore" or len(backends) < 2:
        return {}
    rows = Counter(root.row_shards)
    known: dict[int, list[tuple[str, int, str]]] = {}
    for index, (shard, backend) in enumerate(backends):
        result = results[index]
        one_row = rows.get(shard) == 1
        if (
            one_row
            and isinstance(result, errors.BackendError)
            and result.code == errors.CHECK_CONSTRAINT_FAILED
        ):
            with contextlib.suppress(errors.ProxyError):
                result.conditions = await backend.show_warnings()
            known[index] = as_warnings(result)
            results[index] = wire.OkInfo(0, 0, backend.status, len(known[index]), b"")
    return known


def as_warnings(error: errors.ProxyError) -> list[tuple[str, int, str]]:
    """The conditions of a statement whose error stands for a skipped row (a CHECK under
    IGNORE): what MariaDB lists when it skips that row, the error as a warning."""
    conditions = error.conditions or [("Error", error.code, error.message)]
    return [
        ("Warning" if (level, code) == ("Error", error.code) else level, code, message)
        for level, code, message in conditions
    ]


def summarize_writes(
    results: list[wire.OkInfo], root: Primitive, uncounted: set[int] | None = None
) -> WriteSummary:
    """One answer for a write every shard ran, as one server would give it.

    A broadcast table's copies changed the same rows, so one copy's count is
    the answer; ids the proxy generated for a split INSERT give LAST_INSERT_ID.
    """
    summary = WriteSummary()
    copies = isinstance(root, ScatterWrite) and root.copies
    for index, result in enumerate(results):
        counted = not (copies and index)
        summary.shard_warnings.append(result.warnings if counted else 0)
        if counted:
            summary.affected_rows += result.affected_rows
            summary.warnings += result.warnings
        summary.backend_status = result.status
        summary.state = summary.state or wire.ok_state(result)
        if result.last_insert_id and not summary.last_insert_id:
            summary.last_insert_id = result.last_insert_id
    if isinstance(root, SplitInsert) and root.generated_ids:
        summary.last_insert_id = root.generated_ids[0]
    if len(results) == 1 or copies:
        summary.info = wire.ok_message(results[0].info) if results else b""
    else:
        counted_rows = [r for i, r in enumerate(results) if not uncounted or i not in uncounted]
        summary.info = _summed_info(counted_rows, root, summary.warnings)
    return summary


_COUNTS = re.compile(rb"(Records|Rows matched): (\d+)  (Duplicates|Changed): (\d+)  Warnings: \d+")


def _summed_info(results: list[wire.OkInfo], root: Primitive, warnings: int) -> bytes:
    """MariaDB's info text of one server for a write the shards ran in parts: the
    counts of each shard's text added up ("Records: 5  Duplicates: 0  Warnings: 0",
    "Rows matched: 2  Changed: 2  Warnings: 0"). A shard given one INSERT row answers
    without text; its counts follow from its affected rows as MariaDB computes them."""
    label = b""
    first = second = 0
    for result in results:
        found = _COUNTS.search(result.info)
        if found is not None:
            label = found.group(1) + b": %d  " + found.group(3) + b": %d  Warnings: %d"
            first += int(found.group(2))
            second += int(found.group(4))
        elif isinstance(root, SplitInsert):
            first += 1
            second += one_row_duplicates(root.duplicates, result.affected_rows)
        else:
            return b""  # DELETE: MariaDB sends no text
    if isinstance(root, SplitInsert):
        label = b"Records: %d  Duplicates: %d  Warnings: %d"
    if not label:
        return b""
    text = label % (first, second, warnings)
    return wire.lenenc_int(len(text)) + text


def one_row_duplicates(rule: str, affected: int) -> int:
    """The Duplicates MariaDB counts for a one-row INSERT (whose OK has no info text)."""
    if rule == "replace":
        return max(affected - 1, 0)  # the row it replaced counts as deleted
    if rule == "ignore":
        return 1 if affected == 0 else 0
    if rule == "update":
        return 1 if affected == 2 else 0
    return 0


async def _read_header(backend: Backend) -> list[bytes]:
    """Column definitions of a result set; a shard error is raised."""
    first = await backend.read()
    if wire.is_err(first):
        raise wire.parse_err(first)
    if first[0] == 0x00:
        raise errors.ProxyError(1105, "HY000", "a shard answered a fan-out SELECT without rows")
    count, _ = wire.read_lenenc_int(first, 0)
    coldefs = [await backend.read() for _ in range(count or 0)]
    if not backend.deprecate_eof:
        await backend.read()
    return coldefs


class _ShardRows:
    """The rows of one shard's result set, read on demand."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.done = False
        self.warnings = 0
        self.status = 0
        self.state = b""  # session-state changes the shard reported at the end

    async def rows(self) -> AsyncIterator[bytes]:
        backend = self.backend
        deprecate_eof = backend.deprecate_eof
        while not self.done:
            payload = await backend.read()
            end = wire.rows_end(payload, deprecate_eof) if payload and payload[0] == 0xFE else None
            if end is not None:
                self.status, self.warnings = end
                backend.status = self.status
                if deprecate_eof and self.status & Status.SESSION_STATE_CHANGED:
                    self.state = wire.ok_state(wire.parse_ok(payload))
                self.done = True
                return
            if wire.is_err(payload):
                self.done = True
                raise wire.parse_err(payload)
            yield payload

    async def drain(self) -> None:
        """Reads the rest of the result; the shard's own error, if it ends with one, is
        dropped: another shard's error is the one the client gets, and a stream left half
        read would desync its connection for the next statement."""
        try:
            async for _ in self.rows():
                pass
        except errors.ProxyError:
            pass


@dataclass(slots=True)
class ReadSummary:
    rows: int  # sent to the client
    warnings: list[int]  # each shard's warning count, in the order of the backends
    error: errors.ProxyError | None = None  # a shard failed (or the merge gave up) mid-result
    # SHOW WARNINGS rows read off a connection before a later query of the statement
    # replaced them (they come first in the session's list)
    held_warnings: list[list[bytes | None]] = field(default_factory=list)


async def scatter_read(
    backends: list[tuple[str, Backend]],
    route: Plan,
    sql: str,
    out: PacketStream,
    *,
    session_status: int,
    more_follows: bool,
    client_deprecate_eof: bool,
    binary: bool,
    memory_limit: int = 0,
) -> ReadSummary:
    """Runs a fan-out SELECT and streams the merged result.

    `memory_limit`: the bytes the merge may hold (0: unlimited); past it the
    client gets 1038 in place of the rest of the result.
    """
    root = route.root
    assert isinstance(root, MergeRead)
    await _send_all(backends, route, sql)
    headers = await _settle(backends, _read_header)
    failure = next((h for h in headers if isinstance(h, errors.ProxyError)), None)
    streams = [_ShardRows(b) for _, b in backends]
    if failure is not None:
        for stream, header in zip(streams, headers, strict=True):
            if not isinstance(header, errors.ProxyError):
                await stream.drain()
        raise failure
    coldefs: list[bytes] = headers[0]
    if root.copies:
        renames = {c.copy_name.encode(): c.name.encode() for c in root.copies}
        coldefs = [wire.with_org_table(c, renames) for c in coldefs]
    spec = root.spec
    try:
        refuse_inexact(spec, coldefs)
        if binary:
            refuse_short_doubles(coldefs[: len(coldefs) - spec.hidden])
    except errors.ProxyError:
        for stream in streams:
            await stream.drain()
        raise
    shown = list(coldefs)
    for position, coldef in root.column_overrides:
        shown[position] = coldef
    status = session_status | (Status.MORE_RESULTS_EXISTS if more_follows else 0)
    compute = root.step(Compute)
    if compute is not None:
        rows, warnings = await _computed_rows(backends, streams, root, coldefs, memory_limit)
        total = sum(warnings)
        flags, extra, held = await _compute(backends, warnings, compute, rows, coldefs)
        if _computed_first(root):
            rows = await finish_rows(spec, coldefs, rows)
        for item, item_flags in zip(compute.items, flags, strict=True):
            shown[item.column] = with_flags(shown[item.column], item_flags)
        visible_defs = shown[: len(shown) - spec.hidden]
        write_columns(out, visible_defs, status, client_deprecate_eof)
        convert = None
        if binary:
            convert = make_row_converter([wire.column_type_and_flags(c)[:2] for c in visible_defs])
        for row in rows:
            payload = join_row(row[: len(visible_defs)])
            out.write(convert(payload) if convert is not None else payload)
            if out.pending > _FLUSH_BYTES:
                await out.flush()
        if any(s.status & Status.NO_BACKSLASH_ESCAPES for s in streams):
            status |= Status.NO_BACKSLASH_ESCAPES
        out.write(_end_of_rows(out, streams, status, total + extra, client_deprecate_eof))
        return ReadSummary(len(rows), warnings, held_warnings=held)
    visible_defs = shown[: len(shown) - spec.hidden]
    write_columns(out, visible_defs, status, client_deprecate_eof)
    convert = None
    if binary:
        convert = make_row_converter([wire.column_type_and_flags(c)[:2] for c in visible_defs])
    sent = 0
    try:
        budget = MergeBudget(memory_limit)
        async for payload in merge(spec, coldefs, [s.rows() for s in streams], budget):
            out.write(convert(payload) if convert is not None else payload)
            sent += 1
            if out.pending > _FLUSH_BYTES:
                await out.flush()
    except (errors.BackendError, errors.MergeAborted) as exc:
        for stream in streams:
            if not stream.done:
                await stream.drain()
        out.write(wire.err_packet(exc.code, exc.sqlstate, exc.message))
        return ReadSummary(sent, [0] * len(streams), exc)
    for stream in streams:
        if not stream.done:
            await stream.drain()
    warnings = [s.warnings for s in streams]
    no_backslash = any(s.status & Status.NO_BACKSLASH_ESCAPES for s in streams)
    if no_backslash:
        status |= Status.NO_BACKSLASH_ESCAPES
    out.write(_end_of_rows(out, streams, status, sum(warnings), client_deprecate_eof))
    return ReadSummary(sent, warnings)


def _end_of_rows(
    out: PacketStream, streams: list[_ShardRows], status: int, warnings: int, deprecate_eof: bool
) -> bytes:
    """The merged result's end, with what the shards reported of session state."""
    return wire.end_of_rows_tracked(
        status,
        warnings,
        deprecate_eof,
        out.session_track,
        any(s.status & Status.SESSION_STATE_CHANGED for s in streams),
        next((s.state for s in streams if s.state), b""),
    )


def refuse_short_doubles(coldefs: list[bytes], returning: bool = False) -> None:
    """Binary rows made from the shards' text would lose digits of a FLOAT (or of a
    DOUBLE printed with fixed decimals): refused. `returning`: a prepared write's
    RETURNING rows, raised as a shard error so the write is undone (the statement alone
    in a transaction)."""
    for coldef in coldefs:
        if not text_is_short_of_value(coldef):
            continue
        name = wire.column_name(coldef)
        if returning:
            raise errors.BackendError(
                errors.NOT_SUPPORTED,
                "42000",
                f"xaproxy does not support the floating-point RETURNING column '{name}' "
                "(printed with fewer digits than its value) of a prepared write on several "
                "shards; the statement was undone: run it as a plain query, or RETURNING "
                "CAST(column AS DOUBLE)",
            )
        raise errors.not_supported(
            f"floating-point result column '{name}' (printed with fewer digits than its "
            "value) in a prepared statement answered from several shards or from copies",
            "run it as a plain query, or CAST it to DOUBLE or DECIMAL(m,d) in the query",
        )


async def _computed_rows(
    backends: list[tuple[str, Backend]],
    streams: list[_ShardRows],
    root: MergeRead,
    coldefs: list[bytes],
    memory_limit: int,
) -> tuple[list[list[bytes | None]], list[int]]:
    """The merged rows of a read whose items compute with aggregates, helper columns
    included, held until computed (within the merge's memory limit); and each shard's
    warning count. Nothing is sent yet: a failure is the statement's error."""
    rows: list[list[bytes | None]] = []
    try:
        partials_of(root.step(Compute), coldefs)  # refuses a type it cannot write back
        budget = MergeBudget(memory_limit)
        everything = replace(root.spec, hidden=0)
        if _computed_first(root):
            everything = before_ordering(root.spec)
        async for payload in merge(everything, coldefs, [s.rows() for s in streams], budget):
            values = split_row(payload, len(coldefs))
            budget.charge(values, "rows whose items compute with aggregates")
            rows.append(values)
    finally:
        for stream in streams:
            if not stream.done:
                await stream.drain()
    return rows, [s.warnings for s in streams]


async def with_unmatched(route: Plan, backends: list[tuple[str, Backend]]) -> Plan:
    """The plan of an outer join that keeps a broadcast table's rows, with the first
    shard's text completed: every shard says which b keys it matches (plan.KeepUnmatched),
    and the first shard keeps NULL-extended rows only of the keys none matched."""
    root = route.root
    assert isinstance(root, MergeRead) and root.unmatched is not None
    keep = root.unmatched
    answers = await _settle(backends, lambda b: b.query_rows(keep.probe))
    failure = next((a for a in answers if isinstance(a, errors.ProxyError)), None)
    if failure is not None:
        raise failure
    keys: set[int] = set()
    for rows in answers:
        if len(rows) > UNMATCHED_KEYS_LIMIT:
            keys.update(range(UNMATCHED_KEYS_LIMIT + 1))  # refused below
        for (value,) in rows:
            if value is None or not value.lstrip(b"-").isdigit():
                raise errors.not_supported("an outer join whose kept table's key is not an integer")
            keys.add(int(value))
    if len(keys) > UNMATCHED_KEYS_LIMIT:
        raise errors.not_supported(
            f"an outer join that keeps a broadcast table's rows when over {UNMATCHED_KEYS_LIMIT} "
            "of them have a match across shards",
            "narrow the broadcast side in the WHERE clause, or add the shard key",
        )
    kept = f"{keep.key} NOT IN ({', '.join(map(str, sorted(keys)))})" if keys else "TRUE"
    text = keep.first_sql.replace(UNMATCHED_MARK, kept, 1)
    return replace(route, root=replace(root, shard_sql=((keep.first, text),)))


def _computed_first(root: MergeRead) -> bool:
    """The computing comes before the ORDER BY / DISTINCT / LIMIT that need its values."""
    kinds = [type(step) for step in root.steps]
    return (
        kinds.index(Compute) < len(kinds) - 1 and kinds[kinds.index(Compute) + 1] is not DropHidden
    )


async def _compute(
    backends: list[tuple[str, Backend]],
    warnings: list[int],
    step: Compute,
    rows: list[list[bytes | None]],
    coldefs: list[bytes],
) -> tuple[list[int], int, list[list[bytes | None]]]:
    """Computes the items on a shard connection whose read left no warnings, when one did
    (a computing query that warns replaces a connection's warnings). When every shard's
    read warned, the chosen one's warnings are read first and handed back, for the
    session's list."""
    index = next((i for i, count in enumerate(warnings) if not count), 0)
    backend = backends[index][1]
    held = await backend.query_rows("SHOW WARNINGS") if warnings[index] else []
    flags, extra = await compute_items(backend, step, rows, partials_of(step, coldefs))
    if not extra:
        return flags, 0, []
    warnings[index] = extra  # SHOW WARNINGS there now gives the computing's
    return flags, extra, held


# RETURNING rows of a multi-shard write are held until every shard answered (the
# statement may still fail and be undone); past this many bytes it is refused and undone.
RETURNING_LIMIT_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class ReturnedRows:
    coldefs: list[bytes]
    rows: list[bytes]
    warnings: int = 0
    status: int = 0
    shard_warnings: list[int] = field(default_factory=list)
    state_changed: bool = False  # a shard reported session-state changes (`state`)
    state: bytes = b""


async def _read_returned(
    backend: Backend, budget: list[int]
) -> tuple[list[bytes], _ShardRows, list[bytes]]:
    coldefs = await _read_header(backend)
    stream = _ShardRows(backend)
    rows: list[bytes] = []
    async for payload in stream.rows():
        budget[0] -= len(payload)
        if budget[0] >= 0:
            rows.append(payload)
    return coldefs, stream, rows


async def scatter_returning(
    backends: list[tuple[str, Backend]], route: Plan, sql: str
) -> ReturnedRows:
    """Runs an INSERT/REPLACE/DELETE ... RETURNING on every shard and gathers its rows as
    one server gives them: an INSERT's in the client's VALUES order, a DELETE's shard by
    shard, a broadcast table's from one copy. Raises the first shard error."""
    root = route.root
    await _send_all(backends, route, sql)
    budget = [RETURNING_LIMIT_BYTES]
    results = await _settle(backends, lambda b: _read_returned(b, budget))
    failure = next((r for r in results if isinstance(r, errors.ProxyError)), None)
    if failure is not None:
        raise failure
    if budget[0] < 0:
        raise errors.BackendError(
            1235,
            "42000",
            "xaproxy does not support RETURNING rows of more than "
            f"{RETURNING_LIMIT_BYTES // (1024 * 1024)} MiB from a write on several shards; "
            "the statement was undone: write fewer rows per statement",
        )
    by_shard = {shard: rows for (shard, _), (_, _, rows) in zip(backends, results, strict=True)}
    copies = isinstance(root, ScatterWrite) and root.copies
    streams = [stream for _, stream, _ in results]
    answer = ReturnedRows(
        coldefs=results[0][0],
        rows=[],
        warnings=streams[0].warnings if copies else sum(s.warnings for s in streams),
        status=streams[-1].status,
        shard_warnings=[s.warnings if not (copies and i) else 0 for i, s in enumerate(streams)],
        state_changed=any(s.status & Status.SESSION_STATE_CHANGED for s in streams),
        state=next((s.state for s in streams if s.state), b""),
    )
    if isinstance(root, SplitInsert) and root.row_shards:
        answer.rows = _values_order(root.row_shards, by_shard)
    elif copies:
        answer.rows = by_shard[backends[0][0]]
    else:
        answer.rows = [row for shard, _ in backends for row in by_shard[shard]]
    return answer


def _values_order(row_shards: tuple[str, ...], by_shard: dict[str, list[bytes]]) -> list[bytes]:
    """Each shard returns its rows in its slice's order; the client's order interleaves them.
    A shard that returned fewer rows (INSERT IGNORE skipped some) leaves no exact order."""
    expected: dict[str, int] = {}
    for shard in row_shards:
        expected[shard] = expected.get(shard, 0) + 1
    if any(len(by_shard.get(shard, ())) != count for shard, count in expected.items()):
        raise errors.BackendError(
            1235,
            "42000",
            "xaproxy does not support RETURNING of a write on several shards that skipped "
            "rows (INSERT IGNORE): the order of the returned rows is unknown; the statement "
            "was undone: run it without RETURNING, or without IGNORE",
        )
    positions = dict.fromkeys(expected, 0)
    ordered = []
    for shard in row_shards:
        ordered.append(by_shard[shard][positions[shard]])
        positions[shard] += 1
    return ordered
