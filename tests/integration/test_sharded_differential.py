"""Differential test: sharded tables behind the proxy answer exactly as one database does.

Schema ``diff`` is spread over the shards by every algorithm (mod, hash, range,
list), plus a broadcast and an unsharded table, and a binding group of two mod
tables. The same tables and the same rows live in ``diff_ref``, one plain
database on s0 reached directly. Hypothesis generates SELECTs (key and non-key
filters, ORDER BY/LIMIT/OFFSET, GROUP BY with aggregates and HAVING, DISTINCT,
COUNT(DISTINCT), joins with the broadcast table and between bound tables) and
writes (multi-row INSERT across shards, upserts, UPDATE, DELETE, alone or in
a transaction that commits or rolls back); each runs on both sides and the
answers must be equal: same column names and types, same rows, in the same
order where ORDER BY fixes it. The SELECTs run once as text and once as
server-side prepared statements (binary rows). Where a group's string is any of
several collation-equal values (GROUP BY name, DISTINCT, MIN(name)) the values
are compared by collation class, since either server may pick any of them.

A statement the proxy cannot run must fail with a clean MySQL error, and only
for the shapes it documents as unsupported (each generated query lists the
refusals it may get); anything else is a failure. Run with -s for statistics.

Environment knobs: XAPROXY_DIFF_EXAMPLES, XAPROXY_DIFF_PREPARED_EXAMPLES and
XAPROXY_DIFF_WRITE_EXAMPLES change the example counts, XAPROXY_DIFF_RANDOM=1
explores new random examples instead of the fixed (derandomized) ones CI runs.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mysql.connector
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.constants import CLIENT

from xaproxy.devkit.localshards import LocalCluster
from xaproxy.devkit.processes import ProxyProcess, proxy_config

SCHEMA = "diff"
REF = "diff_ref"
USER, PASSWORD = "app", "app-secret"
SEED = 20240601

READ_EXAMPLES = int(os.environ.get("XAPROXY_DIFF_EXAMPLES", "1200"))
PREPARED_EXAMPLES = int(os.environ.get("XAPROXY_DIFF_PREPARED_EXAMPLES", "300"))
WRITE_EXAMPLES = int(os.environ.get("XAPROXY_DIFF_WRITE_EXAMPLES", "200"))
DERANDOMIZE = os.environ.get("XAPROXY_DIFF_RANDOM", "") != "1"
# shapes whose refused statements are printed (comma-separated), to see what is refused
SHOW_REFUSED = frozenset(filter(None, os.environ.get("XAPROXY_DIFF_SHOW_REFUSED", "").split(",")))

STRING_HASH = {"t_hstr_g": "utf8mb4_general_ci", "t_hstr_u": "utf8mb4_unicode_ci"}
SHARDED = ("t_mod", "t_modb", "t_hash", "t_range", "t_list", *STRING_HASH)
ROW_TABLES = (*SHARDED, "t_plain")
BROADCAST = "t_bcast"
ALL_TABLES = (*ROW_TABLES, BROADCAST)
SHARDS = ("s0", "s1", "s2")
HASH_SHARDS = ("s0", "s1")
RANGE_BOUNDS: tuple[tuple[int | None, str], ...] = (
    (100, "s0"),
    (200, "s1"),
    (300, "s2"),
    (None, "s0"),
)
LIST_VALUES = {"s0": (1, 2, 3), "s1": (4, 5, 6), "s2": (7, 8, 9, 10)}

TABLES_CONFIG: list[dict[str, Any]] = [
    {"name": "t_mod", "shard_key": "k", "algorithm": "mod", "binding": "g_mod"},
    {"name": "t_modb", "shard_key": "k", "algorithm": "mod", "binding": "g_mod"},
    {
        "name": "t_hash",
        "shard_key": "k",
        "algorithm": "hash",
        "shards": list(HASH_SHARDS),
        "key_type": "integer",
    },
    {
        "name": "t_range",
        "shard_key": "k",
        "algorithm": "range",
        "ranges": [
            {"shard": shard, **({} if below is None else {"below": below})}
            for below, shard in RANGE_BOUNDS
        ],
    },
    {
        "name": "t_list",
        "shard_key": "k",
        "algorithm": "list",
        "values": {shard: list(values) for shard, values in LIST_VALUES.items()},
    },
    *(
        {"name": table, "shard_key": "k", "algorithm": "hash", "shards": list(HASH_SHARDS)}
        for table in STRING_HASH
    ),
    {"name": BROADCAST, "broadcast": True},
]

ROW_DDL = """CREATE TABLE {table} (
    id INT NOT NULL PRIMARY KEY,
    k {key_type} NOT NULL,
    name VARCHAR(20) NOT NULL,
    n INT NULL,
    amount DECIMAL(10,2) NULL,
    at DATETIME NOT NULL,
    KEY (k)
) ENGINE=InnoDB"""
BCAST_DDL = """CREATE TABLE t_bcast (
    code INT NOT NULL PRIMARY KEY,
    label VARCHAR(20) NOT NULL,
    weight DECIMAL(10,2) NULL
) ENGINE=InnoDB"""

# Mixed case, accents, trailing spaces and ß: ties under utf8mb4_general_ci.
NAMES = (
    "apple", "Apple", "APPLE", "apple ", "apfel", "Äpfel", "äpfel", "banana", "Banana",
    "b", "B", "", "straße", "strase", "zebra", "Zebra ", "ümlaut", "Umlaut", "a\tb", "a b",
    "x\t", "X", "it's", "back\\slash", "nl\nhere",
)  # fmt: skip
# String shard keys: accents, case, ß/ss, dotless i, trailing spaces, digits, beyond the BMP.
STRING_KEYS = (
    "José", "jose", "JOSE", "Straße", "strasse", "STRASSE", "K\u0131ra", "kira", "KIRA",
    "abc", "abc ", "ABC", "7", "07", "7abc", "0", "x", "X ", "\u00e6", "ae", "\u00c5ngstr\u00f6m",
    "angstrom", "\U0001f600",
)  # fmt: skip
ESCAPED = tuple(name for name in NAMES if any(c in name for c in "\t\n\\'"))
ROW_COUNTS = {
    "t_mod": 160,
    "t_modb": 200,
    "t_hash": 120,
    "t_range": 150,
    "t_list": 80,
    "t_plain": 40,
    "t_hstr_g": 100,
    "t_hstr_u": 100,
}
BCAST_ROWS = 12
BASE_TIME = datetime.datetime(2024, 1, 1)


def key_domain(table: str) -> list[Any]:
    if table in STRING_HASH:
        return list(STRING_KEYS)
    if table in ("t_mod", "t_modb"):
        return list(range(-5, 30))
    if table == "t_hash":
        return [*range(0, 40), *(10**12 + i for i in range(4))]
    if table == "t_range":
        return list(range(-20, 400))
    if table == "t_list":
        return list(range(1, 11))
    return list(range(0, 20))


def expected_shard(table: str, key: int) -> str:
    """Where the shard map puts a row, computed independently of the proxy."""
    if table in ("t_mod", "t_modb"):
        return SHARDS[key % 3]
    if table == "t_hash":
        return HASH_SHARDS[zlib.crc32(str(key).encode()) % 2]
    if table == "t_range":
        for below, shard in RANGE_BOUNDS:
            if below is None or key < below:
                return shard
    if table == "t_list":
        return next(s for s, values in LIST_VALUES.items() if key in values)
    return "s0"


# --- SQL text ---------------------------------------------------------------------------


def lit(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "''")
        return "'" + escaped.replace("\t", "\\t").replace("\n", "\\n") + "'"
    if isinstance(value, datetime.datetime):
        return f"'{value:%Y-%m-%d %H:%M:%S}'"
    return str(value)


def random_row(rng: random.Random, table: str, row_id: int) -> tuple:
    n = None if rng.random() < 0.25 else rng.randint(-3, 20)
    amount = None if rng.random() < 0.15 else f"{rng.randint(-5000, 50000) / 100:.2f}"
    hours = rng.choice((0, 0, 0, 6, 12, 18, rng.randint(0, 23)))  # many at midnight: date ties
    at = BASE_TIME + datetime.timedelta(
        days=rng.randint(0, 20), hours=hours, minutes=rng.choice((0, 0, 30))
    )
    return (row_id, rng.choice(key_domain(table)), rng.choice(NAMES), n, amount, at)


def row_values(row: tuple) -> str:
    return (
        "("
        + ", ".join("NULL" if v is None else (v if i == 4 else lit(v)) for i, v in enumerate(row))
        + ")"
    )


def insert_sql(table: str, rows: list[tuple]) -> str:
    return f"INSERT INTO {table} (id, k, name, n, amount, at) VALUES " + ", ".join(
        row_values(r) for r in rows
    )


def bcast_insert_sql(rows: list[tuple]) -> str:
    values = ", ".join(f"({code}, {lit(label)}, {lit(weight)})" for code, label, weight in rows)
    return f"INSERT INTO {BROADCAST} (code, label, weight) VALUES {values}"


# --- the two sides ------------------------------------------------------------------------


class Side:
    """One PyMySQL connection: the proxy's `diff` or s0's `diff_ref`."""

    def __init__(self, conn: pymysql.Connection) -> None:
        self.conn = conn

    def run(self, sql: str) -> tuple[list[tuple[str, int]] | None, list[tuple], int]:
        """(column names and types, rows, rowcount); raises pymysql errors."""
        with self.conn.cursor() as cur:
            cur.execute(sql)
            description = [(d[0], d[1]) for d in cur.description] if cur.description else None
            rows = list(cur.fetchall()) if cur.description else []
            return description, rows, cur.rowcount

    def info(self) -> str:
        """The info text of the last OK (`Records: 3  Duplicates: 0  Warnings: 0`)."""
        result = self.conn._result
        text = (result.message or b"").decode() if result is not None else ""
        return text[1:] if text else text  # MariaDB sends it length-prefixed

    def close(self) -> None:
        self.conn.close()


class PreparedSide:
    """Connector/Python server-side prepared statements: binary rows instead of text.

    The pure-Python protocol: the C extension reports PREPARE errors as errno -1,
    even from MariaDB itself.
    """

    def __init__(self, **params: Any) -> None:
        self.conn = mysql.connector.connect(autocommit=True, use_pure=True, **params)

    def run(self, sql: str) -> tuple[list[tuple[str, int]] | None, list[tuple], int]:
        cur = self.conn.cursor(prepared=True)
        try:
            cur.execute(sql)
            description = [(d[0], d[1]) for d in cur.description] if cur.description else None
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            return description, rows, cur.rowcount
        finally:
            cur.close()

    def close(self) -> None:
        self.conn.close()


class World:
    """Everything the tests share; a plain class so failure reports stay short."""

    def __init__(
        self,
        proxy: ProxyProcess,
        px: Side,
        ref: Side,
        canon: dict[str, str],
        cluster: LocalCluster,
        next_id: int,
    ) -> None:
        self.proxy = proxy
        self.px = px
        self.ref = ref
        self.canon = canon  # each name -> the first NAMES entry the collation finds equal
        self.canon_unicode: dict[str, str] = {}  # the same under utf8mb4_unicode_ci
        self.cluster = cluster
        self.stats: Counter = Counter()
        self.next_id = [next_id]
        self.baseline_id = next_id
        self.dirty: set[str] = set()  # tables written since the last restore
        s0 = cluster.servers[0]
        self.px_prepared = PreparedSide(
            host=proxy.host, port=proxy.port, user=USER, password=PASSWORD, database=SCHEMA
        )
        self.ref_prepared = PreparedSide(
            host=s0.host, port=s0.port, user="root", password="", database=REF
        )
        # straight to the shards (database diff) and to the reference, for snapshots
        self.direct: list[tuple[pymysql.Connection, str]] = [
            (server.connect(SCHEMA, client_flag=CLIENT.MULTI_STATEMENTS), SCHEMA)
            for server in cluster.servers
        ]
        self.direct.append(
            (cluster.servers[0].connect(REF, client_flag=CLIENT.MULTI_STATEMENTS), REF)
        )

    def _script(self, statements: list[str]) -> None:
        for conn, _ in self.direct:
            with conn.cursor() as cur:
                cur.execute(";".join(statements))
                while cur.nextset():
                    pass

    def snapshot(self) -> None:
        """Keeps a copy of every table, on every shard and in the reference."""
        self._script(
            [
                f"DROP TABLE IF EXISTS bk_{t}; CREATE TABLE bk_{t} AS SELECT * FROM {t}"
                for t in ALL_TABLES
            ]
        )

    def restore(self) -> None:
        """Puts the snapshot back, so each write example starts from the same rows."""
        if self.dirty:
            tables = sorted(self.dirty)
            self._script([f"DELETE FROM {t}; INSERT INTO {t} SELECT * FROM bk_{t}" for t in tables])
            self.dirty.clear()
        self.next_id[0] = self.baseline_id

    def close(self) -> None:
        for conn, _ in self.direct:
            conn.close()
        self.px_prepared.close()
        self.ref_prepared.close()

    def __repr__(self) -> str:
        return "World()"


def connect_proxy(proxy: ProxyProcess, **kwargs: Any) -> pymysql.Connection:
    return pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=USER,
        password=PASSWORD,
        database=SCHEMA,
        autocommit=True,
        read_timeout=120,
        **kwargs,
    )


def collation_classes(
    conn: pymysql.Connection, collation: str = "utf8mb4_general_ci"
) -> dict[str, str]:
    values = (*NAMES, *STRING_KEYS)
    pairs = [(a, b) for a in values for b in values]
    with conn.cursor() as cur:
        cur.execute("SET NAMES utf8mb4")
        cur.execute(
            "SELECT " + ", ".join(f"{lit(a)} = {lit(b)} COLLATE {collation}" for a, b in pairs)
        )
        equal = cur.fetchone()
    canon: dict[str, str] = {}
    for (a, b), same in zip(pairs, equal, strict=True):
        if same and a not in canon:
            canon[a] = b
    return canon


def create_tables(cluster: LocalCluster) -> None:
    ddl = [
        ROW_DDL.format(table=t, key_type="BIGINT" if t == "t_hash" else "INT")
        for t in ROW_TABLES
        if t not in STRING_HASH
    ]
    for table, collation in STRING_HASH.items():
        ddl.append(
            ROW_DDL.format(table=table, key_type=f"VARCHAR(20) COLLATE {collation}").replace(
                "name VARCHAR(20)", f"name VARCHAR(20) COLLATE {collation}"
            )
        )
    ddl.append(BCAST_DDL)
    for server in cluster.servers:
        server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}")
        server.execute(";".join(ddl), SCHEMA)
    s0 = cluster.servers[0]
    s0.execute(f"DROP DATABASE IF EXISTS {REF}; CREATE DATABASE {REF}")
    s0.execute(";".join(ddl), REF)


def load_data(px: Side, ref: Side, rng: random.Random) -> int:
    """The same rows through the proxy and straight into the reference; returns the next id."""
    next_id = 1
    for table in ROW_TABLES:
        ids = list(range(next_id, next_id + ROW_COUNTS[table]))
        next_id += len(ids)
        rng.shuffle(ids)
        rows = [random_row(rng, table, i) for i in ids]
        while rows:
            size = rng.randint(1, 30)
            batch, rows = rows[:size], rows[size:]
            size = len(batch)
            sql = insert_sql(table, batch)
            assert px.run(sql)[2] == size
            assert ref.run(sql)[2] == size
    bcast = [
        (
            code,
            f"L{code % 7}{'x' if code > 6 else ''}",
            None if code % 5 == 4 else f"{code * 1.25:.2f}",
        )
        for code in range(BCAST_ROWS)
    ]
    for sql in (bcast_insert_sql(bcast),):
        px.run(sql)
        ref.run(sql)
    return next_id + 1000


@pytest.fixture(scope="module")
def world(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    create_tables(cluster)
    config = proxy_config(
        cluster,
        schemas=[{"name": SCHEMA, "default_shard": "s0", "tables": TABLES_CONFIG}],
    )
    proxy = ProxyProcess(config, tmp_path_factory.mktemp("differential"), name="differential")
    proxy.start()
    px = Side(connect_proxy(proxy))
    ref = Side(cluster.servers[0].connect(REF, read_timeout=120))
    try:
        next_id = load_data(px, ref, random.Random(SEED))
        world = World(proxy, px, ref, collation_classes(ref.conn), cluster, next_id)
        world.canon_unicode = collation_classes(ref.conn, "utf8mb4_unicode_ci")
        world.snapshot()
        try:
            yield world
        finally:
            world.close()
        print("\ndifferential statistics:")
        for key, count in sorted(world.stats.items()):
            print(f"  {count:7d}  {key}")
    finally:
        px.conn.close()
        ref.conn.close()
        code = proxy.stop()
        for server in cluster.servers:
            server.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
        cluster.servers[0].execute(f"DROP DATABASE IF EXISTS {REF}")
    assert code == 0, f"proxy exited with {code}; log tail:\n{proxy.log_tail()}"


# --- generated statements -----------------------------------------------------------------


@dataclass
class Query:
    sql: str
    ordered: bool = False  # ORDER BY makes the order total: compare as lists
    ci_columns: frozenset[int] = (
        frozenset()
    )  # a group's representative string: compare by collation
    unsupported: tuple[str, ...] = ()  # substrings of the 1235 refusals this shape may get
    shape: str = ""


KEY_FORMS = ("int",) * 8 + (
    "str", "zero", "dec", "decstr", "decstr", "exp", "paren", "trunc", "frac", "cast",
)  # fmt: skip


def render_key(form: str, value: int) -> str:
    if form == "str":
        return f"'{value}'"
    if form == "zero" and value >= 0:
        return f"'0{value}'"
    if form == "dec":
        return f"{value}.0"
    if form == "decstr":
        return f"'{value}.0'"
    if form == "exp":
        return f"'{value}e0'"
    if form == "paren":
        return f"({value})"
    if form == "trunc":  # an INT column compares '7abc' as 7
        return f"'{value}abc'"
    if form == "frac":  # no INT equals 7.5; an INT column stores 7.5 as 8
        return f"{value}.5"
    if form == "cast":
        return f"CAST('{value}' AS SIGNED)"
    return str(value)


RANGE_PROBES = (-10, 0, 50, 99, 100, 101, 150, 199, 200, 250, 299, 300, 301, 350, 450)


@st.composite
def key_values(draw: st.DrawFn, table: str) -> int:
    if table in STRING_HASH:
        return draw(st.integers(0, 10))  # numbers against a string key: compared as numbers
    domain = key_domain(table)
    if table == "t_range" and draw(st.booleans()):
        return draw(st.sampled_from(RANGE_PROBES))
    if table == "t_list" and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from((0, 11, 42)))  # no shard lists it
    return draw(st.sampled_from(domain))


STRING_PROBES = (
    *STRING_KEYS, "JOSÉ", "jos\u00e9 ", "Strasse", "kIRA", "K\u0130RA", "ABC  ", "\u00c6",
    "\u00e5ngstr\u00f6m", "\U0001f601", "7.0", "",
)  # fmt: skip


@st.composite
def string_key_condition(draw: st.DrawFn, column: str) -> str:
    """A string hash key compared with strings (narrowed by weight) and numbers (never)."""
    kind = draw(st.integers(0, 9))

    def key() -> str:
        if draw(st.integers(0, 7)) == 0:
            return draw(st.sampled_from(("0", "7", "7.0", "-0", "1e0")))  # compares as numbers
        return lit(draw(st.sampled_from(STRING_PROBES)))

    if kind <= 3:
        return f"{column} = {key()}"
    if kind == 4:
        return f"{column} IN ({', '.join(key() for _ in range(draw(st.integers(1, 4))))})"
    if kind == 5:
        return f"({column} = {key()} OR {column} = {key()})"
    if kind == 6:
        return f"{column} <=> {key()}"
    if kind == 7:
        return f"{column} <> {key()}"
    if kind == 8:
        return f"{column} LIKE {lit(draw(st.sampled_from(('j%', 'STR%', '_', 'a%'))))}"
    return f"{column} BETWEEN {key()} AND {key()}"


@st.composite
def key_condition(draw: st.DrawFn, table: str, column: str) -> str:
    if table in STRING_HASH:
        return draw(string_key_condition(column))
    kinds = ["eq", "eq", "in", "or", "ne", "notin"]
    if table == "t_range":
        kinds += ["between", "between", "cmp", "cmp", "cmp_flipped", "window"]
    kind = draw(st.sampled_from(kinds))

    def key() -> str:
        return render_key(draw(st.sampled_from(KEY_FORMS)), draw(key_values(table)))

    if kind == "eq":
        return f"{column} = {key()}"
    if kind == "ne":
        return f"{column} <> {key()}"
    if kind in ("in", "notin"):
        keys = ", ".join(key() for _ in range(draw(st.integers(1, 4))))
        return f"{column} {'NOT ' if kind == 'notin' else ''}IN ({keys})"
    if kind == "or":
        return (
            "(" + " OR ".join(f"{column} = {key()}" for _ in range(draw(st.integers(2, 3)))) + ")"
        )
    low_value, high_value = sorted(draw(st.sampled_from(RANGE_PROBES)) for _ in range(2))
    if draw(st.integers(0, 5)) == 0:
        low_value, high_value = high_value, low_value  # an empty interval
    low = render_key(draw(st.sampled_from(KEY_FORMS)), low_value)
    high = render_key(draw(st.sampled_from(KEY_FORMS)), high_value)
    if kind == "between":
        return f"{column} BETWEEN {low} AND {high}"
    op = draw(st.sampled_from(("<", "<=", ">", ">=")))
    if kind == "cmp":
        return f"{column} {op} {low}"
    if kind == "cmp_flipped":
        return f"{low} {op} {column}"
    return f"{column} >= {low} AND {column} < {high}"


@st.composite
def other_condition(draw: st.DrawFn, p: str) -> str:
    kind = draw(st.integers(0, 15))
    number = draw(st.integers(-3, 20))
    if kind >= 14:  # escapes and quotes in string literals
        op = draw(st.sampled_from(("=", "<>", ">=")))
        return f"{p}name {op} {lit(draw(st.sampled_from(ESCAPED)))}"
    if kind == 0:
        return f"{p}n > {number}"
    if kind == 1:
        return f"{p}n <= {number}"
    if kind == 2:
        return f"{p}n = {number}"
    if kind == 3:
        return f"{p}n IS NULL"
    if kind == 4:
        return f"{p}n IS NOT NULL"
    if kind == 5:
        return f"{p}name = {lit(draw(st.sampled_from(NAMES)))}"
    if kind == 6:
        names = ", ".join(lit(draw(st.sampled_from(NAMES))) for _ in range(draw(st.integers(1, 3))))
        return f"{p}name IN ({names})"
    if kind == 7:
        return f"{p}name LIKE {lit(draw(st.sampled_from(('a%', '%e', 'B%', '_'))))}"
    if kind == 8:
        return f"{p}name < {lit(draw(st.sampled_from(NAMES)))}"
    if kind == 9:
        return f"{p}amount > {draw(st.integers(-50, 500))}.{draw(st.integers(0, 99)):02d}"
    if kind == 10:
        low = draw(st.integers(-50, 300))
        return f"{p}amount BETWEEN {low} AND {low + draw(st.integers(0, 200))}"
    if kind == 11:
        day = BASE_TIME + datetime.timedelta(days=draw(st.integers(0, 21)))
        return f"{p}at {draw(st.sampled_from(('<', '>=')))} '{day:%Y-%m-%d}'"
    if kind == 12:
        return f"{p}id % 5 = {draw(st.integers(0, 4))}"
    return f"{p}amount IS NULL"


@st.composite
def where_clause(draw: st.DrawFn, table: str, p: str = "") -> str:
    """'' or ' WHERE ...' mixing shard-key and other conditions with AND / OR / NOT."""
    count = draw(st.integers(0, 3))
    if count == 0:
        return ""
    atoms = []
    for _ in range(count):
        if table in SHARDED and draw(st.integers(0, 2)) > 0:
            atoms.append(draw(key_condition(table, f"{p}k")))
        else:
            atoms.append(draw(other_condition(p)))
        if draw(st.integers(0, 9)) == 0:
            atoms[-1] = f"NOT ({atoms[-1]})"
    text = atoms[0]
    for atom in atoms[1:]:
        joiner = draw(st.sampled_from((" AND ", " AND ", " OR ")))
        text = (
            f"({text}{joiner}{atom})"
            if joiner == " OR " and draw(st.booleans())
            else text + joiner + atom
        )
    return " WHERE " + text


@st.composite
def limit_clause(draw: st.DrawFn) -> str:
    form = draw(st.integers(0, 4))
    count = draw(st.sampled_from((0, 1, 2, 3, 5, 10, 25, 1000)))
    offset = draw(st.sampled_from((0, 1, 2, 7, 30)))
    if form == 0:
        return ""
    if form in (1, 2):
        return f" LIMIT {count}"
    if form == 3:
        return f" LIMIT {count} OFFSET {offset}"
    return f" LIMIT {offset}, {count}"


def direction(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(("", " ASC", " DESC")))


ROW_ITEMS = (
    ("id", "id"), ("k", "k"), ("name", "name"), ("n", "n"), ("amount", "amount"), ("at", "at"),
    ("n + 1", "n + 1"), ("amount * 2 AS double_amount", "double_amount"), ("k AS kk", "kk"),
    ("CONCAT(name, '!') AS shout", None), ("DATE(at)", "DATE(at)"), ("`name`", "name"),
    ("{table}.amount", "amount"), ("Name", "name"), ("n AS `N 1`", "`N 1`"),
)  # fmt: skip
SORT_COLUMNS = (
    "k", "name", "n", "amount", "at", "n + 1", "DATE(at)", "{table}.n", "NAME", "UPPER(name)",
    "name COLLATE utf8mb4_bin", "BINARY name", "CONCAT(name, k)", "amount * n", "-n",
)  # fmt: skip
ROW_HAVING = ("n > 3", "name = 'apple'", "name >= 'b'", "n IS NULL", "amount < 100")


@st.composite
def row_select(draw: st.DrawFn, table: str) -> Query:
    unsupported: tuple[str, ...] = ()
    if draw(st.integers(0, 9)) == 0:
        items = [draw(st.sampled_from(("*", f"{table}.*")))]
        references: list[str | None] = [None]
        if draw(st.integers(0, 3)) == 0:
            items.append("n + 1")
            references.append("n + 1")
            unsupported = ("a position (2) after a *",)  # ORDER BY 2: the star's width decides
    else:
        picked = draw(st.lists(st.sampled_from(ROW_ITEMS), min_size=1, max_size=5, unique=True))
        items = [text.format(table=table) for text, _ in picked]
        references = [ref for _, ref in picked]
    sql = f"SELECT {', '.join(items)} FROM {table}" + draw(where_clause(table))
    if items != ["*"] and draw(st.integers(0, 9)) == 0:
        # HAVING without GROUP BY filters rows by selected columns
        usable = [h for h in ROW_HAVING if h.split()[0] in references]
        if usable:
            sql += " HAVING " + draw(st.sampled_from(usable))
    ordered = draw(st.integers(0, 3)) > 0
    if ordered:
        keys = draw(st.lists(st.sampled_from(SORT_COLUMNS), max_size=2, unique=True))
        parts = []
        for key in keys:
            key = key.format(table=table)
            way = draw(st.integers(0, 2))
            if key in references and way == 0:
                parts.append(str(references.index(key) + 1) + direction(draw))  # ordinal
            else:
                parts.append(key + direction(draw))
        parts.append(draw(st.sampled_from(("id", f"{table}.id", "`id`"))) + direction(draw))
        sql += " ORDER BY " + ", ".join(parts) + draw(limit_clause())
    return Query(sql, ordered=ordered, unsupported=unsupported, shape="rows")


@st.composite
def distinct_select(draw: st.DrawFn, table: str) -> Query:
    columns = draw(
        st.lists(
            st.sampled_from(("name", "n", "k", "amount", "DATE(at)")),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    sql = f"SELECT DISTINCT {', '.join(columns)} FROM {table}" + draw(where_clause(table))
    ordered = draw(st.booleans())
    if ordered:
        order = draw(st.permutations(columns))
        sql += " ORDER BY " + ", ".join(c + direction(draw) for c in order) + draw(limit_clause())
    strings = ("name", "k") if table in STRING_HASH else ("name",)
    ci = frozenset(i for i, c in enumerate(columns) if c in strings)
    return Query(sql, ordered=ordered, ci_columns=ci, shape="distinct")


AGGREGATES = (
    "COUNT(*)", "COUNT(n)", "COUNT(amount)", "SUM(n)", "SUM(amount)", "MIN(n)", "MAX(n)",
    "MIN(amount)", "MAX(amount)", "MIN(at)", "MAX(at)", "MIN(name)", "MAX(name)", "AVG(n)",
    "AVG(amount)", "count(*)", "Sum(amount)", "AVG(k)", "SUM(k)", "COUNT(1)", "SUM(n * 2)",
    "AVG(n + 0.5)", "MAX(amount - n)", "min( name )", "MIN(DISTINCT n)", "COUNT(name)",
)  # fmt: skip
GROUP_COLUMNS = ("name", "n", "k", "DATE(at)", "n % 3")
# items one shard computes over the merged aggregates (MariaDB's arithmetic, types, NULLs)
COMPUTED_ITEMS = (
    "SUM(amount) / COUNT(*)", "MAX(n) + 1", "COALESCE(SUM(amount), 0)", "ROUND(AVG(amount), 1)",
    "IFNULL(MAX(n), -1) * 2", "IF(COUNT(*) > 2, 'many', 'few')", "COUNT(*) - COUNT(amount)",
    "SUM(n) / NULLIF(COUNT(n), 0)", "MAX(amount) - MIN(amount)", "DATEDIFF(MAX(at), MIN(at))",
    "MAX(at) + INTERVAL 1 DAY", "SUM(k) % 7", "AVG(n) * 100 DIV 3", "BIT_OR(n) | 1",
    "COUNT(*) = 0", "CONCAT(COUNT(*), ' rows')", "LEAST(MIN(n), 3)", "SUM(n * 2) / 3",
    "CONCAT(MIN(name), '!')",
)  # fmt: skip
HAVING_AGGREGATES = (
    "COUNT(*)", "COUNT(n)", "SUM(n)", "SUM(amount)", "MIN(n)", "MAX(n)", "MAX(amount)", "AVG(n)",
    "AVG(amount)",
)  # fmt: skip
HAVING_VALUES = ("0", "1", "2", "3", "5", "10", "100.5", "'2'", "-1", "NULL", "2.5")


@st.composite
def having_condition(draw: st.DrawFn, groups: list[str], aliases: dict[str, str]) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 3 or not groups:
        aggregate = draw(st.sampled_from(HAVING_AGGREGATES))
        reference = aliases.get(aggregate, aggregate) if draw(st.booleans()) else aggregate
        op = draw(st.sampled_from(("=", "<>", "<", "<=", ">", ">=")))
        if draw(st.integers(0, 5)) == 0:
            return f"{reference} {op} {draw(st.sampled_from(HAVING_AGGREGATES))}"
        return f"{reference} {op} {draw(st.sampled_from(HAVING_VALUES))}"
    if kind == 4:
        day = BASE_TIME + datetime.timedelta(days=draw(st.integers(0, 21)))
        aggregate = draw(st.sampled_from(("MIN(at)", "MAX(at)")))
        op = draw(st.sampled_from(("=", "<", "<=", ">", ">=")))
        return f"{aggregate} {op} '{day:%Y-%m-%d}'"
    if kind == 5:
        op = draw(st.sampled_from(("=", "<>", "<", ">=")))
        return f"MIN(name) {op} {lit(draw(st.sampled_from(NAMES)))}"
    group = draw(st.sampled_from([g for g in groups if g != "n % 3"] or ["COUNT(*)"]))
    if group == "name":
        op = draw(st.sampled_from(("=", "<>", "<", ">=")))
        return f"name {op} {lit(draw(st.sampled_from(NAMES)))}"
    if group == "DATE(at)":
        day = BASE_TIME + datetime.timedelta(days=draw(st.integers(0, 21)))
        return f"DATE(at) {draw(st.sampled_from(('=', '>=', '<')))} '{day:%Y-%m-%d}'"
    if kind == 9:
        return f"{group} IS {draw(st.sampled_from(('', 'NOT ')))}NULL"
    return f"{group} > {draw(st.integers(-3, 20))}"


@st.composite
def aggregate_select(draw: st.DrawFn, table: str) -> Query:
    groups = draw(st.lists(st.sampled_from(GROUP_COLUMNS), max_size=2, unique=True))
    unsupported: list[str] = []
    aggregates = draw(st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=3, unique=True))
    roll = draw(st.integers(0, 19))
    if roll < 4:
        target = draw(st.sampled_from(("name", "n", "k", "amount")))
        counted = f"COUNT(DISTINCT {target})"
        aggregates = [counted] if roll < 2 else [*aggregates[:2], counted]
        if roll == 3:
            aggregates.append("COUNT(DISTINCT at)")
    elif roll == 4:
        aggregates.append(draw(st.sampled_from(("SUM(DISTINCT n)", "AVG(DISTINCT amount)"))))
        unsupported.append("(DISTINCT ...) in a SELECT")
    elif roll == 5:
        aggregates.append(draw(st.sampled_from(COMPUTED_ITEMS)))
        # refused: HAVING by a computed item, and string partials
        unsupported += ["an item that computes", "around an aggregate of a string"]
    shown_groups = [g for g in groups if draw(st.integers(0, 4)) > 0]
    items: list[str] = []
    aliases: dict[str, str] = {}
    for index, aggregate in enumerate(aggregates):
        if draw(st.integers(0, 3)) == 0:
            aliases[aggregate] = f"agg{index}"
            items.append(f"{aggregate} AS agg{index}")
        else:
            items.append(aggregate)
    items = shown_groups + items
    distinct = "DISTINCT " if draw(st.integers(0, 12)) == 0 else ""
    sql = f"SELECT {distinct}{', '.join(items)} FROM {table}" + draw(where_clause(table))
    if groups:
        group_refs = [
            str(shown_groups.index(g) + 1)
            if g in shown_groups and draw(st.integers(0, 3)) == 0
            else g
            for g in groups
        ]
        sql += " GROUP BY " + ", ".join(group_refs)
    if draw(st.integers(0, 2)) == 0:
        atoms = []
        for _ in range(draw(st.integers(1, 2))):
            atom = draw(having_condition(groups, aliases))
            if draw(st.integers(0, 5)) == 0:
                atom = f"NOT ({atom})"
            atoms.append(atom)
        sql += " HAVING " + draw(st.sampled_from((" AND ", " OR "))).join(atoms)
        # `k > 3` of a string k, `MIN(name) > 3`: MariaDB converts each string, refused
        unsupported.append("compares the string with the number")
    ordered = False
    if groups and (not distinct or shown_groups == groups) and draw(st.booleans()):
        candidates = [*aggregates, "COUNT(*)", "SUM(n)", "AVG(n)", "MAX(at)", "MIN(name)"]
        keys = draw(st.lists(st.sampled_from(candidates), max_size=2, unique=True))
        parts = [aliases.get(k, k) + direction(draw) for k in keys]
        parts += [g + direction(draw) for g in draw(st.permutations(groups))]
        sql += " ORDER BY " + ", ".join(parts) + draw(limit_clause())
        ordered = True
    elif groups and not distinct and draw(st.integers(0, 2)) == 0:
        # MariaDB returns GROUP BY groups sorted by the group columns; so does the proxy
        sql += draw(limit_clause())
        ordered = True
    elif not groups and draw(st.integers(0, 4)) == 0:
        sql += draw(limit_clause())
    strings = ("name", "k") if table in STRING_HASH else ("name",)
    ci = {
        i
        for i, item in enumerate(items)
        if item in strings or item.lower().replace(" ", "").startswith(("min(name)", "max(name)"))
    }
    return Query(
        sql,
        ordered=ordered,
        ci_columns=frozenset(ci),
        unsupported=tuple(unsupported),
        shape="aggregate",
    )


@st.composite
def broadcast_join(draw: st.DrawFn, table: str) -> Query:
    kinds = ("JOIN", "JOIN", "LEFT JOIN", "reverse_left", "reverse_right", "broadcast_outer")
    kind = draw(st.sampled_from(kinds))
    extra = f" AND b.weight > {draw(st.integers(0, 10))}" if draw(st.integers(0, 3)) == 0 else ""
    where = draw(where_clause(table, "a."))
    if kind == "reverse_left":
        # each b row without a match on any shard comes once, from one shard
        source = f"{BROADCAST} b LEFT JOIN {table} a ON a.n = b.code{extra}"
    elif kind == "reverse_right":
        source = f"{table} a RIGHT JOIN {BROADCAST} b ON a.n = b.code{extra}"
    elif kind == "broadcast_outer":
        # an outer join between broadcast copies, then the sharded rows: no refusal needed
        source = (
            f"{BROADCAST} b LEFT JOIN {BROADCAST} c ON c.code = b.code + 1 "
            f"JOIN {table} a ON a.n = b.code{extra}"
        )
    else:
        source = f"{table} a {kind} {BROADCAST} b ON a.n = b.code{extra}"
    unsupported: tuple[str, ...] = ()
    if draw(st.integers(0, 3)) == 0:
        sql = (
            "SELECT b.label, COUNT(*), COUNT(a.id), SUM(a.amount), MAX(a.name) "
            f"FROM {source}{where} GROUP BY b.label"
        )
        ordered = draw(st.booleans())
        if ordered:
            sql += f" ORDER BY COUNT(*){direction(draw)}, b.label{direction(draw)}" + draw(
                limit_clause()
            )
        return Query(
            sql,
            ordered=ordered,
            ci_columns=frozenset({4}),
            unsupported=unsupported,
            shape="bcast_join_agg",
        )
    sql = f"SELECT a.id, a.name, a.n, b.code, b.label, b.weight FROM {source}{where}"
    ordered = draw(st.booleans())
    if ordered:
        sorts = draw(
            st.lists(
                st.sampled_from(("b.label", "a.name", "b.weight", "a.n")), max_size=2, unique=True
            )
        )
        parts = [s + direction(draw) for s in sorts] + [
            "a.id" + direction(draw),
            "b.code" + direction(draw),
        ]
        sql += " ORDER BY " + ", ".join(parts) + draw(limit_clause())
    return Query(sql, ordered=ordered, unsupported=unsupported, shape="bcast_join")


@st.composite
def bound_join(draw: st.DrawFn) -> Query:
    left, right = draw(st.permutations(("t_mod", "t_modb")))
    if draw(st.integers(0, 4)) == 0:
        right = left  # a self-join on the key
    kind = draw(st.sampled_from(("JOIN", "JOIN", "LEFT JOIN", "USING")))
    if kind == "USING":
        source = f"{left} a JOIN {right} b USING (k)"
    else:
        source = f"{left} a {kind} {right} b ON a.k = b.k"
    if kind == "USING" and draw(st.booleans()):
        where = " WHERE " + draw(key_condition(left, "k"))  # USING's k needs no table name
    else:
        where = draw(where_clause(left, draw(st.sampled_from(("a.", "b.")))))
    if draw(st.integers(0, 4)) == 0:
        # a third table: the broadcast one
        source += f" JOIN {BROADCAST} c ON c.code = b.n"
    if draw(st.integers(0, 3)) == 0:
        sql = (
            "SELECT a.k, COUNT(*), COUNT(b.id), SUM(b.amount), MIN(b.n) "
            f"FROM {source}{where} GROUP BY a.k"
        )
        ordered = draw(st.booleans())
        if ordered:
            sql += f" ORDER BY COUNT(*){direction(draw)}, a.k{direction(draw)}" + draw(
                limit_clause()
            )
        return Query(sql, ordered=ordered, shape="bound_join_agg")
    sql = f"SELECT a.id, b.id AS bid, a.name, b.n, b.amount FROM {source}{where}"
    ordered = draw(st.booleans())
    if ordered:
        sorts = draw(st.lists(st.sampled_from(("a.name", "b.n", "b.amount")), max_size=1))
        parts = [s + direction(draw) for s in sorts] + [
            "a.id" + direction(draw),
            "bid" + direction(draw),
        ]
        sql += " ORDER BY " + ", ".join(parts) + draw(limit_clause())
    return Query(sql, ordered=ordered, shape="bound_join")


@st.composite
def unbound_join(draw: st.DrawFn) -> Query:
    """Joins of sharded tables without their keys: one of them is read from a copy of the
    whole table on the other's shards (refused where a table is not on those shards)."""
    left = draw(st.sampled_from(SHARDED))
    right = draw(st.sampled_from([t for t in (*SHARDED, "t_plain") if t != left]))
    on = draw(st.sampled_from(("a.k = b.k", "a.id = b.id", "a.n = b.n", "a.name = b.name")))
    if {left, right} == {"t_mod", "t_modb"} and on == "a.k = b.k":
        on = "a.id = b.id"  # bound tables joined on their keys are fine: not this shape
    collations = {STRING_HASH.get(t, "utf8mb4_general_ci") for t in (left, right)}
    if "name" in on and len(collations) > 1:
        on = "a.n = b.n"  # utf8mb4_general_ci against utf8mb4_unicode_ci: MariaDB's 1267
    kind = draw(st.sampled_from(("JOIN", "JOIN", "LEFT JOIN")))
    where = draw(where_clause(left, "a."))
    refusals = ("cross-shard join", "copies sharded table")
    if draw(st.booleans()):
        sql = (
            f"SELECT a.n, COUNT(*), SUM(b.amount), MAX(b.at) FROM {left} a {kind} {right} b "
            f"ON {on}{where} GROUP BY a.n ORDER BY a.n"
        )
        return Query(sql, ordered=True, unsupported=refusals, shape="unbound_join_agg")
    sql = (
        f"SELECT a.id, b.id AS bid, a.name, b.amount FROM {left} a {kind} {right} b ON {on}"
        f"{where} ORDER BY a.id, bid" + draw(limit_clause())
    )
    return Query(sql, ordered=True, unsupported=refusals, shape="unbound_join")


