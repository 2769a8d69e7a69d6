"""TLS on a client connection that has already spoken plaintext (MySQL's SSLRequest).

asyncio's start_tls cannot be used here: a client sends its TLS ClientHello right
after the SSLRequest, often in the same TCP segment, so those bytes are already
in the StreamReader's buffer when the upgrade begins, and a transport-level TLS
layer would never see them (the handshake hangs). This channel runs the TLS
state machine (ssl.SSLObject over memory BIOs) on top of the existing streams,
so it reads the buffered bytes first. It offers the small part of the
StreamReader/StreamWriter interface PacketStream uses.
"""

from __future__ import annotations

import asyncio
import ssl

_READ_SIZE = 64 * 1024


class TlsChannel:
    """A TLS session over a plaintext reader/writer pair, as a reader and a writer."""

    __slots__ = ("_incoming", "_outgoing", "_plain", "_reader", "_tls", "_writer")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._plain = bytearray()

    async def handshake(self) -> None:
        """Runs the server side of the TLS handshake; ssl.SSLError when it fails."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._send_pending()
                await self._receive()
        await self._send_pending()

    def cipher(self) -> tuple[str, str] | None:
        cipher = self._tls.cipher()
        return (cipher[0], cipher[1]) if cipher else None

    async def _receive(self) -> None:
        data = await self._reader.read(_READ_SIZE)
        if not data:
            self._incoming.write_eof()
            raise asyncio.IncompleteReadError(bytes(self._plain), None)
        self._incoming.write(data)

    async def _send_pending(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    # --- the reader side ------------------------------------------------------------------

    async def readexactly(self, n: int) -> bytes:
        while len(self._plain) < n:
            try:
                chunk = self._tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                await self._send_pending()  # e.g. a key update the peer asked for
                await self._receive()
                continue
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self._plain), n)
            self._plain += chunk
        data = bytes(self._plain[:n])
        del self._plain[:n]
        return data

    # --- the writer side ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._writer.write(self._outgoing.read())

    async def drain(self) -> None:
        await self._writer.drain()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def close(self) -> None:
        self._writer.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "cipher":
            return self._tls.cipher()
        if name == "ssl_object":
            return self._tls
        return self._writer.get_extra_info(name, default)
