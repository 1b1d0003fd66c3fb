"""The "only signed content" policy through /api/v0 (signedOnly, acceptedSignatures), the
per-tag Notary signing status of the tags listing, and the policy as the registry applies it
to pulls over plain HTTP: by tag refused (403 DENIED naming the reason), by digest allowed.

Notary metadata is built in Python the way the notary client builds it (the builders of
tests/trust/integration/test_trust_refusals.py) and POSTed to the trust server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, Api, creds, errors_of
from tests.helpers import DOCKER_MANIFEST, push_image, put_manifest
from tests.trust.integration.test_trust_refusals import Collection, ecdsa_key, root_key

SAM, REA = creds("sam"), creds("rea")


@pytest.fixture(scope="module", autouse=True)
def world(api: Api) -> Iterator[None]:
    """User "sam" owns his namespace; "rea" gets read-only grants on some of his repositories."""
    api.user("sam")
    api.user("rea")
    yield


@pytest.fixture
def registry(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.server.url, auth=SAM, timeout=60) as c:
        yield c


def signed_collection(registry: httpx.Client, api: Api, repo: str, targets: dict[str, bytes]) -> Collection:
    """Root and targets v1 of the repository's GUN, signing ``targets`` (name -> manifest bytes)."""
    gun = f"{api.server.host}/{repo}"
    c = Collection(api.server, gun, [root_key(gun)], targets_key=ecdsa_key())
    for role in ("timestamp", "snapshot"):
        r = registry.get(f"/v2/{gun}/_trust/tuf/{role}.key")
        assert r.status_code == 200, r.text
        c.server_keys[role] = r.json()
    publish(registry, c, {"root": c.root(), "targets": c.targets(1, targets)})
    return c


def publish(registry: httpx.Client, c: Collection, files: dict[str, bytes]) -> None:
    r = registry.post(
        f"/v2/{c.gun}/_trust/tuf/",
        files=[("files", (role, content, "application/octet-stream")) for role, content in files.items()],
    )
    assert r.status_code == 200, r.text


def patch(api: Api, repo: str, body: dict[str, Any], auth: tuple[str, str] = SAM) -> httpx.Response:
    return api.call("PATCH", f"/repositories/{repo}", auth, body)


def test_settings_are_validated_admin_only_audited_and_shown(api: Api) -> None:
    repo = api.repo("sam", "settings", auth=SAM)
    assert repo["signedOnly"] is False and repo["acceptedSignatures"] == ["notary"]
    api.ok("PUT", "/repositories/sam/settings/userAccess/rea", {"accessLevel": "read-write"}, SAM)

    r = patch(api, "sam/settings", {"signedOnly": True, "acceptedSignatures": ["cosign", "notary", "cosign"]})
    assert r.status_code == 200, r.text
    assert r.json()["signedOnly"] is True and r.json()["acceptedSignatures"] == ["cosign", "notary"]
    shown = api.ok("GET", "/repositories/sam/settings", auth=REA)
    assert shown["signedOnly"] is True and shown["acceptedSignatures"] == ["cosign", "notary"]
    assert shown["visibility"] == "private"  # the other settings are untouched
    listed = api.ok("GET", "/repositories/sam", auth=SAM)["repositories"]
    assert [(x["name"], x["signedOnly"]) for x in listed if x["name"] == "settings"] == [("settings", True)]

    # Only one of the two changes; the other stays.
    r = patch(api, "sam/settings", {"acceptedSignatures": ["notation"]})
    assert r.json()["signedOnly"] is True and r.json()["acceptedSignatures"] == ["notation"]
    r = patch(api, "sam/settings", {"signedOnly": False, "shortDescription": "d"})
    assert r.json()["signedOnly"] is False and r.json()["acceptedSignatures"] == ["notation"]
    assert r.json()["shortDescription"] == "d"

    invalid: list[dict[str, Any]] = [
        {"acceptedSignatures": ["gpg"]},
        {"acceptedSignatures": []},
        {"signedOnly": "maybe"},
    ]
    for bad in invalid:
        r = patch(api, "sam/settings", bad)
        assert r.status_code == 422, (bad, r.text)
    # Below admin: refused, and nothing changes.
    r = patch(api, "sam/settings", {"signedOnly": True}, REA)
    assert r.status_code == 403 and errors_of(r) == ["DENIED"]
    assert patch(api, "sam/settings", {"signedOnly": True}, creds("nobody")).status_code == 401
    assert api.ok("GET", "/repositories/sam/settings", auth=SAM)["signedOnly"] is False

    events = api.ok("GET", "/audit?actor=sam&limit=1000", auth=ADMIN)["events"]
    updates = [e["detail"] for e in events if e["target"] == "sam/settings" and e["action"] == "repository.update"]
    assert {"signed_only": True, "accepted_signatures": ["cosign", "notary"]} in updates
    assert {"accepted_signatures": ["notation"]} in updates
    assert {"short_description": "d", "signed_only": False} in updates


