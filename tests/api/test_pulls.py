"""Pulls over time and "last pulled": manifest GETs are counted in the server's memory and
written in batches (every DOCKYARD_REGISTRY__PULL_FLUSH_SECONDS, and at shutdown)."""

from __future__ import annotations

import datetime
import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, Api, creds, start_api_server
from tests.conftest import RunningServer, start_server
from tests.helpers import DOCKER_MANIFEST, OCI_INDEX, push_image, put_manifest, sha256


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = start_api_server(tmp_path_factory, DOCKYARD_REGISTRY__PULL_FLUSH_SECONDS="0.3")
    client = Api(server)
    yield client
    client.close()
    server.stop()


def today_count(series: list[dict[str, Any]]) -> int:
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert series[-1]["day"] == today
    return int(series[-1]["count"])


def eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the flush interval"
        time.sleep(0.1)


def test_pulls_are_counted_per_day_with_last_pull_per_tag(api: Api) -> None:
    api.user("pam")
    pam = creds("pam")
    api.repo("pam", "app", auth=pam)
    with httpx.Client(base_url=api.server.url, auth=pam, timeout=60) as reg:
        _, digest = push_image(reg, "pam/app", "v1")
        push_image(reg, "pam/app", "v2")
        before = today_count(api.ok("GET", "/stats", auth=pam)["pulls"])
        accept = {"Accept": DOCKER_MANIFEST}
        for _ in range(5):
            assert reg.get("/v2/pam/app/manifests/v1", headers=accept).status_code == 200
        assert reg.get(f"/v2/pam/app/manifests/{digest}", headers=accept).status_code == 200
        for _ in range(3):  # HEADs are not pulls
            assert reg.head("/v2/pam/app/manifests/v2", headers=accept).status_code == 200
        assert reg.get("/v2/pam/app/manifests/nope", headers=accept).status_code == 404  # nor misses

    eventually(lambda: today_count(api.ok("GET", "/stats", auth=pam)["pulls"]) == before + 6)
    stats = api.ok("GET", "/stats?days=7", auth=pam)
    assert len(stats["pulls"]) == 7 and len(stats["pushes"]) == 7
    tags = {t["name"]: t for t in api.ok("GET", "/repositories/pam/app/tags", auth=pam)}
    assert tags["v1"]["lastPulledAt"] is not None
    assert tags["v2"]["lastPulledAt"] is None  # only HEADs
    repo = api.ok("GET", "/repositories/pam/app", auth=pam)
    assert repo["lastPulledAt"] is not None
    assert repo["lastPulledAt"] >= tags["v1"]["lastPulledAt"]  # the digest pull came last
    listed = api.ok("GET", "/repositories/pam", auth=pam)["repositories"]
    assert listed[0]["lastPulledAt"] == repo["lastPulledAt"]
    # the admin's figures include them; another user's do not
    assert today_count(api.ok("GET", "/stats")["pulls"]) >= 6
    api.user("quin")
    assert today_count(api.ok("GET", "/stats", auth=creds("quin"))["pulls"]) == 0


def test_multi_arch_tag_size_is_the_sum_of_its_images(api: Api) -> None:
    with httpx.Client(base_url=api.server.url, auth=ADMIN, timeout=60) as reg:
        api.repo("admin", "multi")
        children = []
        image_sizes = 0
        for arch in ("amd64", "arm64"):
            body, digest = push_image(reg, "admin/multi", f"{arch}-only", arch=arch, layers=2)
            doc = json.loads(body)
            image_sizes += len(body) + doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
            children.append(
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": digest,
                    "size": len(body),
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
        assert put_manifest(reg, "admin/multi", "all", index, OCI_INDEX).status_code == 201
    tags = {t["name"]: t for t in api.ok("GET", "/repositories/admin/multi/tags")}
    assert tags["all"]["size"] == image_sizes
    assert tags["all"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert tags["amd64-only"]["size"] < image_sizes
    detail = api.ok("GET", "/repositories/admin/multi/manifests/all")
    assert detail["totalSize"] == image_sizes and detail["size"] == len(index)
    assert detail["digest"] == sha256(index)


def test_shutdown_writes_the_pulls_not_yet_flushed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A long interval: nothing is written until the server stops (SIGTERM), which flushes. A
    killed process (SIGKILL) would lose the pulls of at most its last interval."""
    data = tmp_path_factory.mktemp("pulls") / "data"
    env = {"DOCKYARD_REGISTRY__PULL_FLUSH_SECONDS": "3600"}
    server = start_server(data, extra_env=env, auth=True)
    try:
        api = Api(server)
        api.repo("admin", "later")
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=60) as reg:
            push_image(reg, "admin/later", "v1")
            for _ in range(4):
                assert reg.get("/v2/admin/later/manifests/v1", headers={"Accept": DOCKER_MANIFEST}).status_code == 200
        time.sleep(0.5)
        assert today_count(api.ok("GET", "/stats")["pulls"]) == 0  # still in memory
        api.close()
    finally:
        server.stop(signal.SIGTERM)
    assert server.process.returncode is not None
    again: RunningServer = start_server(data, extra_env=env, auth=True)
    try:
        api = Api(again)
        assert today_count(api.ok("GET", "/stats")["pulls"]) == 4
        assert api.ok("GET", "/repositories/admin/later/tags")[0]["lastPulledAt"] is not None
        api.close()
    finally:
        again.stop()
