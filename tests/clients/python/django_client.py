"""Django's ORM over mysqlclient: ``migrate``, CRUD, ``transaction.atomic`` nested,
``select_for_update``, ``bulk_create`` (with RETURNING on MariaDB for auto ids),
get_or_create/update_or_create, and errors (IntegrityError, a raw syntax error).

The test runner's own databases (`test_<name>`) are made and dropped as `manage.py test`
does (the proxy's shard map must hold `test_<name>` like the database itself).

Usage: django_client.py [mysql]   (the ENGINE is django.db.backends.mysql)
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from matrix_common import emit, env, error_info, guarded, norm_rows

e = env()
settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": e["database"],
            "USER": e["user"],
            "PASSWORD": e["password"],
            "HOST": e["host"],
            "PORT": e["port"],
            "OPTIONS": {"charset": "utf8mb4"},
        }
    },
    INSTALLED_APPS=["matrixapp"],
    USE_TZ=False,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.db.models import Count, F, Sum  # noqa: E402
from matrixapp.models import Item, Note  # noqa: E402


def items() -> list[Any]:
    return norm_rows(Item.objects.order_by("id").values_list("id", "name", "qty", "price"))


def migrate() -> dict[str, Any]:
    call_command("migrate", "matrixapp", verbosity=0, interactive=False)
    with connection.cursor() as cur:
        cur.execute("SELECT app, name FROM django_migrations ORDER BY id")
        applied = norm_rows(cur.fetchall())
    return {"applied": applied, "tables": sorted(connection.introspection.table_names())}


def create() -> dict[str, Any]:
    Item.objects.create(id=1, name="apple", qty=10, price="1.50")
    Item.objects.create(id=2, name="pear", qty=20, price="2.25")
    Item.objects.create(id=3, name="plum", qty=30)
    note = Note.objects.create(body="first")
    return {"note_id": note.id, "items": items()}


def nested_atomic() -> dict[str, Any]:
    caught = None
    with transaction.atomic():
        Item.objects.filter(id=1).update(qty=111)
        try:
            with transaction.atomic():
                Item.objects.filter(id=2).update(qty=222)
                Item.objects.create(id=3, name="dup", qty=1)
        except IntegrityError as exc:
            caught = error_info(exc)
        with transaction.atomic():
            Item.objects.filter(id=3).update(qty=333)
    return {"caught": caught, "items": items()}


def outer_rollback() -> dict[str, Any]:
    try:
        with transaction.atomic():
            Item.objects.filter(id__in=[1, 2]).update(qty=0)
            Item.objects.create(id=8, name="date", qty=80)
            raise RuntimeError("abort transfer")
    except RuntimeError as exc:
        message = str(exc)
    return {"message": message, "items": items()}


def select_for_update() -> dict[str, Any]:
    with transaction.atomic():
        locked = norm_rows(
            Item.objects.select_for_update()
            .filter(id__in=[1, 2])
            .order_by("id")
            .values_list("id", "qty")
        )
        Item.objects.filter(id=2).update(qty=F("qty") + 5)
    return {"locked": locked, "items": items()}


def bulk() -> dict[str, Any]:
    made = Item.objects.bulk_create(
        [Item(id=i, name=f"b{i}", qty=i, price="9.99") for i in (30, 31, 32)]
    )
    notes = Note.objects.bulk_create([Note(body="n1"), Note(body="n2")])
    return {"items": [m.id for m in made], "note_ids": [n.id for n in notes]}


def get_or_create() -> dict[str, Any]:
    _, created = Item.objects.get_or_create(id=40, defaults={"name": "goc", "qty": 4})
    _, created_again = Item.objects.get_or_create(id=40, defaults={"name": "other", "qty": 5})
    upd, created_upd = Item.objects.update_or_create(id=40, defaults={"qty": 44})
    return {"created": [created, created_again, created_upd], "qty": upd.qty}


def raw_syntax_error() -> dict[str, Any]:
    with connection.cursor() as cur:
        cur.execute("SELEC 1")
    return {}


def test_runner() -> dict[str, Any]:
    """What `manage.py test` does around the tests: CREATE DATABASE test_<name> over a
    connection without a database (1007 when it is left over: DROP and CREATE again),
    migrate into it, run the tests there, DROP it; then the real database again."""
    from django.test.utils import setup_databases, teardown_databases

    real = connection.settings_dict["NAME"]
    seen: dict[str, Any] = {}
    for attempt in ("fresh", "left_over"):
        old = setup_databases(verbosity=0, interactive=False, serialized_aliases=[])
        seen[attempt] = {"database": connection.settings_dict["NAME"]}
        Item.objects.create(id=1, name="in test db", qty=1)
        with transaction.atomic():
            Item.objects.filter(id=1).update(qty=F("qty") + 1)
        seen[attempt]["items"] = items()
        if attempt == "fresh":
            # leave it behind, as an interrupted run does; the next setup finds it (1007)
            connection.close()
            connection.settings_dict["NAME"] = real
            continue
        teardown_databases(old, verbosity=0)
    with connection.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", [f"test\\_{real}"])
        seen["test_database_left"] = norm_rows(cur.fetchall())
    seen["back_in"] = connection.settings_dict["NAME"]
    seen["items"] = items()
    return seen


def main() -> None:
    guarded("migrate", migrate)
    guarded("orm.create", create)
    guarded(
        "orm.filter",
        lambda: {
            "rows": norm_rows(
                Item.objects.filter(qty__gte=20).order_by("-id").values_list("id", "name")
            )
        },
    )
    guarded(
        "orm.update", lambda: {"n": Item.objects.filter(id__in=[1, 2]).update(qty=F("qty") + 1)}
    )
    guarded(
        "orm.aggregate",
        lambda: {
            k: str(v) for k, v in Item.objects.aggregate(n=Count("id"), total=Sum("qty")).items()
        },
    )
    guarded("orm.count_by_shard_key", lambda: {"n": Item.objects.filter(id=2).count()})
    guarded("orm.delete", lambda: {"deleted": list(Item.objects.filter(id=3).delete())})
    guarded("orm.recreate", lambda: {"id": Item.objects.create(id=3, name="plum", qty=30).id})
    guarded("atomic.nested", nested_atomic)
    guarded("atomic.outer_rollback", outer_rollback)
    guarded("atomic.select_for_update", select_for_update)
    guarded("orm.bulk_create", bulk)
    guarded("orm.get_or_create", get_or_create)
    guarded("err.integrity", lambda: {"id": Item.objects.create(id=1, name="dup", qty=1).id})
    guarded("err.syntax", raw_syntax_error)
    guarded("err.after", lambda: {"n": Item.objects.count()})
    guarded("final.items", lambda: {"rows": items()})
    guarded(
        "final.notes",
        lambda: {
            "rows": norm_rows(Note.objects.order_by("id").values_list("id", "body", "pinned"))
        },
    )
    guarded("test_runner", test_runner)
    emit("final.in_atomic_block", value=connection.in_atomic_block)


if __name__ == "__main__":
    main()
