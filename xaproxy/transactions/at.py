"""AT mode: branches commit locally, with undo images; rollback compensates.

Every write in an AT branch runs as

    SELECT * ... WHERE <the statement's WHERE> FOR UPDATE     before image (UPDATE, DELETE)
    <the statement>
    SELECT * ... WHERE <primary key> IN (...)                 after image (INSERT, UPDATE)

At COMMIT each writing branch, in parallel: takes the global row locks of the rows
it changed (rows `db.table:pk` in xaproxy.global_locks on the row's own shard,
one batched INSERT, retried on conflict up to a bound, then 1205), writes its
undo row (both images, with column types) and commits locally. Then the commit
decision row is written as in XA mode; locks and undo rows go in the background.

Rollback after local commits (or recovery without a commit decision) compensates
each branch: lock the rows, compare them with the after image, restore the before
image; rows changed outside the transaction stop the rollback for an operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlglot import exp

from .. import errors
from ..analysis import Kind, analyze
from ..protocol import wire
from ..routing.mariadb_sql import mariadb_sql
from ..shards.backend import Backend, Result, StatementFailed, warning_tuples
from . import statements as tsql
from .at_locks import Holder, LocalLocks
from .images import (
    IMAGE_READ,
    Row,
    StatementImage,
    columns_of,
    decode_undo,
    encode_undo,
    quote_identifier,
    restore_statements,
    undo_statements,
    where_pk,
)

log = logging.getLogger(__name__)

LOCKS = "xaproxy.global_locks"
UNDO = "xaproxy.undo_log"

UNDO_NORMAL = 0
UNDO_DEFENSE = 1  # written by a rollback that found no undo row: a late local commit fails
UNDO_NEEDS_OPERATOR = 2  # data changed outside the transaction; kept for an operator

# Runs a query on a fresh autocommit connection to a branch's shard (see LockWait).
Peek = Callable[[str], Awaitable[list[Row]]]

BOOTSTRAP = (
    f"""CREATE TABLE IF NOT EXISTS {LOCKS} (
        lock_key VARBINARY(512) NOT NULL PRIMARY KEY,
        gtrid VARBINARY(64) NOT NULL,
        created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        KEY (gtrid)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS {UNDO} (
        gtrid VARBINARY(64) NOT NULL,
        shard VARCHAR(64) NOT NULL,
        status TINYINT NOT NULL DEFAULT 0,
        rollback_info LONGBLOB NOT NULL,
        created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (gtrid, shard),
        KEY (created_at)
    ) ENGINE=InnoDB""",
)


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(slots=True)
class TableInfo:
    primary_key: list[str]
    columns: list[str] = field(default_factory=list)  # in table order
    auto_increment: str | None = None
    generated: set[str] = field(default_factory=set)  # lower-case names of generated columns
    timestamps: bool = False  # a TIMESTAMP column: its text depends on the session time zone


class PrimaryKeys:
    """Primary-key columns (and what else AT images need) per table, asked of the shard once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], TableInfo] = {}

    async def get(self, backend: Backend, database: str, table: str) -> list[str]:
        return (await self.info(backend, database, table)).primary_key

    async def info(self, backend: Backend, database: str, table: str) -> TableInfo:
        key = (database.lower(), table.lower())
        if key not in self._cache:
            rows = await backend.query_rows(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
                f"TABLE_SCHEMA = {_q(database)} AND TABLE_NAME = {_q(table)} "
                "AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION"
            )
            info = TableInfo([r[0].decode() for r in rows if r[0]])
            rows = await backend.query_rows(
                "SELECT COLUMN_NAME, EXTRA, DATA_TYPE FROM information_schema.COLUMNS WHERE "
                f"TABLE_SCHEMA = {_q(database)} AND TABLE_NAME = {_q(table)} ORDER BY ORDINAL_POSITION"
            )
            for name, extra, data_type in rows:
                column = (name or b"").decode()
                if (data_type or b"").lower() == b"timestamp":
                    info.timestamps = True
                info.columns.append(column)
                extra_text = (extra or b"").decode().lower()
                if "auto_increment" in extra_text:
                    info.auto_increment = column
                if "generated" in extra_text:
                    info.generated.add(column.lower())
            self._cache[key] = info
        return self._cache[key]


