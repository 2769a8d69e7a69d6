"""Where a LOAD DATA|XML LOCAL INFILE runs: on its table's shard, or staged.

An unsharded table is loaded by its shard as the client asked, the file relayed to it
(`Route`). A sharded or broadcast table cannot be: its rows belong to several shards,
and only MariaDB reads the file exactly (its format options, character set, SET
clause). One shard loads it into a temporary table, and the rows are inserted from
there (`LoadStaged`, session/load_data.py).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import errors
from ..analysis import Statement
from ..analysis.load_data import parse
from ..config.model import Config
from . import plan
from .plan import Plan


def route_load_data(
    config: Config,
    statement: Statement,
    database: str | None,
    default_shard: Callable[[str | None], str],
    *,
    staged: bool = False,
) -> Plan:
    """The plan of a LOAD ... LOCAL INFILE statement (`default_shard`: of a database);
    `staged`: an unsharded table's too (AT mode)."""
    sql = statement.effective
    load = parse(statement)
    db = load.database or database
    if db is None:
        raise errors.no_database_selected()
    schema = config.schema(db)
    table = schema.table(load.table) if schema is not None else None
    placed = table is not None and (table.sharded or table.broadcast)
    shards = table.shards if table is not None else (default_shard(db),)
    if not placed and not staged:
        why = "LOAD DATA LOCAL: the table's shard"
        return Plan(sql, plan.Route(shards[0], write=True, why=why))
    if load.partition:
        where = "sharded or broadcast table" if placed else "in AT mode, table"
        raise errors.not_supported(
            f"LOAD DATA ... PARTITION into {where} '{db}.{load.table}'",
            "leave PARTITION out: the proxy places each row by its shard key",
        )
    root = plan.LoadStaged(
        database=db,
        table=table.name if table is not None else load.table,
        targets=shards,
        staging=shards[0],
        duplicates=load.duplicates,
        columns=load.columns,
        set_targets=load.set_targets,
        load_head=sql[: load.table_start],
        load_middle=sql[load.table_end : load.list_start],
        load_list=sql[load.list_start : load.list_end],
        load_tail=sql[load.list_end :],
        variables=tuple(sorted(load.variables)),
    )
    return Plan(sql, root)
