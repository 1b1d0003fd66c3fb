"""`dockyard serve`: build the app and run it under uvicorn (uvloop + httptools).

HTTPS by default, with the certificate from the built-in CA (dockyard.ca) or the operator's;
``--http`` serves plain HTTP. With ``tls.redirect_http_port`` a second, tiny listener answers
every plain-HTTP request with 308 to the same path over https.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl

import uvicorn
from rich.console import Console

from ..app import create_app
from ..ca import ServerCredentials, ensure_server_certificate
from ..coalesce import CoalescingHttpToolsProtocol
from ..config import Settings
from ..observability.logs import configure_logging
from ..storage.factory import UnknownDriver

log = logging.getLogger("dockyard")

_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d+)?$")


def redirect_location(request_head: bytes, tls_port: int, fallback_host: str) -> str:
    """Where a plain-HTTP request (its head up to the blank line) is sent: the same target on https."""
    lines = request_head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    target = parts[1] if len(parts) == 3 and parts[1].startswith("/") else "/"
    host = fallback_host
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            m = _HOST_RE.match(value.strip())
            if m:
                host = m.group(1)
            break
    port = "" if tls_port == 443 else f":{tls_port}"
    return f"https://{host}{port}{target}"


async def _answer_redirect(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls_port: int, fallback_host: str
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        location = redirect_location(head, tls_port, fallback_host)
        writer.write(
            b"HTTP/1.1 308 Permanent Redirect\r\nLocation: "
            + location.encode("latin-1")
            + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def _check_credentials(creds: ServerCredentials) -> None:
    """Load the certificate and key once, so a wrong file stops start-up with a plain message."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(creds.cert_file, creds.key_file, creds.password)


def run(settings: Settings, console: Console) -> None:
    configure_logging(settings.server.log_level, settings.server.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    creds: ServerCredentials | None = None
    try:
        app = create_app(settings)
        if settings.tls.enabled:
            creds = ensure_server_certificate(settings)
            _check_credentials(creds)
    except (UnknownDriver, ValueError, OSError, ssl.SSLError) as e:
        console.print(f"[red]cannot start:[/red] {e}")
        raise SystemExit(2) from None
    host, port = settings.server.host, settings.server.port
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if creds else "http"
    console.print(f"Dockyard serving {scheme}://{shown}:{port}/v2/  (data in {settings.data_dir.absolute()})")
    if creds and not settings.tls.cert_file:
        ca_file = settings.data_dir.absolute() / "ca" / "ca.crt"
        console.print(f"Clients trust the CA in {ca_file} (also at {scheme}://{shown}:{port}/ca)")
    if "FORWARDED_ALLOW_IPS" in os.environ:
        console.print(
            "[yellow]note:[/yellow] FORWARDED_ALLOW_IPS is ignored; set server.trusted_proxies "
            "(DOCKYARD_SERVER__TRUSTED_PROXIES, comma-separated) instead"
        )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # httptools, with a response's writes sent as one
        lifespan="on",
        access_log=False,
        log_level=settings.server.log_level.lower(),
        # JSON logs: uvicorn's loggers propagate to the root handler instead of their own.
        log_config=None if settings.server.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        timeout_keep_alive=30,
        # Behind a front proxy (`dockyard nginx-config`) the scheme and the client's address come
        # from X-Forwarded-Proto/-For, but only when the peer is in server.trusted_proxies
        # (validated addresses/networks; default the loopback addresses; empty: nobody). With
        # the Host header, which the proxy passes unchanged, that scheme makes the token realm
        # (auth.gate.realm_of) right, and the address is what failed-login limits count per client.
        proxy_headers=True,
        forwarded_allow_ips=list(settings.server.trusted_proxies),
        server_header=False,
        date_header=False,
        ssl_certfile=creds.cert_file if creds else None,
        ssl_keyfile=creds.key_file if creds else None,
        ssl_keyfile_password=creds.password if creds else None,
    )
    if creds:
        config.load()  # builds the SSL context, which server.run() then uses as it is
        # TLS 1.3 sends session tickets after every handshake; OpenSSL's default is two. Go
        # clients (docker, podman, skopeo, notary) never resume, so each costs the handshake
        # time for nothing; one still lets a browser or curl resume.
        assert config.ssl is not None
        config.ssl.num_tickets = 1
    server = uvicorn.Server(config)
    redirect_port = settings.tls.redirect_http_port if creds else 0
    if not redirect_port:
        server.run()
        return

    async def serve_with_redirect() -> None:
        fallback = shown if host not in ("0.0.0.0", "::") else "localhost"
        try:
            redirect = await asyncio.start_server(
                lambda r, w: _answer_redirect(r, w, port, fallback), host or None, redirect_port
            )
        except OSError as e:
            console.print(f"[red]cannot start:[/red] redirect listener on port {redirect_port}: {e}")
            raise SystemExit(2) from None
        console.print(f"Redirecting http://{shown}:{redirect_port}/ to https")
        try:
            await server.serve()
        finally:
            redirect.close()
            await redirect.wait_closed()

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve_with_redirect())
