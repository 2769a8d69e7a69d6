"""What the shard account may do, against what the proxy needs: least privilege, checked.

The proxy needs, on each shard: SELECT, INSERT, UPDATE, DELETE and CREATE TEMPORARY
TABLES (the copies of tables a statement reads whole) on every logical schema
(CREATE, ALTER, DROP, INDEX too where its users run DDL through it), and
SELECT, INSERT, UPDATE, DELETE, CREATE on its bookkeeping database `xaproxy`
(decision, undo and lock tables). XA needs no privilege on MariaDB (an account
recovers the branches it prepared); MySQL 8 also needs XA_RECOVER_ADMIN.
Anything more (SUPER, FILE, CREATE USER, SHUTDOWN, GRANT OPTION, privileges on
*.* or on the `mysql` schema) is what a hostile client would want the proxy to
hold: `xaproxy check-config --connect` and the start-up log warn about it.

The privileges are read from information_schema (USER_PRIVILEGES,
SCHEMA_PRIVILEGES), which lists the current account's own, never parsed from
SHOW GRANTS text.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from .survey import ShardSurvey, survey

DATA = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE TEMPORARY TABLES")
DDL = ("CREATE", "ALTER", "DROP", "INDEX")
BOOKKEEPING = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE")
BOOKKEEPING_DATABASE = "xaproxy"
# global privileges that give a client of the proxy power over the server itself
DANGEROUS = frozenset(
    {"SUPER", "FILE", "CREATE USER", "SHUTDOWN", "RELOAD", "PROCESS", "BINLOG ADMIN"}
)
HARMLESS_GLOBAL = frozenset({"USAGE", "XA_RECOVER_ADMIN"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: `missing` stops the proxy working, `excess` is a risk."""

    shard: str
    kind: str  # "missing" | "excess" | "unreachable"
    message: str

    def __str__(self) -> str:
        label = {"missing": "ERROR", "excess": "WARNING", "unreachable": "ERROR"}[self.kind]
        return f"{label} shard {self.shard}: {self.message}"


def review(
    shard: str,
    schemas: list[str],
    global_rows: list[tuple[str, bool]],
    schema_rows: list[tuple[str, str, bool]],
) -> list[Finding]:
    """Compares an account's privileges with the proxy's needs (pure: rows in, findings out).

    `global_rows`: (privilege, grantable) on *.*; `schema_rows`: (schema, privilege,
    grantable). Schema names compare case-insensitively, as on a default server.
    """
    found: list[Finding] = []
    global_privileges = {p.upper() for p, _ in global_rows}
    on_schema: dict[str, set[str]] = {}
    for schema, privilege, _ in schema_rows:
        on_schema.setdefault(schema.lower(), set()).add(privilege.upper())
    for name, needed in [(s, DATA) for s in schemas] + [(BOOKKEEPING_DATABASE, BOOKKEEPING)]:
        held = on_schema.get(name.lower(), set()) | global_privileges
        missing = [p for p in needed if p not in held]
        if missing:
            found.append(Finding(shard, "missing", f"needs {', '.join(missing)} on `{name}`.*"))
    for privilege in sorted(global_privileges - HARMLESS_GLOBAL):
        why = "power over the server" if privilege in DANGEROUS else "reach beyond the schemas"
        found.append(
            Finding(
                shard,
                "excess",
                f"holds {privilege} on *.* ({why}); grant only what the proxy needs",
            )
        )
    if any(grantable for _, grantable in global_rows) or any(g for *_, g in schema_rows):
        found.append(Finding(shard, "excess", "holds GRANT OPTION; revoke it"))
    for schema in sorted(on_schema):
        if schema in ("mysql", "sys", "performance_schema"):
            found.append(Finding(shard, "excess", f"holds privileges on `{schema}`.*; revoke them"))
    return found


def review_survey(found: ShardSurvey, schemas: list[str]) -> list[Finding]:
    """The findings for one surveyed shard (an unreachable one is a finding too)."""
    if found.unreachable is not None:
        return [Finding(found.shard, "unreachable", found.unreachable)]
    return review(found.shard, schemas, found.global_privileges, found.schema_privileges)


async def check_accounts(config: Config, surveys: list[ShardSurvey] | None = None) -> list[Finding]:
    """Every shard's account against the schemas of the config (surveyed now unless given)."""
    schemas = [schema.name for schema in config.schemas.values()]
    if surveys is None:
        surveys = await survey(config)
    found: list[Finding] = []
    for one in surveys:
        found += review_survey(one, schemas)
    return found
