"""The real notary CLI (Debian's `notary`) against Dockyard's trust server over HTTPS, with tokens."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server
from tests.helpers import push_image

pytestmark = pytest.mark.xdist_group("notary")

PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "root-passphrase-1",
    "NOTARY_TARGETS_PASSPHRASE": "targets-passphrase-1",
    "NOTARY_SNAPSHOT_PASSPHRASE": "snapshot-passphrase-1",
    "NOTARY_DELEGATION_PASSPHRASE": "delegation-passphrase-1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("notary") / "data", auth=True, tls=True)
    yield s
    s.stop()


def admin(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, verify=server.verify(), auth=("admin", ADMIN_PASSWORD))


def make_repository(server: RunningServer, repo: str, public: bool = False) -> str:
    """Push a small image so the repository exists; the GUN that names it."""
    with admin(server) as http:
        push_image(http, repo, "v1", layers=1)
        if public:
            r = http.patch(f"/api/v0/repositories/{repo}", json={"visibility": "public"})
            assert r.status_code == 200, r.text
    return f"{server.host}/{repo}"


def notary(
    server: RunningServer,
    trust_dir: Path,
    *args: str,
    user: str | None = "admin",
    password: str = ADMIN_PASSWORD,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PASSPHRASES}
    env.pop("NOTARY_AUTH", None)
    if user:
        env["NOTARY_AUTH"] = base64.b64encode(f"{user}:{password}".encode()).decode()
    cmd = ["notary", "-s", server.url, "-d", str(trust_dir), "--tlscacert", str(server.data_dir / "ca" / "ca.crt")]
    r = subprocess.run(
        [*cmd, *args], input=input.decode() if input else "", capture_output=True, text=True, env=env, timeout=120
    )
    if check:
        assert r.returncode == 0, f"notary {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def listed(server: RunningServer, trust_dir: Path, gun: str, **kw: object) -> dict[str, tuple[str, int, str]]:
    """``notary list``: target name -> (sha256 hex, size, role)."""
    out = notary(server, trust_dir, "list", gun, **kw).stdout  # type: ignore[arg-type]
    targets: dict[str, tuple[str, int, str]] = {}
    for line in out.splitlines()[2:]:
        fields = line.split()
        if len(fields) == 4:
            targets[fields[0]] = (fields[1], int(fields[2]), fields[3])
    return targets


def test_init_publish_list_lookup_verify_remove(server: RunningServer, tmp_path: Path) -> None:
    gun = make_repository(server, "admin/notary-basic")
    trust = tmp_path / "trust"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(2048).hex().encode())  # text: the CLI reads stdin as text here
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()

    notary(server, trust, "init", "-p", gun)  # local snapshot key: the client signs the snapshot
    notary(server, trust, "add", "-p", gun, "v1", str(payload))
    assert listed(server, trust, gun) == {"v1": (digest, 4096, "targets")}
    lookup = notary(server, trust, "lookup", gun, "v1").stdout.split()
    assert lookup == ["v1", f"sha256:{digest}", "4096"]
    verified = notary(server, trust, "verify", gun, "v1", input=payload.read_bytes())
    assert verified.stdout.encode() == payload.read_bytes()
    wrong = notary(server, trust, "verify", gun, "v1", input=b"not the payload", check=False)
    assert wrong.returncode != 0

    # A fresh client (no cache) sees the same collection; then the target is removed.
    assert listed(server, tmp_path / "fresh", gun) == {"v1": (digest, 4096, "targets")}
    notary(server, trust, "remove", "-p", gun, "v1")
    assert listed(server, tmp_path / "fresh", gun) == {}


def test_server_managed_snapshot_key_rotations_and_root_rotation(server: RunningServer, tmp_path: Path) -> None:
    gun = make_repository(server, "admin/notary-rotate")
    trust = tmp_path / "trust"
    payload = tmp_path / "p"
    payload.write_bytes(b"rotate me")
    notary(server, trust, "init", "-p", gun)
    notary(server, trust, "key", "rotate", gun, "snapshot", "-r")  # the server takes over the snapshot
    notary(server, trust, "add", "-p", gun, "a", str(payload))
    assert set(listed(server, tmp_path / "c1", gun)) == {"a"}

    notary(server, trust, "key", "rotate", gun, "timestamp", "-r")
    notary(server, trust, "add", "-p", gun, "b", str(payload))
    assert set(listed(server, tmp_path / "c2", gun)) == {"a", "b"}

    # Root rotation: the new root is signed by old and new root keys; a client that trusted the
    # old root walks N.root.json to the new one.
    before = tmp_path / "before-rotation"
    assert set(listed(server, before, gun)) == {"a", "b"}
    notary(server, trust, "key", "rotate", gun, "root")
    notary(server, trust, "add", "-p", gun, "c", str(payload))
    assert set(listed(server, before, gun)) == {"a", "b", "c"}
    with httpx.Client(verify=server.verify(), auth=("admin", ADMIN_PASSWORD)) as http:
        versions = [http.get(f"{server.url}/v2/{gun}/_trust/tuf/{n}.root.json").status_code for n in (1, 2, 3, 4, 5, 6)]
    assert versions[0] == 200 and 200 in versions[1:]


def _delegate_key(tmp_path: Path, gun: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "releases-signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "delegate.crt", tmp_path / "delegate.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_delegation_publish_as_a_delegate(server: RunningServer, tmp_path: Path) -> None:
    gun = make_repository(server, "admin/notary-delegation")
    owner, delegate = tmp_path / "owner", tmp_path / "delegate"
    payload = tmp_path / "p"
    payload.write_bytes(b"released")
    cert, key = _delegate_key(tmp_path, gun)
    notary(server, owner, "init", "-p", gun)
    notary(server, owner, "key", "rotate", gun, "snapshot", "-r")
    notary(server, owner, "delegation", "add", "-p", gun, "targets/releases", str(cert), "--all-paths")
    notary(server, delegate, "key", "import", str(key), "--role", "targets/releases")
    notary(server, delegate, "add", "-p", gun, "rel", str(payload), "--roles", "targets/releases")
    targets = listed(server, tmp_path / "reader", gun)
    assert targets["rel"][2] == "targets/releases"
    # A delegate role outside its parent's declaration is refused by the server.
    r = notary(server, delegate, "add", "-p", gun, "x", str(payload), "--roles", "targets/undeclared", check=False)
    assert r.returncode != 0


def test_delete_remote_and_permissions(server: RunningServer, tmp_path: Path) -> None:
    gun = make_repository(server, "admin/notary-delete")
    public_gun = make_repository(server, "admin/notary-public", public=True)
    trust = tmp_path / "trust"
    payload = tmp_path / "p"
    payload.write_bytes(b"x")
    for g in (gun, public_gun):
        notary(server, trust, "init", "-p", g)
        notary(server, trust, "add", "-p", g, "t", str(payload))

    # Anonymous readers: the public collection lists, the private one does not.
    assert set(listed(server, tmp_path / "anon", public_gun, user=None)) == {"t"}
    r = notary(server, tmp_path / "anon2", "list", gun, user=None, check=False)
    assert r.returncode != 0

    notary(server, trust, "delete", gun, "--remote")
    r = notary(server, tmp_path / "after", "list", gun, check=False)
    assert r.returncode != 0 and "does not have trust data" in (r.stdout + r.stderr)


def _tuf(server: RunningServer, gun: str, name: str) -> httpx.Response:
    with admin(server) as http:
        return http.get(f"/v2/{gun}/_trust/tuf/{name}")


def _post(server: RunningServer, gun: str, files: dict[str, bytes]) -> httpx.Response:
    with admin(server) as http:
        return http.post(
            f"/v2/{gun}/_trust/tuf/", files=[("files", (role, content)) for role, content in files.items()]
        )


def _error(r: httpx.Response) -> tuple[str, str, str]:
    (entry,) = r.json()["errors"]
    detail = entry.get("detail") or {}
    name = detail.get("Name", "") if isinstance(detail, dict) else ""
    return entry["code"], name, json.dumps(detail) + entry.get("message", "")


def test_tampered_replayed_and_wrongly_signed_updates_are_refused(server: RunningServer, tmp_path: Path) -> None:
    gun = make_repository(server, "admin/notary-tamper")
    trust = tmp_path / "trust"
    payload = tmp_path / "p"
    payload.write_bytes(b"original")
    notary(server, trust, "init", "-p", gun)
    notary(server, trust, "add", "-p", gun, "v1", str(payload))
    old_targets = _tuf(server, gun, "targets.json").content
    notary(server, trust, "add", "-p", gun, "v2", str(payload))
    current = _tuf(server, gun, "targets.json")
    assert current.status_code == 200 and current.headers["cache-control"].startswith("public")

    # Tampered: a target added to the signed bytes after signing.
    doc = json.loads(current.content)
    doc["signed"]["version"] += 1
    doc["signed"]["targets"]["evil"] = {"length": 1, "hashes": {"sha256": base64.b64encode(b"0" * 32).decode()}}
    code, name, text = _error(_post(server, gun, {"targets": json.dumps(doc).encode()}))
    assert (code, name) == ("INVALID_UPDATE", "ErrBadTargets"), text

    # Wrong signature: valid base64 of the right size, not a signature of these bytes.
    doc = json.loads(current.content)
    doc["signed"]["version"] += 1
    doc["signatures"][0]["sig"] = base64.b64encode(os.urandom(64)).decode()
    code, name, text = _error(_post(server, gun, {"targets": json.dumps(doc).encode()}))
    assert (code, name) == ("INVALID_UPDATE", "ErrBadTargets"), text

    # Replayed: an older, correctly signed version.
    code, _, text = _error(_post(server, gun, {"targets": old_targets}))
    assert code in ("VERSION", "INVALID_UPDATE"), text

    # Not JSON / not multipart / no filename.
    assert _error(_post(server, gun, {"targets": b"{not json"}))[0] == "MALFORMED_JSON"
    with admin(server) as http:
        r = http.post(f"/v2/{gun}/_trust/tuf/", content=b"x", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MALFORMED_UPLOAD"
    # Nothing of the refused updates was stored: the collection still lists v1 and v2 only.
    assert set(listed(server, tmp_path / "reader", gun)) == {"v1", "v2"}


def test_metadata_is_served_by_version_and_checksum(server: RunningServer, tmp_path: Path) -> None:
    gun = make_repository(server, "admin/notary-fetch")
    notary(server, tmp_path / "trust", "init", "-p", gun)
    root = _tuf(server, gun, "root.json")
    assert root.status_code == 200
    by_sum = _tuf(server, gun, f"root.{hashlib.sha256(root.content).hexdigest()}.json")
    assert by_sum.content == root.content and "max-age=2592000" in by_sum.headers["cache-control"]
    assert _tuf(server, gun, "1.root.json").content == root.content
    assert _error(_tuf(server, gun, "9.root.json"))[0] == "METADATA_NOT_FOUND"
    assert _error(_tuf(server, gun, f"root.{'0' * 64}.json"))[0] == "METADATA_NOT_FOUND"
    ts = _tuf(server, gun, "timestamp.json").json()
    snapshot = _tuf(server, gun, "snapshot.json")
    expected = base64.b64encode(hashlib.sha256(snapshot.content).digest()).decode()
    assert ts["signed"]["meta"]["snapshot"]["hashes"]["sha256"] == expected
    # A GUN whose host is not this registry, and a repository that does not exist.
    assert _error(_tuf(server, "elsewhere.example/admin/notary-fetch", "root.json"))[0] == "INVALID_GUN"
    with admin(server) as http:
        r = http.get(f"/v2/{gun}/_trust/changefeed", params={"records": "10"})
        assert r.status_code == 200 and r.json()["count"] >= 1
        assert all(rec["GUN"] == gun for rec in r.json()["records"])
        r = http.get(f"/v2/{gun}/_trust/changefeed", params={"records": "ten"})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "INVALID_PARAMETERS"
