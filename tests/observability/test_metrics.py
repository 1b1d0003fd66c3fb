"""/metrics on a real server: counts by route template, latency buckets, bytes, gauges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import RunningServer, start_server
from tests.helpers import DOCKER_MANIFEST, push_image

MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
BLOB_UPLOAD_ROUTE = "/v2/{name}/blobs/uploads/"


@dataclass
class Pushed:
    server: RunningServer
    repo: str
    manifest: bytes
    blob_bytes: int


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """A fresh server with one image pushed before anything scrapes (storage usage is cached)."""
    s = start_server(tmp_path_factory.mktemp("metrics") / "data")
    try:
        with s.client() as http:
            manifest, _ = push_image(http, "metrics/app", "v1", layers=2)
        doc = json.loads(manifest)
        blob_bytes = doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
        yield Pushed(s, "metrics/app", manifest, blob_bytes)
    finally:
        s.stop()


def scrape(http: httpx.Client) -> list[Sample]:
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return [sample for family in text_string_to_metric_families(r.text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample's value; 0 if a labelled series has not appeared yet."""
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    assert found or labels, name  # gauges without labels are always there
    return found[0] if found else 0.0


def test_requests_counted_by_route_template(pushed: Pushed) -> None:
    with pushed.server.client() as http:
        before = scrape(http)
        start = value(before, "dockyard_http_requests_total", method="GET", route=MANIFEST_ROUTE, status="200")
        for _ in range(3):
            r = http.get(f"/v2/{pushed.repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
            assert r.status_code == 200
        assert http.get(f"/v2/{pushed.repo}/manifests/nope").status_code == 404
        assert http.get("/no/such/path").status_code == 404
        after = scrape(http)
    assert value(after, "dockyard_http_requests_total", method="GET", route=MANIFEST_ROUTE, status="200") == start + 3
    assert value(after, "dockyard_http_requests_total", method="GET", route=MANIFEST_ROUTE, status="404") == 1
    assert value(after, "dockyard_http_requests_total", method="PUT", route=MANIFEST_ROUTE, status="201") == 1
    assert value(after, "dockyard_http_requests_total", method="POST", route=BLOB_UPLOAD_ROUTE, status="201") == 3
    assert value(after, "dockyard_http_requests_total", method="GET", route="<unmatched>", status="404") >= 1
    routes = {s.labels["route"] for s in after if "route" in s.labels}
    assert not any(pushed.repo in route or "/no/such" in route for route in routes), routes


def test_latency_histogram(pushed: Pushed) -> None:
    with pushed.server.client() as http:
        http.get(f"/v2/{pushed.repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        samples = scrape(http)
    buckets = [
        s
        for s in samples
        if s.name == "dockyard_http_request_duration_seconds_bucket"
        and s.labels["route"] == MANIFEST_ROUTE
        and s.labels["method"] == "GET"
    ]
    assert len(buckets) > 10
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)  # cumulative
    assert buckets[-1].labels["le"] == "+Inf"
    count = value(samples, "dockyard_http_request_duration_seconds_count", method="GET", route=MANIFEST_ROUTE)
    assert counts[-1] == count >= 1
    assert value(samples, "dockyard_http_request_duration_seconds_sum", method="GET", route=MANIFEST_ROUTE) > 0


def test_bytes_in_and_out(pushed: Pushed) -> None:
    with pushed.server.client() as http:
        before = scrape(http)
        out_before = value(before, "dockyard_http_response_bytes_total", method="GET", route=MANIFEST_ROUTE)
        for _ in range(2):
            http.get(f"/v2/{pushed.repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        after = scrape(http)
    sent = value(after, "dockyard_http_response_bytes_total", method="GET", route=MANIFEST_ROUTE) - out_before
    assert sent == 2 * len(pushed.manifest)
    assert value(after, "dockyard_http_request_bytes_total", method="PUT", route=MANIFEST_ROUTE) == len(pushed.manifest)
    assert value(after, "dockyard_http_request_bytes_total", method="POST", route=BLOB_UPLOAD_ROUTE) == (
        pushed.blob_bytes
    )


def test_storage_and_uploads_gauges(pushed: Pushed) -> None:
    with pushed.server.client() as http:
        samples = scrape(http)
        assert value(samples, "dockyard_storage_blob_bytes") >= pushed.blob_bytes
        assert value(samples, "dockyard_storage_blobs") >= 3
        idle = value(samples, "dockyard_uploads_in_progress")
        started = http.post(f"/v2/{pushed.repo}/blobs/uploads/")
        assert started.status_code == 202
        assert value(scrape(http), "dockyard_uploads_in_progress") == idle + 1
        assert http.delete(started.headers["location"]).status_code == 204
        assert value(scrape(http), "dockyard_uploads_in_progress") == idle
        assert value(samples, "process_resident_memory_bytes") > 0