_READ_KINDS = frozenset(
    {
        Kind.SELECT,
        Kind.SHOW,
        Kind.SHOW_DATABASES,
        Kind.SHOW_TABLES,
        Kind.SHOW_WARNINGS,
        Kind.SHOW_ERRORS,
        Kind.SHOW_WARNING_COUNT,
        Kind.SHOW_ERROR_COUNT,
        Kind.SHOW_PROCESSLIST,
        Kind.EXPLAIN,
        Kind.DO,
    }
)


def may_write(sql: str) -> bool:
    """True unless the statement is a read: in an AT transaction every other statement
    (REPLACE, CALL, LOAD DATA, ...) must go through execute_write, which takes its
    images or refuses it, even when the router does not see it as a write."""
    statement = analyze(sql)
    return statement.kind not in _READ_KINDS and statement.verb not in ("HELP", "TABLE", "")


class NotImageable(errors.ProxyError):
    """A write AT mode cannot take exact images of, refused before it ran."""


def _refuse(what: str, hint: str = "") -> errors.ProxyError:
    refusal = errors.not_supported(f"{what} in AT mode", hint or "use XA mode for this transaction")
    return NotImageable(refusal.code, refusal.sqlstate, refusal.message)


def _target_table(ast: exp.Expression) -> exp.Table:
    tables = [t for t in ast.find_all(exp.Table) if t.name]
    if isinstance(ast, exp.Insert):
        target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
        if len(tables) > 1:
            raise _refuse("INSERT ... SELECT")
        return target
    if len(tables) != 1 or ast.args.get("joins") or ast.args.get("from_") or ast.args.get("using"):
        raise _refuse(
            "multi-table UPDATE or DELETE", "an exact undo image needs one table per statement"
        )
    return tables[0]


async def execute_write(
    backend: Backend,
    ast: exp.Expression,
    sql: str,
    database: str | None,
    primary_keys: PrimaryKeys,
    warnings: list[tuple[str, int, str]] | None = None,
) -> tuple[wire.OkInfo, StatementImage | None]:
    """Runs one write with its before and after images (in the branch's open local transaction).
    `warnings`: filled with the write's own warnings (read before the image reads clear them).

    Everything that could make an image impossible is checked before the statement
    runs; a failure after it ran rolls the whole transaction back (1402), so a
    write never commits without its image.
    """
    _check_imageable(ast)
    table = _target_table(ast)
    db = table.db or database
    if db is None:
        raise errors.no_database_selected()
    qualified = f"{quote_identifier(db)}.{quote_identifier(table.name)}"
    info = await primary_keys.info(backend, db, table.name)
    pk = info.primary_key
    if not pk:
        raise _refuse(
            f"writes to table '{db}.{table.name}', which has no primary key",
            "add a primary key, or use XA mode",
        )
    kind = "INSERT" if isinstance(ast, exp.Insert) else type(ast).__name__.upper()
    if kind == "UPDATE":
        for assignment in ast.expressions:
            if isinstance(assignment, exp.EQ) and assignment.this.name.lower() in (
                k.lower() for k in pk
            ):
                raise _refuse("an UPDATE of the primary key", "delete the row and insert it again")
    write = _Write(backend, ast, sql, qualified, table, info, kind)
    if warnings is not None:
        write.warnings = warnings
    inserted = _inserted_rows(ast, info) if kind == "INSERT" else None
    try:
        if kind == "INSERT":
            return await write.insert(inserted)
        return await write.update_or_delete()
    except errors.ShardUnavailable:
        raise
    except _AfterWrite as exc:
        raise errors.BackendError(
            1402,
            "XA100",
            "Transaction rolled back: xaproxy could not take the AT image of a write "
            f"({exc.error.message})",
        ) from None


class _AfterWrite(Exception):
    """An image could not be taken after the write ran: the transaction must end."""

    def __init__(self, error: errors.ProxyError) -> None:
        self.error = error