@st.composite
def subquery_select(draw: st.DrawFn, table: str) -> Query:
    where = draw(where_clause(table))
    condition = f"n IN (SELECT code FROM {BROADCAST} WHERE weight > {draw(st.integers(0, 10))})"
    where = f"{where} AND {condition}" if where else f" WHERE {condition}"
    return Query(
        f"SELECT id, name FROM {table}{where} ORDER BY id",
        ordered=True,
        unsupported=("subqueries",),
        shape="subquery",
    )


@st.composite
def exact_construct(draw: st.DrawFn, table: str) -> Query:
    """Constructs that once answered wrongly across shards: now exact or refused."""
    key = render_key(draw(st.sampled_from(KEY_FORMS)), draw(key_values(table)))
    where = draw(where_clause(table))
    kind = draw(st.integers(0, 8))
    if kind == 0:
        items = draw(st.lists(st.sampled_from(BIT_AGGREGATES), min_size=1, max_size=3))
        grouped = draw(st.booleans())
        group = " GROUP BY n ORDER BY n" if grouped else ""
        head = "n, " if grouped else ""
        return Query(
            f"SELECT {head}{', '.join(items)} FROM {table}{where}{group}",
            ordered=grouped,
            shape="bit_aggregate",
        )
    if kind == 1:
        aggregate = draw(st.sampled_from(UNMERGED_AGGREGATES + MERGED_CONCATS))
        if aggregate in MERGED_CONCATS:
            grouped = draw(st.booleans())
            return Query(
                f"SELECT {'n, ' if grouped else ''}{aggregate}, COUNT(*) FROM {table}{where}"
                f"{' GROUP BY n ORDER BY n' if grouped else ''}",
                ordered=grouped,
                shape="group_concat",
            )
        return Query(
            f"SELECT {aggregate} FROM {table}{where}",
            unsupported=("aggregate", "add ORDER BY inside GROUP_CONCAT"),
            shape="unmerged_aggregate",
        )
    if kind == 2:
        count = draw(st.integers(1, 5))
        offset = f"OFFSET {draw(st.integers(0, 4))} ROWS " if draw(st.booleans()) else ""
        first = "NEXT" if offset else draw(st.sampled_from(("FIRST", "NEXT")))
        ties = draw(st.integers(0, 2)) == 0
        tail = "WITH TIES" if ties else "ONLY"
        if ties and draw(st.booleans()):
            # ties on a column with repeats: which tied rows an OFFSET skips is free, the
            # multiset of the ordered column is not
            column = draw(st.sampled_from(("n", "name", "amount", "COUNT(*)")))
            if column == "COUNT(*)":
                return Query(
                    f"SELECT COUNT(*) FROM {table}{where} GROUP BY n ORDER BY COUNT(*)"
                    f"{direction(draw)} {offset}FETCH {first} {count} ROWS WITH TIES",
                    shape="fetch_ties",
                )
            return Query(
                f"SELECT {column} FROM {table}{where} ORDER BY {column}{direction(draw)} "
                f"{offset}FETCH {first} {count} ROWS WITH TIES",
                ci_columns=frozenset({0}) if column == "name" else frozenset(),
                shape="fetch_ties",
            )
        return Query(
            f"SELECT id, name FROM {table}{where} ORDER BY id "
            f"{offset}FETCH {first} {count} ROWS {tail}",
            ordered=True,
            shape="fetch",
        )
    if kind == 3:
        literal = draw(st.sampled_from(("'abc'", "1.50", "-1", "NULL", "'it''s'", "''", "TRUE")))
        return Query(
            f"SELECT {literal}, id FROM {table}{where} ORDER BY id", ordered=True, shape="literal"
        )
    if kind == 4:
        return Query(
            f"SELECT id, name FROM {table} WHERE CAST(k AS CHAR) = {key} ORDER BY id",
            ordered=True,
            shape="cast_key",
        )
    if kind == 5:
        return Query(
            f"SELECT id, k FROM (SELECT id, k + 1 AS k FROM {table}) d WHERE k = {key} ORDER BY id",
            ordered=True,
            unsupported=("subqueries",),
            shape="derived_key",
        )
    if kind == 6:
        negate = draw(st.sampled_from(("a.k = b.k OR a.n = b.n", "NOT (a.k <> b.k)")))
        return Query(
            f"SELECT a.id, b.id AS bid FROM t_mod a JOIN t_modb b ON {negate} "
            f"WHERE a.k = {key} ORDER BY a.id, bid",
            ordered=True,
            unsupported=("cross-shard join",),
            shape="join_under_or",
        )
    if kind == 7:
        return Query(
            "SELECT a.id, b.id AS bid FROM t_mod a LEFT JOIN t_modb b ON a.k = b.k "
            "WHERE b.k <=> NULL ORDER BY a.id, bid",
            ordered=True,
            shape="left_join_null_key",
        )
    return Query(
        f"SELECT id, k FROM {table} WHERE k = {key} ORDER BY id", ordered=True, shape="typed_key"
    )


