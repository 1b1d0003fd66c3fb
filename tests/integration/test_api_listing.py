"""Tags, catalog and referrers, with pagination."""

from __future__ import annotations

import json

import httpx

from tests.helpers import (
    DOCKER_MANIFEST,
    EMPTY_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    errors_of,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)


def test_tags_are_sorted_and_paginated(http: httpx.Client, repo: str) -> None:
    body, _ = push_image(http, repo, "b")
    names = ["b", "a", "C", "c10", "c2", "1.0", "_x"]
    for tag in names[1:]:
        assert put_manifest(http, repo, tag, body, DOCKER_MANIFEST).status_code == 201
    expected = sorted(names)  # byte order, as the reference
    r = http.get(f"/v2/{repo}/tags/list")
    assert r.json() == {"name": repo, "tags": expected}
    assert "link" not in r.headers
    seen: list[str] = []
    url = f"/v2/{repo}/tags/list?n=3"
    while url:
        r = http.get(url)
        assert r.status_code == 200
        page = r.json()["tags"]
        assert len(page) <= 3
        seen += page
        link = r.headers.get("link")
        if link:
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            assert url.startswith(f"/v2/{repo}/tags/list?last=")
        else:
            url = ""
    assert seen == expected
    r = http.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": "C"})
    assert r.json()["tags"] == expected[expected.index("C") + 1 :][:2]
    r = http.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert r.json()["tags"] == [] and "link" not in r.headers


def test_tags_errors(http: httpx.Client, repo: str) -> None:
    r = http.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 404 and errors_of(r) == ["NAME_UNKNOWN"]
    push_image(http, repo, "x")
    for bad in ("-1", "abc", "1.5"):
        r = http.get(f"/v2/{repo}/tags/list", params={"n": bad})
        assert r.status_code == 400 and errors_of(r) == ["PAGINATION_NUMBER_INVALID"]


def test_catalog_pagination(http: httpx.Client, repo: str) -> None:
    mine = [f"{repo}/r{i}" for i in range(5)]
    for name in mine:
        push_blob(http, name, b"x")
    everything: list[str] = []
    url = "/v2/_catalog?n=2"
    while url:
        r = http.get(url)
        assert r.status_code == 200
        everything += r.json()["repositories"]
        link = r.headers.get("link")
        url = link[1 : link.index(">")] if link else ""
    assert everything == sorted(everything)
    assert [n for n in everything if n.startswith(f"{repo}/")] == mine
    r = http.get("/v2/_catalog", params={"n": 100000})
    assert r.status_code == 400 and errors_of(r) == ["PAGINATION_NUMBER_INVALID"]


def _artifact(http: httpx.Client, repo: str, subject: tuple[bytes, str], artifact_type: str, note: str) -> bytes:
    empty = push_blob(http, repo, b"{}")
    layer = push_blob(http, repo, note.encode())
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
            "layers": [{"mediaType": "text/plain", "digest": layer, "size": len(note)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject[1], "size": len(subject[0])},
            "annotations": {"note": note},
        }
    ).encode()


def test_referrers(http: httpx.Client, repo: str) -> None:
    subject = push_image(http, repo, "app", media_type=OCI_MANIFEST)
    sig = _artifact(http, repo, subject, "application/vnd.example.sig", "signature")
    sbom = _artifact(http, repo, subject, "application/vnd.example.sbom", "sbom")
    for body in (sig, sbom):
        r = put_manifest(http, repo, sha256(body), body, OCI_MANIFEST)
        assert r.status_code == 201, r.text
        assert r.headers["oci-subject"] == subject[1]
    r = http.get(f"/v2/{repo}/referrers/{subject[1]}")
    assert r.status_code == 200
    assert r.headers["content-type"] == OCI_INDEX
    index = r.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert by_digest[sha256(sig)] == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(sig),
        "size": len(sig),
        "artifactType": "application/vnd.example.sig",
        "annotations": {"note": "signature"},
    }
    assert sha256(sbom) in by_digest
    r = http.get(f"/v2/{repo}/referrers/{subject[1]}", params={"artifactType": "application/vnd.example.sbom"})
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256(sbom)]
    # The subject need not exist, and an unknown subject is an empty index, never 404.
    r = http.get(f"/v2/{repo}/referrers/{sha256(b'nothing')}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = http.get(f"/v2/{repo}-none/referrers/{sha256(b'nothing')}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = http.get(f"/v2/{repo}/referrers/sha256:zz")
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]
    # Deleting a referrer takes it out of the list.
    assert http.delete(f"/v2/{repo}/manifests/{sha256(sig)}").status_code == 202
    r = http.get(f"/v2/{repo}/referrers/{subject[1]}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256(sbom)]


def test_referrer_pushed_before_its_subject(http: httpx.Client, repo: str) -> None:
    fake_subject = (b"{}", sha256(b"not yet pushed"))
    body = _artifact(http, repo, fake_subject, "application/vnd.example.sig", "early")
    r = put_manifest(http, repo, "early", body, OCI_MANIFEST)
    assert r.status_code == 201
    r = http.get(f"/v2/{repo}/referrers/{fake_subject[1]}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256(body)]
