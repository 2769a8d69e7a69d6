"""The scenario through an asyncio driver: aiomysql or asyncmy.

Usage: async_client.py aiomysql|asyncmy
After the shared steps: the driver's begin()/commit()/rollback(), executemany,
and a pool (two connections, a transaction on one while the other reads).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

from matrix_common import emit, env, error_info, norm_rows, scenario


async def step(label: str, cur: Any, sql: str, params: tuple | None = None) -> None:
    try:
        await cur.execute(sql, params)
        if cur.description:
            rows = await cur.fetchall()
            emit(label, columns=[d[0] for d in cur.description], rows=norm_rows(rows))
        else:
            emit(label, affected=cur.rowcount, insert_id=cur.lastrowid)
    except Exception as exc:
        emit(label, **error_info(exc))


async def guarded(label: str, coro: Any) -> None:
    try:
        result = await coro
        emit(label, **(result if isinstance(result, dict) else {}))
    except Exception as exc:
        emit(label, **error_info(exc))


async def cursor(conn: Any) -> Any:
    """aiomysql's cursor() is awaitable, asyncmy's returns the cursor itself."""
    cur = conn.cursor()
    return await cur if inspect.isawaitable(cur) else cur


def params(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": e["host"],
        "port": e["port"],
        "user": e["user"],
        "password": e["password"],
        "db": e["database"],
        "charset": "utf8mb4",
        "autocommit": True,
    }


async def main(driver: str) -> None:
    e = env()
    lib: Any
    if driver == "aiomysql":
        import aiomysql as lib
    else:
        import asyncmy as lib
    try:
        conn = await lib.connect(**params(e))
    except Exception as exc:
        emit("connect.open", **error_info(exc))
        return
    emit("connect.open")
    cur = await cursor(conn)
    for label, sql, args in scenario():
        await step(label, cur, sql, args)

    await guarded("helper.begin", conn.begin())
    await step(
        "helper.insert_then_rollback",
        cur,
        "INSERT INTO items (id, name, qty, price) VALUES (20, 'rolled', 1, NULL)",
    )
    await guarded("helper.rollback", conn.rollback())
    await guarded("helper.begin_again", conn.begin())
    await step(
        "helper.insert_then_commit",
        cur,
        "INSERT INTO items (id, name, qty, price) VALUES (21, 'kept', 1, NULL)",
    )
    await step("helper.update_other_shard", cur, "UPDATE items SET qty = qty + 1 WHERE id = 2")
    await guarded("helper.commit", conn.commit())
    await step("helper.check", cur, "SELECT id, qty FROM items WHERE id IN (2, 20, 21) ORDER BY id")

    async def executemany() -> dict[str, Any]:
        await cur.executemany(
            "INSERT INTO items (id, name, qty, price) VALUES (%s, %s, %s, %s)",
            [(30, "a30", 3, "3.30"), (31, "a31", 3, None), (32, "a32", 3, "3.32")],
        )
        return {"affected": cur.rowcount}

    await guarded("helper.executemany", executemany())
    closing = cur.close()
    if inspect.isawaitable(closing):
        await closing
    conn.close()

    async def pooled() -> dict[str, Any]:
        pool = await lib.create_pool(minsize=1, maxsize=2, **params(e))
        try:
            async with (
                pool.acquire() as a,
                pool.acquire() as b,
                a.cursor() as ca,
                b.cursor() as cb,
            ):
                await a.begin()
                await ca.execute("UPDATE items SET qty = 999 WHERE id IN (1, 2)")
                await cb.execute("SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id")
                other = await cb.fetchall()
                await a.rollback()
                await cb.execute("SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id")
                after = await cb.fetchall()
            return {"other_during": norm_rows(other), "after_rollback": norm_rows(after)}
        finally:
            pool.close()
            await pool.wait_closed()

    await guarded("pool.isolation", pooled())

    conn = await lib.connect(**params(e))
    cur = await cursor(conn)
    await step("final.other_connection", cur, "SELECT id, qty FROM items ORDER BY id")
    conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
