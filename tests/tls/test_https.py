"""`dockyard serve` over HTTPS: the built-in CA, its server certificate, /ca and the redirect."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import RunningServer, start_server

pytestmark = pytest.mark.xdist_group("tls")


def presented_certificate(server: RunningServer) -> x509.Certificate:
    host, port = server.host.rsplit(":", 1)
    pem = ssl.get_server_certificate((host, int(port)))
    return x509.load_pem_x509_certificate(pem.encode())


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {str(a) for a in ext.get_values_for_type(x509.IPAddress)}


def test_v2_over_https_verified_with_the_ca(tls_server: RunningServer) -> None:
    ctx = ssl.create_default_context(cafile=str(tls_server.data_dir / "ca" / "ca.crt"))
    with httpx.Client(base_url=tls_server.url, verify=ctx, timeout=30) as c:
        r = c.get("/v2/")
        assert r.status_code == 200
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"
        assert c.get("/v2/").status_code == 200  # same connection: keep-alive stays on
    # "localhost" is in the certificate too, so name-based verification works as well.
    port = tls_server.host.rsplit(":", 1)[1]
    assert httpx.get(f"https://localhost:{port}/v2/", verify=ctx, timeout=30).status_code == 200


def _get_v2(tls_server: RunningServer, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> ssl.SSLSocket:
    host, port = tls_server.host.rsplit(":", 1)
    sock = ctx.wrap_socket(
        socket.create_connection((host, int(port)), timeout=30), server_hostname=host, session=session
    )
    sock.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {tls_server.host}\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while chunk := sock.recv(65536):  # the TLS 1.3 session ticket arrives with the answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    return sock


def test_tls13_sessions_resume(tls_server: RunningServer) -> None:
    """A client that keeps the TLS 1.3 session ticket (a browser, curl) resumes with it: the server
    still sends one, though fewer than OpenSSL's default two (serve.py)."""
    ctx = ssl.create_default_context(cafile=str(tls_server.data_dir / "ca" / "ca.crt"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    first = _get_v2(tls_server, ctx, None)
    assert first.session is not None and first.session.has_ticket
    second = _get_v2(tls_server, ctx, first.session)
    assert second.session_reused
    first.close()
    second.close()


def test_untrusted_without_the_ca(tls_server: RunningServer) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.url}/v2/", timeout=30)


def test_server_certificate_names_and_issuer(tls_server: RunningServer) -> None:
    cert = presented_certificate(tls_server)
    dns, ips = sans(cert)
    assert dns == {"localhost"}
    assert ips == {"127.0.0.1", "::1"}
    ca = x509.load_pem_x509_certificate((tls_server.data_dir / "ca" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 360 <= lifetime.days <= 366
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)


def test_ca_route_serves_the_ca_without_auth(tls_server: RunningServer) -> None:
    with tls_server.client() as c:
        r = c.get("/ca")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-pem-file"
    assert r.content == (tls_server.data_dir / "ca" / "ca.crt").read_bytes()
    x509.load_pem_x509_certificate(r.content)


def test_ca_key_is_encrypted_at_rest(tls_server: RunningServer) -> None:
    for name in ("ca.key", "server.key"):
        path = tls_server.data_dir / "ca" / name
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert path.stat().st_mode & 0o077 == 0
        with pytest.raises(TypeError):  # a password is required
            serialization.load_pem_private_key(path.read_bytes(), password=None)


def test_plain_http_to_the_tls_port_fails(tls_server: RunningServer) -> None:
    url = tls_server.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v2/", timeout=10)


def test_redirect_listener_answers_308_to_https(tls_server: RunningServer, redirect_port: int) -> None:
    port = tls_server.host.rsplit(":", 1)[1]
    r = httpx.get(f"http://127.0.0.1:{redirect_port}/v2/some/repo/tags/list?n=2", timeout=10)
    assert r.status_code == 308
    assert r.headers["location"] == f"https://127.0.0.1:{port}/v2/some/repo/tags/list?n=2"
    r = httpx.put(f"http://localhost:{redirect_port}/v2/", content=b"x", timeout=10)
    assert r.status_code == 308
    assert r.headers["location"] == f"https://localhost:{port}/v2/"
    # Following it, with the CA, ends on the registry.
    r = httpx.get(
        f"http://127.0.0.1:{redirect_port}/v2/", timeout=10, follow_redirects=True, verify=tls_server.verify()
    )
    assert r.status_code == 200 and str(r.url) == f"{tls_server.url}/v2/"


def test_reissued_when_names_change_and_kept_otherwise(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data, tls=True)
    try:
        cert1 = presented_certificate(first)
    finally:
        first.stop()
    same = start_server(data, tls=True)
    try:
        assert presented_certificate(same).serial_number == cert1.serial_number
    finally:
        same.stop()
    env = {"DOCKYARD_TLS__HOSTNAMES": "registry.example.org, 127.0.0.1,10.1.2.3"}
    changed = start_server(data, extra_env=env, tls=True)
    try:
        cert2 = presented_certificate(changed)
        assert cert2.serial_number != cert1.serial_number
        assert sans(cert2) == ({"registry.example.org"}, {"127.0.0.1", "10.1.2.3"})
        with changed.client() as c:
            assert c.get("/v2/").status_code == 200
    finally:
        changed.stop()


def test_bring_your_own_certificate(tmp_path: Path) -> None:
    """The operator's files are served as they are. Here they come from `dockyard ca issue`
    (so the fixture's readiness probe, which trusts the data folder's CA, can verify them)."""
    data, own = tmp_path / "data", tmp_path / "own"
    subprocess.run(
        [sys.executable, "-m", "dockyard", "ca", "issue", "--data-dir", str(data)]
        + ["--name", "own", "--san", "127.0.0.1", "--output-dir", str(own)],
        check=True,
        capture_output=True,
    )
    own_cert = x509.load_pem_x509_certificate((own / "own.crt").read_bytes())
    env = {"DOCKYARD_TLS__CERT_FILE": str(own / "own.crt"), "DOCKYARD_TLS__KEY_FILE": str(own / "own.key")}
    server = start_server(data, extra_env=env, tls=True)
    try:
        assert presented_certificate(server).serial_number == own_cert.serial_number
        assert not (data / "ca" / "server.crt").exists()  # the built-in CA issued no server certificate
        with server.client() as c:
            assert c.get("/v2/").status_code == 200
            assert c.get("/ca").status_code == 404  # the operator distributes their own CA
    finally:
        server.stop()


def test_plain_http_server_makes_no_ca(server: RunningServer, http: httpx.Client) -> None:
    assert http.get("/ca").status_code == 404
    assert not (server.data_dir / "ca").exists()


def test_bring_your_own_needs_both_files(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:1"],
        env={**os.environ, "DOCKYARD_TLS__CERT_FILE": str(tmp_path / "x.crt")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "tls.cert_file and tls.key_file" in r.stderr
