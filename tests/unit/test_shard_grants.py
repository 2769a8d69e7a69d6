"""The review of a shard account's privileges (xaproxy.shards.grants.review): rows in, findings out."""

from __future__ import annotations

from xaproxy.shards.grants import BOOKKEEPING, DATA, review

LEAST = [("shop", p, False) for p in DATA] + [("xaproxy", p, False) for p in BOOKKEEPING]


def test_an_account_with_exactly_what_the_proxy_needs_has_no_findings() -> None:
    assert review("s0", ["shop"], [("USAGE", False)], LEAST) == []


def test_missing_privileges_are_named_per_schema() -> None:
    rows = [r for r in LEAST if r[1] != "DELETE" or r[0] != "shop"]
    (finding,) = review("s0", ["shop", "crm"], [("USAGE", False)], rows)[:1]
    assert finding.kind == "missing" and "DELETE" in finding.message and "`shop`" in finding.message
    assert any("`crm`" in str(f) for f in review("s0", ["shop", "crm"], [], rows))


def test_a_root_like_account_is_warned_about_each_dangerous_privilege() -> None:
    held = (
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "CREATE TEMPORARY TABLES",
        "SUPER",
        "FILE",
        "CREATE USER",
    )
    root = [(p, True) for p in (*held, "SHUTDOWN")]
    found = [str(f) for f in review("s0", ["shop"], root, [])]
    for privilege in ("SUPER", "FILE", "CREATE USER", "SHUTDOWN", "SELECT"):
        assert any(f"holds {privilege} on *.*" in f for f in found), found
    assert any("GRANT OPTION" in f for f in found)
    assert not any(f.startswith("ERROR") for f in found)  # global privileges cover the needs


def test_privileges_on_the_mysql_schema_are_excess() -> None:
    found = review("s0", ["shop"], [], [*LEAST, ("mysql", "SELECT", False)])
    assert [f.kind for f in found] == ["excess"] and "`mysql`" in found[0].message


def test_xa_recover_admin_is_not_excess() -> None:
    assert review("s0", ["shop"], [("XA_RECOVER_ADMIN", False)], LEAST) == []