@dataclass(slots=True)
class _Write:
    """One AT write and its images, in as few round trips as the statement allows:

    DELETE                       before image ; DELETE                      (one)
    UPDATE by the whole PK       before image ; UPDATE ; after image by PK  (one)
    other UPDATEs                before image ; UPDATE, then after by keys  (two)
    INSERT                       INSERT ; after image by its keys / new ids (one)

    The server stops a multi-statement at its first error, so a write whose before
    image could not be read never runs; an error after the write ran ends the
    transaction (`_AfterWrite`).
    """

    backend: Backend
    ast: exp.Expression
    sql: str
    qualified: str
    table: exp.Table
    info: TableInfo
    kind: str
    warnings: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def tz_column(self) -> str:
        # TIMESTAMP text depends on the session time zone: remember the one the images are in
        return ", @@session.time_zone" if self.info.timestamps else ""

    def statement(self) -> str | None:
        """The client's statement, made safe to follow with another one (a trailing
        `--` comment would swallow it); None when it cannot be (ends with `;`)."""
        text = self.sql.rstrip()
        return None if text.endswith(";") else text + "\n"

    def before_read(self) -> str:
        ast = self.ast
        alias = f" AS {quote_identifier(self.table.alias)}" if self.table.alias else ""
        where = ast.args.get("where")
        clause = f" WHERE {mariadb_sql(where.this)}" if where is not None else ""
        order = ast.args.get("order")
        limit = ast.args.get("limit")
        tail = (f" {mariadb_sql(order)}" if order is not None else "") + (
            f" {mariadb_sql(limit)}" if limit is not None else ""
        )
        return (
            f"{IMAGE_READ}SELECT *{self.tz_column} FROM {self.qualified}{alias}{clause}{tail} "
            "FOR UPDATE"
        )

    async def update_or_delete(self) -> tuple[wire.OkInfo, StatementImage | None]:
        statement = self.statement()
        by_pk = (
            _pk_condition(self.ast, self.table, self.info.primary_key)
            if self.kind == "UPDATE"
            else None
        )
        texts = [self.before_read()]
        if statement is not None:
            texts.append(statement)
            if by_pk is not None:
                texts.append(f"{IMAGE_READ}SELECT * FROM {self.qualified} WHERE {by_pk}")
        results = await self._run(texts, written_at=1)
        coldefs, before = results[0].coldefs, results[0].rows
        if statement is None:
            ok = await self._execute()
        else:
            ok = results[1].ok or wire.OkInfo(0, 0, self.backend.status, 0, b"")
        coldefs, before, time_zone = _split_time_zone(coldefs, before, self.tz_column)
        if not before:
            return ok, None
        image = StatementImage(
            self.qualified, self.kind, _columns(coldefs, self.info), self.info.primary_key, before
        )
        image.time_zone = time_zone
        if self.kind == "UPDATE":
            if len(results) == 3:
                image.after = results[2].rows
            else:
                try:
                    _, image.after = await self.backend.query_table(
                        f"{IMAGE_READ}SELECT * FROM {self.qualified} WHERE {where_pk(image, before)}"
                    )
                except errors.BackendError as exc:
                    raise _AfterWrite(exc) from None
        return ok, image

    async def insert(self, inserted: str | None) -> tuple[wire.OkInfo, StatementImage | None]:
        statement = self.statement()
        pk = self.info.primary_key
        ok: wire.OkInfo | None = None
        if inserted is None:  # generated keys: the ids the server just assigned
            if statement is None or "last_insert_id" in self.sql.lower():
                ok = await self._execute()
                if not ok.affected_rows:
                    return ok, None
                if not ok.last_insert_id:
                    raise _AfterWrite(
                        errors.ProxyError(1105, "HY000", "the shard reported no generated id")
                    )
                first = str(ok.last_insert_id)
                count = str(ok.affected_rows)
            else:
                first, count, ok = "LAST_INSERT_ID()", "ROW_COUNT()", None
            condition = (
                f"{quote_identifier(pk[0])} BETWEEN {first} AND "
                f"{first} + ({count} - 1) * @@auto_increment_increment"
            )
        else:
            condition = inserted
        read = f"{IMAGE_READ}SELECT *{self.tz_column} FROM {self.qualified} WHERE {condition}"
        if ok is None and statement is not None:
            # the read takes LAST_INSERT_ID() and ROW_COUNT() right after the INSERT: a
            # SHOW WARNINGS between them would reset ROW_COUNT(), so its warnings are lost
            generated = inserted is None
            results = await self._run([statement, read], written_at=0, keep_warnings=not generated)
            ok = results[0].ok or wire.OkInfo(0, 0, self.backend.status, 0, b"")
            coldefs, after = results[1].coldefs, results[1].rows
        elif ok is None:
            ok = await self._execute()
            coldefs, after = await self._read_after(read)
        else:
            coldefs, after = await self._read_after(read)
        if not ok.affected_rows:
            return ok, None
        coldefs, after, time_zone = _split_time_zone(coldefs, after, self.tz_column)
        if len(after) != ok.affected_rows:
            raise _AfterWrite(
                errors.ProxyError(
                    1105, "HY000", f"found {len(after)} of the {ok.affected_rows} inserted rows"
                )
            )
        columns = _columns(coldefs, self.info)
        return ok, StatementImage(self.qualified, "INSERT", columns, pk, [], after, time_zone)

    async def _read_after(self, read: str) -> tuple[list[bytes], list[Row]]:
        try:
            return await self.backend.query_table(read)
        except errors.BackendError as exc:
            raise _AfterWrite(exc) from None

    async def _run(
        self, texts: list[str], written_at: int, keep_warnings: bool = True
    ) -> list[Result]:
        """The texts as one multi-statement; an error after statement `written_at` ran
        (the write) is an `_AfterWrite`. A SHOW WARNINGS right after the write keeps its
        warnings (the image read after it would clear them)."""
        shown = keep_warnings and written_at < len(texts)
        if shown:
            texts = [*texts[: written_at + 1], "SHOW WARNINGS", *texts[written_at + 1 :]]
        try:
            results = await self.backend.query_results(";".join(texts))
        except StatementFailed as exc:
            if exc.index > written_at:
                raise _AfterWrite(exc) from None
            raise errors.BackendError(exc.code, exc.sqlstate, exc.message) from None
        if shown:
            self.warnings[:] = warning_tuples(results.pop(written_at + 1).rows)
        return results

    async def _execute(self) -> wire.OkInfo:
        """The write alone; its warnings kept before anything else runs."""
        ok = await self.backend.execute_ok(self.sql)
        if ok.warnings:
            self.warnings[:] = await self.backend.show_warnings()
        return ok


