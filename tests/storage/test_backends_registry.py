"""The registry on every storage backend, through real servers: skopeo push and pull, a
chunked upload begun on one Dockyard process and finished on another, a cross-repository
mount, and blob GETs redirected to the object store and followed by the client."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests import backends
from tests.conftest import RunningServer, start_server
from tests.helpers import push_image, sha256
from tests.integration.clients import Clients, Layout, build_umoci_image

pytestmark = pytest.mark.xdist_group("storage-backends")

MiB = 1 << 20


@dataclass
class Site:
    """Two Dockyard processes on one data folder and one storage prefix (as replicas would
    be), plus one on the same storage that answers blob GETs with redirects."""

    name: str
    first: RunningServer
    second: RunningServer
    redirecting: RunningServer | None  # None: the backend has no direct URLs (filesystem)


@pytest.fixture(scope="module", params=["filesystem", *backends.names()])
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    object_stores: Callable[[str], backends.Backend],
) -> Iterator[Site]:
    name: str = request.param
    data = tmp_path_factory.mktemp(f"site-{name}") / "data"
    env: dict[str, str] = {}
    if name != "filesystem":
        env = object_stores(name).server_env(f"site-{uuid.uuid4().hex[:8]}")
    first = start_server(data, extra_env=env)
    second = start_server(data, extra_env=env)
    redirecting = (
        start_server(data, extra_env={**env, "DOCKYARD_STORAGE__PARAMS__REDIRECT": "true"})
        if name != "filesystem"
        else None
    )
    yield Site(name, first, second, redirecting)
    for server in (first, second, redirecting):
        if server is not None:
            server.stop()


def test_skopeo_push_and_pull(site: Site, tmp_path: Path) -> None:
    nonce = os.urandom(8).hex().encode()
    layers = [{"etc/hello": b"hello " + nonce}, {"opt/blob.bin": os.urandom(300_000), "opt/nonce": nonce}]
    build_umoci_image(tmp_path / "src", "v1", layers, tmp_path)
    src = Layout(tmp_path / "src")
    clients = Clients(site.first, tmp_path / "c1")
    digest = clients.push(f"oci:{src.root}:v1", "skopeo/app", "v1", "--preserve-digests")
    assert digest == src.ref("v1")["digest"]
    for server in filter(None, (site.second, site.redirecting)):
        other = Clients(server, tmp_path / f"c-{server.host.replace(':', '-')}")
        dest = tmp_path / f"pulled-{server.host.replace(':', '-')}"
        other.pull("skopeo/app", "v1", f"oci:{dest}:v1")
        pulled = Layout(dest)
        assert pulled.ref("v1")["digest"] == digest
        assert pulled.files(digest) == src.files(digest)


def test_a_chunked_upload_begun_on_one_process_finishes_on_another(site: Site) -> None:
    data = os.urandom(12 * MiB + 12345)
    digest = sha256(data)
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    with site.first.client() as a, site.second.client() as b:
        r = a.post("/v2/chunked/app/blobs/uploads/")
        assert r.status_code == 202, r.text
        location = urlsplit(r.headers["location"]).path + "?" + urlsplit(r.headers["location"]).query
        offset = 0
        for i, chunk in enumerate(chunks):
            http = a if i % 2 == 0 else b  # every other chunk goes to the other process
            r = http.patch(
                location,
                content=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                },
            )
            assert r.status_code == 202, (i, r.text)
            offset += len(chunk)
            assert r.headers["range"] == f"0-{offset - 1}"
            location = urlsplit(r.headers["location"]).path + "?" + urlsplit(r.headers["location"]).query
        status = a.get(location)
        assert status.status_code == 204 and status.headers["range"] == f"0-{len(data) - 1}"
        sep = "&" if "?" in location else "?"
        r = b.put(f"{location}{sep}digest={digest}")
        assert r.status_code == 201, r.text
        got = a.get(f"/v2/chunked/app/blobs/{digest}", follow_redirects=True)
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == digest.split(":")[1]


def test_cross_repository_mount(site: Site) -> None:
    with site.first.client() as http:
        body, _ = push_image(http, "mount/source", "v1", layers=1)
        layer = json.loads(body)["layers"][0]["digest"]
        r = http.post("/v2/mount/target/blobs/uploads/", params={"mount": layer, "from": "mount/source"})
        assert r.status_code == 201 and r.headers["docker-content-digest"] == layer, r.text
    with site.second.client() as other:
        got = other.get(f"/v2/mount/target/blobs/{layer}", follow_redirects=True)
        assert got.status_code == 200 and sha256(got.content) == layer


def test_blob_gets_redirect_to_the_object_store(site: Site) -> None:
    if site.redirecting is None:
        with site.first.client() as http:
            body, _ = push_image(http, "redirect/app", "v1", layers=1)
            layer = json.loads(body)["layers"][0]["digest"]
            assert http.get(f"/v2/redirect/app/blobs/{layer}").status_code == 200  # served, not redirected
        return
    with site.first.client() as http:
        body, _ = push_image(http, "redirect/app", "v1", layers=1)
    layer = json.loads(body)["layers"][0]["digest"]
    with site.redirecting.client() as http:
        r = http.get(f"/v2/redirect/app/blobs/{layer}")
        assert r.status_code == 307, r.text
        target = urlsplit(r.headers["location"])
        assert target.hostname in ("127.0.0.1", "localhost") and str(target.port) != site.redirecting.host.split(":")[1]
        followed = http.get(f"/v2/redirect/app/blobs/{layer}", follow_redirects=True)
        assert followed.status_code == 200 and sha256(followed.content) == layer
        # Authorization still comes first: an unknown blob is the registry's 404, not a URL.
        missing = http.get(f"/v2/redirect/app/blobs/sha256:{'0' * 64}")
        assert missing.status_code == 404 and "BLOB_UNKNOWN" in missing.text
        # The skopeo pull in test_skopeo_push_and_pull went through this server too.
    with httpx.Client(timeout=30) as plain:
        assert sha256(plain.get(r.headers["location"]).content) == layer
