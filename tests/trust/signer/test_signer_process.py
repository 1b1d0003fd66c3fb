"""`dockyard signer serve` as its own process: mutual TLS only, keys survive kill -9, and a
Dockyard server on the same data folder signs through it without ever opening the keystore."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from dockyard.ca.authority import CertificateAuthority, plain_pem
from dockyard.trust.signer.keystore import keystore_path
from dockyard.trust.signer.remote import RemoteSigner
from dockyard.trust.signer.service import KeyNotFound, SignerUnavailable
from dockyard.trust.signer.tls import Credentials, trust_client_credentials
from tests.conftest import ADMIN_PASSWORD, free_port, start_server
from tests.trust.integration.test_notary_cli import listed, make_repository, notary
from tests.trust.signer.test_keystore import verify

pytestmark = pytest.mark.xdist_group("signer-process")


@dataclass
class SignerProcess:
    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, seconds: float = 30) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "dockyard", "signer", "serve"),
                    *("--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        creds = trust_client_credentials(self.data_dir)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the signer exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                with mtls_client(self.url, creds) as http:
                    if http.get("/health").status_code == 200:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the signer did not answer in {seconds:.0f} s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def mtls_client(url: str, creds: Credentials) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(creds.ca_file))
    context.load_cert_chain(str(creds.cert_file), str(creds.key_file), creds.password)
    return httpx.Client(base_url=url, verify=context, timeout=10)


def remote(signer: SignerProcess) -> RemoteSigner:
    creds = trust_client_credentials(signer.data_dir)
    return RemoteSigner(signer.url, (str(creds.cert_file), str(creds.key_file), creds.password), str(creds.ca_file))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("signer") / "data"
    r = subprocess.run(
        [sys.executable, "-m", "dockyard", "install", "--data-dir", str(data), "--admin-password", ADMIN_PASSWORD],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return data


@pytest.fixture(scope="module")
def signer(data_dir: Path) -> Iterator[SignerProcess]:
    s = SignerProcess(data_dir, free_port(), data_dir.parent / "signer.log")
    s.start()
    yield s
    s.stop()


async def _create_and_sign(signer: SignerProcess, message: bytes) -> tuple[str, bytes, bytes]:
    client = remote(signer)
    try:
        await client.health()
        info = await client.create_key("registry.example/signer/test", "timestamp")
        assert await client.get_key(info.key_id) == info
        signature = await client.sign(info.key_id, message)
        with pytest.raises(KeyNotFound):
            await client.sign("0" * 64, message)
        return info.key_id, info.public_der, signature
    finally:
        await client.close()


async def _sign(signer: SignerProcess, key_id: str, message: bytes) -> bytes:
    client = remote(signer)
    try:
        return await client.sign(key_id, message)
    finally:
        await client.close()


def test_remote_signer_creates_and_signs(signer: SignerProcess) -> None:
    key_id, public, signature = asyncio.run(_create_and_sign(signer, b"canonical bytes"))
    verify(public, signature, b"canonical bytes")


def _raw_request(signer: SignerProcess, context: ssl.SSLContext) -> bytes:
    """GET /health over a bare TLS socket: the bytes answered (b"" when the server hung up)."""
    with (
        socket.create_connection(("127.0.0.1", signer.port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        chunks = []
        try:
            while chunk := tls.recv(65536):
                chunks.append(chunk)
        except (ssl.SSLError, ConnectionResetError):
            pass  # an alert or a reset instead of an answer
        return b"".join(chunks)


def _tls12(context: ssl.SSLContext) -> ssl.SSLContext:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def _context(creds: Credentials, cert: tuple[str, ...] = ()) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(creds.ca_file))
    if cert:
        context.load_cert_chain(*cert)
    return context


def _foreign_client_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A client certificate (and its chain) from a CA the signer has never seen."""
    other = CertificateAuthority.create(tmp_path / "other", os.urandom(32), name="Some other")
    leaf = other.issue("dockyard-trust-server", [])
    cert_path, key_path = tmp_path / "foreign.crt", tmp_path / "foreign.key"
    cert_path.write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM) + other.pem)
    key_path.write_bytes(plain_pem(leaf.key))
    return cert_path, key_path