def _pk_condition(ast: exp.Expression, table: exp.Table, pk: list[str]) -> str | None:
    """`pk = literal AND ...` when the WHERE is a conjunction that fixes every primary-key
    column to a literal (so the write touches at most that one row); else None."""
    where = ast.args.get("where")
    if where is None or ast.args.get("order") is not None or ast.args.get("limit") is not None:
        return None
    wanted = {k.lower(): k for k in pk}
    names = {n.lower() for n in (table.name, table.alias) if n}
    found: dict[str, str] = {}
    for conjunct in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        if not isinstance(conjunct, exp.EQ):
            continue
        column, value = conjunct.this, conjunct.expression
        if isinstance(value, exp.Column):
            column, value = value, column
        if not isinstance(column, exp.Column) or column.name.lower() not in wanted:
            continue
        if column.table and column.table.lower() not in names:
            continue
        literal = value.this if isinstance(value, exp.Neg) else value
        if not isinstance(literal, exp.Literal):
            continue
        found.setdefault(column.name.lower(), mariadb_sql(value))
    if set(found) != set(wanted):
        return None
    return " AND ".join(f"{quote_identifier(wanted[k])} = {v}" for k, v in found.items())


def _check_imageable(ast: exp.Expression) -> None:
    """Refuses, before it runs, a write whose images AT mode cannot take exactly."""
    if isinstance(ast, exp.Insert) and (ast.args.get("conflict") or ast.args.get("alternative")):
        raise _refuse(
            "INSERT ... ON DUPLICATE KEY UPDATE / REPLACE", "its images cannot be taken exactly"
        )
    if isinstance(ast, exp.Insert) and ast.args.get("ignore"):
        raise _refuse("INSERT IGNORE", "rows it skips would look inserted to a rollback")
    if isinstance(ast, exp.Command) and str(ast.this).upper() == "REPLACE":
        raise _refuse("REPLACE", "its images cannot be taken exactly")
    if not isinstance(ast, (exp.Insert, exp.Update, exp.Delete)):
        what = str(ast.this).upper() if isinstance(ast, exp.Command) else type(ast).__name__.upper()
        raise _refuse(f"{what} inside a transaction")


def _split_time_zone(
    coldefs: list[bytes], rows: list[Row], tz_column: str
) -> tuple[list[bytes], list[Row], str | None]:
    """Takes the trailing @@session.time_zone column off an image read."""
    if not tz_column:
        return coldefs, rows, None
    time_zone = (rows[0][-1] or b"SYSTEM").decode() if rows else None
    return coldefs[:-1], [row[:-1] for row in rows], time_zone


def _columns(coldefs: list[bytes], info: TableInfo):
    columns = columns_of(coldefs)
    for column in columns:
        column.generated = column.name.lower() in info.generated
    return columns


