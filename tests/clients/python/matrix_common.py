"""What the Python client scripts share: the scenario, the transcript, value normalization.

Each script prints one JSON object per step (tests/support/clientmatrix.py reads
them). Values are normalized to JSON with their Python type kept alongside, so a
driver that returns a str where direct MariaDB gives it a Decimal is a difference.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCENARIO = Path(__file__).resolve().parents[1] / "scenario.tsv"


def env() -> dict[str, Any]:
    """Connection parameters the harness passes in the environment."""
    return {
        "host": os.environ["XAP_HOST"],
        "port": int(os.environ["XAP_PORT"]),
        "user": os.environ["XAP_USER"],
        "password": os.environ["XAP_PASSWORD"],
        "database": os.environ["XAP_DATABASE"],
        "schema": os.environ.get("XAP_SCHEMA", "unsharded"),
        "workdir": os.environ.get("XAP_WORKDIR", "."),
    }


def scenario(placeholder: str = "%s") -> list[tuple[str, str, tuple | None]]:
    """The shared steps: (label, sql with ``placeholder`` for each ?, params or None)."""
    steps = []
    for line in SCENARIO.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        label, sql, *raw = line.split("\t")
        params = tuple(int(p[2:]) if p.startswith("i:") else p[2:] for p in raw)
        steps.append((label, sql.replace("?", placeholder), params if raw else None))
    return steps


def norm(value: Any) -> Any:
    """A JSON value for one column value; types that JSON lacks become tagged strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return f"float:{value!r}"
    if isinstance(value, decimal.Decimal):
        return f"decimal:{value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{type(value).__name__}:{bytes(value).hex()}"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time | datetime.timedelta):
        return f"{type(value).__name__}:{value}"
    if isinstance(value, dict):
        return {str(k): norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    return f"{type(value).__name__}:{value}"


def norm_rows(rows: Iterable[Any]) -> list[Any]:
    """Rows as lists (tuples, SQLAlchemy Rows), or dicts for dict cursors."""
    return [norm(row if isinstance(row, dict | str) else list(row)) for row in rows]


def error_info(exc: BaseException) -> dict[str, Any]:
    """Code and message of a driver error (every driver spells them differently)."""
    code = getattr(exc, "errno", None)
    message = getattr(exc, "msg", None)
    args = getattr(exc, "args", ())
    orig = getattr(exc, "orig", None)  # SQLAlchemy and Django wrap the driver's error
    if orig is not None and orig is not exc:
        return error_info(orig)
    cause = exc.__cause__
    if code is None and not args and cause is not None:
        return error_info(cause)
    if code is None and args and isinstance(args[0], int):
        code = args[0]
        message = args[1] if len(args) > 1 else message
    if code is None and cause is not None and hasattr(cause, "args"):
        return error_info(cause)
    return {"error": code, "message": str(message if message is not None else exc)}


def emit(label: str, **record: Any) -> None:
    """Prints one transcript step."""
    out = {"step": label, **record}
    sys.stdout.write(json.dumps(out, ensure_ascii=False, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def cursor_result(cur: Any) -> dict[str, Any]:
    """What a DB-API cursor holds after execute: rows and columns, or counts."""
    if cur.description:
        rows = cur.fetchall()
        return {
            "columns": [d[0] for d in cur.description],
            "rows": norm_rows(rows),
        }
    return {"affected": cur.rowcount, "insert_id": cur.lastrowid}


def step(label: str, cur: Any, sql: str, params: tuple | None = None) -> None:
    """Runs one statement on a DB-API cursor and emits what the client saw."""
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        emit(label, **cursor_result(cur))
    except Exception as exc:
        emit(label, **error_info(exc))


def run_scenario(cur: Any, placeholder: str = "%s", prefix: str = "") -> None:
    """The shared steps on one DB-API cursor."""
    for label, sql, params in scenario(placeholder):
        step(prefix + label, cur, sql, params)


def guarded(label: str, fn: Any) -> None:
    """Runs ``fn`` (which returns a dict of what it saw) and emits it, or its error."""
    try:
        emit(label, **(fn() or {}))
    except Exception as exc:
        emit(label, **error_info(exc))
