"""Sans-I/O protocol code: bytes in, events or bytes out; no sockets, clocks or asyncio."""
