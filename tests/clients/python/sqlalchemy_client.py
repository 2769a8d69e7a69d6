"""SQLAlchemy 2 Core and ORM over PyMySQL (``mysql+pymysql``), or another URL scheme.

Usage: sqlalchemy_client.py [mysql+pymysql|mariadb+mysqldb|...]
Core: the shared steps through ``text()`` with bound parameters, ``engine.begin()``,
nested transactions (SAVEPOINT via ``begin_nested``), a failed statement inside a
transaction. ORM: add/flush/commit, query, update, delete, ``session.begin_nested``,
rollback, ``with_for_update``.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from matrix_common import emit, env, error_info, guarded, norm, norm_rows, scenario
from sqlalchemy import Integer, Numeric, String, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(40))
    qty: Mapped[int] = mapped_column(Integer)
    price: Mapped[Any] = mapped_column(Numeric(10, 2), nullable=True)


def core_step(conn: Any, label: str, sql: str, params: tuple | None) -> None:
    names: dict[str, Any] = {}
    if params:
        counter = iter(range(len(params)))
        sql = re.sub(r"\?", lambda _: f":p{next(counter)}", sql)
        names = {f"p{i}": v for i, v in enumerate(params)}
    try:
        result = conn.execute(text(sql), names)
        if result.returns_rows:
            emit(label, columns=list(result.keys()), rows=norm_rows(result.all()))
        else:
            emit(label, affected=result.rowcount)
    except DBAPIError as exc:
        emit(label, **error_info(exc))


def main(scheme: str) -> None:
    e = env()
    url = f"{scheme}://{e['user']}:{e['password']}@{e['host']}:{e['port']}/{e['database']}?charset=utf8mb4"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for label, sql, params in scenario("?"):
            core_step(conn, label, sql, params)

    tx_engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with tx_engine.connect() as conn:

        def begin_commit() -> dict[str, Any]:
            with conn.begin():
                conn.execute(text("UPDATE items SET qty = qty + 1 WHERE id IN (1, 2)"))
                conn.execute(
                    text("INSERT INTO items (id, name, qty, price) VALUES (20, 'core', 2, 2.00)")
                )
            return {}

        guarded("core.begin_commit", begin_commit)

        def nested() -> dict[str, Any]:
            with conn.begin():
                conn.execute(text("UPDATE items SET qty = 1000 WHERE id = 1"))
                sp = conn.begin_nested()
                conn.execute(text("UPDATE items SET qty = 2000 WHERE id = 2"))
                sp.rollback()
                sp2 = conn.begin_nested()
                conn.execute(text("UPDATE items SET qty = 3000 WHERE id = 3"))
                sp2.commit()
            rows = conn.execute(text("SELECT id, qty FROM items WHERE id <= 3 ORDER BY id")).all()
            conn.commit()
            return {"rows": norm_rows(rows)}

        guarded("core.begin_nested", nested)

        def failing() -> dict[str, Any]:
            info: dict[str, Any] = {}
            try:
                with conn.begin():
                    conn.execute(
                        text(
                            "INSERT INTO items (id, name, qty, price) VALUES (21, 'gone', 1, NULL)"
                        )
                    )
                    conn.execute(
                        text("INSERT INTO items (id, name, qty, price) VALUES (1, 'dup', 1, NULL)")
                    )
            except DBAPIError as exc:
                info = error_info(exc)
            rows = conn.execute(text("SELECT COUNT(*) FROM items WHERE id = 21")).all()
            conn.commit()
            return {**info, "rows": norm_rows(rows)}

        guarded("core.failed_transaction_rolls_back", failing)

    with Session(tx_engine) as session:

        def orm_crud() -> dict[str, Any]:
            session.add_all(
                [Item(id=40, name="orm40", qty=4, price="4.40"), Item(id=41, name="orm41", qty=4)]
            )
            session.commit()
            item = session.get(Item, 40)
            item.qty = 44
            session.commit()
            session.delete(session.get(Item, 41))
            session.commit()
            rows = session.execute(select(Item.id, Item.qty, Item.price).where(Item.id >= 40)).all()
            session.commit()
            return {"rows": norm_rows(rows)}

        guarded("orm.crud", orm_crud)

        def orm_nested() -> dict[str, Any]:
            info: dict[str, Any] = {}
            with session.begin():
                session.get(Item, 1).qty = 11
                try:
                    with session.begin_nested():
                        session.add(Item(id=2, name="dup", qty=1))
                except DBAPIError as exc:
                    info = error_info(exc)
                session.add(Item(id=42, name="orm42", qty=42))
            rows = session.execute(select(Item.id, Item.qty).where(Item.id.in_([1, 2, 42]))).all()
            session.commit()
            return {**info, "rows": norm_rows(sorted(rows))}

        guarded("orm.begin_nested_after_error", orm_nested)

        def orm_rollback() -> dict[str, Any]:
            session.add(Item(id=43, name="orm43", qty=43))
            session.flush()
            session.rollback()
            found = session.get(Item, 43)
            session.commit()
            return {"found": norm(found)}

        guarded("orm.flush_then_rollback", orm_rollback)

        def for_update() -> dict[str, Any]:
            with session.begin():
                rows = session.execute(
                    select(Item.id, Item.qty)
                    .where(Item.id.in_([1, 2]))
                    .order_by(Item.id)
                    .with_for_update()
                ).all()
                session.get(Item, 2).qty += 5
            return {"rows": norm_rows(rows)}

        guarded("orm.with_for_update", for_update)

    with engine.connect() as conn:
        core_step(conn, "end.items", "SELECT id, name, qty, price FROM items ORDER BY id", None)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mysql+pymysql")