def test_tags_list_notary_signing_status(api: Api, registry: httpx.Client) -> None:
    api.repo("sam", "listed", auth=SAM)
    v1, d1 = push_image(registry, "sam/listed", "v1")
    _, d2 = push_image(registry, "sam/listed", "v2")
    before = api.ok("GET", "/repositories/sam/listed/tags", auth=SAM)
    assert [(t["name"], t["signed"], t["signatures"]) for t in before] == [("v1", False, []), ("v2", False, [])]

    c = signed_collection(registry, api, "sam/listed", {"v1": v1})
    tags = {t["name"]: t for t in api.ok("GET", "/repositories/sam/listed/tags", auth=SAM)}
    assert tags["v1"]["digest"] == d1 and tags["v1"]["signed"] is True
    (sig,) = tags["v1"]["signatures"]
    assert sig["kind"] == "notary" and sig["gun"] == c.gun and sig["role"] == "targets"
    assert sig["keyIds"] == [c.targets_key.id] and sig["digest"] == d1 and sig["matches"] is True
    assert sig["expires"]
    assert tags["v2"]["digest"] == d2 and tags["v2"]["signed"] is False and tags["v2"]["signatures"] == []

    # v1 moves to another manifest: still listed with its signature, but no longer signed.
    _, d3 = push_image(registry, "sam/listed", "v1")
    tags = {t["name"]: t for t in api.ok("GET", "/repositories/sam/listed/tags", auth=SAM)}
    assert tags["v1"]["digest"] == d3 and tags["v1"]["signed"] is False
    assert [(s["digest"], s["matches"]) for s in tags["v1"]["signatures"]] == [(d1, False)]
    # Paging still works, with the status on each page.
    r = api.call("GET", "/repositories/sam/listed/tags?pageSize=1", SAM)
    assert [t["name"] for t in r.json()] == ["v1"] and r.headers["x-next-page-start"] == "v1"


def _manifest(registry: httpx.Client, repo: str, ref: str) -> httpx.Response:
    return registry.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": DOCKER_MANIFEST})


def test_signed_only_refuses_pulls_by_tag_without_a_valid_signature(api: Api, registry: httpx.Client) -> None:
    api.repo("sam", "guarded", auth=SAM)
    signed, d_signed = push_image(registry, "sam/guarded", "signed")
    _, d_unsigned = push_image(registry, "sam/guarded", "unsigned")
    moved, _ = push_image(registry, "sam/guarded", "moved")
    signed_collection(registry, api, "sam/guarded", {"signed": signed, "moved": moved})
    _, d_other = push_image(registry, "sam/guarded", "moved")  # re-tagged after signing

    assert _manifest(registry, "sam/guarded", "unsigned").status_code == 200  # policy off
    assert patch(api, "sam/guarded", {"signedOnly": True}).status_code == 200
    # At once: the API made the registry's policy forget its cached settings.
    r = _manifest(registry, "sam/guarded", "unsigned")
    assert r.status_code == 403 and [e["code"] for e in r.json()["errors"]] == ["DENIED"]
    message = r.json()["errors"][0]["message"]
    assert "accepts only signed content" in message and d_unsigned in message
    r = _manifest(registry, "sam/guarded", "moved")
    assert r.status_code == 403
    message = r.json()["errors"][0]["message"]
    assert "is not the one it points to" in message and d_other in message
    assert _manifest(registry, "sam/guarded", "signed").headers["docker-content-digest"] == d_signed
    # By digest the policy does not apply: a digest is its own proof of content.
    for digest in (d_unsigned, d_other):
        assert _manifest(registry, "sam/guarded", digest).status_code == 200
    assert registry.head("/v2/sam/guarded/manifests/unsigned", headers={"Accept": DOCKER_MANIFEST}).status_code == 403
    r = put_manifest(registry, "sam/guarded", "pushed-while-on", signed, DOCKER_MANIFEST)
    assert r.status_code == 201  # pushing is never refused by the policy

    # Accepting only cosign, the Notary signature no longer counts.
    assert patch(api, "sam/guarded", {"acceptedSignatures": ["cosign"]}).status_code == 200
    r = _manifest(registry, "sam/guarded", "signed")
    assert r.status_code == 403 and "cosign" in r.json()["errors"][0]["message"]
    # Turned off: everything pulls again, at once.
    assert patch(api, "sam/guarded", {"signedOnly": False}).status_code == 200
    assert _manifest(registry, "sam/guarded", "unsigned").status_code == 200
