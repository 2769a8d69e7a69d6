"""A client's COM_STMT_EXECUTE forwarded to a shard's own prepared statement.

The client's parameter block goes to the shard as the client sent it: only the
statement id is the shard's, the cursor flags are cleared (the proxy relays whole
results, as on the inline path), and when the client relied on types bound by an
earlier execute (new-params-bound = 0) that this shard statement was not sent,
they are bound again. Long data the client sent for the statement is sent to the
shard statement just before the execute. Parameters never become SQL text.
"""

from __future__ import annotations

import struct

from ..protocol.constants import Command
from ..shards.backend import Backend
from ..shards.statements import prepared_on

_U32 = struct.Struct("<I")
_LONG_DATA_HEAD = struct.Struct("<IH")
_LONG_DATA_CHUNK = 1 << 20
_HEAD = 10  # command byte, statement id, cursor flags, iteration count


class NativeExecute:
    """What to send a shard for one client execute; `send` runs it on the chosen connection."""

    __slots__ = ("long_data", "params", "payload", "sql", "types")

    def __init__(
        self, sql: str, payload: bytes, params: int, types: bytes, long_data: dict[int, bytes]
    ) -> None:
        self.sql = sql
        self.payload = payload  # the client's COM_STMT_EXECUTE, command byte included
        self.params = params
        self.types = types  # the types the client bound last (2 bytes a parameter)
        self.long_data = long_data

    async def send(self, backend: Backend) -> None:
        entry = await prepared_on(backend, self.sql)
        for param, data in self.long_data.items():
            for start in range(0, max(len(data), 1), _LONG_DATA_CHUNK):
                chunk = data[start : start + _LONG_DATA_CHUNK]
                await backend.send(
                    Command.STMT_SEND_LONG_DATA, _LONG_DATA_HEAD.pack(entry.id, param) + chunk
                )
        payload = self.payload
        head = _U32.pack(entry.id) + b"\x00" + payload[6:_HEAD]
        if not self.params:
            await backend.send(Command.STMT_EXECUTE, head + payload[_HEAD:])
            return
        bound = _HEAD + (self.params + 7) // 8  # the new-params-bound byte
        types = self.types
        if payload[bound]:
            entry.types = types
            body = payload[_HEAD:]
        elif entry.types == types:
            body = payload[_HEAD:]
        else:
            body = payload[_HEAD:bound] + b"\x01" + types + payload[bound + 1 :]
            entry.types = types
        await backend.send(Command.STMT_EXECUTE, head + body)
