"""Errors the proxy reports to clients as MySQL error packets.

Every refusal carries a real MySQL error code and SQLSTATE so that drivers and
ORMs react as they would to the server itself, and a message that tells the user
what to do next.
"""

from __future__ import annotations

from typing import TypeVar


class ProxyError(Exception):
    """An error that ends one statement; the session goes on."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message
        # what SHOW WARNINGS lists after it, when a shard said more than the error itself
        # (a LOAD's errors and warnings up to the failing row); None: the error alone
        self.conditions: list[tuple[str, int, str]] | None = None

    def __repr__(self) -> str:
        return f"ProxyError({self.code}, {self.sqlstate!r}, {self.message!r})"


class BackendError(ProxyError):
    """An error packet a shard sent back, passed to the client unchanged."""


class EndsTransaction(BackendError):
    """An error the proxy itself raises for a statement after which it rolls the whole
    transaction back, as MariaDB does after a deadlock: its own 1205s (a possible
    cross-shard deadlock broken, an AT global lock not granted)."""


class MergeAborted(ProxyError):
    """A fan-out SELECT's merge stopped midway (memory cap, an order it cannot trust).

    The shards' answers are read to their end (their connections and the
    transaction stay as they were) and the client gets the error in place of
    the rest of the result.
    """


class ShardUnavailable(ProxyError):
    """A shard could not be reached or the connection to it broke."""


def access_denied(user: str, host: str, using_password: bool) -> ProxyError:
    using = "YES" if using_password else "NO"
    return ProxyError(
        1045, "28000", f"Access denied for user '{user}'@'{host}' (using password: {using})"
    )


def unknown_database(name: str) -> ProxyError:
    return ProxyError(1049, "42000", f"Unknown database '{name}'")


def no_database_selected() -> ProxyError:
    return ProxyError(1046, "3D000", "No database selected")


NOT_SUPPORTED = 1235  # ER_NOT_SUPPORTED_YET
CHECK_CONSTRAINT_FAILED = 4025  # ER_CONSTRAINT_FAILED
_E = TypeVar("_E", bound=ProxyError)


def not_supported(what: str, hint: str = "", kind: type[_E] = ProxyError) -> _E:  # type: ignore[assignment]
    """ER_NOT_SUPPORTED_YET (1235): the statement is valid MySQL the proxy cannot run;
    `kind` a subclass its catcher tells apart (a refusal another plan may lift)."""
    message = f"xaproxy does not support {what}"
    if hint:
        message += f"; {hint}"
    return kind(NOT_SUPPORTED, "42000", message)


def group_concat_too_long(limit: int) -> MergeAborted:
    """A merged GROUP_CONCAT() would reach group_concat_max_len: the proxy does not cut it."""
    return MergeAborted(
        1235,
        "42000",
        f"xaproxy does not support a GROUP_CONCAT() result over several shards that reaches "
        f"group_concat_max_len ({limit} bytes): MariaDB would cut it (warning 1260); "
        "raise group_concat_max_len, or add the shard key to the WHERE clause so one shard answers",
    )


def merge_memory_exceeded(limit: int, what: str) -> MergeAborted:
    """ER_OUT_OF_SORTMEMORY (1038): the merge would hold more than max_merge_memory_mb."""
    return MergeAborted(
        1038,
        "HY001",
        f"Out of sort memory: merging this SELECT over several shards would hold more "
        f"{what} in xaproxy than max_merge_memory_mb ({limit // (1024 * 1024)} MiB) allows; "
        "add the shard key to the WHERE clause, a LIMIT, or ORDER BY the GROUP BY columns "
        "(then groups stream), or raise max_merge_memory_mb",
    )


def merge_order_unknown() -> MergeAborted:
    """A shard sorted rows in an order the proxy's collation model disagrees with."""
    return MergeAborted(
        1235,
        "42000",
        "xaproxy does not support this GROUP BY or DISTINCT over several shards: a shard "
        "sorted its values in an order xaproxy does not reproduce (a collation other than "
        "the utf8mb4_general_ci or _bin rules it models); add the shard key to the WHERE "
        "clause so one shard answers, or group by a value with such a collation",
    )


def unsupported_prepare(what: str) -> ProxyError:
    """ER_UNSUPPORTED_PS (1295): sysbench and others fall back to text queries on it."""
    return ProxyError(
        1295,
        "HY000",
        f"This command is not supported in the prepared statement protocol yet: {what}",
    )


def unknown_command(command: int) -> ProxyError:
    return ProxyError(1047, "08S01", f"Unknown command 0x{command:02x}")


def malformed_packet(detail: str) -> ProxyError:
    return ProxyError(1835, "HY000", f"Malformed communication packet: {detail}")


def unknown_statement(statement_id: int, where: str) -> ProxyError:
    return ProxyError(
        1243, "HY000", f"Unknown prepared statement handler ({statement_id}) given to {where}"
    )


def shard_unreachable(shard: str, detail: str) -> ShardUnavailable:
    return ShardUnavailable(
        1429,
        "HY000",
        f"xaproxy cannot reach shard '{shard}': {detail}. Retry when the shard is back",
    )


# A shard's answer to a new connection when its connection limit is reached:
# max_connections (1040), max_user_connections (1203) or the account's own cap (1226).
SHARD_FULL_CODES = frozenset({1040, 1203, 1226})


def shard_full(shard: str, code: int, detail: str) -> ShardUnavailable:
    """The shard refused a new connection for its connection limit: the statement never ran."""
    return ShardUnavailable(
        1040 if code == 1040 else code,
        "08004" if code == 1040 else "42000",
        f"Too many connections on shard '{shard}' ({detail}): xaproxy could not open a "
        "connection there; the statement was not run. Retry later, or have the shard's DBA "
        "raise its max_connections",
    )


def shard_lost(shard: str, detail: str) -> ShardUnavailable:
    return ShardUnavailable(
        2013,
        "HY000",
        f"xaproxy lost its connection to shard '{shard}' during the statement ({detail}); "
        "the statement's effect on that shard is unknown and any open transaction was rolled back",
    )


def parse_error(detail: str) -> ProxyError:
    return ProxyError(1064, "42000", f"xaproxy could not parse the statement: {detail}")
