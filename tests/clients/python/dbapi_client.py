"""The scenario through a synchronous DB-API driver: PyMySQL, mysqlclient or mysql-connector.

Usage: dbapi_client.py pymysql|mysqldb|connector_pure|connector_cext
The shared steps run with autocommit on; the driver's own transaction API
(autocommit(False)/commit/rollback, PyMySQL's begin(), Connector's
start_transaction()), executemany and, for mysql-connector, server-side prepared
statements (cursor(prepared=True)) follow.
"""

from __future__ import annotations

import sys
from typing import Any

from matrix_common import emit, env, error_info, guarded, run_scenario, step


def connect(driver: str) -> Any:
    e = env()
    if driver == "pymysql":
        import pymysql

        return pymysql.connect(
            host=e["host"],
            port=e["port"],
            user=e["user"],
            password=e["password"],
            database=e["database"],
            charset="utf8mb4",
            autocommit=True,
        )
    if driver == "mysqldb":
        import MySQLdb

        return MySQLdb.connect(
            host=e["host"],
            port=e["port"],
            user=e["user"],
            password=e["password"],
            database=e["database"],
            charset="utf8mb4",
            autocommit=True,
        )
    import mysql.connector

    conn = mysql.connector.connect(
        host=e["host"],
        port=e["port"],
        user=e["user"],
        password=e["password"],
        database=e["database"],
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
        use_pure=(driver == "connector_pure"),
        autocommit=True,
    )
    assert (type(conn).__name__ == "CMySQLConnection") == (driver == "connector_cext"), type(conn)
    return conn


def set_autocommit(conn: Any, on: bool) -> None:
    if callable(getattr(conn, "autocommit", None)):
        conn.autocommit(on)
    else:
        conn.autocommit = on


def main(driver: str) -> None:
    try:
        conn = connect(driver)
    except Exception as exc:
        emit("connect.open", **error_info(exc))
        return
    emit("connect.open")
    cur = conn.cursor()
    run_scenario(cur)

    # The library's own transaction helpers.
    guarded("helper.autocommit_off", lambda: set_autocommit(conn, False))
    step(
        "helper.insert_then_rollback",
        cur,
        "INSERT INTO items (id, name, qty, price) VALUES (20, 'rolled', 1, NULL)",
    )
    guarded("helper.rollback", conn.rollback)
    step(
        "helper.insert_then_commit",
        cur,
        "INSERT INTO items (id, name, qty, price) VALUES (21, 'kept', 1, NULL)",
    )
    step("helper.update_other_shard", cur, "UPDATE items SET qty = qty + 1 WHERE id = 2")
    guarded("helper.commit", conn.commit)
    guarded("helper.autocommit_on", lambda: set_autocommit(conn, True))
    step("helper.check", cur, "SELECT id, qty FROM items WHERE id IN (2, 20, 21) ORDER BY id")
    if driver == "pymysql":
        guarded("helper.begin", conn.begin)
        step(
            "helper.begin_insert",
            cur,
            "INSERT INTO items (id, name, qty, price) VALUES (22, 'begun', 1, NULL)",
        )
        guarded("helper.begin_rollback", conn.rollback)
    if driver.startswith("connector"):
        guarded("helper.start_transaction", conn.start_transaction)
        step(
            "helper.begin_insert",
            cur,
            "INSERT INTO items (id, name, qty, price) VALUES (22, 'begun', 1, NULL)",
        )
        guarded("helper.begin_rollback", conn.rollback)
        guarded("helper.in_transaction", lambda: {"value": conn.in_transaction})
    step("helper.check_rolled_back", cur, "SELECT COUNT(*) FROM items WHERE id = 22")

    def executemany() -> dict[str, Any]:
        cur.executemany(
            "INSERT INTO items (id, name, qty, price) VALUES (%s, %s, %s, %s)",
            [(30, "a30", 3, "3.30"), (31, "a31", 3, None), (32, "a32", 3, "3.32")],
        )
        return {"affected": cur.rowcount}

    guarded("helper.executemany", executemany)

    if driver.startswith("connector"):
        prepared = conn.cursor(prepared=True)
        step("prepared.select", prepared, "SELECT id, name, price FROM items WHERE id = %s", (2,))
        step(
            "prepared.reexecute", prepared, "SELECT id, name, price FROM items WHERE id = %s", (7,)
        )
        step(
            "prepared.insert",
            prepared,
            "INSERT INTO items (id, name, qty, price) VALUES (%s, %s, %s, %s)",
            (40, "prep", 4, "4.40"),
        )
        step("prepared.limit", prepared, "SELECT id FROM items ORDER BY id LIMIT %s", (3,))
        step(
            "prepared.duplicate",
            prepared,
            "INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)",
            (1, "dup", 1),
        )
        step("prepared.after_error", prepared, "SELECT COUNT(*) FROM items WHERE id > %s", (0,))
        prepared.close()

    step("end.items", cur, "SELECT * FROM items ORDER BY id")
    cur.close()
    conn.close()
    other = connect(driver)
    step("final.other_connection", other.cursor(), "SELECT id, qty FROM items ORDER BY id")
    other.close()


if __name__ == "__main__":
    main(sys.argv[1])
