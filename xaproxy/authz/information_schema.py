"""Reads of information_schema: only rows of the user's own schemas.

The shard account sees every database of the shard, other accounts' privileges
and every connection, and information_schema shows all of it; MariaDB would show
a client only what its own grants cover. The proxy cannot filter rows it relays
without rewriting the query, so it lets through exactly the queries whose rows
are its user's anyway:

- tables that describe the server, not its databases or accounts (character
  sets, collations, engines, keywords, SQL functions, variables, status);
- tables of per-schema metadata (SCHEMATA, TABLES, COLUMNS, ROUTINES, ...) when
  the WHERE of the SELECT that reads them holds, as one of its top-level AND
  terms, `<schema column> = '<granted schema>'`, `<schema column> IN (<granted
  schemas>)` or `<schema column> = DATABASE()` (with a granted current database);

and refuses the others (privilege tables, PROCESSLIST, InnoDB, plugins, statistics
of users, ...) with a message that says how to ask.
"""

from __future__ import annotations

from sqlglot import exp

from .. import errors
from ..analysis import Statement
from ..analysis.parse import parse
from ..config.model import BOOKKEEPING_DATABASE
from .grants import UserGrants

INFORMATION_SCHEMA = "information_schema"

# Tables that hold nothing of any database or account: readable as they are.
_SERVER_TABLES = frozenset(
    {
        "character_sets",
        "collations",
        "collation_character_set_applicability",
        "engines",
        "keywords",
        "sql_functions",
        "session_variables",
        "session_status",
        "global_variables",
        "global_status",
        "system_variables",
        "locales",
        "spatial_ref_sys",
        # MariaDB never fills these (MySQL's NDB / tablespace tables); mariadb-dump reads FILES
        "files",
        "tablespaces",
    }
)
# Tables of per-schema metadata, with the columns that name the schema of a row.
SCHEMA_COLUMNS: dict[str, tuple[str, ...]] = {
    "schemata": ("schema_name",),
    "tables": ("table_schema",),
    "columns": ("table_schema",),
    "statistics": ("table_schema",),
    "views": ("table_schema",),
    "triggers": ("trigger_schema", "event_object_schema"),
    "routines": ("routine_schema",),
    "parameters": ("specific_schema",),
    "events": ("event_schema",),
    "partitions": ("table_schema",),
    "table_constraints": ("constraint_schema", "table_schema"),
    "key_column_usage": ("constraint_schema", "table_schema"),
    "referential_constraints": ("constraint_schema",),
    "check_constraints": ("constraint_schema",),
    "table_statistics": ("table_schema",),
    "index_statistics": ("table_schema",),
    "geometry_columns": ("f_table_schema",),
}


def check_reads(statement: Statement, grants: UserGrants, current_db: str | None) -> None:
    """Raises ProxyError unless every information_schema table `statement` reads shows only
    rows the user may see (see the module docstring)."""
    parsed = parse(statement.effective)
    if parsed.ast is None:
        raise _refused(grants, "", "the proxy could not read the query")
    current = (current_db or "").lower()
    for table in parsed.ast.find_all(exp.Table):
        database = (table.db or current).lower()
        if database != INFORMATION_SCHEMA or not table.name:
            continue
        name = table.name.lower()
        if name in _SERVER_TABLES:
            continue
        columns = SCHEMA_COLUMNS.get(name)
        if columns is None:
            raise _refused(
                grants,
                table.name,
                "it describes the shard's accounts, connections or engine internals, not the "
                "user's schemas",
            )
        if not _restricted(table, columns, grants, current):
            granted = ", ".join(f"'{s}'" for s in sorted(grants.schemas)) or "none"
            raise _refused(
                grants,
                table.name,
                f"it would list other databases of the shard; add WHERE {columns[0].upper()} "
                f"= '<schema>' (or IN (...), or = DATABASE()) naming schemas the user is "
                f"granted ({granted})",
            )


def _refused(grants: UserGrants, table: str, why: str) -> errors.ProxyError:
    return errors.ProxyError(
        1142,
        "42000",
        f"SELECT command denied to user {grants.account} for table "
        f"`information_schema`.`{table.upper()}`: {why}",
    )


def _restricted(
    table: exp.Table, columns: tuple[str, ...], grants: UserGrants, current: str
) -> bool:
    """The WHERE of the SELECT reading `table` keeps only rows of granted schemas."""
    select = table.find_ancestor(exp.Select)
    if select is None:
        return False
    where = select.args.get("where")
    if where is None:
        return False
    alone = _sources(select) == 1
    names = {table.alias_or_name.lower()}
    for term in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        if _restricting_term(term, columns, names, alone, grants, current):
            return True
    return False


def _sources(select: exp.Select) -> int:
    from_ = select.args.get("from_")
    count = 1 if from_ is not None else 0
    return count + len(select.args.get("joins") or [])


def _restricting_term(
    term: exp.Expression,
    columns: tuple[str, ...],
    names: set[str],
    alone: bool,
    grants: UserGrants,
    current: str,
) -> bool:
    if isinstance(term, exp.Paren):
        term = term.this
    if isinstance(term, exp.EQ):
        column, value = term.this, term.expression
        if not isinstance(column, exp.Column):
            column, value = value, column
        values = [value]
    elif isinstance(term, exp.In) and not term.args.get("query"):
        column, values = term.this, list(term.expressions)
    else:
        return False
    if not isinstance(column, exp.Column) or column.name.lower() not in columns:
        return False
    qualifier = column.table.lower()
    if qualifier and qualifier not in names:
        return False
    if not qualifier and not alone:
        return False
    if column.args.get("db"):
        return False
    return bool(values) and all(_granted_value(v, grants, current) for v in values)


def _granted_value(value: exp.Expression, grants: UserGrants, current: str) -> bool:
    if isinstance(value, exp.CurrentSchema):
        schema = current
    elif isinstance(value, exp.Literal) and value.is_string:
        schema = value.this.lower()
    else:
        return False
    return schema in grants.schemas and schema not in (BOOKKEEPING_DATABASE, INFORMATION_SCHEMA, "")