def _inserted_rows(ast: exp.Insert, info: TableInfo) -> str | None:
    """Which rows an INSERT creates: a condition on the primary keys it names,
    or None when the (single, AUTO_INCREMENT) key is generated for every row.
    Refuses, before the INSERT runs, every form whose rows cannot be found exactly."""
    pk = [k.lower() for k in info.primary_key]
    schema = ast.this
    if isinstance(schema, exp.Schema):
        columns = [c.name.lower() for c in schema.expressions]
    else:
        columns = [c.lower() for c in info.columns]
    values = ast.expression
    if not isinstance(values, exp.Values):
        raise _refuse(
            "INSERT ... SELECT" if isinstance(values, exp.Select) else "this form of INSERT"
        )
    tuples = []
    generated = 0
    for row in values.expressions:
        items = row.expressions if isinstance(row, exp.Tuple) else [row]
        if len(items) != len(columns):
            raise _refuse("an INSERT whose values do not match its column list")
        key = []
        for k in pk:
            node = items[columns.index(k)] if k in columns else None
            if (
                node is None
                or isinstance(node, exp.Null)
                or (isinstance(node, exp.Var) and node.name.upper() == "DEFAULT")
            ):
                key = None
                break
            if not isinstance(node, (exp.Literal, exp.Neg)):
                raise _refuse("an INSERT whose primary key is not a literal")
            key.append(mariadb_sql(node))
        if key is None:
            generated += 1
        else:
            tuples.append("(" + ", ".join(key) + ")")
    if not generated:
        names = ", ".join(quote_identifier(k) for k in info.primary_key)
        return f"({names}) IN ({', '.join(tuples)})"
    if tuples or len(pk) != 1 or (info.auto_increment or "").lower() != pk[0]:
        raise _refuse(
            "an INSERT whose primary key is neither given for every row nor AUTO_INCREMENT"
        )
    return None


async def wait_for_global_locks(
    backend: Backend,
    ast: exp.Select,
    database: str | None,
    primary_keys: PrimaryKeys,
    wait: LockWait,
) -> None:
    """SELECT ... FOR UPDATE in AT mode: wait while another transaction holds a selected row.

    Only single-table locking reads are checked; plain reads never wait (AT reads
    are read-uncommitted across shards, as in Seata).
    """
    if not ast.args.get("locks"):
        return
    tables = [t for t in ast.find_all(exp.Table) if t.name]
    if len(tables) != 1:
        return
    table = tables[0]
    db = table.db or database
    if db is None:
        return
    pk = await primary_keys.get(backend, db, table.name)
    if not pk:
        return
    qualified = f"{quote_identifier(db)}.{quote_identifier(table.name)}"
    alias = f" AS {quote_identifier(table.alias)}" if table.alias else ""
    where = ast.args.get("where")
    clause = f" WHERE {mariadb_sql(where.this)}" if where is not None else ""
    columns = ", ".join(quote_identifier(k) for k in pk)
    # The selected rows stay locked (FOR UPDATE) while we wait, so no new holder can appear.
    _, rows = await backend.query_table(
        f"{IMAGE_READ}SELECT {columns} FROM {qualified}{alias}{clause} FOR UPDATE"
    )
    keys = [f"{qualified}:" + ",".join((v or b"").hex() for v in row) for row in rows]
    await wait.until_free(keys, None)


def _lock_keys(images: list[StatementImage]) -> list[str]:
    keys: list[str] = []
    seen: set[str] = set()
    for image in images:
        for key in image.lock_keys():
            if key not in seen:
                seen.add(key)
                keys.append(key)
    return keys


