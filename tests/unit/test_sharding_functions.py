"""Where each key lands, per sharding algorithm: a fixed key -> shard table.

The rows were computed once and written here as literals, so any change of
placement (which would strand every existing row on the wrong shard) fails
loudly. No server: shard_for over tables parsed from a config dict.
"""

from __future__ import annotations

import datetime
import zlib
from decimal import Decimal

import pytest

from xaproxy.config import parse_config
from xaproxy.errors import ProxyError
from xaproxy.routing.sharding import canonical_text, shard_for

RANGES = [{"shard": "s0", "below": 100}, {"shard": "s1", "below": 1000}, {"shard": "s2"}]
LIST_VALUES = {"s0": ["DE", "FR", "NL"], "s1": ["US", "CA", 7]}


def _tables(ranges=RANGES):
    config = parse_config(
        {
            "listen": "127.0.0.1:3307",
            "proxy_id": "t",
            "users": [{"user": "app", "password": "secret"}],
            "shards": [
                {
                    "name": f"s{i}",
                    "host": "127.0.0.1",
                    "port": 3306 + i,
                    "user": "u",
                    "password": "",
                }
                for i in range(4)
            ],
            "schemas": [
                {
                    "name": "shop",
                    "default_shard": "s0",
                    "tables": [
                        {"name": "m", "shard_key": "id", "algorithm": "mod"},
                        {"name": "h", "shard_key": "id", "algorithm": "hash"},
                        {
                            "name": "r",
                            "shard_key": "id",
                            "algorithm": "range",
                            "shards": ["s0", "s1", "s2"],
                            "ranges": ranges,
                        },
                        {
                            "name": "l",
                            "shard_key": "country",
                            "algorithm": "list",
                            "shards": ["s0", "s1"],
                            "values": LIST_VALUES,
                        },
                    ],
                }
            ],
        }
    )
    return config.schemas["shop"].tables


TABLES = _tables()

MOD = [
    (0, "s0"),
    (1, "s1"),
    (2, "s2"),
    (3, "s3"),
    (4, "s0"),
    (5, "s1"),
    (7, "s3"),
    (-1, "s3"),
    (-5, "s3"),
    (1000000000003, "s3"),
    ("42", "s2"),
    (" 9 ", "s1"),
    (Decimal("6"), "s2"),
    (True, "s1"),
]

HASH = [
    (0, "s1"),
    (1, "s3"),
    (2, "s1"),
    (3, "s3"),
    (42, "s0"),
    (-7, "s3"),
    (1000000000000, "s0"),
    ("42", "s0"),
    ("0042", "s0"),
    ("+42", "s0"),
    (Decimal("42"), "s0"),
    ("alice", "s3"),
    ("ALICE", "s3"),
    ("alice  ", "s3"),
    ("Straße", "s1"),
    ("strasse", "s1"),
    ("", "s0"),
    (datetime.date(2024, 2, 29), "s2"),
    (datetime.datetime(2024, 2, 29, 13, 5, 9), "s3"),
    (b"bob", "s0"),
    ("bob", "s0"),
]

RANGE = [
    (-5, "s0"),
    (0, "s0"),
    (99, "s0"),
    (100, "s1"),
    ("99", "s0"),
    (Decimal("99.5"), "s0"),
    (101, "s1"),
    (999, "s1"),
    (1000, "s2"),
    (1000000000, "s2"),
]

LIST = [
    ("DE", "s0"),
    ("de", "s0"),
    ("FR ", "s0"),
    ("NL", "s0"),
    ("US", "s1"),
    ("ca", "s1"),
    ("CA", "s1"),
    (7, "s1"),
    ("7", "s1"),
]


@pytest.mark.parametrize(("key", "shard"), MOD)
def test_mod_places_the_integer_key_modulo_the_shard_count(key, shard):
    assert shard_for(TABLES["m"], key) == shard


@pytest.mark.parametrize(("key", "shard"), HASH)
def test_hash_places_the_crc32_of_the_canonical_text(key, shard):
    assert shard_for(TABLES["h"], key) == shard


@pytest.mark.parametrize(("key", "shard"), RANGE)
def test_range_places_the_key_below_the_first_bound_it_is_under(key, shard):
    assert shard_for(TABLES["r"], key) == shard


@pytest.mark.parametrize(("key", "shard"), LIST)
def test_list_places_the_key_on_the_shard_that_lists_it(key, shard):
    assert shard_for(TABLES["l"], key) == shard


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (42, "42"),
        ("0042", "42"),
        ("+42", "42"),
        (Decimal("42"), "42"),
        ("ALICE  ", "alice"),
        (datetime.date(2024, 2, 29), "2024-02-29"),
        (datetime.datetime(2024, 2, 29, 13, 5, 9), "2024-02-29 13:05:09"),
        (b"bob", "bob"),
    ],
)
def test_hash_key_canonical_text_is_what_equal_mysql_values_share(key, text):
    assert canonical_text(key) == text
    assert shard_for(TABLES["h"], key) == f"s{zlib.crc32(text.encode()) % 4}"


def test_a_null_shard_key_is_refused():
    for name in ("m", "h", "r", "l"):
        with pytest.raises(ProxyError) as refused:
            shard_for(TABLES[name], None)
        assert refused.value.code == 1048


def test_mod_refuses_a_key_that_is_not_an_integer():
    with pytest.raises(ProxyError) as refused:
        shard_for(TABLES["m"], "abc")
    assert refused.value.code == 1366


def test_list_refuses_a_key_no_shard_lists():
    with pytest.raises(ProxyError) as refused:
        shard_for(TABLES["l"], "JP")
    assert refused.value.code == 1526


def test_range_without_an_open_last_range_refuses_keys_past_the_last_bound():
    closed = _tables(
        [
            {"shard": "s0", "below": 100},
            {"shard": "s1", "below": 1000},
            {"shard": "s2", "below": 5000},
        ]
    )["r"]
    assert shard_for(closed, 4999) == "s2"
    with pytest.raises(ProxyError) as refused:
        shard_for(closed, 5000)
    assert refused.value.code == 1526