BIT_AGGREGATES = ("BIT_OR(n)", "BIT_AND(n)", "BIT_XOR(n)", "BIT_OR(k)", "BIT_AND(id)")
UNMERGED_AGGREGATES = (
    "VARIANCE(n)", "VAR_POP(n)", "VAR_SAMP(amount)", "STD(n)", "STDDEV(n)", "STDDEV_POP(n)",
    "STDDEV_SAMP(amount)", "JSON_ARRAYAGG(n)", "JSON_OBJECTAGG(id, n)", "GROUP_CONCAT(name)",
)  # fmt: skip
# ordered by the concatenated column itself (numbers, dates: no ties between unequal
# texts): one answer on one server, merged exactly
MERGED_CONCATS = (
    "GROUP_CONCAT(n ORDER BY n)", "GROUP_CONCAT(DISTINCT n ORDER BY n DESC SEPARATOR '|')",
    "GROUP_CONCAT(amount ORDER BY amount DESC)", "GROUP_CONCAT(id ORDER BY id SEPARATOR '')",
    "GROUP_CONCAT(DISTINCT at ORDER BY at)",
)  # fmt: skip


@st.composite
def point_lookup(draw: st.DrawFn, table: str) -> Query:
    """Rows by shard key alone, the key written in the ways MySQL accepts for a number."""
    condition = draw(key_condition(table, "k"))
    return Query(f"SELECT id, k, name FROM {table} WHERE {condition}", shape="point")


