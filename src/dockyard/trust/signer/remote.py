"""The trust server's side of a separate signer process: the Signer protocol over mutual TLS.

Every trust update waits on one signature, so the client is a few lines of HTTP/1.1 over
kept-alive TLS connections rather than a general HTTP client: a signature then costs one
write and one read on an open connection (httpx spent more time in its own machinery than
the signer spent signing).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from ...config import Settings
from .service import KeyNotFound, PublicKeyInfo, SignerUnavailable
from .tls import trust_client_credentials

TIMEOUT_SECONDS = 30.0
# The signer keeps an idle connection KEEP_ALIVE_SECONDS (server.py); we stop reusing one well before.
IDLE_SECONDS = 30.0
MAX_IDLE_CONNECTIONS = 8
MAX_RESPONSE_BYTES = 1 << 20


class _Closed(Exception):
    """The connection ended before any byte of the answer: safe to send again on a new one."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()
        self.loop = asyncio.get_running_loop()

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; the status, the body, and whether the connection may be reused."""
        self.writer.write(request)
        await self.writer.drain()
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise _Closed from None
            raise
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise SignerUnavailable(f"the signer answered {lines[0][:80]!r}, not HTTP/1.1")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_RESPONSE_BYTES:
            raise SignerUnavailable(f"the signer's answer has no usable Content-Length ({length!r})")
        body = await self.reader.readexactly(int(length))
        return int(status_line[1]), body, headers.get("connection", "").lower() != "close"

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its event loop may be gone already
            self.writer.close()


class RemoteSigner:
    def __init__(self, url: str, cert: tuple[str, str, str], ca_file: str) -> None:
        self._context = ssl.create_default_context(cafile=ca_file)
        self._context.load_cert_chain(cert[0], cert[1], cert[2])
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"trust.signer_url must be https://host:port, got {url!r}")
        self._url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._host_header = parts.netloc
        self._idle: list[_Connection] = []

    @classmethod
    def for_settings(cls, settings: Settings) -> RemoteSigner:
        creds = trust_client_credentials(settings.data_dir)
        return cls(
            settings.trust.signer_url, (str(creds.cert_file), str(creds.key_file), creds.password), str(creds.ca_file)
        )

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._context, server_hostname=self._host
        )
        return _Connection(reader, writer)

    def _reusable(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            fresh = time.monotonic() - conn.idle_since < IDLE_SECONDS
            if fresh and conn.loop is asyncio.get_running_loop() and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        conn = self._reusable()
        if conn is not None:
            try:
                return self._finish(conn, await conn.exchange(request))
            except (_Closed, ConnectionError):
                # The signer ended the idle connection (its keep-alive ran out, or it restarted)
                # before answering: send the request once more on a new connection.
                conn.close()
            except BaseException:  # a timeout or a garbled answer: the connection is spent
                conn.close()
                raise
        conn = await self._open()
        try:
            answer = await conn.exchange(request)
        except _Closed:
            conn.close()
            raise ConnectionError("the signer closed the connection without answering") from None
        except BaseException:
            conn.close()
            raise
        return self._finish(conn, answer)

    def _finish(self, conn: _Connection, answer: tuple[int, bytes, bool]) -> tuple[int, bytes]:
        status, body, keep = answer
        if keep and len(self._idle) < MAX_IDLE_CONNECTIONS:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        return status, body

    async def _call(self, method: str, path: str, payload: Any = None) -> Any:
        body = b"" if payload is None else json.dumps(payload).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host_header}\r\nAccept: application/json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                status, answer = await self._exchange(head.encode("latin-1") + body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError) as e:
            raise SignerUnavailable(f"the signer at {self._url} does not answer: {e or type(e).__name__}") from None
        if status == 404:
            raise KeyNotFound(path)
        if status >= 400:
            text = answer[:200].decode("utf-8", "replace")
            raise SignerUnavailable(f"the signer refused {method} {path}: {status} {text}")
        if not answer:
            return None
        try:
            return json.loads(answer)
        except ValueError:
            raise SignerUnavailable(f"the signer's answer to {method} {path} is not JSON") from None

    @staticmethod
    def _info(data: dict[str, str]) -> PublicKeyInfo:
        return PublicKeyInfo(
            data["key_id"], data["algorithm"], base64.b64decode(data["public"]), data["gun"], data["role"]
        )

    async def create_key(self, gun: str, role: str, algorithm: str = "ecdsa") -> PublicKeyInfo:
        return self._info(await self._call("POST", "/keys", {"gun": gun, "role": role, "algorithm": algorithm}))

    async def get_key(self, key_id: str) -> PublicKeyInfo:
        return self._info(await self._call("GET", f"/keys/{key_id}"))

    async def delete_key(self, key_id: str) -> None:
        await self._call("DELETE", f"/keys/{key_id}")

    async def sign(self, key_id: str, content: bytes) -> bytes:
        answer = await self._call("POST", f"/keys/{key_id}/sign", {"content": base64.b64encode(content).decode()})
        return base64.b64decode(answer["signature"])

    async def health(self) -> None:
        await self._call("GET", "/health")

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
