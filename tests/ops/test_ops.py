"""The operator verbs, run as `python -m dockyard …` against real data folders and servers."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from dockyard.auth.keys import master_key
from tests.conftest import RunningServer, start_server
from tests.helpers import DOCKER_MANIFEST, OCI_MANIFEST, push_blob, push_image, sha256


def dockyard(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ok(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    r = dockyard(*args, input=input)
    assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def head_revision() -> str:
    from dockyard.ops.schema import head_revision

    return head_revision()


def tagged_manifests(db_file: Path) -> dict[str, tuple[str, bytes, list[str]]]:
    """repo:tag → (manifest digest, manifest bytes, blob digests it references), from a database file."""
    conn = sqlite3.connect(db_file)
    try:
        rows = conn.execute(
            "SELECT r.name, t.name, m.id, m.digest, m.content FROM tags t"
            " JOIN manifests m ON m.id = t.manifest_id JOIN repositories r ON r.id = t.repository_id"
        ).fetchall()
        out = {}
        for repo, tag, manifest_id, digest, content in rows:
            refs = [
                d
                for (d,) in conn.execute(
                    "SELECT digest FROM manifest_references WHERE manifest_id = ? AND kind = 'blob'", (manifest_id,)
                )
            ]
            out[f"{repo}:{tag}"] = (digest, bytes(content), refs)
        return out
    finally:
        conn.close()


# --- backup and restore ---------------------------------------------------------------------


def test_backup_while_pushing_then_restore_and_pull_back(tmp_path: Path) -> None:
    source = start_server(tmp_path / "a")
    master_key(source.data_dir / "config")  # key material to carry (auth is off on this test server)
    pushed: dict[str, bytes] = {}
    stop = threading.Event()
    failures: list[BaseException] = []

    def pusher(prefix: str) -> None:
        try:
            with source.client() as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    repo = f"live/{prefix}{n % 3}"
                    kind = OCI_MANIFEST if n % 2 else DOCKER_MANIFEST
                    body, _ = push_image(http, repo, f"t{n}", layers=2, media_type=kind)
                    pushed[f"{repo}:t{n}"] = body
        except BaseException as e:  # reported by the test below
            failures.append(e)

    try:
        with source.client() as http:
            for i in range(4):
                body, _ = push_image(http, f"before/img{i}", "v1", layers=2)
                pushed[f"before/img{i}:v1"] = body
        before = set(pushed)
        threads = [threading.Thread(target=pusher, args=(p,)) for p in ("x", "y")]
        for t in threads:
            t.start()
        time.sleep(0.5)
        archive = tmp_path / "backup.tar.gz"
        result = as_json("backup", "--data-dir", str(source.data_dir), "--output", str(archive), "--include-images")
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(60)
        assert not failures, failures
        assert result["missing_blobs"] == []
    finally:
        stop.set()
        source.stop()

    # The archive is consistent: every manifest in its database has its blobs in it.
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        tar.extract("db/dockyard.db", tmp_path / "inspect", filter="data")
    assert manifest["schema_revision"] == head_revision()
    assert {e["path"] for e in manifest["files"]} == names - {"manifest.json"}
    kept = {
        p.relative_to(source.data_dir).as_posix() for d in ("config", "ca") for p in (source.data_dir / d).rglob("*")
    }
    assert {n for n in names if n.startswith(("config/", "ca/"))} == {
        n for n in kept if (source.data_dir / n).is_file()
    }
    in_archive = tagged_manifests(tmp_path / "inspect" / "db" / "dockyard.db")
    assert before <= set(in_archive), "images pushed before the backup are all in it"
    for _, (_, _, refs) in in_archive.items():
        for d in refs:
            assert f"blobs/sha256/{d.split(':')[1]}" in names

    target = tmp_path / "restored"
    restored = as_json("restore", "--data-dir", str(target), "--input", str(archive))
    assert restored["schema_revision"] == head_revision()
    assert restored["blobs"] == result["blobs"] > 0

    server = start_server(target)
    try:
        with server.client() as http:
            for ref, (digest, content, refs) in in_archive.items():
                repo, tag = ref.rsplit(":", 1)
                assert content == pushed[ref]
                r = http.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": f"{DOCKER_MANIFEST},{OCI_MANIFEST}"})
                assert r.status_code == 200, r.text
                assert r.content == pushed[ref]
                assert r.headers["docker-content-digest"] == digest
                for d in refs:
                    b = http.get(f"/v2/{repo}/blobs/{d}")
                    assert b.status_code == 200, (ref, d, b.text)
                    assert sha256(b.content) == d
    finally:
        server.stop()


def _installed(tmp_path: Path, name: str = "data") -> Path:
    data = tmp_path / name
    ok("install", "--data-dir", str(data), "--admin-password", "correct-horse-battery")
    return data


def test_restore_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    data = _installed(tmp_path)
    archive = tmp_path / "b.tar.gz"
    ok("backup", "--data-dir", str(data), "--output", str(archive))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("keep me")
    r = dockyard("restore", "--data-dir", str(busy), "--input", str(archive))
    assert r.returncode == 2
    assert "not empty" in r.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["something"]
    r = dockyard("restore", "--data-dir", str(data), "--input", str(archive))
    assert r.returncode == 2
    # An empty existing folder is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    ok("restore", "--data-dir", str(empty), "--input", str(archive))
    assert (empty / "db" / "dockyard.db").exists()


def _rewrite(archive: Path, out: Path, change: dict[str, bytes]) -> None:
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            data = change.get(member.name, data)
            member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))


def test_restore_refuses_a_tampered_archive_before_writing_anything(tmp_path: Path) -> None:
    data = _installed(tmp_path)
    archive = tmp_path / "b.tar.gz"
    ok("backup", "--data-dir", str(data), "--output", str(archive))
    key = (data / "config" / "master.key").read_bytes()

    tampered = tmp_path / "tampered.tar.gz"
    _rewrite(archive, tampered, {"config/master.key": key[:-4] + b"AAA="})
    target = tmp_path / "target"
    r = dockyard("restore", "--data-dir", str(target), "--input", str(tampered))
    assert r.returncode == 2, r.stderr
    assert "config/master.key" in r.stderr and "does not match" in r.stderr
    assert not target.exists()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    r = dockyard("restore", "--data-dir", str(target), "--input", str(truncated))
    assert r.returncode == 2
    assert not target.exists()

    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    manifest["files"] = [e for e in manifest["files"] if e["path"] != "config/master.key"]
    unlisted = tmp_path / "unlisted.tar.gz"
    _rewrite(archive, unlisted, {"manifest.json": json.dumps(manifest).encode()})
    r = dockyard("restore", "--data-dir", str(target), "--input", str(unlisted))
    assert r.returncode == 2
    assert "not listed" in r.stderr
    assert not target.exists()


# --- upgrade --------------------------------------------------------------------------------


def test_upgrade_migrates_a_fresh_folder_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    first = as_json("upgrade", "--data-dir", str(data))
    assert first == {"before": None, "after": head_revision(), "changed": True}
    again = as_json("upgrade", "--data-dir", str(data))
    assert again == {"before": head_revision(), "after": head_revision(), "changed": False}


def test_upgrade_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    data = _installed(tmp_path)
    db_file = data / "db" / "dockyard.db"
    conn = sqlite3.connect(db_file)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    r = dockyard("upgrade", "--data-dir", str(data))
    assert r.returncode == 2
    assert "9999_from_the_future" in r.stderr and "newer" in r.stderr
    conn = sqlite3.connect(db_file)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "9999_from_the_future"
    conn.close()
    # Neither backup's restore nor repair works on it silently either.
    assert dockyard("emergency-repair", "--data-dir", str(data)).returncode == 2


# --- emergency-repair -----------------------------------------------------------------------


def _blob_file(data: Path, digest: str) -> Path:
    hex_digest = digest.split(":")[1]
    return data / "registry" / "blobs" / "sha256" / hex_digest[:2] / hex_digest


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_emergency_repair_reports_then_repairs_a_damaged_folder(tmp_path: Path) -> None:
    server: RunningServer = start_server(tmp_path / "data")
    data = server.data_dir
    try:
        with server.client() as http:
            body, digest = push_image(http, "damaged/app", "v1", layers=2)
            push_image(http, "healthy/app", "v1", layers=1)
    finally:
        server.stop()
    layer = json.loads(body)["layers"][0]["digest"]
    _blob_file(data, layer).unlink()
    old_orphan = os.urandom(100)
    old_file = _blob_file(data, sha256(old_orphan))
    old_file.parent.mkdir(parents=True, exist_ok=True)
    old_file.write_bytes(old_orphan)
    _age(old_file, 7200)
    young_orphan = os.urandom(100)
    young_file = _blob_file(data, sha256(young_orphan))
    young_file.parent.mkdir(parents=True, exist_ok=True)
    young_file.write_bytes(young_orphan)
    stray = data / "registry" / "uploads" / "0123456789abcdef0123456789abcdef"
    stray.mkdir(parents=True)
    (stray / "data").write_bytes(b"partial")
    _age(stray / "data", 7200)
    conn = sqlite3.connect(data / "db" / "dockyard.db")
    conn.execute(
        "INSERT INTO uploads (id, repository_id, created_at, updated_at)"
        " SELECT 'fedcba9876543210fedcba9876543210', id, 0, 0 FROM repositories WHERE name = 'healthy/app'"
    )
    conn.commit()
    conn.close()

    def findings(*extra: str) -> dict[tuple[str, str], str]:
        report = as_json("emergency-repair", "--data-dir", str(data), *extra)
        return {(f["kind"], f["subject"]): f["action"] for f in report["findings"]}

    dry = findings("--dry-run")
    assert dry == {
        ("dangling-blob", layer): "would delete row and links",
        ("broken-manifest", f"damaged/app@{digest}"): "reported",
        ("orphan-blob", sha256(old_orphan)): "would delete",
        ("orphan-blob", sha256(young_orphan)): "kept (younger than 1 hour)",
        ("data-without-upload", stray.name): "would delete",
        ("upload-without-data", "fedcba9876543210fedcba9876543210"): "would delete session",
    }
    assert old_file.exists() and stray.exists()

    table = ok("emergency-repair", "--data-dir", str(data)).stdout
    for kind in ("dangling-blob", "broken-manifest", "orphan-blob", "data-without-upload", "upload-without-data"):
        assert kind in table
    assert not old_file.exists() and young_file.exists() and not stray.exists()
    conn = sqlite3.connect(data / "db" / "dockyard.db")
    assert conn.execute("SELECT count(*) FROM blobs WHERE digest = ?", (layer,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM repository_blobs WHERE digest = ?", (layer,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0
    conn.close()

    # What remains is what cannot be repaired here: the broken manifest and the young file.
    assert findings() == {
        ("broken-manifest", f"damaged/app@{digest}"): "reported",
        ("orphan-blob", sha256(young_orphan)): "kept (younger than 1 hour)",
    }

    # The registry now says the blob is unknown, and takes it again.
    server = start_server(data)
    try:
        with server.client() as http:
            assert http.head(f"/v2/damaged/app/blobs/{layer}").status_code == 404
            healthy = tagged_manifests(data / "db" / "dockyard.db")["healthy/app:v1"]
            for d in healthy[2]:
                assert http.head(f"/v2/healthy/app/blobs/{d}").status_code == 200
    finally:
        server.stop()


def test_emergency_repair_on_a_clean_folder_finds_nothing(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with server.client() as http:
            push_blob(http, "clean/app", b"some bytes")
    finally:
        server.stop()
    assert as_json("emergency-repair", "--data-dir", str(server.data_dir))["findings"] == []
    assert "No findings" in ok("emergency-repair", "--data-dir", str(server.data_dir)).stdout


# --- destroy and install --------------------------------------------------------------------


def test_destroy_asks_first(tmp_path: Path) -> None:
    data = _installed(tmp_path)
    r = dockyard("destroy", "--data-dir", str(data), input="n\n")
    assert r.returncode == 1
    assert "Delete" in r.stdout + r.stderr
    assert (data / "db" / "dockyard.db").exists()
    ok("destroy", "--data-dir", str(data), input="y\n")
    assert not data.exists()

    other = _installed(tmp_path, "other")
    ok("destroy", "--data-dir", str(other), "--yes")
    assert not other.exists()


def test_destroy_refuses_a_folder_that_is_not_a_data_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("precious")
    r = dockyard("destroy", "--data-dir", str(home), "--yes")
    assert r.returncode == 2
    assert (home / "notes.txt").exists()
    assert dockyard("destroy", "--data-dir", str(tmp_path / "absent"), "--yes").returncode == 2


def test_install_creates_the_folder_and_prints_the_password(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    out = ok("install", "--data-dir", str(data)).stdout
    assert (data / "db" / "dockyard.db").exists()
    assert (data / "config" / "master.key").exists()
    assert (data / "registry").is_dir()
    password = next(line.split("│")[2].strip() for line in out.splitlines() if "admin password" in line)
    assert len(password) >= 16

    again = as_json("install", "--data-dir", str(data))
    assert again["admin_created"] is False and again["admin_password"] is None
    assert again["schema_revision"] == head_revision()

    # The printed password is the admin's.
    server = start_server(data, auth=True)
    try:
        url = f"{server.url}/auth/token"
        assert httpx.get(url, auth=("admin", password)).status_code == 200
        assert httpx.get(url, auth=("admin", password + "x")).status_code == 401
    finally:
        server.stop()


def test_install_with_a_given_password(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = as_json("install", "--data-dir", str(data), "--admin-password", "correct-horse-battery")
    assert result["admin_created"] is True and result["admin_password"] is None
    r = dockyard("install", "--data-dir", str(tmp_path / "weak"), "--admin-password", "short")
    assert r.returncode == 2


def test_backup_of_a_folder_without_a_database_fails_cleanly(tmp_path: Path) -> None:
    r = dockyard("backup", "--data-dir", str(tmp_path / "nothing"), "--output", str(tmp_path / "b.tar.gz"))
    assert r.returncode == 2
    assert "no database" in r.stderr
    assert not (tmp_path / "b.tar.gz").exists()
    assert hashlib.sha256(b"").hexdigest()  # keeps the import honest for future checks
