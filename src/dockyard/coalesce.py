"""One write per response: uvicorn writes a response's head and its body separately, and over
TLS each write is a record of its own and a system call. ``CoalescingHttpToolsProtocol``
hands uvicorn a transport that gathers the writes made in one turn of the event loop and
sends them together at the end of that turn (most responses: head and body in one record).
Large writes (blob chunks) go out at once, behind whatever was gathered before them, and
at most LARGE bytes are ever held back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LARGE = 16 * 1024  # a TLS record's worth: bigger writes gain nothing from waiting


class CoalescingTransport:
    """Wraps a transport; everything but write/close/write_eof/abort passes through."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= LARGE:
            self.flush()
            self._transport.write(data)
            return
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= LARGE:
            # Many small writes in one turn (a generator that never yields): out now, so the
            # real transport's buffer, and with it uvicorn's flow control, sees them.
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)
