"""/api/v0/repositories: create, read, edit, delete, list, tags; over HTTP against a real server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import ADMIN, Api, creds, errors_of
from tests.helpers import push_image


@pytest.fixture(scope="module", autouse=True)
def world(api: Api) -> Iterator[None]:
    """User "rita" with her own namespace; organization "corp" owned by "owen"; "nina" is nobody."""
    for name in ("rita", "owen", "nina"):
        api.user(name)
    api.org("corp", owners=("owen",))
    yield


RITA, OWEN, NINA = creds("rita"), creds("owen"), creds("nina")


@pytest.fixture
def registry(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.server.url, auth=ADMIN, timeout=60) as c:
        yield c


def test_user_creates_reads_edits_and_deletes_own_repository(api: Api) -> None:
    r = api.call("POST", "/repositories/rita", RITA, {"name": "app", "shortDescription": "my app"})
    assert r.status_code == 201, r.text
    repo = r.json()
    assert repo["namespace"] == "rita" and repo["name"] == "app"
    assert repo["visibility"] == "private" and repo["shortDescription"] == "my app"
    assert api.ok("GET", "/repositories/rita/app", auth=RITA) == repo

    r = api.call("PATCH", "/repositories/rita/app", RITA, {"visibility": "public"})
    assert r.status_code == 200 and r.json()["visibility"] == "public"
    assert r.json()["shortDescription"] == "my app"
    r = api.call("PATCH", "/repositories/rita/app", RITA, {"shortDescription": "now public"})
    assert r.json()["visibility"] == "public" and r.json()["shortDescription"] == "now public"
    assert api.call("GET", "/repositories/rita/app", None).status_code == 200  # public: anyone reads

    assert api.call("DELETE", "/repositories/rita/app", RITA).status_code == 204
    assert errors_of(api.call("GET", "/repositories/rita/app", RITA)) == ["NOT_FOUND"]


def test_create_checks_namespace_name_and_duplicates(api: Api) -> None:
    assert api.call("POST", "/repositories/rita", RITA, {"name": "Bad"}).status_code == 400
    assert api.call("POST", "/repositories/rita", RITA, {"name": "a/b"}).status_code == 400
    assert api.call("POST", "/repositories/rita", RITA, {"name": "x" * 300}).status_code == 422
    assert api.call("POST", "/repositories/rita", RITA, {"name": "ok", "visibility": "secret"}).status_code == 422
    assert api.call("POST", "/repositories/ghost", ADMIN, {"name": "ok"}).status_code == 404
    assert api.call("POST", "/repositories/rita", RITA, {"name": "dup"}).status_code == 201
    r = api.call("POST", "/repositories/rita", RITA, {"name": "dup"})
    assert r.status_code == 409 and errors_of(r) == ["CONFLICT"]


def test_who_may_create_where(api: Api) -> None:
    assert api.call("POST", "/repositories/rita", NINA, {"name": "intruder"}).status_code == 403
    assert api.call("POST", "/repositories/rita", None, {"name": "intruder"}).status_code == 401
    assert api.call("POST", "/repositories/corp", NINA, {"name": "intruder"}).status_code == 403
    assert api.call("POST", "/repositories/corp", OWEN, {"name": "service"}).status_code == 201
    assert api.call("POST", "/repositories/rita", ADMIN, {"name": "by-admin"}).status_code == 201


def test_private_repository_is_invisible_to_others(api: Api) -> None:
    api.repo("rita", "secret", auth=RITA)
    assert errors_of(api.call("GET", "/repositories/rita/secret", NINA)) == ["NOT_FOUND"]
    assert errors_of(api.call("GET", "/repositories/rita/secret", None)) == ["UNAUTHORIZED"]
    assert api.call("GET", "/repositories/rita/secret/tags", NINA).status_code == 404
    assert api.call("PATCH", "/repositories/rita/secret", NINA, {"visibility": "public"}).status_code == 404
    assert api.call("DELETE", "/repositories/rita/secret", NINA).status_code == 404
    assert api.call("GET", "/repositories/rita/secret", ADMIN).status_code == 200


def test_listings_show_what_the_caller_may_read(api: Api) -> None:
    api.user("lister")
    lister = creds("lister")
    api.repo("lister", "mine-private", auth=lister)
    api.repo("lister", "mine-public", "public", auth=lister)

    def names(auth: tuple[str, str] | None, path: str = "/repositories") -> set[str]:
        r = api.call("GET", path, auth)
        assert r.status_code == 200, r.text
        return {f"{x['namespace']}/{x['name']}" for x in r.json()["repositories"]}

    assert {"lister/mine-private", "lister/mine-public"} <= names(lister)
    assert "lister/mine-public" in names(None) and "lister/mine-private" not in names(None)
    assert "lister/mine-private" not in names(NINA)
    assert "lister/mine-private" in names(ADMIN)
    assert names(lister, "/repositories/lister") == {"lister/mine-private", "lister/mine-public"}
    assert names(None, "/repositories/lister") == {"lister/mine-public"}
    assert api.call("GET", "/repositories/ghost", None).status_code == 404


def test_listings_are_paged(api: Api) -> None:
    api.user("pager")
    for i in range(5):
        api.repo("pager", f"r{i}", auth=creds("pager"))
    r = api.call("GET", "/repositories/pager?pageSize=2", creds("pager"))
    assert [x["name"] for x in r.json()["repositories"]] == ["r0", "r1"]
    assert r.headers["x-next-page-start"] == "r1"
    r = api.call("GET", "/repositories/pager?pageSize=2&pageStart=r1", creds("pager"))
    assert [x["name"] for x in r.json()["repositories"]] == ["r2", "r3"]
    r = api.call("GET", "/repositories/pager?pageSize=2&pageStart=r3", creds("pager"))
    assert [x["name"] for x in r.json()["repositories"]] == ["r4"]
    assert "x-next-page-start" not in r.headers
    # The global listing skips what the caller cannot see, yet fills every page but the last.
    everything = [x["id"] for x in api.ok("GET", "/repositories?pageSize=1000", auth=creds("pager"))["repositories"]]
    seen: list[int] = []
    start: str | None = None
    while True:
        params = {"pageSize": 2, **({"pageStart": start} if start else {})}
        r = api.call("GET", "/repositories", creds("pager"), params=params)
        page = r.json()["repositories"]
        seen += [x["id"] for x in page]
        start = r.headers.get("x-next-page-start")
        if start is None:
            break
        assert len(page) == 2
    assert seen == everything and len(everything) >= 5
    assert api.call("GET", "/repositories?pageSize=0", None).status_code == 422


def test_tags_list_what_was_pushed(api: Api, registry: httpx.Client) -> None:
    api.repo("rita", "tagged", auth=RITA)
    _, digest_v1 = push_image(registry, "rita/tagged", "v1")
    _, digest_v2 = push_image(registry, "rita/tagged", "v2")
    tags = api.ok("GET", "/repositories/rita/tagged/tags", auth=RITA)
    assert [(t["name"], t["digest"]) for t in tags] == [("v1", digest_v1), ("v2", digest_v2)]
    assert tags[0]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert tags[0]["size"] > 0 and tags[0]["updatedAt"]
    assert [t["pushedBy"] for t in tags] == ["admin", "admin"]  # the registry client signs in as admin
    with httpx.Client(base_url=api.server.url, auth=RITA, timeout=60) as rita:
        push_image(rita, "rita/tagged", "v2")  # moved by rita now
    assert [t["pushedBy"] for t in api.ok("GET", "/repositories/rita/tagged/tags", auth=RITA)] == ["admin", "rita"]
    r = api.call("GET", "/repositories/rita/tagged/tags?pageSize=1", RITA)
    assert [t["name"] for t in r.json()] == ["v1"] and r.headers["x-next-page-start"] == "v1"
    assert api.call("GET", "/repositories/rita/tagged/tags", NINA).status_code == 404
    api.ok("PATCH", "/repositories/rita/tagged", {"visibility": "public"}, RITA)
    assert len(api.ok("GET", "/repositories/rita/tagged/tags", auth=None)) == 2


def test_delete_removes_tags_and_manifests_but_keeps_blobs(api: Api, registry: httpx.Client) -> None:
    api.repo("rita", "doomed", auth=RITA)
    body, digest = push_image(registry, "rita/doomed", "latest")
    upload = registry.post("/v2/rita/doomed/blobs/uploads/")
    assert upload.status_code == 202
    assert api.call("DELETE", "/repositories/rita/doomed", RITA).status_code == 204
    assert registry.get(f"/v2/rita/doomed/manifests/{digest}").status_code == 404
    assert registry.get("/v2/rita/doomed/tags/list").status_code == 404
    assert registry.get(upload.headers["location"]).status_code == 404  # the session went too

    db = sqlite3.connect(api.server.data_dir / "db" / "dockyard.db")
    try:
        layer_digests = [line for line in body.decode().split('"') if line.startswith("sha256:")]
        marks = ",".join("?" * len(layer_digests))
        stored = db.execute(f"SELECT count(*) FROM blobs WHERE digest IN ({marks})", layer_digests)
        assert stored.fetchone()[0] == len(set(layer_digests))  # left for garbage collection
        assert db.execute("SELECT count(*) FROM repositories WHERE name = 'rita/doomed'").fetchone()[0] == 0
    finally:
        db.close()

    # Created again, it starts empty.
    api.repo("rita", "doomed", auth=RITA)
    assert api.ok("GET", "/repositories/rita/doomed/tags", auth=RITA) == []


def test_audit_records_repository_changes(api: Api) -> None:
    api.repo("rita", "audited", auth=RITA)
    api.ok("PATCH", "/repositories/rita/audited", {"shortDescription": "d"}, RITA)
    assert api.call("DELETE", "/repositories/rita/audited", RITA).status_code == 204
    events = api.ok("GET", "/audit?actor=rita&limit=1000")["events"]
    mine = [(e["action"], e["detail"]) for e in events if e["target"] == "rita/audited"]
    assert ("repository.delete", None) in mine
    assert ("repository.update", {"short_description": "d"}) in mine
    assert ("repository.create", {"visibility": "private"}) in mine
