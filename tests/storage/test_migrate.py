"""`dockyard storage migrate` to another folder and to every object store, then `reconfigure`
onto it and pull everything back: digests verified, corrupt bytes refused, resumable."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import backends
from tests.conftest import start_server
from tests.helpers import push_image, sha256
from tests.ops.test_ops import as_json, dockyard

pytestmark = pytest.mark.xdist_group("storage-migrate")


def blob_file(data: Path, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return data / "registry" / "blobs" / "sha256" / hex_digest[:2] / hex_digest


@pytest.mark.parametrize("target", ["filesystem", *backends.names()])
def test_migrate_then_switch_and_pull_everything(
    tmp_path: Path, target: str, object_stores: Callable[[str], backends.Backend]
) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        with server.client() as http:
            images = [push_image(http, f"mig/app{i}", "v1", layers=2) for i in range(3)]
    finally:
        server.stop()
    params: dict[str, Any] = (
        {"rootdirectory": str(tmp_path / "new-root")} if target == "filesystem" else object_stores(target).params("mig")
    )
    to = tmp_path / "target.yml"
    to.write_text(yaml.safe_dump({"storage": {"driver": target, "params": params}}))

    # A blob whose bytes no longer match its digest is reported and not copied.
    config_digest = json.loads(images[0][0])["config"]["digest"]
    damaged = blob_file(data, config_digest)
    good = damaged.read_bytes()
    damaged.write_bytes(b"not the config")
    r = dockyard("storage", "migrate", "--data-dir", str(data), "--to", str(to), "--json")
    assert r.returncode == 1, r.stderr
    first = json.loads(r.stdout)
    assert first["corrupt"] == [config_digest] and first["missing_at_source"] == [] and not first["ok"]
    assert first["copied"] == first["blobs"] - 1 == 6  # the three images share their config blob

    # Switching now would strand that blob: refused, naming the command that copies.
    settings = [("storage.driver", target), *((f"storage.params.{k}", str(v)) for k, v in params.items())]
    switch = [arg for key, value in settings for arg in ("--set", f"{key}={value}")]
    refused = dockyard("reconfigure", "--data-dir", str(data), *switch)
    assert refused.returncode == 2 and "1 of 7 blob(s) are not on the new backend" in " ".join(refused.stderr.split())

    # Mended and run again: only the missing blob is copied (resumed), then it switches.
    damaged.write_bytes(good)
    second = as_json("storage", "migrate", "--data-dir", str(data), "--to", str(to))
    assert (second["copied"], second["skipped"], second["ok"]) == (1, 6, True)
    verified = as_json("storage", "migrate", "--data-dir", str(data), "--to", str(to), "--verify-existing")
    assert (verified["copied"], verified["skipped"]) == (0, 7)
    as_json("reconfigure", "--data-dir", str(data), *switch)

    (data / "registry").rename(tmp_path / "old-registry")  # nothing may come from the old place
    server = start_server(data)
    try:
        with server.client() as http:
            for i, (body, digest) in enumerate(images):
                r = http.get(f"/v2/mig/app{i}/manifests/v1", headers={"Accept": json.loads(body)["mediaType"]})
                assert r.status_code == 200 and r.content == body and sha256(r.content) == digest
                doc = json.loads(body)
                for d in [doc["config"], *doc["layers"]]:
                    blob = http.get(f"/v2/mig/app{i}/blobs/{d['digest']}", follow_redirects=True)
                    assert blob.status_code == 200 and sha256(blob.content) == d["digest"]
    finally:
        server.stop()


def test_migrate_refuses_a_bad_target(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_json("install", "--data-dir", str(data), "--admin-password", "correct-horse-battery")
    for doc, says in [
        ({"storage": {"driver": "nosuch"}}, "unknown storage driver 'nosuch'"),
        ({"storage": {"driver": "filesystem", "params": {"rootdirectory": 5}}}, "rootdirectory"),
        ({"storage": {"driver": "filesystem", "parms": {}}}, "unknown setting storage.parms"),
        ({"driver": "filesystem", "params": {"rootdirectory": str(data / "registry")}}, "already in use"),
    ]:
        to = tmp_path / "to.yml"
        to.write_text(yaml.safe_dump(doc))
        r = dockyard("storage", "migrate", "--data-dir", str(data), "--to", str(to))
        assert r.returncode == 2 and says in " ".join(r.stderr.split()), (doc, r.stderr)