@st.composite
def queries(draw: st.DrawFn) -> Query:
    table = draw(st.sampled_from((*SHARDED, *SHARDED, "t_plain")))
    shape = draw(st.integers(0, 99))
    if shape < 6 and table in SHARDED:
        return draw(point_lookup(table))
    if shape < 12 and table in SHARDED:
        return draw(exact_construct(table))
    if shape < 35:
        return draw(row_select(table))
    if shape < 47:
        return draw(distinct_select(table))
    if shape < 77:
        return draw(aggregate_select(table))
    if shape < 86:
        return draw(broadcast_join(table))
    if shape < 94:
        return draw(bound_join())
    if shape < 97:
        return draw(unbound_join())
    return draw(subquery_select(table))


# (item, its result name when it is a bare column, whether it is a string)
UNION_ITEMS = (
    ("id", "id", False), ("name", "name", True), ("n", "n", False), ("amount", "amount", False),
    ("n + 1", None, False), ("LENGTH(name)", None, False), ("'x'", None, True),
    ("DATE(at)", None, False), ("k", "k", None),
)  # fmt: skip
UNION_REFUSALS = (
    "placed on different shards",
    "reads no sharded table",
    "SELECT * in a UNION",
)


@st.composite
def union_select(draw: st.DrawFn) -> Query:
    """UNION [ALL | DISTINCT] of two or three SELECTs, ordered by every column (then the
    order is total) with a LIMIT, or unordered and compared as sets."""
    picked = draw(st.lists(st.sampled_from(UNION_ITEMS), min_size=1, max_size=3, unique=True))
    tables = draw(
        st.lists(
            st.sampled_from((*SHARDED, *SHARDED, "t_plain", BROADCAST)), min_size=2, max_size=3
        )
    )
    if BROADCAST in tables:
        picked = [("1", None, False)] if draw(st.booleans()) else picked
    kind = draw(st.sampled_from(("UNION ALL", "UNION", "UNION DISTINCT")))
    branches = []
    for table in tables:
        if table == BROADCAST:
            items = ", ".join(["code", "label", "weight"][: len(picked)])
            branches.append(f"SELECT {items} FROM {BROADCAST}")
            continue
        items = ", ".join(text for text, _, _ in picked)
        branches.append(f"SELECT {items} FROM {table}" + draw(where_clause(table)))
    sql = f" {kind} ".join(branches)
    ordered = draw(st.booleans())
    if ordered:
        parts = []
        for position in draw(st.permutations(range(len(picked)))):
            name = picked[position][1]
            key = name if name is not None and draw(st.booleans()) else str(position + 1)
            parts.append(key + direction(draw))
        sql += " ORDER BY " + ", ".join(parts) + draw(limit_clause())
    strings = {i for i, (_, _, text) in enumerate(picked) if text is not False}
    return Query(
        sql,
        ordered=ordered,
        ci_columns=frozenset(strings),
        unsupported=UNION_REFUSALS,
        shape="union",
    )