@dataclass(slots=True)
class LockWait:
    """How a transaction waits for other transactions' global locks on rows it holds.

    First the holders of this proxy (`local`): their completion is awaited, no polling.
    Then the lock rows on the shard, read on a fresh autocommit connection (`peek`):
    in the branch's own transaction a plain read sees a stale snapshot, and a locking
    read (or a failed insert of a held key) would make the holder's release wait for
    us while we wait for it. Those rows are other proxies' or crash leftovers; they
    are read again every `interval_ms`, `retries` times at most.
    """

    shard: str
    local: LocalLocks
    peek: Peek
    retries: int
    interval_ms: int

    def local_keys(self, keys: list[str]) -> list[str]:
        """Keys in the in-process table: a lock row's key is only unique per shard."""
        return [f"{self.shard}/{key}" for key in keys]

    @property
    def budget_s(self) -> float:
        return max(1, self.retries) * self.interval_ms / 1000

    async def until_free(self, keys: list[str], gtrid: str | None) -> None:
        """Returns once no other transaction holds a global lock on `keys`; else 1205/1213."""
        if not keys:
            return
        local_keys = self.local_keys(keys)
        await self.local.wait_free(local_keys, gtrid, self.budget_s)
        holder = ""
        mine = f" AND gtrid <> {_q(gtrid)}" if gtrid else ""
        for batch_start in range(0, len(keys), 500):
            wanted = ", ".join(_q(k) for k in keys[batch_start : batch_start + 500])
            for attempt in range(max(1, self.retries)):
                held = await self.peek(
                    f"SELECT lock_key, gtrid FROM {LOCKS} WHERE lock_key IN ({wanted}){mine} LIMIT 1"
                )
                if not held:
                    break
                holder = f"{held[0][0].decode('utf-8', 'replace')} held by {held[0][1].decode('utf-8', 'replace')}"
                if attempt + 1 < max(1, self.retries):
                    await asyncio.sleep(self.interval_ms / 1000)
                    await self.local.wait_free(local_keys, gtrid, self.budget_s)
            else:
                raise _lock_timeout(holder)


def _lock_timeout(holder: str) -> errors.ProxyError:
    # A BackendError, as the shard's own 1205 would be; the session ends the transaction.
    return errors.EndsTransaction(
        1205,
        "HY000",
        f"Lock wait timeout exceeded; try restarting transaction (xaproxy AT global lock {holder})",
    )


# --- phase 1: global locks, undo row, local commit ---------------------------------


async def check_locks(images: list[StatementImage], wait: LockWait) -> None:
    """A branch that commits without global locks of its own (the only writer, or the
    one whose local commit records the decision) must still not overwrite rows another
    AT transaction may roll back."""
    await wait.until_free(_lock_keys(images), None)


async def commit_branch(
    backend: Backend,
    gtrid: str,
    shard: str,
    images: list[StatementImage],
    wait: LockWait,
) -> Holder | None:
    """Phase one of a branch: its global lock rows, its undo row and its local commit,
    in one round trip, once no other transaction holds those locks.

    The branch holds the row locks of every row it changed, so once no other
    transaction's lock is seen for them none can appear before our insert. The keys
    are registered with this proxy's waiters before the lock rows commit.
    Returns the registration (None: no keys), which the caller releases.
    """
    keys = _lock_keys(images)
    await wait.until_free(keys, gtrid)
    holder = wait.local.hold(gtrid, wait.local_keys(keys)) if keys else None
    undo = (
        f"INSERT INTO {UNDO} (gtrid, shard, status, rollback_info) VALUES "
        f"({_q(gtrid)}, {_q(shard)}, {UNDO_NORMAL}, X'{encode_undo(images).hex()}')"
    )
    locks = (
        "SET STATEMENT innodb_lock_wait_timeout = 1 FOR "
        f"INSERT INTO {LOCKS} (lock_key, gtrid) VALUES "
        + ", ".join(f"({_q(k)}, {_q(gtrid)})" for k in keys)
    )
    text = tsql.join(locks, undo, tsql.COMMIT) if keys else tsql.join(undo, tsql.COMMIT)
    try:
        await backend.query_results(text)
    except StatementFailed as exc:
        if keys and exc.index == 0 and exc.code in (1062, 1205):
            # Another proxy's lock row appeared after all (1062 leaves us a share lock
            # on it, so its release would wait for us): this branch gives up.
            wait.local.release(holder)
            raise _lock_timeout(f"on {shard} (taken by another transaction meanwhile)") from None
        wait.local.release(holder)
        raise errors.BackendError(exc.code, exc.sqlstate, exc.message) from None
    except BaseException:
        wait.local.release(holder)
        raise
    return holder


async def release(backend: Backend, gtrid: str, shard: str | None = None) -> None:
    """Phase 2 after commit: the undo rows and global locks of `gtrid` on this shard go."""
    where_shard = f" AND shard = {_q(shard)}" if shard else ""
    # one local transaction: a crash never leaves lock rows without their undo row
    # (recovery finds work by its undo rows)
    await backend.execute_ok(
        tsql.join(
            tsql.START,
            f"DELETE FROM {UNDO} WHERE gtrid = {_q(gtrid)}{where_shard} AND status = {UNDO_NORMAL}",
            f"DELETE FROM {LOCKS} WHERE gtrid = {_q(gtrid)}",
            tsql.COMMIT,
        )
    )


