"""What the shard account may do, against what the proxy needs: least privilege, checked.

The proxy needs, on each shard: SELECT, INSERT, UPDATE, DELETE on every logical
schema (CREATE, ALTER, DROP, INDEX too where its users run DDL through it), and
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

from .. import errors
from ..config import Config, ShardConfig
from .backend import Backend

DATA = ("SELECT", "INSERT", "UPDATE", "DELETE")
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


async def check_account(shard: ShardConfig, schemas: list[str]) -> list[Finding]:
    """Connects to `shard` as the proxy does and reviews its account's privileges."""
    try:
        backend = await Backend.connect(shard, found_rows=False)
    except errors.ProxyError as exc:
        return [Finding(shard.name, "unreachable", exc.message)]
    try:
        global_rows = await backend.query_rows(
            "SELECT PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES"
        )
        schema_rows = await backend.query_rows(
            "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE "
            "FROM information_schema.SCHEMA_PRIVILEGES"
        )
    finally:
        backend.close()
    return review(
        shard.name,
        schemas,
        [(_text(p), _text(g) == "YES") for p, g in global_rows],
        [(_text(s), _text(p), _text(g) == "YES") for s, p, g in schema_rows],
    )


async def check_accounts(config: Config) -> list[Finding]:
    """Every shard's account against the schemas of the config."""
    schemas = [schema.name for schema in config.schemas.values()]
    found: list[Finding] = []
    for shard in config.shards.values():
        found += await check_account(shard, schemas)
    return found


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")