# --- comparing ----------------------------------------------------------------------------


def normalized(rows: list[tuple], ci_columns: frozenset[int], canon: dict[str, str]) -> list[str]:
    out = []
    for row in rows:
        values = list(row)
        for index in ci_columns:
            value = values[index]
            if isinstance(value, str):
                values[index] = ("ci", canon.get(value, value))
        out.append(repr(tuple(values)))
    return out


def order_free(rows: list[tuple]) -> list[tuple]:
    """Each string value as the sorted list of its JSON elements or comma-separated parts."""

    def value(v: object) -> object:
        if isinstance(v, bytes | bytearray):
            v = bytes(v).decode("utf-8", "replace")
        if not isinstance(v, str):
            return v
        try:
            parsed = json.loads(v)
        except ValueError:
            return sorted(v.split(","))
        if isinstance(parsed, dict):
            return sorted(parsed.items(), key=repr)
        return sorted(parsed, key=repr) if isinstance(parsed, list) else parsed

    return [tuple(repr(value(v)) for v in row) for row in rows]


def outcome(side: Side | PreparedSide, sql: str) -> tuple[str, Any]:
    try:
        return "ok", side.run(sql)
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        return "error", (code, message)
    except mysql.connector.Error as exc:
        return "error", (exc.errno, exc.msg)


