"""The metadata snapshot: which definition a table has, and why it has none when shards disagree."""

from __future__ import annotations

from dataclasses import replace

from xaproxy.metadata.model import Catalog, Column, TableMetadata, TableState


def column(name: str, type_: str = "int(11)", **flags: object) -> Column:
    return Column(
        name=name,
        type=type_,
        charset=flags.get("charset"),  # type: ignore[arg-type]
        collation=flags.get("collation"),  # type: ignore[arg-type]
        nullable=bool(flags.get("nullable", False)),
        default=flags.get("default"),  # type: ignore[arg-type]
        generated=bool(flags.get("generated", False)),
        auto_increment=bool(flags.get("auto_increment", False)),
        invisible=bool(flags.get("invisible", False)),
    )


BASE = TableMetadata(
    "shop",
    "t",
    (column("id", auto_increment=True), column("k"), column("v", "varchar(10)", invisible=True)),
    primary_key=("id",),
    unique_keys=(("k", "v"),),
)


def state(**per_shard: TableMetadata | None) -> TableState:
    return TableState("shop", "t", tuple(per_shard), per_shard)


def test_equal_copies_give_one_definition_with_insert_columns_and_keys() -> None:
    table = state(s0=BASE, s1=BASE)
    assert table.problem is None and table.definition is BASE
    assert [c.name for c in BASE.insert_columns] == ["id", "k"]
    assert BASE.auto_increment == "id"
    assert BASE.all_unique_keys == (("id",), ("k", "v"))
    assert BASE.column("K") is BASE.columns[1]


def test_the_first_difference_is_named_column_by_column_then_keys() -> None:
    swapped = replace(BASE, columns=(BASE.columns[1], BASE.columns[0], BASE.columns[2]))
    assert BASE.first_difference(swapped) == "column 1 is 'id' vs 'k'"
    collated = replace(
        BASE,
        columns=(*BASE.columns[:2], replace(BASE.columns[2], collation="utf8mb4_bin")),
    )
    assert BASE.first_difference(collated) == (
        "column 'v': varchar(10) not null invisible vs varchar(10) collate utf8mb4_bin "
        "not null invisible"
    )
    assert BASE.first_difference(replace(BASE, primary_key=("k",))) == ("primary key (id) vs (k)")
    assert BASE.first_difference(replace(BASE, columns=BASE.columns[:2])) == "3 columns vs 2"


def test_differing_missing_or_unread_copies_leave_no_definition() -> None:
    other = replace(BASE, unique_keys=())
    assert state(s0=BASE, s1=other).problem == (
        "differs between s0 and s1: unique keys [(k, v)] vs []"
    )
    assert state(s0=BASE, s1=None).problem == "exists on s0 but is absent on s1"
    absent = state(s0=None, s1=None)
    assert absent.absent and absent.definition is None
    unread = TableState("shop", "t", ("s0", "s1"), {"s0": BASE}, unread=("s1",))
    assert unread.problem == "could not be read from s1" and not unread.absent


def test_the_catalog_finds_tables_in_any_case() -> None:
    catalog = Catalog.of([state(s0=BASE)])
    assert catalog.table("SHOP", "T") is not None
    assert Catalog().table("shop", "t") is None and Catalog().read_at is None
