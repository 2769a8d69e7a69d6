"""asyncmy's connection, asking a MariaDB shard for what the proxy passes on.

asyncmy announces a fixed set of MariaDB extended capabilities in its handshake
response. The proxy also asks for extended column metadata (the data type name or
format, e.g. `json`, `uuid`, `inet6`, `point`, of each column), so that a client that
asks the proxy for it gets the shard's own; the proxy drops it for every other
client (protocol/wire.column_for_client).
"""

from __future__ import annotations

import struct

from asyncmy.connection import Connection

from ..protocol.constants import Capability, MariaDBCapability

_EXTENDED_CAPS_AT = 28  # capabilities(4) max packet(4) charset(1) reserved(19)
_RESPONSE_HEAD = _EXTENDED_CAPS_AT + 4


class ShardConnection(Connection):
    """A shard connection whose handshake response also asks for extended metadata."""

    _response_pending = False

    @property
    def extended_metadata(self) -> bool:
        """Whether the shard sends extended metadata in its column definitions."""
        return bool(self._extended_asked)

    async def _request_authentication(self) -> None:
        self._extended_asked = False
        offered = getattr(self, "_mariadb_ext_caps", 0)  # asyncmy's reading of the greeting
        self._response_pending = bool(offered & MariaDBCapability.EXTENDED_METADATA)
        try:
            await super()._request_authentication()
        finally:
            self._response_pending = False

    def write_packet(self, payload: bytes) -> None:
        if self._response_pending and _is_mariadb_response(payload):
            # the handshake response (never the TLS request, which keeps CLIENT_MYSQL)
            self._response_pending = False
            (extended,) = struct.unpack_from("<I", payload, _EXTENDED_CAPS_AT)
            extended |= MariaDBCapability.EXTENDED_METADATA
            payload = (
                payload[:_EXTENDED_CAPS_AT] + struct.pack("<I", extended) + payload[_RESPONSE_HEAD:]
            )
            self._extended_asked = True
        super().write_packet(payload)


def _is_mariadb_response(payload: bytes) -> bool:
    """A handshake response that announces MariaDB capabilities (CLIENT_MYSQL clear)."""
    if len(payload) <= _RESPONSE_HEAD:
        return False
    (caps,) = struct.unpack_from("<I", payload, 0)
    return bool(caps & Capability.PROTOCOL_41) and not caps & Capability.LONG_PASSWORD