def compare_query(world: World, query: Query, prepared: bool = False) -> None:
    sides = (world.px_prepared, world.ref_prepared) if prepared else (world.px, world.ref)
    kind_px, px = outcome(sides[0], query.sql)
    kind_ref, ref = outcome(sides[1], query.sql)
    world.stats[f"{'prepared ' if prepared else ''}shape:{query.shape}"] += 1
    if kind_px == "error":
        code, message = px
        if kind_ref == "error":
            # not valid SQL: the proxy need only fail as well (its refusal may come first)
            world.stats["both_failed"] += 1
            return
        allowed = query.unsupported
        if "t_hstr_u" in query.sql:
            allowed = (*allowed, "of collation utf8mb4_unicode_ci")
        if ".5" in query.sql:  # `k = 7.5`: MariaDB answers it by plan (an index lookup rounds)
            allowed = (*allowed, "with the fraction")
        if prepared:  # VARIANCE() prints 4 decimals of its DOUBLE: no binary value from that
            allowed = (*allowed, "floating-point result column")
        assert code == 1235 and any(s in message for s in allowed), (
            f"the proxy failed where the reference answered: {query.sql}\n-> {code} {message}"
            f"\nreference: {ref!r}"[:3000]
        )
        world.stats[f"refused:{query.shape}"] += 1
        world.stats[f"refusal:{message.split(';')[0][:90]}"] += 1
        if query.shape in SHOW_REFUSED:
            print(f"refused {query.shape}: {query.sql}\n  -> {message}")
        return
    assert kind_ref == "ok", f"the reference failed but the proxy answered: {query.sql}\n{ref}"
    px_description, px_rows, _ = px
    ref_description, ref_rows, _ = ref
    assert px_description == ref_description, f"columns differ for {query.sql}"
    canon = world.canon_unicode if "t_hstr_u" in query.sql else world.canon
    if query.shape == "unmerged_aggregate":
        # one shard answered alone: JSON_ARRAYAGG/JSON_OBJECTAGG/GROUP_CONCAT without ORDER
        # BY list values in the scan order of that server's plan, not a defined one
        px_rows, ref_rows = order_free(px_rows), order_free(ref_rows)
    mine = normalized(px_rows, query.ci_columns, canon)
    theirs = normalized(ref_rows, query.ci_columns, canon)
    if not query.ordered:
        mine.sort()
        theirs.sort()
    if mine != theirs:
        missing = [r for r in theirs if r not in mine][:5]
        extra = [r for r in mine if r not in theirs][:5]
        pytest.fail(
            f"rows differ for {query.sql}\nproxy {len(mine)} rows, reference {len(theirs)} rows"
            f"\nonly in reference: {missing}\nonly from proxy: {extra}"
            f"\nproxy first rows: {mine[:8]}\nreference first rows: {theirs[:8]}"
        )
    world.stats["prepared equal" if prepared else "equal"] += 1
    world.stats["rows"] += len(mine)


def compare_tables(world: World, tables: tuple[str, ...] = ALL_TABLES, log: list[str] = ()) -> None:
    for table in tables:
        order = "code" if table == BROADCAST else "id"
        sql = f"SELECT * FROM {table} ORDER BY {order}"
        px = world.px.run(sql)
        ref = world.ref.run(sql)
        assert px[0] == ref[0]
        mine, theirs = [repr(r) for r in px[1]], [repr(r) for r in ref[1]]
        if mine != theirs:
            history = "\n  ".join(log)
            pytest.fail(
                f"{table} contents differ after:\n  {history}\nonly through the proxy: "
                f"{[r for r in mine if r not in theirs][:6]}\nonly in the reference: "
                f"{[r for r in theirs if r not in mine][:6]}"
            )


def check_placement(world: World) -> None:
    """Every row sits on the shard the map says, once; broadcast copies are identical."""
    servers = {s.name: s for s in world.cluster.servers}
    for table in SHARDED:
        seen: dict[int, str] = {}
        for name, server in servers.items():
            if table in STRING_HASH:
                # placed by the collation's weight, trailing space weights dropped
                space = "0020" if table == "t_hstr_g" else "0209"
                rows = server.execute(f"SELECT id, HEX(WEIGHT_STRING(k)) FROM {table}", SCHEMA)
                for row_id, weight in rows:
                    while weight.endswith(space) and len(weight) % 4 == 0:
                        weight = weight[: -len(space)]
                    shard = HASH_SHARDS[zlib.crc32(bytes.fromhex(weight)) % 2]
                    assert row_id not in seen and shard == name, f"{table} id {row_id} on {name}"
                    seen[row_id] = name
                continue
            for row_id, key in server.execute(f"SELECT id, k FROM {table}", SCHEMA):
                assert row_id not in seen, f"{table} id {row_id} on {seen[row_id]} and {name}"
                seen[row_id] = name
                assert expected_shard(table, key) == name, f"{table} k={key} is on {name}"
    copies = [
        server.execute(f"SELECT * FROM {BROADCAST} ORDER BY code", SCHEMA)
        for server in servers.values()
    ]
    assert copies[0] == copies[1] == copies[2]
    for name in ("s1", "s2"):
        assert servers[name].execute("SELECT COUNT(*) FROM t_plain", SCHEMA) == [(0,)]


# --- the tests ----------------------------------------------------------------------------

COMMON_SETTINGS = {
    "deadline": None,
    "derandomize": DERANDOMIZE,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}


def test_loaded_data_is_equal_and_placed_by_the_shard_map(world: World) -> None:
    compare_tables(world)
    check_placement(world)


@settings(max_examples=READ_EXAMPLES, **COMMON_SETTINGS)
@given(query=queries())
def test_random_selects_match_one_database(world: World, query: Query) -> None:
    compare_query(world, query)


@settings(max_examples=PREPARED_EXAMPLES, **COMMON_SETTINGS)
@given(query=queries())
def test_random_selects_match_as_prepared_statements(world: World, query: Query) -> None:
    """The same through COM_STMT_PREPARE/EXECUTE: the merged rows converted to binary rows."""
    compare_query(world, query, prepared=True)


