"""Packet framing on the client connection: sequence ids, 16 MiB splitting, batched writes."""

from __future__ import annotations

import asyncio
import ssl

from .. import errors
from .constants import MAX_PACKET_PAYLOAD
from .tls import TlsChannel
from .wire import column_for_client

_TLS_HANDSHAKE_TIMEOUT_S = 30


class ConnectionClosed(Exception):
    """The client went away; nothing can be sent to it any more."""


class PacketTooLarge(Exception):
    """A client packet exceeded max_allowed_packet; the protocol requires closing."""


class PacketStream:
    """Reads whole payloads and queues replies; replies go out in one write per flush."""

    __slots__ = (
        "_out",
        "_out_size",
        "extended_metadata",
        "max_packet",
        "reader",
        "seq",
        "session_track",
        "writer",
    )

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_packet: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.seq = 0
        self.max_packet = max_packet
        self._out: list[bytes] = []
        self._out_size = 0
        # the client negotiated MariaDB's extended column metadata
        self.extended_metadata = False
        # the client negotiated CLIENT_SESSION_TRACK (it gets session-state changes)
        self.session_track = False

    async def read_packet(self) -> bytes:
        try:
            header = await self.reader.readexactly(4)
            length = header[0] | header[1] << 8 | header[2] << 16
            self.seq = (header[3] + 1) & 0xFF
            if length > self.max_packet:
                raise PacketTooLarge(length)  # refuse on the header, as MySQL does
            payload = await self.reader.readexactly(length) if length else b""
            if length < MAX_PACKET_PAYLOAD:
                return payload
            parts = [payload]
            total = length
            while length == MAX_PACKET_PAYLOAD:
                header = await self.reader.readexactly(4)
                length = header[0] | header[1] << 8 | header[2] << 16
                self.seq = (header[3] + 1) & 0xFF
                total += length
                if total > self.max_packet:
                    raise PacketTooLarge(total)
                parts.append(await self.reader.readexactly(length) if length else b"")
            return b"".join(parts)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None

    def write_column(self, coldef: bytes) -> None:
        """Queue a column definition in the form the client negotiated."""
        self.write(column_for_client(coldef, self.extended_metadata))

    def write(self, payload: bytes) -> None:
        """Queue one logical packet (split into several wire packets when large)."""
        length = len(payload)
        if length < MAX_PACKET_PAYLOAD:
            self._out.append(
                bytes((length & 0xFF, (length >> 8) & 0xFF, length >> 16, self.seq)) + payload
            )
            self.seq = (self.seq + 1) & 0xFF
            self._out_size += length
            return
        view = memoryview(payload)
        pos = 0
        while True:
            chunk = view[pos : pos + MAX_PACKET_PAYLOAD]
            n = len(chunk)
            self._out.append(bytes((n & 0xFF, (n >> 8) & 0xFF, n >> 16, self.seq)))
            self._out.append(bytes(chunk))
            self.seq = (self.seq + 1) & 0xFF
            pos += n
            if n < MAX_PACKET_PAYLOAD:
                break
        self._out_size += length

    def write_wire(self, data: bytes, next_seq: int) -> None:
        """Queue packets already framed with this stream's sequence ids (a relayed run)."""
        self._out.append(data)
        self._out_size += len(data)
        self.seq = next_seq

    @property
    def pending(self) -> int:
        return self._out_size

    async def flush(self) -> None:
        if self._out:
            out, self._out, self._out_size = self._out, [], 0
            if self.writer.is_closing():
                raise ConnectionClosed("client connection closed")
            self.writer.write(b"".join(out) if len(out) > 1 else out[0])
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None

    async def start_tls(self, context: ssl.SSLContext) -> tuple[str, str] | None:
        """Upgrades the connection to TLS (after a client's SSLRequest); (cipher, version)."""
        await self.flush()
        channel = TlsChannel(self.reader, self.writer, context)
        try:
            await asyncio.wait_for(channel.handshake(), _TLS_HANDSHAKE_TIMEOUT_S)
        except (
            TimeoutError,
            ssl.SSLError,
            asyncio.IncompleteReadError,
            ConnectionError,
            OSError,
        ) as exc:
            raise ConnectionClosed(f"TLS handshake failed: {exc or type(exc).__name__}") from None
        self.reader = self.writer = channel  # type: ignore[assignment]
        return channel.cipher()

    def write_error(self, error: errors.ProxyError) -> None:
        from .wire import err_packet

        self.write(err_packet(error.code, error.sqlstate, error.message))

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
