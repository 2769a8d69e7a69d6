"""Expressions whose value differs from one evaluation to the next.

A write that runs on several shards evaluates them once per shard: the copies
of a broadcast row would differ, and the rows of one multi-row INSERT split
over shards would get several NOW()s where one server gives one. Until the
proxy evaluates them once and writes the value everywhere, such writes are
refused.
"""

from __future__ import annotations

from sqlglot import exp

_VOLATILE_NODES: dict[type, str] = {
    exp.Rand: "RAND()",
    exp.Uuid: "UUID()",
    exp.CurrentTimestamp: "CURRENT_TIMESTAMP",
    exp.CurrentDate: "CURRENT_DATE",
    exp.CurrentTime: "CURRENT_TIME",
    exp.UtcTimestamp: "UTC_TIMESTAMP()",
    exp.UtcDate: "UTC_DATE()",
    exp.UtcTime: "UTC_TIME()",
}

_VOLATILE_NAMES = frozenset(
    {
        "NOW",
        "SYSDATE",
        "CURDATE",
        "CURTIME",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "CURRENT_TIMESTAMP",
        "CURRENT_TIME",
        "CURRENT_DATE",
        "UTC_TIMESTAMP",
        "UTC_DATE",
        "UTC_TIME",
        "UNIX_TIMESTAMP",
        "RAND",
        "RANDOM_BYTES",
        "UUID",
        "UUID_SHORT",
        "SYS_GUID",
        "CONNECTION_ID",
        "LAST_INSERT_ID",
        "NEXTVAL",
        "LASTVAL",
        "SETVAL",
        "ROW_COUNT",
        "FOUND_ROWS",
        "SLEEP",
        "BENCHMARK",
    }
)


def volatile_expression(ast: exp.Expression) -> str | None:
    """The first non-deterministic call in `ast` (as MariaDB spells it), else None."""
    for node in ast.walk():
        for cls, name in _VOLATILE_NODES.items():
            if isinstance(node, cls):
                return name
        if isinstance(node, exp.Anonymous) and str(node.name).upper() in _VOLATILE_NAMES:
            return f"{str(node.name).upper()}()"
        if isinstance(node, exp.Func) and node.sql_name().upper() in _VOLATILE_NAMES:
            return f"{node.sql_name().upper()}()"
    return None
