"""`dockyard install --part` and `dockyard reconfigure` on real data folders, with a real server."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import start_server
from tests.helpers import push_image, sha256
from tests.ops.test_ops import as_json, dockyard, ok


def blob_digests(manifest: bytes) -> list[str]:
    doc = json.loads(manifest)
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def test_install_places_parts_elsewhere_and_reuses_what_it_finds(tmp_path: Path) -> None:
    data, disk = tmp_path / "data", tmp_path / "other-disk"
    first = as_json(
        "install",
        "--data-dir",
        str(data),
        "--admin-password",
        "correct-horse-battery",
        "--part",
        f"registry={disk / 'registry'}",
        "--part",
        f"ca={disk / 'ca'}",
    )
    assert first["parts"]["registry"] == {"path": str(disk / "registry"), "state": "created"}
    assert first["parts"]["db"]["state"] == "created"
    assert (data / "registry").is_symlink() and (disk / "ca" / "ca.crt").is_file()
    assert (data / "config" / "dockyard.yml").is_file()
    assert first["ca_fingerprint"]

    # Installing again uses what is there: same CA, nothing recreated, admin unchanged.
    again = as_json("install", "--data-dir", str(data), "--part", f"registry={disk / 'registry'}")
    assert again["ca_fingerprint"] == first["ca_fingerprint"]
    assert {p["state"] for p in again["parts"].values()} == {"found"}
    assert again["admin_created"] is False

    # A placement that contradicts an existing part is refused, not silently hidden.
    r = dockyard("install", "--data-dir", str(data), "--part", f"db={tmp_path / 'elsewhere'}")
    assert r.returncode == 2 and "already exists" in r.stderr
    r = dockyard("install", "--data-dir", str(data), "--part", "images=/tmp/x")
    assert r.returncode == 2 and "NAME=PATH" in r.stderr

    # destroy names and deletes the parts placed elsewhere too.
    r = dockyard("destroy", "--data-dir", str(data), input="n\n")
    assert r.returncode == 1 and str(disk / "registry") in r.stderr
    ok("destroy", "--data-dir", str(data), "--yes")
    assert not data.exists() and not (disk / "registry").exists() and not (disk / "ca").exists()


def test_a_placed_registry_part_holds_the_blobs(tmp_path: Path) -> None:
    data, disk = tmp_path / "data", tmp_path / "nfs"
    ok("install", "--data-dir", str(data), "--admin-password", "correct-horse-battery", "--part", f"registry={disk}")
    server = start_server(data)
    try:
        with server.client() as http:
            manifest, _ = push_image(http, "placed/app", "v1", layers=1)
    finally:
        server.stop()
    stored = {p.name for p in disk.rglob("*") if p.is_file()}
    assert {d.split(":")[1] for d in blob_digests(manifest)} <= stored


def test_reconfigure_validates_writes_and_the_restarted_server_applies_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ok("install", "--data-dir", str(data), "--admin-password", "correct-horse-battery")
    server = start_server(data)
    try:
        with server.client() as http:
            manifest, _ = push_image(http, "keep/app", "v1", layers=2)
    finally:
        server.stop()

    # Refusals name the setting and change nothing.
    settings_file = data / "config" / "dockyard.yml"
    before = settings_file.read_text()
    for args, says in [
        (("--set", "registry.delete_enabld=false"), "unknown setting registry.delete_enabld"),
        (("--set", "server.port=99999"), "server.port"),
        (("--set", "registry.delete_enabled=maybe"), "expected true or false"),
        (("--set", "data_dir=/elsewhere"), "cannot move itself"),
        (("--set", "tls.cert_file=/nonexistent.pem", "--set", "tls.key_file=/nonexistent.key"), "cannot load"),
        (("--set", "storage.driver=nosuch"), "unknown storage driver"),
        (("--set", "auth.ldap={bind_dn: x}"), "auth.ldap.url"),
        (("--unset", "registry.delete_enabled"), "not set"),
    ]:
        r = dockyard("reconfigure", "--data-dir", str(data), *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert says in " ".join(r.stderr.split()), (args, r.stderr)
    assert settings_file.read_text() == before

    # Switching storage away from the blobs already stored is refused unless forced.
    r = dockyard("reconfigure", "--data-dir", str(data), "--set", f"storage.params.rootdirectory={tmp_path / 'empty'}")
    assert r.returncode == 2 and "blob(s)" in r.stderr
    assert settings_file.read_text() == before

    dry = as_json("reconfigure", "--data-dir", str(data), "--set", "registry.delete_enabled=false", "--dry-run")
    assert dry["written"] is False and settings_file.read_text() == before
    done = as_json(
        "reconfigure",
        "--data-dir",
        str(data),
        "--set",
        "registry.delete_enabled=false",
        "--set",
        "registry.tags_max_entries=50",
    )
    assert {c["key"]: c["after"] for c in done["changes"]} == {
        "registry.delete_enabled": False,
        "registry.tags_max_entries": 50,
    }
    assert yaml.safe_load(settings_file.read_text())["registry"]["delete_enabled"] is False
    assert Path(done["previous"]).read_text() == before
    assert oct(settings_file.stat().st_mode & 0o777) == "0o600"
    assert as_json("reconfigure", "--data-dir", str(data), "--set", "registry.tags_max_entries=50")["changes"] == []

    server = start_server(data)
    try:
        with server.client() as http:
            r = http.get(
                "/v2/keep/app/manifests/v1", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
            )
            assert r.status_code == 200 and r.content == manifest
            for d in blob_digests(manifest):
                assert sha256(http.get(f"/v2/keep/app/blobs/{d}").content) == d
            gone = http.delete(f"/v2/keep/app/manifests/{r.headers['docker-content-digest']}")
            assert gone.status_code == 405 and gone.json()["errors"][0]["code"] == "UNSUPPORTED"
    finally:
        server.stop()

    # --unset goes back to the default.
    as_json("reconfigure", "--data-dir", str(data), "--unset", "registry.delete_enabled")
    assert "delete_enabled" not in yaml.safe_load(settings_file.read_text())["registry"]


def test_reconfigure_needs_an_installed_folder(tmp_path: Path) -> None:
    r = dockyard("reconfigure", "--data-dir", str(tmp_path / "nothing"), "--set", "registry.delete_enabled=false")
    assert r.returncode == 2 and "dockyard install" in r.stderr
