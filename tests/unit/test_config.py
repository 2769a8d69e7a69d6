"""Configuration loading and validation: every rule, its YAML path, and the defaults."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from xaproxy.config import (
    Config,
    ConfigError,
    RangeBound,
    SchemaConfig,
    ShardConfig,
    TableConfig,
    TransactionsConfig,
    UserConfig,
    check_config,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[2]

SPEC_YAML = """\
listen: 127.0.0.1:3307
proxy_id: px1
users:
  - {user: app, password: app-secret}
shards:
  - {name: s0, host: 127.0.0.1, port: 13306, user: root, password: "", pool_size: 32}
  - {name: s1, host: 127.0.0.1, port: 13307, user: root, password: "", pool_size: 32}
schemas:
  - name: shop
    default_shard: s0
    tables:
      - {name: orders, shard_key: user_id, algorithm: hash, shards: [s0, s1]}
      - {name: accounts, shard_key: id, algorithm: mod}
      - {name: countries, broadcast: true}
transactions:
  mode: xa
  timeout_s: 60
"""


def base() -> dict[str, Any]:
    """A fresh, valid configuration to break in one place per test."""
    return {
        "listen": "127.0.0.1:3307",
        "proxy_id": "px1",
        "users": [{"user": "app", "password": "secret"}],
        "shards": [
            {"name": "s0", "host": "127.0.0.1", "port": 13306, "user": "root"},
            {"name": "s1", "host": "127.0.0.1", "port": 13307, "user": "root"},
        ],
        "schemas": [
            {
                "name": "shop",
                "default_shard": "s0",
                "tables": [{"name": "orders", "shard_key": "user_id", "algorithm": "hash"}],
            }
        ],
    }


def tables(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["schemas"][0]["tables"]


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def with_table(table: dict[str, Any]) -> dict[str, Any]:
    """``base()`` with ``table`` as schemas[0].tables[1]."""
    data = base()
    tables(data).append(table)
    return data


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- shape and defaults -------------------------------------------------------------------


def test_the_documented_shape_loads_into_config_values() -> None:
    config = parse_config(yaml.safe_load(SPEC_YAML))
    assert isinstance(config, Config)
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 3307)
    assert config.proxy_id == "px1"
    assert config.users == {"app": UserConfig(user="app", password="app-secret")}
    assert config.shards["s1"] == ShardConfig(
        name="s1",
        host="127.0.0.1",
        port=13307,
        user="root",
        password="",
        pool_size=32,
        connect_timeout_s=5.0,
    )
    shop = config.schemas["shop"]
    assert isinstance(shop, SchemaConfig)
    assert shop.default_shard == "s0"
    assert shop.tables["orders"] == TableConfig(
        name="orders",
        shard_key="user_id",
        algorithm="hash",
        shards=("s0", "s1"),
        broadcast=False,
        ranges=(),
        values={},
        auto_increment=None,
        binding=None,
    )
    assert config.transactions.mode == "xa"


def test_shards_keep_the_yaml_order() -> None:
    data = base()
    data["shards"].reverse()
    assert list(parse_config(data).shards) == ["s1", "s0"]


def test_optional_top_level_keys_have_documented_defaults() -> None:
    config = parse_config(base())
    assert config.auth_plugin == "mysql_native_password"
    assert config.max_connections == 10000
    assert config.shutdown_timeout_s == 10
    assert config.metrics_listen is None
    assert config.server_version is None


def test_optional_top_level_keys_are_read_when_given() -> None:
    data = base()
    data.update(
        auth_plugin="caching_sha2_password",
        max_connections=50,
        shutdown_timeout_s=2.5,
        metrics_listen="0.0.0.0:9100",
        server_version="8.0.36-xaproxy",
    )
    config = parse_config(data)
    assert config.auth_plugin == "caching_sha2_password"
    assert config.max_connections == 50
    assert config.shutdown_timeout_s == 2.5
    assert config.metrics_listen == ("0.0.0.0", 9100)
    assert config.server_version == "8.0.36-xaproxy"


def test_shard_defaults_for_pool_size_connect_timeout_and_password() -> None:
    shard = parse_config(base()).shards["s0"]
    assert shard.pool_size == 32
    assert shard.connect_timeout_s == 5
    assert shard.password == ""


def test_null_password_means_no_password() -> None:
    data = base()
    data["shards"][0]["password"] = None
    data["users"][0]["password"] = None
    config = parse_config(data)
    assert config.shards["s0"].password == ""
    assert config.users["app"].password == ""


def test_transactions_defaults_apply_when_the_section_is_missing_or_empty() -> None:
    expected = TransactionsConfig(
        mode="xa",
        timeout_s=60,
        abandon_age_s=300,
        lock_retry_count=30,
        lock_retry_interval_ms=10,
        recover_interval_s=30,
    )
    assert parse_config(base()).transactions == expected
    data = base()
    data["transactions"] = None
    assert parse_config(data).transactions == expected


def test_transactions_values_are_read_when_given() -> None:
    data = base()
    data["transactions"] = {
        "mode": "at",
        "timeout_s": 5,
        "abandon_age_s": 600,
        "lock_retry_count": 3,
        "lock_retry_interval_ms": 50,
        "recover_interval_s": 1.5,
    }
    assert parse_config(data).transactions == TransactionsConfig(
        mode="at",
        timeout_s=5,
        abandon_age_s=600,
        lock_retry_count=3,
        lock_retry_interval_ms=50,
        recover_interval_s=1.5,
    )


def test_table_shards_default_to_all_shards_in_yaml_order() -> None:
    data = base()
    data["shards"].append({"name": "a2", "host": "h", "port": 1, "user": "u"})
    assert parse_config(data).schema("shop").table("orders").shards == ("s0", "s1", "a2")


def test_explicit_table_shards_keep_their_order() -> None:
    data = base()
    tables(data)[0]["shards"] = ["s1", "s0"]
    assert parse_config(data).schema("shop").table("orders").shards == ("s1", "s0")


def test_broadcast_table_has_no_key_or_algorithm_and_is_not_sharded() -> None:
    shop = parse_config(with_table({"name": "countries", "broadcast": True})).schemas["shop"]
    countries = shop.table("countries")
    assert countries.broadcast is True
    assert countries.shard_key is None and countries.algorithm is None
    assert countries.shards == ("s0", "s1")
    assert countries.sharded is False


def test_listed_table_without_algorithm_is_unsharded_on_the_default_shard() -> None:
    data = with_table({"name": "audit_log", "auto_increment": "id"})
    audit = parse_config(data).schema("shop").table("audit_log")
    assert audit.sharded is False and audit.broadcast is False
    assert audit.shards == ("s0",)
    assert audit.auto_increment == "id"


def test_sharded_property_and_has_sharded_tables() -> None:
    shop = parse_config(base()).schema("shop")
    assert shop.table("orders").sharded is True
    assert shop.has_sharded_tables is True
    data = base()
    tables(data)[0] = {"name": "countries", "broadcast": True}
    assert parse_config(data).schema("shop").has_sharded_tables is False


def test_schema_and_table_lookup_is_case_insensitive() -> None:
    data = base()
    data["schemas"][0]["name"] = "Shop"
    tables(data)[0]["name"] = "Orders"
    config = parse_config(data)
    assert list(config.schemas) == ["shop"]
    assert list(config.schemas["shop"].tables) == ["orders"]
    assert config.schema("SHOP").name == "Shop"
    assert config.schema("shop").table("ORDERS").name == "Orders"
    assert config.schema("nope") is None
    assert config.schema("shop").table("nope") is None


def test_algorithm_and_modes_are_accepted_in_any_case() -> None:
    data = base()
    tables(data)[0]["algorithm"] = "HASH"
    data["transactions"] = {"mode": "AT"}
    config = parse_config(data)
    assert config.schema("shop").table("orders").algorithm == "hash"
    assert config.transactions.mode == "at"


def test_schemas_may_be_omitted() -> None:
    data = base()
    del data["schemas"]
    assert parse_config(data).schemas == {}


def test_listen_accepts_bracketed_ipv6_and_port_zero() -> None:
    data = base()
    data["listen"] = "[::1]:0"
    config = parse_config(data)
    assert (config.listen_host, config.listen_port) == ("::1", 0)


def test_config_values_are_frozen() -> None:
    config = parse_config(base())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.proxy_id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.shards["s0"].port = 1  # type: ignore[misc]


def test_table_config_is_hashable_despite_its_values_mapping() -> None:
    table = parse_config(base()).schema("shop").table("orders")
    assert hash(table) == hash(dataclasses.replace(table))


# --- example files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.yaml", "two-shards.yaml"])
def test_example_config_file_loads_without_problems(name: str) -> None:
    path = REPO / "config" / name
    assert check_config(path) == []
    assert load_config(path).shards.keys() == {"s0", "s1"}


def test_example_yaml_demonstrates_every_algorithm_and_a_binding_group() -> None:
    shop = load_config(REPO / "config" / "example.yaml").schema("shop")
    algorithms = {t.algorithm for t in shop.tables.values() if t.sharded}
    assert algorithms == {"mod", "hash", "range", "list"}
    assert any(t.broadcast for t in shop.tables.values())
    bound = [t for t in shop.tables.values() if t.binding]
    assert len(bound) >= 2 and len({t.binding for t in bound}) == 1
    invoices = shop.table("invoices")
    assert invoices.ranges == (RangeBound("s0", 1000000), RangeBound("s1", None))
    assert shop.table("stores").values["s1"] == ("US", "CA", "NO")


def test_two_shards_demo_has_the_shop_tables_it_promises() -> None:
    config = load_config(REPO / "config" / "two-shards.yaml")
    assert [(s.host, s.port) for s in config.shards.values()] == [
        ("127.0.0.1", 13306),
        ("127.0.0.1", 13307),
    ]
    shop = config.schema("shop")
    assert shop.table("orders").algorithm == "hash"
    assert shop.table("orders").shard_key == "user_id"
    assert shop.table("order_items").binding == shop.table("orders").binding is not None
    assert shop.table("order_items").shard_key == "user_id"
    assert shop.table("accounts").algorithm == "mod"
    assert shop.table("countries").broadcast is True


# --- validation: top level ------------------------------------------------------------------


def test_all_problems_are_reported_together() -> None:
    data = base()
    data["listen"] = "nonsense"
    data["proxy_id"] = "has space"
    data["shards"][0]["hots"] = "x"
    tables(data)[0]["algorithm"] = "md5"
    problems = problems_of(data)
    assert "listen: expected host:port" in problems
    assert any(p.startswith("proxy_id: ") for p in problems)
    assert "shards[0].hots: unknown key" in problems
    assert any(p.startswith("schemas[0].tables[0].algorithm: unknown algorithm") for p in problems)


def test_config_error_str_joins_problems_with_newlines() -> None:
    error = ConfigError(["a: one", "b: two"])
    assert error.problems == ["a: one", "b: two"]
    assert str(error) == "a: one\nb: two"


def test_non_mapping_document_is_reported() -> None:
    assert problems_of(["a", "list"]) == ["(top level): expected a mapping"]


def test_empty_document_is_reported() -> None:
    assert problems_of(None) == ["(top level): the configuration is empty"]


def test_unknown_top_level_key_is_reported() -> None:
    data = base()
    data["lissen"] = "127.0.0.1:3307"
    assert problems_of(data) == ["lissen: unknown key"]


@pytest.mark.parametrize(
    "listen", ["3307", 3307, "127.0.0.1", "127.0.0.1:abc", ":3307", "::1:3307"]
)
def test_malformed_listen_address_is_reported(listen: object) -> None:
    data = base()
    data["listen"] = listen
    assert problems_of(data) == ["listen: expected host:port"]


def test_listen_port_out_of_range_is_reported() -> None:
    data = base()
    data["listen"] = "127.0.0.1:70000"
    assert problems_of(data) == ["listen: port must be between 0 and 65535"]


def test_missing_listen_and_proxy_id_are_required() -> None:
    data = base()
    del data["listen"], data["proxy_id"]
    assert problems_of(data) == ["listen: required", "proxy_id: required"]


def test_malformed_metrics_listen_is_reported() -> None:
    data = base()
    data["metrics_listen"] = "9100"
    assert problems_of(data) == ["metrics_listen: expected host:port"]


@pytest.mark.parametrize("proxy_id", ["", "x" * 17, "px 1", "px.1", "pröxy"])
def test_proxy_id_must_be_short_and_safe_for_xa_ids(proxy_id: str) -> None:
    data = base()
    data["proxy_id"] = proxy_id
    problems = problems_of(data)
    assert len(problems) == 1 and problems[0].startswith("proxy_id: ")


def test_proxy_id_of_sixteen_allowed_characters_is_accepted() -> None:
    data = base()
    data["proxy_id"] = "Px_-0123456789ab"
    assert parse_config(data).proxy_id == "Px_-0123456789ab"


def test_numeric_proxy_id_must_be_quoted() -> None:
    data = base()
    data["proxy_id"] = 1
    assert problems_of(data) == ["proxy_id: expected a string (put it in quotes)"]


def test_unknown_auth_plugin_is_reported() -> None:
    data = base()
    data["auth_plugin"] = "sha256_password"
    assert problems_of(data) == [
        "auth_plugin: expected mysql_native_password or caching_sha2_password"
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_connections", 0, "must be at least 1"),
        ("max_connections", "many", "expected an integer"),
        ("max_connections", True, "expected an integer"),
        ("shutdown_timeout_s", -1, "must be at least 0"),
        ("shutdown_timeout_s", "10s", "expected a number"),
        ("server_version", 8.0, "expected a string (put it in quotes)"),
        ("server_version", "", "must not be empty"),
    ],
)
def test_bad_top_level_values_are_reported(key: str, value: object, message: str) -> None:
    data = base()
    data[key] = value
    assert problems_of(data) == [f"{key}: {message}"]


# --- validation: shards and users -----------------------------------------------------------


def test_at_least_one_shard_is_required() -> None:
    data = base()
    data["shards"] = []
    data["schemas"] = []
    assert problems_of(data) == ["shards: at least one shard is required"]


def test_missing_shards_key_is_required() -> None:
    data = base()
    del data["shards"]
    data["schemas"] = []
    assert problems_of(data) == ["shards: required"]


def test_duplicate_shard_name_is_reported_with_its_yaml_path() -> None:
    data = base()
    data["shards"][1]["name"] = "s0"
    problems = problems_of(data)
    assert "shards[1].name: duplicate shard name 's0'" in problems


def test_unknown_shard_key_is_reported_with_its_yaml_path() -> None:
    data = base()
    data["shards"][0]["hots"] = data["shards"][0].pop("host")
    assert problems_of(data) == ["shards[0].hots: unknown key", "shards[0].host: required"]


def test_wrong_port_type_is_reported() -> None:
    data = base()
    data["shards"][0]["port"] = "13306"
    assert problems_of(data) == ["shards[0].port: expected an integer"]


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_shard_port_out_of_range_is_reported(port: int) -> None:
    data = base()
    data["shards"][1]["port"] = port
    assert problems_of(data) == ["shards[1].port: must be between 1 and 65535"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pool_size", 0, "must be at least 1"),
        ("pool_size", 2.5, "expected an integer"),
        ("connect_timeout_s", 0, "must be greater than 0"),
        ("connect_timeout_s", "5", "expected a number"),
        ("password", 1234, "expected a string (put it in quotes)"),
        ("host", "", "must not be empty"),
    ],
)
def test_bad_shard_values_are_reported(key: str, value: object, message: str) -> None:
    data = base()
    data["shards"][0][key] = value
    assert problems_of(data) == [f"shards[0].{key}: {message}"]


def test_shard_entry_that_is_not_a_mapping_is_reported() -> None:
    data = base()
    data["shards"][1] = "s1"
    problems = problems_of(data)
    assert problems[0] == "shards[1]: expected a mapping"


def test_broken_shard_names_do_not_cascade_into_unknown_shard_reports() -> None:
    data = base()
    del data["shards"][1]["name"]
    tables(data)[0]["shards"] = ["s0", "s1"]
    assert problems_of(data) == ["shards[1].name: required"]


def test_at_least_one_user_is_required() -> None:
    data = base()
    data["users"] = []
    assert problems_of(data) == ["users: at least one user is required"]


def test_missing_users_key_is_required() -> None:
    data = base()
    del data["users"]
    assert problems_of(data) == ["users: required"]


def test_duplicate_user_is_reported() -> None:
    data = base()
    data["users"].append({"user": "app", "password": "other"})
    assert problems_of(data) == ["users[1].user: duplicate user 'app'"]


def test_unknown_user_key_is_reported() -> None:
    data = base()
    data["users"][0]["passwd"] = "x"
    assert problems_of(data) == ["users[0].passwd: unknown key"]


def test_user_grants_default_to_least_privilege() -> None:
    user = parse_config(base()).users["app"]
    assert (user.schemas, user.read_only, user.ddl, user.admin) == (None, False, False, False)
    assert user.password_hash is None


def test_user_grants_are_read_when_given() -> None:
    data = base()
    data["users"][0].update({"schemas": ["Shop", "performance_schema"], "ddl": True, "admin": True})
    data["users"].append({"user": "reader", "password": "r", "read_only": True})
    users = parse_config(data).users
    assert users["app"].schemas == frozenset({"shop", "performance_schema"})
    assert users["app"].ddl and users["app"].admin and not users["app"].read_only
    assert users["reader"].read_only and users["reader"].schemas is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("read_only", "yes", "users[0].read_only: expected true or false"),
        ("ddl", 1, "users[0].ddl: expected true or false"),
        ("admin", None, "users[0].admin: expected true or false"),
        ("schemas", "shop", "users[0].schemas: expected a list"),
        ("schemas", [3], "users[0].schemas[0]: expected a schema name (a string)"),
    ],
)
def test_bad_user_grants_are_reported(key: str, value: object, message: str) -> None:
    data = base()
    data["users"][0][key] = value
    assert problems_of(data) == [message]


def test_a_user_granted_an_unknown_schema_is_reported() -> None:
    data = base()
    data["users"][0]["schemas"] = ["shop", "shpo"]
    (problem,) = problems_of(data)
    assert problem.startswith("users[0].schemas[1]: unknown schema 'shpo'")


def test_no_user_may_be_granted_the_bookkeeping_database() -> None:
    data = base()
    data["users"][0]["schemas"] = ["XAPROXY"]
    (problem,) = problems_of(data)
    assert problem.startswith("users[0].schemas[0]: 'xaproxy' holds the proxy's own bookkeeping")


def test_no_logical_schema_may_be_called_like_the_bookkeeping_database() -> None:
    data = base()
    data["schemas"][0]["name"] = "xaproxy"
    (problem,) = problems_of(data)
    assert problem.startswith("schemas[0].name: 'xaproxy' is the database of the proxy's own")


def test_read_only_and_ddl_together_are_reported() -> None:
    data = base()
    data["users"][0].update({"read_only": True, "ddl": True})
    assert problems_of(data) == [
        "users[0]: read_only and ddl contradict each other: a DDL changes data"
    ]


def test_a_password_hash_is_accepted_instead_of_the_password() -> None:
    data = base()
    del data["users"][0]["password"]
    data["users"][0]["password_hash"] = "*27fa2108d4ba1e19c8e7385d0f9d18568bac0ca0"
    user = parse_config(data).users["app"]
    assert user.password_hash == "*27FA2108D4BA1E19C8E7385D0F9D18568BAC0CA0"


@pytest.mark.parametrize(
    "value", ["27FA2108D4BA1E19C8E7385D0F9D18568BAC0CA0", "*27FA", "*" + "g" * 40]
)
def test_a_malformed_password_hash_is_reported(value: str) -> None:
    data = base()
    del data["users"][0]["password"]
    data["users"][0]["password_hash"] = value
    (problem,) = problems_of(data)
    assert problem.startswith("users[0].password_hash: expected the mysql_native_password hash")


def test_password_and_password_hash_together_are_reported() -> None:
    data = base()
    data["users"][0]["password_hash"] = "*27FA2108D4BA1E19C8E7385D0F9D18568BAC0CA0"
    assert problems_of(data) == ["users[0]: give either password or password_hash, not both"]


# --- validation: transactions ---------------------------------------------------------------


def test_unknown_transaction_mode_is_reported() -> None:
    data = base()
    data["transactions"] = {"mode": "2pc"}
    assert problems_of(data) == ["transactions.mode: expected xa or at"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("timeout_s", 0, "must be greater than 0"),
        ("abandon_age_s", "long", "expected a number"),
        ("lock_retry_count", -1, "must be at least 0"),
        ("lock_retry_interval_ms", 1.5, "expected an integer"),
        ("recover_interval_s", -3, "must be greater than 0"),
        ("timeout", 5, "unknown key"),
    ],
)
def test_bad_transaction_values_are_reported(key: str, value: object, message: str) -> None:
    data = base()
    data["transactions"] = {key: value}
    assert problems_of(data) == [f"transactions.{key}: {message}"]


def test_transactions_must_be_a_mapping() -> None:
    data = base()
    data["transactions"] = "xa"
    assert problems_of(data) == ["transactions: expected a mapping"]


# --- validation: schemas and tables ---------------------------------------------------------


def test_duplicate_schema_is_reported_case_insensitively() -> None:
    data = base()
    data["schemas"].append({"name": "SHOP", "default_shard": "s1"})
    assert problems_of(data) == ["schemas[1].name: duplicate schema 'SHOP'"]


def test_unknown_default_shard_is_reported() -> None:
    data = base()
    data["schemas"][0]["default_shard"] = "x"
    assert problems_of(data) == ["schemas[0].default_shard: unknown shard 'x'"]


def test_missing_default_shard_is_required() -> None:
    data = base()
    del data["schemas"][0]["default_shard"]
    assert problems_of(data) == ["schemas[0].default_shard: required"]


def test_missing_shard_key_is_reported_with_its_yaml_path() -> None:
    data = base()
    tables(data).extend(
        [
            {"name": "countries", "broadcast": True},
            {"name": "accounts", "algorithm": "mod"},
        ]
    )
    assert problems_of(data) == ["schemas[0].tables[2].shard_key: required"]


def test_missing_algorithm_is_reported_when_shard_key_is_given() -> None:
    data = with_table({"name": "accounts", "shard_key": "id"})
    assert problems_of(data) == ["schemas[0].tables[1].algorithm: required"]


def test_null_algorithm_is_reported_as_required() -> None:
    data = with_table({"name": "accounts", "shard_key": "id", "algorithm": None})
    assert problems_of(data) == ["schemas[0].tables[1].algorithm: required"]


def test_unknown_algorithm_lists_the_known_ones() -> None:
    data = base()
    tables(data)[0]["algorithm"] = "md5"
    assert problems_of(data) == [
        "schemas[0].tables[0].algorithm: unknown algorithm 'md5' "
        "(expected one of: hash, list, mod, range)"
    ]


def test_unknown_shard_in_table_is_reported_with_its_yaml_path() -> None:
    data = with_table({"name": "accounts", "shard_key": "id", "algorithm": "mod"})
    tables(data)[1]["shards"] = ["s9", "s0"]
    assert problems_of(data) == ["schemas[0].tables[1].shards[0]: unknown shard 's9'"]


def test_duplicate_shard_in_table_shards_is_reported() -> None:
    data = base()
    tables(data)[0]["shards"] = ["s0", "s1", "s0"]
    assert problems_of(data) == ["schemas[0].tables[0].shards[2]: duplicate shard 's0'"]


def test_sharded_table_with_empty_shards_is_reported() -> None:
    data = base()
    tables(data)[0]["shards"] = []
    assert problems_of(data) == ["schemas[0].tables[0].shards: must not be empty"]


def test_duplicate_table_is_reported_case_insensitively() -> None:
    data = base()
    tables(data).extend(
        [
            {"name": "accounts", "shard_key": "id", "algorithm": "mod"},
            {"name": "countries", "broadcast": True},
            {"name": "ORDERS", "broadcast": True},
        ]
    )
    assert problems_of(data) == ["schemas[0].tables[3].name: duplicate table 'ORDERS'"]


def test_unknown_table_key_is_reported() -> None:
    data = base()
    tables(data)[0]["shardkey"] = "user_id"
    assert problems_of(data) == ["schemas[0].tables[0].shardkey: unknown key"]


def test_table_name_is_required() -> None:
    data = with_table({"shard_key": "id", "algorithm": "mod"})
    assert problems_of(data) == ["schemas[0].tables[1].name: required"]


@pytest.mark.parametrize("key", ["shard_key", "algorithm", "binding"])
def test_broadcast_table_rejects_sharding_keys(key: str) -> None:
    data = with_table({"name": "countries", "broadcast": True, key: "x"})
    problems = problems_of(data)
    assert f"schemas[0].tables[1].{key}: not allowed on a broadcast table" in problems


def test_broadcast_must_be_a_boolean() -> None:
    data = with_table({"name": "countries", "broadcast": "yes"})
    assert problems_of(data) == ["schemas[0].tables[1].broadcast: expected true or false"]


def test_unsharded_listed_table_may_not_name_shards() -> None:
    data = with_table({"name": "audit_log", "shards": ["s1"]})
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith("schemas[0].tables[1].shards: only allowed on sharded")


def test_ranges_on_a_non_range_table_are_reported() -> None:
    data = base()
    tables(data)[0]["ranges"] = [{"shard": "s0"}]
    assert problems_of(data) == ["schemas[0].tables[0].ranges: only allowed with algorithm: range"]


def test_values_on_a_non_list_table_are_reported() -> None:
    data = base()
    tables(data)[0]["values"] = {"s0": [1]}
    assert problems_of(data) == ["schemas[0].tables[0].values: only allowed with algorithm: list"]


# --- validation: range tables ---------------------------------------------------------------


def range_table(ranges: object, **extra: Any) -> dict[str, Any]:
    return with_table(
        {"name": "invoices", "shard_key": "no", "algorithm": "range", "ranges": ranges, **extra}
    )


def test_range_table_is_loaded_with_an_unbounded_last_range() -> None:
    data = range_table([{"shard": "s0", "below": 100}, {"shard": "s1"}])
    invoices = parse_config(data).schema("shop").table("invoices")
    assert invoices.ranges == (RangeBound("s0", 100), RangeBound("s1", None))


def test_range_table_accepts_string_bounds_and_a_shard_in_several_ranges() -> None:
    data = range_table(
        [
            {"shard": "s0", "below": "2024-01-01"},
            {"shard": "s1", "below": "2025-01-01"},
            {"shard": "s0", "below": "2026-01-01"},
        ]
    )
    ranges = parse_config(data).schema("shop").table("invoices").ranges
    assert [b.below for b in ranges] == ["2024-01-01", "2025-01-01", "2026-01-01"]


def test_range_table_needs_ranges() -> None:
    data = with_table({"name": "invoices", "shard_key": "no", "algorithm": "range"})
    assert problems_of(data) == ["schemas[0].tables[1].ranges: required"]


def test_range_table_with_empty_ranges_is_reported() -> None:
    assert problems_of(range_table([])) == ["schemas[0].tables[1].ranges: must not be empty"]


def test_range_bounds_not_ascending_are_reported() -> None:
    data = range_table(
        [{"shard": "s0", "below": 100}, {"shard": "s1", "below": 100}, {"shard": "s0"}]
    )
    assert problems_of(data) == [
        "schemas[0].tables[1].ranges[1].below: bounds must be ascending (100 is not above 100)"
    ]


def test_only_the_last_range_may_omit_below() -> None:
    data = range_table([{"shard": "s0"}, {"shard": "s1", "below": 5}])
    assert problems_of(data) == [
        "schemas[0].tables[1].ranges[0].below: required (only the last range may omit it)"
    ]


def test_range_bounds_mixing_numbers_and_strings_are_reported() -> None:
    data = range_table([{"shard": "s0", "below": 10}, {"shard": "s1", "below": "m"}])
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith("schemas[0].tables[1].ranges[1].below: expected the same kind")


def test_range_bound_of_the_wrong_type_is_reported() -> None:
    data = range_table([{"shard": "s0", "below": [1]}, {"shard": "s1"}])
    assert problems_of(data) == [
        "schemas[0].tables[1].ranges[0].below: expected a number or a string"
    ]


def test_unknown_shard_in_range_is_reported() -> None:
    data = range_table([{"shard": "s0", "below": 10}, {"shard": "s9"}], shards=["s0"])
    assert problems_of(data) == ["schemas[0].tables[1].ranges[1].shard: unknown shard 's9'"]


def test_range_needs_a_shard() -> None:
    data = range_table([{"shard": "s0", "below": 10}, {"shard": "s1"}, {"below": 20}])
    problems = problems_of(data)
    assert "schemas[0].tables[1].ranges[2].shard: required" in problems


def test_explicit_range_table_shard_without_a_range_is_reported() -> None:
    data = range_table([{"shard": "s0"}], shards=["s0", "s1"])
    assert problems_of(data) == [
        "schemas[0].tables[1].shards[1]: shard 's1' is not covered by any range"
    ]


def test_default_range_table_shards_must_all_be_covered() -> None:
    data = range_table([{"shard": "s0"}])
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith(
        "schemas[0].tables[1].ranges: shard 's1' is not covered by any range"
    )


def test_range_to_a_shard_outside_the_table_shards_is_reported() -> None:
    data = range_table([{"shard": "s0", "below": 10}, {"shard": "s1"}], shards=["s0"])
    assert problems_of(data) == [
        "schemas[0].tables[1].ranges: shard 's1' is not in this table's shards"
    ]


def test_range_table_on_a_subset_of_shards_loads() -> None:
    data = range_table([{"shard": "s1"}], shards=["s1"])
    assert parse_config(data).schema("shop").table("invoices").shards == ("s1",)


# --- validation: list tables ----------------------------------------------------------------


def list_table(values: object, **extra: Any) -> dict[str, Any]:
    return with_table(
        {"name": "stores", "shard_key": "country", "algorithm": "list", "values": values, **extra}
    )


def test_list_table_is_loaded_with_tuples_of_values() -> None:
    data = list_table({"s0": ["DE", "FR"], "s1": ["US", 7]})
    stores = parse_config(data).schema("shop").table("stores")
    assert stores.values == {"s0": ("DE", "FR"), "s1": ("US", 7)}
    assert stores.ranges == ()


def test_list_table_needs_values() -> None:
    data = with_table({"name": "stores", "shard_key": "country", "algorithm": "list"})
    assert problems_of(data) == ["schemas[0].tables[1].values: required"]


def test_list_values_must_be_a_mapping() -> None:
    problems = problems_of(list_table(["DE", "FR"]))
    assert problems == [
        "schemas[0].tables[1].values: expected a mapping of shard name to a list of values"
    ]


def test_list_value_appearing_for_two_shards_is_reported() -> None:
    data = list_table({"s0": ["DE", "FR"], "s1": ["US", "FR"]})
    assert problems_of(data) == [
        "schemas[0].tables[1].values.s1[1]: value 'FR' is already listed for shard 's0'"
    ]


def test_list_value_repeated_for_one_shard_is_reported() -> None:
    data = list_table({"s0": ["DE", "DE"], "s1": ["US"]})
    assert problems_of(data) == ["schemas[0].tables[1].values.s0[1]: value 'DE' is listed twice"]


def test_list_value_read_by_yaml_as_boolean_is_reported() -> None:
    data = list_table(yaml.safe_load("{s0: [SE, NO], s1: [US]}"))
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith(
        "schemas[0].tables[1].values.s0[1]: expected a string or a number"
    )


def test_unknown_shard_in_list_values_is_reported() -> None:
    data = list_table({"s0": ["DE"], "s9": ["US"]}, shards=["s0"])
    assert problems_of(data) == ["schemas[0].tables[1].values.s9: unknown shard 's9'"]


def test_list_table_shard_without_values_is_reported() -> None:
    data = list_table({"s0": ["DE"]}, shards=["s0", "s1"])
    assert problems_of(data) == [
        "schemas[0].tables[1].shards[1]: shard 's1' is not covered in values"
    ]


def test_list_values_for_a_shard_outside_the_table_shards_are_reported() -> None:
    data = list_table({"s0": ["DE"], "s1": ["US"]}, shards=["s0"])
    assert problems_of(data) == [
        "schemas[0].tables[1].values: shard 's1' is not in this table's shards"
    ]


def test_empty_value_list_for_a_shard_is_reported() -> None:
    data = list_table({"s0": ["DE"], "s1": []})
    assert problems_of(data) == ["schemas[0].tables[1].values.s1: must not be empty"]


# --- validation: binding groups -------------------------------------------------------------


def bound(**overrides: Any) -> dict[str, Any]:
    data = base()
    tables(data)[0]["binding"] = "g"
    tables(data).append(
        {"name": "order_items", "shard_key": "user_id", "algorithm": "hash", "binding": "g"}
        | overrides
    )
    return data


def test_tables_in_a_binding_group_with_the_same_placement_load() -> None:
    shop = parse_config(bound(shard_key="order_user")).schema("shop")
    assert shop.table("orders").binding == shop.table("order_items").binding == "g"


def test_binding_group_with_a_different_algorithm_is_reported() -> None:
    problems = problems_of(bound(algorithm="mod"))
    assert len(problems) == 1
    assert problems[0].startswith("schemas[0].tables[1].binding: table 'order_items' must place")
    assert "algorithm mod vs hash" in problems[0]


def test_binding_group_with_different_shards_is_reported() -> None:
    problems = problems_of(bound(shards=["s1", "s0"]))
    assert len(problems) == 1
    assert "shards ['s1', 's0'] vs ['s0', 's1']" in problems[0]


def test_binding_group_with_different_ranges_is_reported() -> None:
    data = base()
    tables(data)[:] = [
        {
            "name": "a",
            "shard_key": "k",
            "algorithm": "range",
            "binding": "g",
            "ranges": [{"shard": "s0", "below": 10}, {"shard": "s1"}],
        },
        {
            "name": "b",
            "shard_key": "k",
            "algorithm": "range",
            "binding": "g",
            "ranges": [{"shard": "s0", "below": 20}, {"shard": "s1"}],
        },
    ]
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith("schemas[0].tables[1].binding: ")
    assert "ranges" in problems[0]


def test_binding_group_with_different_list_values_is_reported() -> None:
    data = base()
    tables(data)[:] = [
        {
            "name": "a",
            "shard_key": "k",
            "algorithm": "list",
            "binding": "g",
            "values": {"s0": [1], "s1": [2]},
        },
        {
            "name": "b",
            "shard_key": "k",
            "algorithm": "list",
            "binding": "g",
            "values": {"s0": [1], "s1": [3]},
        },
    ]
    problems = problems_of(data)
    assert len(problems) == 1 and "values" in problems[0]


def test_binding_groups_are_per_schema() -> None:
    data = bound()
    data["schemas"].append(
        {
            "name": "other",
            "default_shard": "s1",
            "tables": [{"name": "t", "shard_key": "k", "algorithm": "mod", "binding": "g"}],
        }
    )
    assert parse_config(data).schema("other").table("t").binding == "g"


def test_binding_on_an_unsharded_table_is_reported() -> None:
    data = with_table({"name": "audit_log", "binding": "g"})
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith("schemas[0].tables[1].binding: only allowed on sharded")


# --- robustness ---------------------------------------------------------------------------

_YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=True)
    | st.sampled_from(["", "s0", "s1", "s9", "x", "hash", "range", "list", "1.2.3.4:5"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["s0", "s1", "shard", "below", "name"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*path, i))
    return found


def _rich_config() -> dict[str, Any]:
    data = bound()
    tables(data).extend(
        [
            {
                "name": "invoices",
                "shard_key": "no",
                "algorithm": "range",
                "ranges": [{"shard": "s0", "below": 5}, {"shard": "s1"}],
            },
            {
                "name": "stores",
                "shard_key": "c",
                "algorithm": "list",
                "values": {"s0": ["DE"], "s1": ["US"]},
            },
            {"name": "countries", "broadcast": True},
        ]
    )
    data["transactions"] = {"mode": "xa", "timeout_s": 60}
    return data


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_malformed_value_yields_config_error_and_never_a_crash(data: st.DataObject) -> None:
    config = _rich_config()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(config)))
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(_YAML_VALUES)
    try:
        parse_config(config)
    except ConfigError as e:
        assert e.problems
        assert all(": " in problem for problem in e.problems)


# --- files ----------------------------------------------------------------------------------


def test_load_config_reads_a_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_YAML)
    assert load_config(path).schema("shop").table("countries").broadcast is True
    assert load_config(str(path)).proxy_id == "px1"


def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        listen: 127.0.0.1:3307
        shards:
          - {name: s0, host: [unclosed
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1
    message = info.value.problems[0]
    assert message.startswith(f"{path}: invalid YAML at line ")
    assert ", column " in message


def test_duplicate_yaml_key_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        listen: 127.0.0.1:3307
        proxy_id: px1
        proxy_id: px2
        """,
    )
    problems = check_config(path)
    assert len(problems) == 1
    assert "line 3, column 1" in problems[0]
    assert "duplicate key 'proxy_id'" in problems[0]


