"""The server certificate's names and when it is reissued; the redirect's Location."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dockyard.ca import CertificateAuthority, ensure_server_certificate, kek_for, sans_of, wanted_sans
from dockyard.ca.authority import encrypted_pem, write_private
from dockyard.ca.server import key_password, needs_reissue
from dockyard.cli.serve import redirect_location
from dockyard.config import load


def test_wanted_sans_add_the_listen_host_unless_wildcard() -> None:
    assert wanted_sans(load(environ={})) == ["localhost", "127.0.0.1", "::1"]
    s = load(environ={"DOCKYARD_TLS__HOSTNAMES": "reg.example, 10.0.0.1", "DOCKYARD_SERVER__HOST": "10.0.0.2"})
    assert wanted_sans(s) == ["reg.example", "10.0.0.1", "10.0.0.2"]
    assert wanted_sans(load(environ={"DOCKYARD_SERVER__HOST": "0.0.0.0"})) == ["localhost", "127.0.0.1", "::1"]
    assert wanted_sans(load(environ={"DOCKYARD_SERVER__HOST": "LOCALHOST"})) == ["localhost", "127.0.0.1", "::1"]


def test_reissue_reasons(tmp_path: Path) -> None:
    kek = b"k" * 32
    ca = CertificateAuthority.create(tmp_path, kek)
    cert = ca.issue("localhost", ["localhost", "127.0.0.1"]).cert
    now = datetime.datetime.now(datetime.UTC)
    assert needs_reissue(cert, ca, ["LOCALHOST", "127.0.0.1"], now) == ""
    assert needs_reissue(cert, ca, ["localhost"], now) == "its names changed"
    assert needs_reissue(cert, ca, ["localhost", "127.0.0.1"], now + datetime.timedelta(days=340)) == (
        "it expires within 30 days"
    )
    other = CertificateAuthority.create(tmp_path, kek)
    assert needs_reissue(cert, other, ["localhost", "127.0.0.1"], now) == "the CA changed"


def test_near_expiry_certificate_is_reissued_at_start(tmp_path: Path) -> None:
    settings = load(environ={}, overrides={"data_dir": str(tmp_path)})
    kek = kek_for(tmp_path)
    ca = CertificateAuthority.load_or_create(tmp_path, kek)
    short = ca.issue("localhost", wanted_sans(settings), datetime.timedelta(days=20))
    write_private(ca.directory / "server.key", encrypted_pem(short.key, key_password(kek).encode()))
    (ca.directory / "server.crt").write_bytes(short.cert.public_bytes(serialization.Encoding.PEM))
    creds = ensure_server_certificate(settings, ca)
    cert = x509.load_pem_x509_certificate(creds.cert_file.read_bytes())
    assert cert.serial_number != short.cert.serial_number
    assert sans_of(cert) == ["localhost", "127.0.0.1", "::1"]
    again = ensure_server_certificate(settings, ca)  # now fine: kept
    assert x509.load_pem_x509_certificate(again.cert_file.read_bytes()).serial_number == cert.serial_number


def test_redirect_location() -> None:
    head = b"GET /v2/a/b?n=1 HTTP/1.1\r\nHost: reg.example:8080\r\n\r\n"
    assert redirect_location(head, 5000, "127.0.0.1") == "https://reg.example:5000/v2/a/b?n=1"
    assert redirect_location(b"GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n", 443, "x") == "https://[::1]/"
    # No Host, or a malformed one, or an absolute/odd target: the configured host and "/".
    assert redirect_location(b"GET http://evil/ HTTP/1.1\r\n\r\n", 5000, "h") == "https://h:5000/"
    assert redirect_location(b"GET /x HTTP/1.1\r\nHost: a b@evil\r\n\r\n", 5000, "h") == "https://h:5000/x"