# SUM/AVG(DISTINCT x): values of x repeat across shards (n and amount take few values) and
# are NULL in some rows; each must count once
DISTINCT_AGGREGATE_QUERIES = [
    Query("SELECT SUM(DISTINCT n), AVG(DISTINCT n), COUNT(DISTINCT n) FROM {table}"),
    Query("SELECT SUM(DISTINCT amount), AVG(DISTINCT amount) FROM {table}"),
    Query("SELECT SUM(DISTINCT n) FROM {table} WHERE n > 100"),
    Query("SELECT name, SUM(DISTINCT n) AS s, COUNT(*) FROM {table} GROUP BY name ORDER BY name",
          ordered=True, ci_columns=frozenset({0})),
    Query("SELECT n % 3 AS g, AVG(DISTINCT amount), SUM(amount), MAX(id) FROM {table} "
          "GROUP BY g ORDER BY g", ordered=True),
    Query("SELECT DATE(at) AS d, SUM(DISTINCT n) AS s FROM {table} GROUP BY d HAVING s > 5 "
          "ORDER BY s DESC, d LIMIT 4", ordered=True),
    Query("SELECT AVG(DISTINCT n + 0.5) FROM {table}"),
    Query("SELECT k, SUM(DISTINCT n) FROM {table} GROUP BY k ORDER BY k", ordered=True),
    # DISTINCT aggregates of different arguments: partials per (group, x, y)
    Query("SELECT COUNT(DISTINCT n), COUNT(DISTINCT name), COUNT(DISTINCT amount), COUNT(*) "
          "FROM {table}"),
    Query("SELECT n % 3 AS g, COUNT(DISTINCT name) AS a, SUM(DISTINCT amount), "
          "AVG(DISTINCT n), MAX(at) FROM {table} GROUP BY g ORDER BY a DESC, g", ordered=True),
    Query("SELECT DATE(at) AS d, COUNT(DISTINCT n) AS a, COUNT(DISTINCT k) FROM {table} "
          "GROUP BY d HAVING a > 1 ORDER BY d LIMIT 5", ordered=True),
    Query("SELECT COUNT(DISTINCT n), COUNT(DISTINCT n % 2), SUM(DISTINCT n) FROM {table} "
          "WHERE amount IS NOT NULL"),
    # ordered by the distinct count: the shards still send each group's rows together
    Query("SELECT name, COUNT(DISTINCT n) AS c FROM {table} GROUP BY name ORDER BY c DESC, name",
          ordered=True, ci_columns=frozenset({0})),
    Query("SELECT n % 4 AS g, COUNT(DISTINCT amount) AS c, SUM(n) FROM {table} GROUP BY g "
          "ORDER BY c, g LIMIT 3", ordered=True),
]  # fmt: skip


# SELECT DISTINCT over AVG with GROUP BY: MariaDB compares an AVG by the SUM and COUNT it
# keeps (groups averaging the same from different sums stay apart); AVG(DISTINCT x) and an
# expression over AVG by their values
DISTINCT_AVERAGE_QUERIES = [
    Query("SELECT DISTINCT AVG(k) AS agg0 FROM {table} GROUP BY name, n"),
    Query("SELECT DISTINCT AVG(n) AS a, COUNT(*) AS c FROM {table} GROUP BY name, k"),
    Query("SELECT DISTINCT AVG(amount) FROM {table} GROUP BY n % 3, k"),
    Query("SELECT DISTINCT AVG(DISTINCT n) FROM {table} GROUP BY k"),
    Query("SELECT DISTINCT AVG(n) + 0 AS a FROM {table} GROUP BY name, k"),
]


@pytest.mark.parametrize("table", ("t_mod", "t_hash", "t_range"))
def test_distinct_over_averages_compares_them_as_mariadb_does(world: World, table: str) -> None:
    for query in DISTINCT_AVERAGE_QUERIES:
        compare_query(world, Query(query.sql.format(table=table), shape="distinct_average"))


@pytest.mark.parametrize("table", ("t_mod", "t_hash", "t_range", "t_list", "t_hstr_g"))
@pytest.mark.parametrize("prepared", (False, True), ids=("text", "prepared"))
def test_sum_and_avg_of_distinct_values_count_each_value_once(
    world: World, table: str, prepared: bool
) -> None:
    for query in DISTINCT_AGGREGATE_QUERIES:
        sql = query.sql.format(table=table)
        ci = query.ci_columns | (frozenset({0}) if sql.startswith("SELECT k,") else frozenset())
        compare_query(
            world,
            Query(sql, ordered=query.ordered, ci_columns=ci, shape="distinct_aggregate"),
            prepared=prepared,
        )
    assert world.stats.get("refused:distinct_aggregate", 0) == 0


@pytest.mark.parametrize("table", ("t_mod", "t_hash", "t_range"))
@pytest.mark.parametrize("prepared", (False, True), ids=("text", "prepared"))
def test_items_that_compute_with_aggregates_are_computed_over_the_merged_aggregates(
    world: World, table: str, prepared: bool
) -> None:
    """`COALESCE(SUM(x), 0)`, `SUM(a) / COUNT(*)`, ...: one shard evaluates the item with the
    merged aggregates as literals of their types; values, names and types are MariaDB's,
    with and without groups, with ORDER BY/LIMIT over the aggregates or over the computed
    values, on empty groups."""
    numeric = [item for item in COMPUTED_ITEMS if "name" not in item]
    shapes = (
        "SELECT {item} FROM {table}",
        "SELECT {item} AS c, COUNT(*) FROM {table} WHERE n > 1000",
        "SELECT n % 3 AS g, {item}, SUM(n) FROM {table} GROUP BY g",
        "SELECT DATE(at) AS d, {item} AS c FROM {table} GROUP BY d ORDER BY COUNT(*) DESC, d "
        "LIMIT 3",
        "SELECT {item} FROM {table} WHERE amount IS NULL GROUP BY n % 2",
        # sorted by the computed values, after the computing
        "SELECT n % 5 AS g, {item} AS c FROM {table} GROUP BY g ORDER BY c DESC, g LIMIT 3",
        "SELECT {item} AS c, MIN(id) FROM {table} GROUP BY k ORDER BY 1, 2 LIMIT 2, 4",
    )
    for item in numeric:
        for shape in shapes:
            sql = shape.format(item=item, table=table)
            compare_query(
                world,
                Query(sql, ordered="ORDER BY" in sql, shape="computed_item"),
                prepared=prepared,
            )
    assert world.stats.get("refused:computed_item", 0) == 0


def test_items_that_compute_with_aggregates_warn_as_one_database(world: World) -> None:
    """A computed item that divides by zero warns once per row, as on one server; the
    shards' own warnings of the read stay."""
    for sql in (
        "SELECT n % 2 AS g, SUM(n) / 0 FROM t_mod GROUP BY g",
        # a warning per row read (every shard's), then the computing's
        "SELECT SUM(n) / 0, MAX(n) FROM t_mod WHERE name + 0 = 0 AND id < 40",
        "SELECT COUNT(*) + 1 FROM t_mod WHERE name + 0 = 0 AND id < 40",
    ):
        answers = []
        for side in (world.px, world.ref):
            rows = side.run(sql)[1]
            warnings = side.run("SHOW WARNINGS")[1]
            count = side.run("SELECT @@warning_count")[1]
            answers.append((sorted(map(repr, rows)), sorted(map(repr, warnings)), count))
        assert answers[0] == answers[1], sql


UNION_EXAMPLES = int(os.environ.get("XAPROXY_DIFF_UNION_EXAMPLES", "150"))


@settings(max_examples=UNION_EXAMPLES, **COMMON_SETTINGS)
@given(query=union_select())
def test_random_unions_match_one_database(world: World, query: Query) -> None:
    """Every shard runs the whole UNION over its rows; the merge sorts, drops duplicates
    across shards (UNION) and limits."""
    compare_query(world, query)


