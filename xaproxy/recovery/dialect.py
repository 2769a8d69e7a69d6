"""Where MySQL and MariaDB differ for recovery, behind one small seam.

MariaDB's plain `XA RECOVER` prints gtrid and bqual as raw bytes; MySQL 8 needs
`XA RECOVER CONVERT XID` (hex) for binary-safe ids and the XA_RECOVER_ADMIN
privilege. Our gtrids are ASCII, so the plain form is exact on both servers.
"""

from __future__ import annotations

from ..shards.backend import Backend
from ..transactions import statements as tsql


def recover_statement(backend: Backend) -> str:
    return tsql.XA_RECOVER
