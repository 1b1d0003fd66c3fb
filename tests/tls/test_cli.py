"""`dockyard ca show|export|issue|rotate`, run as an operator would."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import start_server

pytestmark = pytest.mark.xdist_group("tls")


def dockyard_ca(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "ca", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_show_before_and_after_first_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = dockyard_ca("show", "--data-dir", data)
    assert r.returncode == 1 and "no CA" in r.stderr
    server = start_server(data, tls=True)
    server.stop()
    r = dockyard_ca("show", "--data-dir", data)
    assert r.returncode == 0, r.stderr
    ca = x509.load_pem_x509_certificate((data / "ca" / "ca.crt").read_bytes())
    from dockyard.ca import fingerprint

    assert fingerprint(ca) in r.stdout, r.stdout
    assert "Dockyard root CA" in r.stdout
    assert "localhost, 127.0.0.1, ::1" in r.stdout  # the server certificate's SANs
    assert ca.not_valid_after_utc.isoformat() in r.stdout


def test_export_to_stdout_and_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = dockyard_ca("export", "--data-dir", data)  # makes the CA when there is none yet
    assert r.returncode == 0, r.stderr
    assert r.stdout.encode() == (data / "ca" / "ca.crt").read_bytes()
    out = tmp_path / "exported.crt"
    r = dockyard_ca("export", "--data-dir", data, "--output", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (data / "ca" / "ca.crt").read_bytes()


def test_issue_a_leaf_signed_by_the_ca(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "signer"
    r = dockyard_ca(
        "issue", "--data-dir", data, "--name", "signer", "--san", "signer.example", "--san", "10.0.0.7",
        "--output-dir", out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cert = x509.load_pem_x509_certificate((out / "signer.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((data / "ca" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert (out / "ca.crt").read_bytes() == (data / "ca" / "ca.crt").read_bytes()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["signer.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = serialization.load_pem_private_key((out / "signer.key").read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert (out / "signer.key").stat().st_mode & 0o077 == 0


def test_rotate_makes_a_new_ca_and_reissues_the_server_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert dockyard_ca("export", "--data-dir", data).returncode == 0
    old_ca = (data / "ca" / "ca.crt").read_bytes()
    r = dockyard_ca("rotate", "--data-dir", data, stdin="n\n")
    assert r.returncode != 0  # declined: nothing changed
    assert (data / "ca" / "ca.crt").read_bytes() == old_ca
    r = dockyard_ca("rotate", "--data-dir", data, "--yes")
    assert r.returncode == 0, r.stderr
    new_ca = (data / "ca" / "ca.crt").read_bytes()
    assert new_ca != old_ca
    assert old_ca in [p.read_bytes() for p in (data / "ca" / "previous").glob("ca-*.crt")]
    server_cert = x509.load_pem_x509_certificate((data / "ca" / "server.crt").read_bytes())
    server_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(new_ca))
    # A server started afterwards serves the rotated certificate, trusted through the new CA only.
    server = start_server(data, tls=True)
    try:
        ctx = ssl.create_default_context(cadata=new_ca.decode())
        assert httpx.get(f"{server.url}/v2/", verify=ctx, timeout=30).status_code == 200
        old_ctx = ssl.create_default_context(cadata=old_ca.decode())
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v2/", verify=old_ctx, timeout=30)
    finally:
        server.stop()
