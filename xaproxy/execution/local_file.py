"""The file of a LOAD DATA LOCAL INFILE, relayed from the client to the shard reading it.

A shard answers such a statement with a request (0xFB and the file name it parsed from
the statement, which the client's own text names); the request goes to the client, and
every packet the client sends back goes to the shard as it arrives, up to the empty
packet that ends the file. Nothing is held: a slow shard makes the proxy wait before it
reads more from the client. The proxy never opens a file of its own.
"""

from __future__ import annotations

from .. import errors
from ..protocol.stream import PacketStream
from ..shards.backend import Backend


async def relay_file(backend: Backend, out: object, request: bytes) -> bytes:
    """Serves the shard's file `request` from the client; returns the shard's answer to the
    statement (its OK or error). A stream that is not the client's (a step the proxy runs
    for itself) has no file to give: the shard gets an empty one."""
    if not isinstance(out, PacketStream):
        await backend.write_packet(b"")
        return await backend.read()
    out.write(request)
    await out.flush()
    lost: errors.ProxyError | None = None
    while True:
        data = await out.read_packet()
        if lost is None:
            try:
                await backend.write_packet(data)
            except errors.ProxyError as exc:
                lost = exc  # the client still sends the rest: read it, then report
        if not data:
            break
    if lost is not None:
        raise lost
    return await backend.read()
