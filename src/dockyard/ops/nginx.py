"""`dockyard nginx-config`: an nginx front for one or more Dockyard replicas.

nginx terminates TLS with a certificate of its own, issued by Dockyard's CA, streams request
and response bodies without buffering them to disk, keeps connections to the replicas alive,
and sends blob bytes itself: it adds ``X-Dockyard-Accel: /_dockyard_blobs/`` to every request
it proxies; on a blob GET Dockyard authorizes the request as usual and answers, when the
blob lives on the local filesystem, with its headers plus ``X-Accel-Redirect:
/_dockyard_blobs/sha256/ab/ab…`` and no body; nginx then serves that file from an
``internal`` location aliased to the blobs folder (Range requests included).

Two steps: ``prepare`` does what needs the data folder (issue nginx's certificate, find the
blobs folder) and returns ``NginxOptions``; ``render`` is a pure function of those options.

Why nginx gets its own certificate and a plain key (``config/nginx/server.key``, 0600)
instead of Dockyard's encrypted ``ca/server.key`` with an ``ssl_password_file``: that password
is the key-encryption key, which also unlocks the CA key and the token-signing key, so a
password file would put the master secret on disk for nginx. Exporting Dockyard's own key in
plain would go stale whenever ``serve`` reissues it. A separate leaf exposes only a key nginx
must hold anyway; rerun the command after ``dockyard ca rotate`` or when names change (the
certificate is reissued then, or when fewer than 30 days are left).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..auth.keys import write_private
from ..ca.authority import CertificateAuthority, kek_for, plain_pem
from ..ca.server import WILDCARD_HOSTS, distinct_names, needs_reissue, wanted_sans
from ..config import Settings
from ._common import OpsError, driver_for

ACCEL_HEADER = "X-Dockyard-Accel"
ACCEL_PREFIX = "/_dockyard_blobs/"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Between two reads or writes, not for the whole transfer: a multi-GB layer on a slow link
# only needs the data to keep moving; the final PUT waits for the digest check and fsync.
BODY_TIMEOUT = "900s"
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9*.-]+$")


@dataclass(frozen=True)
class NginxOptions:
    upstreams: tuple[str, ...]  # HOST:PORT of each replica ([v6]:PORT)
    cert_file: Path  # what nginx presents to clients
    key_file: Path
    server_names: tuple[str, ...] = ()  # empty: answer any name ("_")
    listen_address: str = ""  # empty: every address
    https_port: int = 443
    http_port: int = 80  # the port-80 listener that redirects to https; 0 = none
    upstream_tls: bool = False  # replicas serve HTTPS (verified with upstream_ca, name upstream_tls_name)
    upstream_ca: Path | None = None
    upstream_tls_name: str = "localhost"
    blobs_dir: Path | None = None  # the filesystem folder of blobs; None: no X-Accel-Redirect
    runtime_dir: Path | None = None  # a whole nginx.conf with pid, logs and temp folders here; None: conf.d part
    user: str | None = None  # worker user (whole nginx.conf only); it must be able to read blobs_dir


def parse_upstream(text: str) -> str:
    m = _HOST_PORT.fullmatch(text.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise OpsError(f"--upstream {text!r}: expected HOST:PORT (an IPv6 address in brackets)")
    return f"{m.group(1)}:{int(m.group(2))}"


def _listen(address: str, port: int) -> str:
    if not address:
        return str(port)
    host = address.strip("[]")
    try:
        return f"[{host}]:{port}" if ipaddress.ip_address(host).version == 6 else f"{host}:{port}"
    except ValueError:
        return f"{host}:{port}"


def _check(options: NginxOptions) -> None:
    if not options.upstreams:
        raise OpsError("at least one --upstream is needed")
    for name in options.server_names:
        if not _NAME.fullmatch(name):
            raise OpsError(f"--server-name {name!r}: expected a host name")
    for port in (options.https_port, options.http_port):
        if not 0 <= port < 65536:
            raise OpsError(f"port {port} is out of range")
    if options.https_port == 0:
        raise OpsError("--https-port cannot be 0")
    if options.user is not None and options.runtime_dir is None:
        raise OpsError("--user needs --runtime-dir (a whole nginx.conf); in conf.d nginx.conf's user applies")
    for path in (options.cert_file, options.key_file, options.blobs_dir, options.runtime_dir, options.upstream_ca):
        if path is not None and any(c in str(path) for c in ";{}\"'\n\\ "):
            raise OpsError(f"{path}: a path nginx is given may not contain spaces, quotes, ; {{ }} or \\")


def render(options: NginxOptions) -> str:
    """The nginx configuration text: the http-level part for ``conf.d/``, or with
    ``runtime_dir`` a whole ``nginx.conf`` that runs as any user (``nginx -c FILE``)."""
    _check(options)
    scheme = "https" if options.upstream_tls else "http"
    names = " ".join(options.server_names) or "_"
    out: list[str] = [
        "# Generated by `dockyard nginx-config`: an nginx front for Dockyard.",
        "upstream dockyard {",
        *(f"    server {u} max_fails=3 fail_timeout=10s;" for u in options.upstreams),
        "    keepalive 32;",
        # Below uvicorn's 30 s keep-alive, so nginx never reuses a connection the replica is closing.
        "    keepalive_timeout 20s;",
        "    keepalive_requests 10000;",
        "}",
        "",
    ]
    if options.http_port:
        redirect = "https://$host" + ("" if options.https_port == 443 else f":{options.https_port}")
        out += [
            "server {",
            f"    listen {_listen(options.listen_address, options.http_port)};",
            f"    server_name {names};",
            f"    return 308 {redirect}$request_uri;",
            "}",
            "",
        ]
    out += [
        "server {",
        f"    listen {_listen(options.listen_address, options.https_port)} ssl;",
        f"    server_name {names};",
        f"    ssl_certificate {options.cert_file};",
        f"    ssl_certificate_key {options.key_file};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_session_cache shared:dockyard_tls:10m;",
        "    ssl_session_timeout 1h;",
        "",
        "    # Layers of many GB: no size limit, bodies streamed both ways, never spooled to disk.",
        "    client_max_body_size 0;",
        "    client_body_buffer_size 1m;",
        "    proxy_request_buffering off;",
        "    proxy_buffering off;",
        "    proxy_max_temp_file_size 0;",
        "    chunked_transfer_encoding on;",
        f"    client_body_timeout {BODY_TIMEOUT};",
        f"    send_timeout {BODY_TIMEOUT};",
        "    proxy_connect_timeout 10s;",
        f"    proxy_send_timeout {BODY_TIMEOUT};",
        f"    proxy_read_timeout {BODY_TIMEOUT};",
        "",
        "    location / {",
        f"        proxy_pass {scheme}://dockyard;",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        # The client's Host (with its port): Dockyard builds the token realm from it and from the
        # scheme, which it takes from X-Forwarded-Proto when the peer is a trusted proxy.
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header X-Forwarded-Host $http_host;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        # Always set here, so a client's own X-Dockyard-Accel never reaches Dockyard through nginx.
        f'        proxy_set_header {ACCEL_HEADER} "{ACCEL_PREFIX if options.blobs_dir else ""}";',
    ]
    if options.upstream_tls:
        ca = options.upstream_ca or SYSTEM_CA_BUNDLE
        out += [
            "        proxy_ssl_verify on;",
            f"        proxy_ssl_trusted_certificate {ca};",
            f"        proxy_ssl_name {options.upstream_tls_name};",
            "        proxy_ssl_server_name on;",
            "        proxy_ssl_session_reuse on;",
        ]
    out.append("    }")
    if options.blobs_dir is not None:
        # Reached only through Dockyard's X-Accel-Redirect, after it authorized the request. nginx
        # keeps few of the upstream's headers across the redirect, so the registry's are copied.
        out += [
            "",
            f"    location {ACCEL_PREFIX} {{",
            "        internal;",
            f"        alias {options.blobs_dir}/;",
            "        default_type application/octet-stream;",
            "        etag off;",
            "        if_modified_since off;",
            "        sendfile on;",
            "        tcp_nopush on;",
            "        output_buffers 2 1m;",
            "        add_header Docker-Content-Digest $upstream_http_docker_content_digest always;",
            "        add_header Docker-Distribution-API-Version $upstream_http_docker_distribution_api_version always;",
            "        add_header ETag $upstream_http_etag always;",
            "        add_header X-Request-Id $upstream_http_x_request_id always;",
            "    }",
        ]
    out += ["}", ""]
    if options.runtime_dir is None:
        return "\n".join(out)
    rd = options.runtime_dir
    inner = ["    " + line if line else "" for line in out[:-1]]
    head = [
        "# A whole nginx.conf: run with `nginx -c THIS_FILE`; pid, logs and temp folders live in",
        f"# {rd}.",
        *([f"user {options.user};"] if options.user else []),
        "worker_processes auto;",
        f"pid {rd}/nginx.pid;",
        f"error_log {rd}/error.log warn;",
        "events {",
        "    worker_connections 1024;",
        "}",
        "http {",
        "    default_type application/octet-stream;",
        "    server_tokens off;",
        f"    access_log {rd}/access.log;",
        f"    client_body_temp_path {rd}/client_body;",
        f"    proxy_temp_path {rd}/proxy;",
        f"    fastcgi_temp_path {rd}/fastcgi;",
        f"    uwsgi_temp_path {rd}/uwsgi;",
        f"    scgi_temp_path {rd}/scgi;",
    ]
    return "\n".join([*head, *inner, "}", ""])


# ---------------------------------------------------------------------------------------------
# What needs the data folder
# ---------------------------------------------------------------------------------------------


def nginx_dir(settings: Settings) -> Path:
    return settings.data_dir / "config" / "nginx"


def certificate_names(settings: Settings, server_names: tuple[str, ...], listen_address: str) -> list[str]:
    return distinct_names([*server_names, *wanted_sans(settings)], listen_address)


def ensure_nginx_certificate(settings: Settings, names: list[str]) -> tuple[Path, Path]:
    """nginx's certificate and plain key in ``config/nginx/`` (0600), issued by the built-in CA
    for ``names``; reissued when the names or the CA changed or fewer than 30 days are left."""
    ca = CertificateAuthority.load_or_create(settings.data_dir, kek_for(settings.data_dir))
    directory = nginx_dir(settings)
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if not needs_reissue(current, ca, names, datetime.datetime.now(datetime.UTC)):
            return cert_path, key_path
    issued = ca.issue(names[0] if names else "dockyard", names)
    write_private(key_path, plain_pem(issued.key))
    write_private(cert_path, issued.cert.public_bytes(serialization.Encoding.PEM) + ca.pem)
    return cert_path, key_path


async def blobs_folder(settings: Settings) -> Path | None:
    """Where the storage driver keeps blobs on this machine, or None (not a local driver)."""
    driver = driver_for(settings)
    try:
        local = driver.local_path("/blobs")
    finally:
        await driver.close()
    return Path(local).absolute() if local else None


async def prepare(
    settings: Settings,
    *,
    upstreams: list[str],
    server_names: list[str],
    listen_address: str = "",
    https_port: int = 443,
    http_port: int = 80,
    upstream_http: bool = False,
    accel: bool = True,
    runtime_dir: Path | None = None,
    user: str | None = None,
) -> NginxOptions:
    """Resolve the options against the data folder, issuing nginx's certificate if needed."""
    parsed = tuple(parse_upstream(u) for u in upstreams)
    if not parsed:
        host = settings.server.host
        host = "127.0.0.1" if host in WILDCARD_HOSTS else host
        parsed = (
            parse_upstream(f"[{host}]:{settings.server.port}" if ":" in host else f"{host}:{settings.server.port}"),
        )
    names = tuple(server_names)
    if settings.tls.cert_file:
        cert, key = Path(settings.tls.cert_file).absolute(), Path(settings.tls.key_file).absolute()
        upstream_ca: Path | None = None
    else:
        cert, key = ensure_nginx_certificate(settings, certificate_names(settings, names, listen_address))
        upstream_ca = (settings.data_dir / "ca" / "ca.crt").absolute()
    hostnames = wanted_sans(settings)
    return NginxOptions(
        upstreams=parsed,
        cert_file=cert.absolute(),
        key_file=key.absolute(),
        server_names=names,
        listen_address=listen_address,
        https_port=https_port,
        http_port=http_port,
        upstream_tls=settings.tls.enabled and not upstream_http,
        upstream_ca=upstream_ca,
        upstream_tls_name=hostnames[0] if hostnames else "localhost",
        blobs_dir=await blobs_folder(settings) if accel else None,
        runtime_dir=runtime_dir.absolute() if runtime_dir else None,
        user=user,
    )
