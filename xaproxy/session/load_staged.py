"""LOAD DATA|XML LOCAL INFILE into a sharded or broadcast table (plan.LoadStaged).

Only MariaDB reads a LOAD file exactly (field and line options, character sets, escapes,
the SET clause, what it converts and warns about), so one shard does: the client's
statement, aimed at a temporary table with the target's columns (`CREATE TEMPORARY
TABLE ... SELECT cols FROM t LIMIT 0`: same types, no keys, plus a row number), loads
the client's file there. The staged rows are then read back in file order, a batch at a
time, and inserted as VALUES planned like a client's INSERT (split by shard key, ids
generated, every value a literal of its own type): `INSERT IGNORE` (LOCAL skips
duplicates and keeps going, as MariaDB does) or `REPLACE`. All the inserts are one
statement to the client (steps.as_one_statement: a transaction of their own, or the
proxy's savepoint in the client's). The reply is MariaDB's for a LOAD
(`Records: n  Deleted: d  Skipped: s  Warnings: w`).

Differences with one MariaDB, by construction: SHOW WARNINGS lists the file's warnings
(conversions, short rows) before those of the inserts (duplicates), where MariaDB
interleaves them by row.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, replace

from .. import errors
from ..execution.local_file import relay_file
from ..execution.scatter import as_warnings
from ..protocol import wire
from ..protocol.binary import LiteralStyle, sql_literal
from ..protocol.constants import LOCAL_INFILE_HEADER, Command
from ..routing.plan import LoadStaged
from ..shards.backend import Backend
from ..transactions.images import quote_identifier
from . import reply, steps
from .row_literals import literal_writer
from .state import USER_VARIABLES, SessionState

_ROW = "xaproxy_row"
_BATCH_ROWS = 1000
_BATCH_BYTES = 8 << 20  # of staged rows read at once (fewer rows when they are large)
_GEOMETRY = frozenset(
    {
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)
_LOAD_INFO = re.compile(rb"Records: (\d+)\s+Deleted: (\d+)\s+Skipped: (\d+)")
_numbers = itertools.count(1)
_WHAT = "LOAD DATA LOCAL"
_DATA_TRUNCATED = 1265


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    column_type: str  # `varchar(20)`, as information_schema.COLUMNS says
    data_type: str  # `varchar`

    @property
    def read(self) -> str:
        """How the staged value is selected so its text is its value."""
        quoted = quote_identifier(self.name)
        if self.data_type in ("float", "bit"):
            return f"{quoted} + 0"  # FLOAT's text is shorter than its value; BIT's is bytes
        if self.data_type == "timestamp":
            # as the session's time zone shows it: the staged value came from that text
            return f"CAST({quoted} AS DATETIME(6))"
        return quoted


async def run(s: SessionState, root: LoadStaged, more: bool, runner: steps.Runner) -> None:
    """Stages the client's file on one shard, inserts its rows, answers as MariaDB's LOAD."""
    if s.locked_shards:  # the staging connection would wait on the session's own locks
        raise errors.not_supported(
            "LOAD DATA LOCAL into a sharded or broadcast table while LOCK TABLES is held",
            "UNLOCK TABLES first",
        )
    shard = _staging_shard(s, root)
    if root.variables:
        backend, borrowed = await s.shards.pinned_connection(shard, USER_VARIABLES), False
        for name in root.variables:
            s.variable_homes[name] = shard  # the LOAD assigns them there
    else:
        backend, borrowed = await s.shards.autocommit_connection(shard, holding=True), True
    bare = f"xaproxy_load_{next(_numbers)}"
    staging = f"{quote_identifier(root.database)}.{quote_identifier(bare)}"
    created = False
    try:
        columns = await _target_columns(s, backend, root)
        await _check_computed_timestamps(backend, root, columns)
        names = ", ".join(quote_identifier(c.name) for c in columns)
        table = f"{quote_identifier(root.database)}.{quote_identifier(root.table)}"
        await backend.execute_ok(
            f"CREATE TEMPORARY TABLE {staging} ({_ROW} BIGINT UNSIGNED NOT NULL AUTO_INCREMENT"
            f" PRIMARY KEY) SELECT {names} FROM {table} LIMIT 0"
        )
        created = True
        loaded = await _load(s, backend, root, staging, names, bare)
        try:
            written = await _insert(s, root, backend, staging, columns, runner)
        except errors.ProxyError as exc:
            if exc.code == errors.CHECK_CONSTRAINT_FAILED and loaded.warning_list:
                await _with_file_warnings(backend, root, staging, loaded, exc)
            raise
        if written.unchecked and loaded.warning_list:
            turned_away = await _turned_away(backend, root, staging, _last_row(loaded))
            loaded = replace(loaded, warning_list=_renumbered(loaded.warning_list, turned_away))
        _reply(s, root, more, loaded, written)
    except BaseException as exc:
        if not isinstance(exc, errors.ProxyError):
            # cancelled, or the client went away mid-file: the staging connection may be
            # mid-answer; it is closed, never used again
            backend.close()
        raise
    finally:
        await _drop(backend, staging if created else None, borrowed, s)


async def _drop(backend: Backend, staging: str | None, borrowed: bool, s: SessionState) -> None:
    """Drops the staging table; a connection where that cannot be done is closed."""
    try:
        if staging is not None and not backend.broken:
            try:
                await backend.execute_ok(f"DROP TEMPORARY TABLE IF EXISTS {staging}")
            except errors.ProxyError:
                backend.close()
            except BaseException:
                backend.close()
                raise
    finally:
        if borrowed:
            s.shards.release(backend)


def _staging_shard(s: SessionState, root: LoadStaged) -> str:
    """The shard the file is staged on: where the user variables it names live, if any."""
    homes = {s.variable_homes[name] for name in root.variables if name in s.variable_homes}
    if len(homes) > 1:
        raise errors.not_supported(
            "user variables in a LOAD DATA LOCAL that live on different shards' connections "
            f"({', '.join(sorted(homes))})",
            "use variables set by statements on the same shard, or literals",
        )
    return next(iter(homes), root.staging)


async def _target_columns(s: SessionState, backend: Backend, root: LoadStaged) -> list[_Column]:
    """The target's columns the LOAD assigns (its column list and SET targets; every
    column without a list), with their types; MariaDB's errors for an unknown table or
    column."""
    style = LiteralStyle(not s.no_backslash_escapes, s.client_charset)
    rows = await backend.query_rows(
        "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_GENERATED FROM "
        f"information_schema.COLUMNS WHERE TABLE_SCHEMA = {_text(style, root.database)} "
        f"AND TABLE_NAME = {_text(style, root.table)} ORDER BY ORDINAL_POSITION"
    )
    if not rows:
        raise errors.ProxyError(
            1146, "42S02", f"Table '{root.database}.{root.table}' doesn't exist"
        )
    found = {
        (r[0] or b"").decode().lower(): _Column(
            (r[0] or b"").decode(), (r[1] or b"").decode(), (r[2] or b"").decode().lower()
        )
        for r in rows
    }
    generated = [c for c, r in zip(found.values(), rows, strict=True) if r[3] != b"NEVER"]
    if root.columns is None:
        wanted = [c.name for c in found.values()]
    else:
        wanted = [name for name in root.columns if not name.startswith("@")]
    wanted += [name for name in root.set_targets if name.lower() not in map(str.lower, wanted)]
    columns: list[_Column] = []
    for name in wanted:
        column = found.get(name.lower())
        if column is None:
            raise errors.ProxyError(1054, "42S22", f"Unknown column '{name}' in 'SELECT'")
        if column in generated or column.data_type in _GEOMETRY:
            what = "generated" if column in generated else "geometry"
            raise errors.not_supported(
                f"LOAD DATA LOCAL into sharded or broadcast table '{root.table}' with "
                f"{what} column '{column.name}'",
                "name the other columns in the LOAD's column list, or INSERT the rows",
            )
        if column not in columns:
            columns.append(column)
    return columns


_FIXED_OFFSET = re.compile(r"[+-]\d{1,2}:\d{2}")


async def _check_computed_timestamps(
    backend: Backend, root: LoadStaged, columns: list[_Column]
) -> None:
    """A TIMESTAMP is read back as the session's time zone shows it. A value that came
    from the file's text maps back to the same instant, but one the SET clause computed
    (FROM_UNIXTIME(@t), NOW()) may fall in the hour a daylight-saving change repeats:
    refused unless the zone has no such hour (a fixed offset, or a UTC system zone)."""
    computed = {name.lower() for name in root.set_targets}
    if not any(c.data_type == "timestamp" and c.name.lower() in computed for c in columns):
        return
    zone, system = (await backend.query_rows("SELECT @@time_zone, @@system_time_zone"))[0]
    zone_text = (zone or b"").decode()
    if _FIXED_OFFSET.fullmatch(zone_text) or (
        zone_text == "SYSTEM" and (system or b"").decode().upper() in ("UTC", "GMT")
    ):
        return
    raise errors.not_supported(
        f"LOAD DATA LOCAL whose SET clause computes a TIMESTAMP over sharded or broadcast "
        f"tables in time zone {zone_text} (an hour that zone repeats reads back ambiguously)",
        "SET time_zone = '+00:00' for the LOAD, or load the column from the file",
    )


def _text(style: LiteralStyle, value: str) -> str:
    return sql_literal(value, style.backslash_escapes, "utf8mb4").decode()


@dataclass(frozen=True, slots=True)
class _Loaded:
    records: int  # rows read from the file
    warnings: int
    warning_list: list[tuple[str, int, str]]  # as SHOW WARNINGS lists them (max_error_count)
    max_listed: int  # the session's max_error_count


async def _load(
    s: SessionState, backend: Backend, root: LoadStaged, staging: str, names: str, bare: str
) -> _Loaded:
    """Runs the client's LOAD into the staging table, relaying its file; its errors and
    warnings name the client's table, as they would have."""
    column_list = f" ({names})" if root.columns is None else root.load_list
    text = f"{root.load_head}{staging}{root.load_middle}{column_list}{root.load_tail}"
    await backend.send(Command.QUERY, text.encode("utf-8", "surrogateescape"))
    answer = await backend.read()
    if answer[:1] == bytes((LOCAL_INFILE_HEADER,)):
        answer = await relay_file(backend, s.out, answer)
    if wire.is_err(answer):
        error = wire.parse_err(answer)
        failed = errors.ProxyError(
            error.code, error.sqlstate, error.message.replace(bare, root.table)
        )
        failed.conditions = [
            (level, code, text.replace(bare, root.table))
            for level, code, text in await backend.show_warnings()
        ] or None
        raise failed
    ok = wire.parse_ok(answer)
    backend.status = ok.status
    found = _LOAD_INFO.search(ok.info)
    records = int(found.group(1)) if found else ok.affected_rows
    listed = await backend.show_warnings() if ok.warnings else []
    listed = [(level, code, text.replace(bare, root.table)) for level, code, text in listed]
    limit = int((await backend.query_rows("SELECT @@max_error_count"))[0][0] or 0)
    return _Loaded(records, ok.warnings, listed, limit)