def test_clients_without_our_certificate_are_refused_by_tls(signer: SignerProcess, tmp_path: Path) -> None:
    creds = trust_client_credentials(signer.data_dir)
    ours = (str(creds.cert_file), str(creds.key_file), creds.password)
    foreign = tuple(map(str, _foreign_client_cert(tmp_path)))
    assert _raw_request(signer, _context(creds, ours)).startswith(b"HTTP/1.1 200")
    assert _raw_request(signer, _tls12(_context(creds, ours))).startswith(b"HTTP/1.1 200")

    for cert in ((), foreign):  # no client certificate; one from another CA
        # TLS 1.2: the server checks the client certificate before its Finished, so the
        # handshake itself fails.
        with pytest.raises(ssl.SSLError):
            _raw_request(signer, _tls12(_context(creds, cert)))
        # TLS 1.3 (the default): the handshake completes on the client's side first; the
        # server then drops the connection without one byte of HTTP.
        assert _raw_request(signer, _context(creds, cert)) == b""
        # And through the client the trust server uses: no HTTP answer at all.
        with (
            httpx.Client(base_url=signer.url, verify=_context(creds, cert), timeout=10) as http,
            pytest.raises(httpx.TransportError),
        ):
            http.get("/health")


def test_kill_9_and_restart_keeps_the_keys(signer: SignerProcess) -> None:
    key_id, public, _ = asyncio.run(_create_and_sign(signer, b"before"))
    signer.stop(signal.SIGKILL)
    with pytest.raises(SignerUnavailable, match="does not answer"):
        asyncio.run(_sign(signer, key_id, b"while down"))
    signer.start()
    verify(public, asyncio.run(_sign(signer, key_id, b"after restart")), b"after restart")


def test_a_kept_connection_the_signer_dropped_is_replaced(signer: SignerProcess) -> None:
    """The trust server keeps its connections to the signer open; after the signer restarts,
    the next call finds its kept connection dead and sends the request again on a new one."""

    async def run() -> tuple[bytes, bytes, bytes, int]:
        client = remote(signer)
        try:
            info = await client.create_key("registry.example/signer/kept", "timestamp")
            first = await client.sign(info.key_id, b"one")
            second = await client.sign(info.key_id, b"two")  # the same kept connection
            kept = len(client._idle)
            signer.stop(signal.SIGKILL)
            signer.start()
            third = await client.sign(info.key_id, b"three")
            verify(info.public_der, first, b"one")
            verify(info.public_der, second, b"two")
            return info.public_der, third, b"three", kept
        finally:
            await client.close()

    public, signature, message, kept = asyncio.run(run())
    assert kept == 1
    verify(public, signature, message)


def _open_files(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    return out


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def test_dockyard_server_signs_through_the_separate_signer(
    signer: SignerProcess, data_dir: Path, tmp_path: Path
) -> None:
    keystore = str(keystore_path(data_dir))
    server = start_server(data_dir, extra_env={"DOCKYARD_TRUST__SIGNER_URL": signer.url}, auth=True, tls=True)
    try:
        gun = make_repository(server, "admin/remote-signed")
        trust, payload = tmp_path / "trust", tmp_path / "payload"
        payload.write_bytes(b"signed through the signer process")
        with mtls_client(signer.url, trust_client_credentials(data_dir)) as http:
            keys_before = http.get("/health").json()["keys"]
        notary(server, trust, "init", "-p", gun)
        notary(server, trust, "add", "-p", gun, "v1", str(payload))
        assert set(listed(server, tmp_path / "reader", gun)) == {"v1"}
        with mtls_client(signer.url, trust_client_credentials(data_dir)) as http:
            assert http.get("/health").json()["keys"] > keys_before  # the timestamp key lives there

        # The signer process owns the keystore; no process of the server has it open.
        assert signer.process is not None
        assert keystore in _open_files(signer.process.pid)
        server_pids = _process_tree(server.process.pid)
        for pid in server_pids:
            assert not any(path.startswith(keystore) for path in _open_files(pid)), pid

        # Signer stopped: publishing fails, and the server says why.
        signer.stop()
        failed = notary(server, trust, "add", "-p", gun, "v2", str(payload), check=False)
        assert failed.returncode != 0, failed.stdout
        fresh = make_repository(server, "admin/remote-signer-down")
        failed = notary(server, tmp_path / "t2", "init", "-p", fresh, check=False)
        assert failed.returncode != 0, failed.stdout
        with httpx.Client(
            base_url=server.url, verify=server.verify(), auth=("admin", ADMIN_PASSWORD), timeout=30
        ) as http:
            r = http.get(f"/v2/{fresh}/_trust/tuf/timestamp.key")
        assert r.status_code == 500, r.text
        (error,) = r.json()["errors"]
        assert error["code"] == "NO_CRYPTOSERVICE" and "signer" in error["message"], error
        assert set(listed(server, tmp_path / "reader2", gun)) == {"v1"}  # reading needs no signer

        signer.start()
        notary(server, trust, "add", "-p", gun, "v3", str(payload))
        assert set(listed(server, tmp_path / "reader3", gun)) >= {"v1", "v3"}
    finally:
        server.stop()