# --- compensation -------------------------------------------------------------------


@dataclass(slots=True)
class Compensation:
    shard: str
    gtrid: str
    result: str  # "restored" | "nothing to undo" | "needs operator" | "defended"
    detail: str = ""


async def compensate(backend: Backend, gtrid: str, shard: str, force: bool = False) -> Compensation:
    """Undoes one branch's committed changes in one local transaction on its shard."""
    await backend.execute_ok(tsql.START)
    try:
        rows = await backend.query_rows(
            f"SELECT status, rollback_info FROM {UNDO} WHERE gtrid = {_q(gtrid)} AND shard = {_q(shard)} FOR UPDATE"
        )
        if not rows:
            # Nothing committed here (yet): make sure a late local commit cannot happen.
            await backend.execute_ok(
                f"INSERT IGNORE INTO {UNDO} (gtrid, shard, status, rollback_info) VALUES "
                f"({_q(gtrid)}, {_q(shard)}, {UNDO_DEFENSE}, '')"
            )
            await backend.execute_ok(
                tsql.then_commit(f"DELETE FROM {LOCKS} WHERE gtrid = {_q(gtrid)}")
            )
            return Compensation(shard, gtrid, "defended")
        status = int(rows[0][0] or b"0")
        if status == UNDO_DEFENSE:
            await backend.execute_ok(tsql.COMMIT)
            return Compensation(shard, gtrid, "defended")
        if status == UNDO_NEEDS_OPERATOR and not force:
            await backend.execute_ok(tsql.ROLLBACK)
            return Compensation(
                shard, gtrid, "needs operator", "data changed outside the transaction"
            )
        images = decode_undo(rows[0][1] or b"[]")
        changed = False
        for image in reversed(images):
            state, detail, current = await _compare(backend, image)
            if state == "after" or (force and state == "dirty"):
                statements = (
                    undo_statements(image)
                    if state == "after"
                    else restore_statements(image, current)
                )
                for statement in statements:
                    await backend.execute_ok(statement)
                changed = True
            elif state == "dirty":
                await backend.execute_ok(tsql.ROLLBACK)
                await backend.execute_ok(
                    f"UPDATE {UNDO} SET status = {UNDO_NEEDS_OPERATOR} WHERE gtrid = {_q(gtrid)} AND shard = {_q(shard)}"
                )
                log.error(
                    "AT rollback of %s on shard %s stopped: %s; the undo log and global locks are "
                    "kept until an operator runs XAPROXY RESOLVE",
                    gtrid,
                    shard,
                    detail,
                )
                return Compensation(shard, gtrid, "needs operator", detail)
        await backend.execute_ok(
            tsql.then_commit(
                f"DELETE FROM {UNDO} WHERE gtrid = {_q(gtrid)} AND shard = {_q(shard)}; "
                f"DELETE FROM {LOCKS} WHERE gtrid = {_q(gtrid)}"
            )
        )
        return Compensation(shard, gtrid, "restored" if changed else "nothing to undo")
    except BaseException:
        backend.usable = False  # an unfinished local transaction: the connection must not be reused
        raise


async def _compare(backend: Backend, image: StatementImage) -> tuple[str, str, list[Row]]:
    """'after' when the rows still hold the after image, 'before' when already undone, else
    'dirty'; with a description and the rows as they are now (locked until the end)."""
    rows = image.before + image.after
    _, current = await backend.query_table(
        f"{image.read_prefix()}SELECT * FROM {image.table} WHERE {where_pk(image, rows)} FOR UPDATE"
    )
    now = {image.key_of(r): r for r in current}
    after = {image.key_of(r): r for r in image.after}
    before = {image.key_of(r): r for r in image.before}
    if now == after:
        return "after", "", current
    if now == before:
        return "before", "", current
    changed = sorted(_show_key(k) for k in set(now) | set(after) if now.get(k) != after.get(k))
    return (
        "dirty",
        f"rows of {image.table} changed outside the transaction (primary keys {', '.join(changed[:5])})",
        current,
    )


def _show_key(key: tuple) -> str:
    return ",".join("NULL" if v is None else v.decode("utf-8", "replace") for v in key)