@dataclass(slots=True)
class _Written:
    affected: int = 0
    rows: int = 0
    unchecked: int = 0  # rows a CHECK constraint turned away (IGNORE): not records
    warnings: int = 0
    warning_list: list[tuple[str, int, str]] | None = None
    insert_id: int = 0


async def _insert(
    s: SessionState,
    root: LoadStaged,
    backend: Backend,
    staging: str,
    columns: list[_Column],
    runner: steps.Runner,
) -> _Written:
    """Inserts the staged rows in file order, in batches, as one statement."""
    verb = "REPLACE" if root.duplicates == "replace" else "INSERT IGNORE"
    names = ", ".join(quote_identifier(c.name) for c in columns)
    head = f"{verb} INTO {quote_identifier(root.database)}.{quote_identifier(root.table)} ({names})"
    # an ENUM's error value ('' for a value not in its list, warned about when staged)
    # warns again when inserted: its index (0) is read too, and that warning dropped
    enums = [c for c in columns if c.data_type == "enum"]
    reads = ", ".join([c.read for c in columns] + [f"{c.read} + 0" for c in enums])
    coldefs, _ = await backend.query_table(f"SELECT {reads} FROM {staging} LIMIT 0")
    coldefs = coldefs[: len(columns)]
    style = LiteralStyle(not s.no_backslash_escapes, s.client_charset)
    writers = [
        literal_writer(coldef, c.name, c.column_type, style, _WHAT)
        for coldef, c in zip(coldefs, columns, strict=True)
    ]
    written = _Written(warning_list=[])
    last = 0
    limit = _BATCH_ROWS
    async with steps.as_one_statement(s) as commit_warnings:
        while True:
            batch = await backend.query_rows_within(
                f"SELECT {reads}, {_ROW} FROM {staging} WHERE {_ROW} > {last} "
                f"ORDER BY {_ROW} LIMIT {limit}",
                [_BATCH_BYTES],
                limit,
            )
            if batch is None:  # the rows are large: fewer at a time (one always fits)
                limit = max(1, limit // 4)
                if limit == 1:
                    _, batch = await backend.query_table(
                        f"SELECT {reads}, {_ROW} FROM {staging} WHERE {_ROW} > {last} "
                        f"ORDER BY {_ROW} LIMIT 1"
                    )
                else:
                    continue
            if not batch:
                break
            last = int(batch[-1][-1] or 0)
            tuples = [
                b"("
                + b", ".join(
                    b"NULL" if v is None else w(v) for v, w in zip(row, writers, strict=False)
                )
                + b")"
                for row in batch
            ]
            rewarned = [
                [
                    c.name
                    for c, index in zip(enums, row[len(columns) : -1], strict=True)
                    if index == b"0"
                ]
                for row in batch
            ]
            at = 0
            for run in steps.batches(tuples):
                values = b", ".join(run).decode("utf-8", "surrogateescape")
                ok = await _insert_run(s, f"{head} VALUES {values}", len(run), root, runner)
                again = [name for names in rewarned[at : at + len(run)] for name in names]
                at += len(run)
                written.affected += ok.affected_rows
                written.rows += len(run)
                written.unchecked += len(run) - _records(ok, s.warnings)
                written.warnings += ok.warnings - len(again)
                if ok.warnings:
                    written.warning_list.extend(_without(s.warnings, again))
                written.insert_id = written.insert_id or ok.last_insert_id
    written.warnings += len(commit_warnings)
    return written


# a row number in a LOAD's warning: "Row 3 doesn't contain ...", "... at row 3"
_ROW_NUMBER = re.compile(r"^(Row )(\d+)(?= )|( at row )(\d+)$")


def _row_of(message: str) -> int | None:
    found = _ROW_NUMBER.search(message)
    return None if found is None else int(found.group(2) or found.group(4))


def _last_row(loaded: _Loaded) -> int:
    return max((_row_of(text) or 0 for _, _, text in loaded.warning_list), default=0)


async def _turned_away(backend: Backend, root: LoadStaged, staging: str, below: int) -> list[int]:
    """The staged rows (by number, up to `below`) a CHECK constraint of the table turns
    away: the staging table has the table's column types, so its clauses judge alike."""
    clauses = await backend.query_rows(
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
        f"WHERE CONSTRAINT_SCHEMA = {_utf8(root.database)} AND TABLE_NAME = {_utf8(root.table)}"
    )
    if not clauses or below < 1:
        return []
    failing = " OR ".join(f"NOT ({_text_of(c)})" for (c,) in clauses)
    rows = await backend.query_rows(
        f"SELECT {_ROW} FROM {staging} WHERE {_ROW} <= {below} AND ({failing}) ORDER BY {_ROW}"
    )
    return [int(r) for (r,) in rows]


def _utf8(name: str) -> str:
    return f"CONVERT(X'{name.encode().hex()}' USING utf8mb4)"


def _text_of(value: bytes | str | None) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value or ""


def _renumbered(
    warnings: list[tuple[str, int, str]], turned_away: list[int]
) -> list[tuple[str, int, str]]:
    """MariaDB's row count for warnings does not move past a row a CHECK constraint turned
    away (under IGNORE): the staged numbers, less the turned-away rows before them."""
    if not turned_away:
        return warnings

    def number(found: re.Match) -> str:
        row = int(found.group(2) or found.group(4))
        shown = row - bisect.bisect_left(turned_away, row)
        return f"{found.group(1)}{shown}" if found.group(1) else f"{found.group(3)}{shown}"

    return [(level, code, _ROW_NUMBER.sub(number, text)) for level, code, text in warnings]


async def _with_file_warnings(
    backend: Backend, root: LoadStaged, staging: str, loaded: _Loaded, exc: errors.ProxyError
) -> None:
    """A REPLACE stops at the first row a CHECK constraint refuses: SHOW WARNINGS lists
    the file's warnings up to that row, then that row's conditions, as MariaDB's."""
    first = await _turned_away(backend, root, staging, _last_row(loaded))
    stop = first[0] if first else None
    kept = [w for w in loaded.warning_list if stop is None or (_row_of(w[2]) or 0) <= stop]
    exc.conditions = kept + (exc.conditions or [("Error", exc.code, exc.message)])


def _without(
    warnings: list[tuple[str, int, str]], columns: list[str]
) -> list[tuple[str, int, str]]:
    """`warnings` less one "Data truncated" (1265) for each of `columns`."""
    kept = list(warnings)
    for name in columns:
        for i, (_, code, message) in enumerate(kept):
            if code == _DATA_TRUNCATED and f"column '{name}'" in message:
                del kept[i]
                break
    return kept


async def _insert_run(
    s: SessionState, text: str, rows: int, root: LoadStaged, runner: steps.Runner
) -> wire.OkInfo:
    """One INSERT of staged rows. A one-row INSERT IGNORE fails with 4025 where its row
    breaks a CHECK constraint, where the LOAD (and a multi-row INSERT IGNORE) skips the
    row with that warning: answered so (the statement changed nothing)."""
    try:
        return steps.written(await steps.run_held(s, text, runner))
    except errors.ProxyError as exc:
        if rows != 1 or root.duplicates == "replace" or exc.code != errors.CHECK_CONSTRAINT_FAILED:
            raise
        s.warnings = as_warnings(exc)
        return wire.OkInfo(0, 0, s.status(), len(s.warnings), b"")


_INSERT_RECORDS = re.compile(rb"Records: (\d+)")


def _records(ok: wire.OkInfo, warnings: list[tuple[str, int, str]]) -> int:
    """The rows an INSERT IGNORE counted as records: MariaDB leaves out a row a CHECK
    constraint turned away (it does not count it as a skipped duplicate either). A
    multi-row INSERT says it in its info; a one-row INSERT has none: its CHECK warning
    tells."""
    found = _INSERT_RECORDS.search(ok.info)
    if found is not None:
        return int(found.group(1))
    turned_away = not ok.affected_rows and any(
        code == errors.CHECK_CONSTRAINT_FAILED for _, code, _ in warnings
    )
    return 0 if turned_away else 1


def _reply(
    s: SessionState, root: LoadStaged, more: bool, loaded: _Loaded, written: _Written
) -> None:
    records = loaded.records - written.unchecked  # as MariaDB counts them
    if root.duplicates == "replace":
        deleted, skipped = written.affected - written.rows, 0
    else:
        deleted, skipped = 0, records - written.affected
    warnings = loaded.warnings + written.warnings
    # SHOW WARNINGS lists at most max_error_count of them (the staging shard's list
    # already stops there)
    listed = loaded.warning_list + (written.warning_list or [])
    s.warnings = listed[: max(loaded.max_listed, len(loaded.warning_list))]
    if written.insert_id:
        s.last_insert_id = written.insert_id  # the first row's, as MariaDB's
    info = f"Records: {records}  Deleted: {deleted}  Skipped: {skipped}  Warnings: {warnings}"
    reply.ok(s, more, written.affected, warnings, insert_id=written.insert_id, info=info)