def test_yaml_merge_keys_may_be_overridden_without_a_duplicate_key_error(tmp_path: Path) -> None:
    text = SPEC_YAML.replace(
        "shards:\n", "x_defaults: &d {user: root, password: '', pool_size: 8}\nshards:\n"
    ).replace(
        '  - {name: s0, host: 127.0.0.1, port: 13306, user: root, password: "", pool_size: 32}',
        "  - {<<: *d, name: s0, host: 127.0.0.1, port: 13306, pool_size: 4}",
    )
    assert "<<: *d" in text
    # Only the anchor's holder is unknown; the overridden pool_size is no duplicate.
    assert check_config(write(tmp_path, text)) == ["x_defaults: unknown key"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    problems = check_config(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: cannot read the file")


def test_empty_file_is_reported(tmp_path: Path) -> None:
    assert check_config(write(tmp_path, "")) == ["(top level): the configuration is empty"]


def test_check_config_returns_every_problem_and_nothing_when_valid(tmp_path: Path) -> None:
    assert check_config(write(tmp_path, SPEC_YAML)) == []
    broken = SPEC_YAML.replace("port: 13306", "port: x").replace("mode: xa", "mode: 2pc")
    assert check_config(write(tmp_path, broken)) == [
        "shards[0].port: expected an integer",
        "transactions.mode: expected xa or at",
    ]


def test_tls_needs_a_certificate_and_key_that_load(tmp_path: Path) -> None:
    data = base()
    data["tls"] = {"cert": str(tmp_path / "missing.pem"), "key": str(tmp_path / "k.pem")}
    assert any(p.startswith("tls: cannot load the certificate") for p in problems_of(data))
    data["tls"] = {"cert": "c.pem"}
    assert "tls.key: required" in problems_of(data)
    data["tls"] = {"cert": "c.pem", "key": "k.pem", "ca": "x"}
    assert "tls.ca: unknown key" in problems_of(data)


def test_without_tls_the_config_offers_none() -> None:
    assert parse_config(base()).tls is None


def test_shard_tls_takes_true_or_a_ca_that_loads(tmp_path: Path) -> None:
    data = base()
    data["shards"][0]["tls"] = True
    assert parse_config(data).shards["s0"].tls is not None
    data["shards"][0]["tls"] = {"ca": str(tmp_path / "none.pem")}
    assert any("shards[0].tls.ca: cannot load" in p for p in problems_of(data))
