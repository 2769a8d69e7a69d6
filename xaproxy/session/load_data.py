"""`LOAD DATA|XML LOCAL INFILE`: the client's file, loaded where its table lives.

An unsharded table's shard runs the client's statement and asks for the file; the
request goes to the client and the file to the shard (execution/local_file.py). A
sharded or broadcast table's rows are staged on one shard and inserted from there
(session/load_staged.py), and so are an unsharded table's in AT mode (whose writes keep
undo images, which a LOAD gives none of).
"""

from __future__ import annotations

from .. import errors
from ..analysis import analyze
from ..protocol.constants import Capability
from ..routing.load_route import route_load_data
from . import connection_state
from .state import SessionState

_LOCAL_FILES = int(Capability.LOCAL_FILES)


async def load_local(s: SessionState, sql: str, more: bool, binary: bool) -> None:
    if not s.capabilities & _LOCAL_FILES:
        raise errors.ProxyError(
            4166,
            "HY000",
            "The used command is not allowed because the MariaDB server or client has "
            "disabled the local infile capability",
        )
    statement = analyze(sql)
    at_mode = s.txn_mode == "at" or (s.txn is not None and s.txn.mode == "at")
    if at_mode and s.txn is not None:
        # its rows go in as INSERT IGNORE or REPLACE, which AT mode cannot take undo
        # images of inside a transaction
        raise errors.not_supported(
            "LOAD DATA LOCAL inside an AT-mode transaction",
            "run it in autocommit (one transaction of its own), or in XA mode",
        )
    route = route_load_data(
        s.ctx.config, statement, s.database, s.ctx.planner.default_shard, staged=at_mode
    )
    await connection_state.run_routed(s, sql, statement, route, more=more, binary=False)