@settings(max_examples=UNION_EXAMPLES // 3, **COMMON_SETTINGS)
@given(query=union_select())
def test_random_unions_match_as_prepared_statements(world: World, query: Query) -> None:
    compare_query(world, query, prepared=True)


# Writes the proxy may refuse (it then runs them nowhere): (statement start, message part).
# The sharded tables' primary key (id) does not hold the shard key: a REPLACE could have to
# delete the row it replaces on another shard.
WRITE_REFUSALS = (
    ("REPLACE", "does not contain shard key 'k'"),
    # `WHERE k = 7.5`: MariaDB answers it by plan (an index lookup rounds the fraction)
    ("UPDATE", "with the fraction"),
    ("DELETE", "with the fraction"),
    ("INSERT", "with the fraction"),
    ("INSERT", "warns under a strict sql_mode"),
)


@st.composite
def new_rows(draw: st.DrawFn, world: World, table: str, count: int) -> list[str]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    texts = []
    for _ in range(count):
        row = random_row(rng, table, world.next_id[0])
        world.next_id[0] += 1
        text = row_values(row)
        if draw(st.integers(0, 4)) == 0:  # the key as a string: MySQL converts it
            text = text.replace(f", {row[1]}, ", f", '{row[1]}', ", 1)
        texts.append(text)
    return texts


@st.composite
def existing_rows(draw: st.DrawFn, world: World, table: str) -> list[str]:
    """Rows that exist (same id and key), with new values: for upserts."""
    count = world.ref.run(f"SELECT COUNT(*) FROM {table}")[1][0][0]
    texts = []
    for _ in range(draw(st.integers(1, 3))):
        pick = draw(st.integers(0, 10**6))  # drawn alike whatever the table holds
        if not count:
            continue
        offset = pick % count
        row_id, key = world.ref.run(
            f"SELECT id, k FROM {table} ORDER BY id LIMIT 1 OFFSET {offset}"
        )[1][0]
        rng = random.Random(draw(st.integers(0, 2**32)))
        _, _, name, n, amount, at = random_row(rng, table, row_id)
        texts.append(row_values((row_id, key, name, n, amount, at)))
    return sorted(set(texts))


COLUMN_LIST = "(id, k, name, n, amount, at)"


@st.composite
def insert_select(draw: st.DrawFn, world: World, table: str) -> str:
    """INSERT ... SELECT from the same table: new ids, or the same ones (IGNORE, upserts)."""
    offset = 1_000_000 + world.next_id[0] * 1000
    world.next_id[0] += 1
    where = draw(where_clause(table))
    if table in STRING_HASH:
        # `k = 0` converts each row's string: under strict mode MariaDB fails the INSERT at
        # the first row it converts, and which rows its plan converts is its own choice
        where = f" WHERE id % 7 = {draw(st.integers(0, 6))}"
    form = draw(st.sampled_from(("copy", "no_columns", "ignore", "upsert", "grouped", "replace")))
    if form == "grouped" and table in STRING_HASH:
        form = "copy"  # a _ci group's key spelling is any of the group's
    if form == "copy":
        return (
            f"INSERT INTO {table} {COLUMN_LIST} SELECT id + {offset}, k, name, n, amount, at "
            f"FROM {table}{where}"
        )
    if form == "no_columns":
        return (
            f"INSERT INTO {table} SELECT id + {offset}, k, name, n, amount, at FROM {table}"
            f"{where} ORDER BY id DESC LIMIT {draw(st.integers(0, 12))}"
        )
    if form == "ignore":
        return (
            f"INSERT IGNORE INTO {table} {COLUMN_LIST} SELECT id + {draw(st.sampled_from((0, offset)))}, "
            f"k, 'copied', n, amount, at FROM {table}{where}"
        )
    if form == "replace":  # exact where every unique key holds the shard key, else refused
        return (
            f"REPLACE INTO {table} {COLUMN_LIST} SELECT id, k, 'replaced', n, amount, at "
            f"FROM {table}{where}"
        )
    if form == "upsert":
        return (
            f"INSERT INTO {table} {COLUMN_LIST} SELECT id, k, name, n + 1, amount * 2, at "
            f"FROM {table}{where} ON DUPLICATE KEY UPDATE n = VALUES(n), amount = VALUES(amount)"
        )
    return (
        f"INSERT INTO {table} {COLUMN_LIST} SELECT MIN(id) + {offset}, k, 'grouped', COUNT(*), "
        f"SUM(amount), MAX(at) FROM {table}{where} GROUP BY k"
    )


@st.composite
def write_statement(draw: st.DrawFn, world: World) -> tuple[str, str]:
    """(statement, the table it changes)."""
    table = draw(st.sampled_from((*SHARDED, *SHARDED, "t_plain", BROADCAST)))
    kind = draw(
        st.sampled_from(
            (
                "insert",
                "insert",
                "insert_no_columns",
                "insert_set",
                "upsert",
                "update",
                "update",
                "delete",
                "replace",
                "insert_select",
                "ordered",
                "joined",
            )
        )
    )
    if table == BROADCAST:
        if kind in ("insert", "upsert", "replace"):
            code = world.next_id[0]
            world.next_id[0] += 1
            weight = f"{draw(st.integers(0, 999)) / 10:.2f}"
            sql = bcast_insert_sql([(code, f"L{draw(st.integers(0, 9))}", weight)])
        elif kind == "update":
            third = draw(st.integers(0, 2))
            sql = f"UPDATE {BROADCAST} SET weight = weight + 1 WHERE code % 3 = {third}"
        else:
            parity = draw(st.integers(0, 1))
            sql = f"DELETE FROM {BROADCAST} WHERE code > {BCAST_ROWS} AND code % 2 = {parity}"
        return sql, BROADCAST
    if kind == "insert_select":
        return draw(insert_select(world, table)), table
    if kind == "joined":
        # each shard joins its own rows with its whole copy of the broadcast table
        where = draw(where_clause(table, "a."))
        join = f"{table} a JOIN {BROADCAST} b ON a.n = b.code"
        if draw(st.booleans()):
            weight = draw(st.integers(0, 99))
            condition = (
                f"{where} AND b.weight > {weight}" if where else f" WHERE b.weight > {weight}"
            )
            return f"DELETE a FROM {join}{condition}", table
        setting = draw(
            st.sampled_from(("a.name = b.label", "a.amount = b.weight", "a.n = b.code + 1"))
        )
        return f"UPDATE {join} SET {setting}{where}", table
    if kind == "ordered":
        # the first rows in an order that ends with the primary key: one answer
        where = draw(where_clause(table))
        first = draw(st.sampled_from(("name", "n", "amount", "at", "k")))
        order = f" ORDER BY {first}{direction(draw)}, id{direction(draw)}"
        limit = f" LIMIT {draw(st.integers(0, 15))}"
        if draw(st.booleans()):
            return f"DELETE FROM {table}{where}{order}{limit}", table
        setting = draw(st.sampled_from(("n = n + 1", "name = 'ordered'", "amount = NULL")))
        return f"UPDATE {table} SET {setting}{where}{order}{limit}", table
    if kind in ("insert", "insert_no_columns"):
        rows = draw(new_rows(world, table, draw(st.integers(1, 8))))
        # without a column list the proxy reads the key's position from the shards' metadata
        columns = f" {COLUMN_LIST}" if kind == "insert" else ""
        return f"INSERT INTO {table}{columns} VALUES " + ", ".join(rows), table
    if kind == "insert_set":
        rng = random.Random(draw(st.integers(0, 2**32)))
        row = random_row(rng, table, world.next_id[0])
        world.next_id[0] += 1
        names = COLUMN_LIST.strip("()").split(", ")
        assignments = ", ".join(
            f"{name} = {'NULL' if v is None else (v if i == 4 else lit(v))}"
            for i, (name, v) in enumerate(zip(names, row, strict=True))
        )
        return f"INSERT INTO {table} SET {assignments}", table
    if kind in ("upsert", "replace"):
        rows = draw(existing_rows(world, table)) + draw(
            new_rows(world, table, draw(st.integers(0, 2)))
        )
        if not rows:
            rows = draw(new_rows(world, table, 1))
        values = ", ".join(rows)
        if kind == "replace":
            return f"REPLACE INTO {table} {COLUMN_LIST} VALUES {values}", table
        update = draw(
            st.sampled_from(("name = VALUES(name), n = n + 1", "amount = VALUES(amount)"))
        )
        return (
            f"INSERT INTO {table} {COLUMN_LIST} VALUES {values} ON DUPLICATE KEY UPDATE {update}",
            table,
        )
    if kind == "update":
        setting = draw(
            st.sampled_from(
                (
                    f"name = {lit(draw(st.sampled_from(NAMES)))}",
                    "n = n + 1",
                    "n = NULL",
                    f"amount = {draw(st.integers(0, 9999)) / 100:.2f}, "
                    f"n = {draw(st.integers(-3, 20))}",
                    "at = at + INTERVAL 1 HOUR",
                )
            )
        )
        where = draw(where_clause(table)) or " WHERE id % 11 = 3"
        return f"UPDATE {table} SET {setting}{where}", table
    where = draw(where_clause(table))
    sample = f"id % 11 = {draw(st.integers(0, 10))}"
    return f"DELETE FROM {table}" + (
        f"{where} AND {sample}" if where else f" WHERE {sample}"
    ), table


@settings(max_examples=WRITE_EXAMPLES, **COMMON_SETTINGS)
@given(data=st.data())
def test_random_writes_keep_tables_equal(world: World, data: st.DataObject) -> None:
    """1-4 writes, alone or in a transaction that commits or rolls back; then the tables match.

    Every example starts from the same snapshot, so a failure replays and shrinks.
    """
    world.restore()
    transaction = data.draw(st.sampled_from((None, None, None, "COMMIT", "ROLLBACK")))
    touched: set[str] = set()
    log: list[str] = []  # the example's statements, for the failure message
    if transaction:
        world.px.run("BEGIN")
        world.ref.run("BEGIN")
        log.append("BEGIN")
    try:
        for _ in range(data.draw(st.integers(1, 4))):
            sql, table = data.draw(write_statement(world))
            world.dirty.add(table)
            log.append(sql)
            world.stats[f"write:{sql.split()[0].lower()}"] += 1
            kind_px, px = outcome(world.px, sql)
            if (
                kind_px == "error"
                and px[0] == 1235
                and any(sql.startswith(start) and part in px[1] for start, part in WRITE_REFUSALS)
            ):
                world.stats[f"write refusal:{px[1].split(';')[0][:90]}"] += 1
                continue
            kind_ref, ref = outcome(world.ref, sql)
            history = "\n  ".join(log)
            if kind_px == "error" or kind_ref == "error":
                assert kind_px == kind_ref and px[0] == ref[0], (
                    f"{sql}\nproxy: {px}\nreference: {ref}\nstatements:\n  {history}"
                )
                world.stats["write:both_failed"] += 1
                continue
            assert px[2] == ref[2], (
                f"affected rows differ for {sql}: proxy {px[2]}, reference {ref[2]}"
                f"\nstatements:\n  {history}"
            )
            if " SELECT " in sql or sql.startswith("UPDATE"):
                # `Records: n  Duplicates: d  Warnings: w`, `Rows matched: m  Changed: c ...`; a warning of a
                # constant in the WHERE comes once per shard, so the warnings are not compared
                counts = [side.info().partition("  Warnings")[0] for side in (world.px, world.ref)]
                # an UPDATE whose WHERE MariaDB's optimizer finds impossible has no text
                impossible = counts[1] == "" and sql.startswith("UPDATE") and ref[2] == 0
                assert counts[0] == counts[1] or impossible, f"{sql}\nstatements:\n  {history}"
            touched.add(table)
            if transaction:
                # inside the transaction a fan-out read sees its own uncommitted writes
                key = "code" if table == BROADCAST else "id"
                check = f"SELECT COUNT(*), SUM({key}), MAX({key}) FROM {table}"
                assert world.px.run(check)[1] == world.ref.run(check)[1], (
                    f"{check} differs inside the transaction after:\n  {history}"
                )
        if transaction:
            log.append(transaction)
            world.px.run(transaction)
            world.ref.run(transaction)
            world.stats[f"transaction:{transaction.lower()}"] += 1
        compare_tables(world, tuple(t for t in ALL_TABLES if t in touched), log)
    except BaseException:
        if transaction:
            for side in (world.px, world.ref):
                with contextlib.suppress(pymysql.MySQLError):
                    side.run("ROLLBACK")
        raise


def test_after_writes_rows_are_still_placed_by_the_shard_map(world: World) -> None:
    compare_tables(world)
    check_placement(world)


def test_the_random_statements_leave_no_transaction_open_on_any_shard(world: World) -> None:
    """Autocommit statements, failed or refused, copies made and dropped: nothing stays
    open on a shard (an InnoDB transaction, a prepared XA branch)."""
    for server in world.cluster.servers:
        assert server.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX") == [(0,)]
        assert server.execute("XA RECOVER") == []
