"""Who may run what: the statement allowlist between the client and every shard.

`authorize(statement, grants, current_db)` is a pure function over the analysed
statement (analysis/) and the user's grants (config/): it returns when the
statement is one the proxy forwards for this user and raises a ProxyError
(1227, 1142, 1044, ...) saying what is refused and why otherwise. The session
calls it once per statement before anything reaches a shard. It may import
analysis/, config/ and errors, never session/, execution/ or transactions/.
"""

from .grants import UserGrants, grants_for
from .rules import authorize

__all__ = ["UserGrants", "authorize", "grants_for"]
