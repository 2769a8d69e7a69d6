"""XA transaction ids that say who made them and where their commit decision lives.

gtrid = "<proxy_id>:<decision shard>:<start time in ms>:<sequence>", bqual = the
branch's shard name, formatID = 0x78617078 ("xapx"). Any proxy instance can
tell from an XA RECOVER row alone whether a branch is ours, which shard holds
its decision row, and how old it is.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

FORMAT_ID = 0x78617078
MAX_PART = 64
_sequence = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Xid:
    gtrid: str
    bqual: str

    def sql(self) -> str:
        """The xid as an SQL literal; hex keeps any byte safe on MySQL and MariaDB."""
        return f"X'{self.gtrid.encode().hex()}',X'{self.bqual.encode().hex()}',{FORMAT_ID}"


@dataclass(frozen=True, slots=True)
class GlobalId:
    proxy_id: str
    decision_shard: str
    started_ms: int
    sequence: int

    @property
    def gtrid(self) -> str:
        return f"{self.proxy_id}:{self.decision_shard}:{self.started_ms}:{self.sequence}"

    def branch(self, shard: str) -> Xid:
        return Xid(self.gtrid, shard)

    def age_s(self, now: float | None = None) -> float:
        return ((now if now is not None else time.time()) * 1000 - self.started_ms) / 1000


def new_global_id(proxy_id: str, decision_shard: str) -> GlobalId:
    gid = GlobalId(proxy_id, decision_shard, int(time.time() * 1000), next(_sequence))
    if len(gid.gtrid.encode()) > MAX_PART:
        raise ValueError(f"proxy_id and shard name too long for an XA gtrid: {gid.gtrid!r}")
    return gid


def parse_gtrid(gtrid: bytes | str) -> GlobalId | None:
    """The global id of one of our gtrids, or None for anything else."""
    try:
        text = gtrid.decode("ascii") if isinstance(gtrid, bytes) else gtrid
        proxy_id, shard, started, sequence = text.split(":")
        return GlobalId(proxy_id, shard, int(started), int(sequence))
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class RecoveredBranch:
    """One row of XA RECOVER."""

    shard: str
    format_id: int
    gtrid: bytes
    bqual: bytes

    @property
    def ours(self) -> GlobalId | None:
        return parse_gtrid(self.gtrid) if self.format_id == FORMAT_ID else None

    def sql(self) -> str:
        return f"X'{self.gtrid.hex()}',X'{self.bqual.hex()}',{self.format_id}"


def parse_recover_row(shard: str, row: list[bytes | None]) -> RecoveredBranch:
    format_id = int(row[0] or b"0")
    gtrid_length = int(row[1] or b"0")
    bqual_length = int(row[2] or b"0")
    data = row[3] or b""
    return RecoveredBranch(
        shard, format_id, data[:gtrid_length], data[gtrid_length : gtrid_length + bqual_length]
    )
