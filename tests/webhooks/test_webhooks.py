"""Webhooks against a live server: subscriptions over /api/v0, pushes delivered to a real
receiver with valid signatures, retries, redelivery, pings and permissions."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dockyard.webhooks import verify
from tests.api.conftest import ADMIN, Api, Auth, creds, errors_of
from tests.helpers import push_image
from tests.webhooks.receiver import Received, Receiver, wait_until

pytestmark = pytest.mark.xdist_group("webhooks")

RITA, OWEN, NINA = creds("rita"), creds("owen"), creds("nina")
SECRET = "s3cret-of-the-test"


@pytest.fixture(scope="module", autouse=True)
def world(api: Api) -> Iterator[None]:
    """User "rita" with her namespace and repository rita/one; organization "corp" owned by
    "owen" with corp/a, corp/b and the public corp/pub; "nina" is nobody."""
    for name in ("rita", "owen", "nina"):
        api.user(name)
    api.org("corp", owners=("owen",))
    api.repo("rita", "one", auth=RITA)
    api.repo("corp", "a")
    api.repo("corp", "b")
    api.repo("corp", "pub", visibility="public")
    yield


def registry(api: Api, auth: tuple[str, str]) -> httpx.Client:
    return httpx.Client(base_url=api.server.url, auth=auth, timeout=60)


def subscribe(api: Api, auth: Auth, scope: str, target: str | None, url: str, events: list[str]) -> dict[str, Any]:
    body = {"scope": scope, "target": target, "url": url, "events": events, "secret": SECRET}
    r = api.call("POST", "/webhooks", auth, body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def deliveries(api: Api, webhook: int, auth: Auth = ADMIN) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = api.ok("GET", f"/webhooks/{webhook}/deliveries", auth=auth)["deliveries"]
    return out


def settled(api: Api, webhook: int, count: int, seconds: float = 30) -> list[dict[str, Any]]:
    """The webhook's deliveries once ``count`` of them are delivered or failed for good."""
    wait_until(
        lambda: sum(d["status"] in ("delivered", "failed") for d in deliveries(api, webhook)) >= count,
        seconds,
        lambda: json.dumps(deliveries(api, webhook), indent=1),
    )
    return deliveries(api, webhook)


def signed(request: Received, secret: str = SECRET) -> bool:
    return verify(secret, request.body, request.headers["x-dockyard-signature"])


def test_push_and_tag_delete_are_delivered_signed(api: Api, receiver: Receiver) -> None:
    hook = subscribe(
        api, RITA, "repository", "rita/one", f"{receiver.url}/one", ["tag.push", "manifest.push", "tag.delete"]
    )
    with registry(api, RITA) as http:
        _, digest = push_image(http, "rita/one", "v1")
        got = receiver.wait_for("/one", 2)
        by_event = {r.headers["x-dockyard-event"]: r for r in got}
        assert set(by_event) == {"tag.push", "manifest.push"}
        for event, request in by_event.items():
            assert signed(request) and not signed(request, "another secret")
            assert request.headers["content-type"] == "application/json"
            body = request.json
            assert set(body) == {"type", "createdAt", "repository", "namespace", "data", "id"}
            assert body["type"] == event and body["repository"] == "rita/one" and body["namespace"] == "rita"
            assert body["data"]["digest"] == digest
        assert by_event["tag.push"].json["data"]["tag"] == "v1"
        assert by_event["tag.push"].json["id"] != by_event["manifest.push"].json["id"]
        delivery_ids = {r.headers["x-dockyard-delivery"] for r in got}
        assert len(delivery_ids) == 2

        assert http.delete("/v2/rita/one/manifests/v1").status_code == 202
        deleted = receiver.wait_for("/one", 3)[2]
        assert deleted.headers["x-dockyard-event"] == "tag.delete" and signed(deleted)
        assert deleted.json["data"]["tag"] == "v1"

    records = settled(api, hook["id"], 3, seconds=10)
    assert [d["event"] for d in records] == ["tag.delete", "tag.push", "manifest.push"]  # newest first
    for d in records:
        assert d["status"] == "delivered" and d["attempts"] == 1 and d["responseStatus"] == 200
        assert d["responseBody"] == "ok" and d["error"] is None and d["durationMs"] >= 0
        assert d["deliveryId"] in delivery_ids | {deleted.headers["x-dockyard-delivery"]}
    assert json.loads(records[0]["requestBody"]) == deleted.json
    # manifest.delete was not subscribed to, and nothing else arrives
    time.sleep(0.5)
    assert len(receiver.on("/one")) == 3


def test_namespace_subscription_sees_every_repository_of_it_and_repository_ones_only_theirs(
    api: Api, receiver: Receiver
) -> None:
    subscribe(api, OWEN, "namespace", "corp", f"{receiver.url}/corp", ["tag.push"])
    subscribe(api, OWEN, "repository", "corp/a", f"{receiver.url}/corp-a", ["tag.push"])
    with registry(api, ADMIN) as http:
        push_image(http, "corp/a", "1")
        push_image(http, "corp/b", "1")
        push_image(http, "rita/one", "other")
    got = receiver.wait_for("/corp", 2)
    assert sorted(r.json["repository"] for r in got) == ["corp/a", "corp/b"]
    assert [r.json["repository"] for r in receiver.wait_for("/corp-a", 1)] == ["corp/a"]
    time.sleep(1)  # rita/one's push reaches neither; corp/b's not the repository subscription
    assert len(receiver.on("/corp")) == 2 and len(receiver.on("/corp-a")) == 1


def test_failures_are_retried_with_backoff_and_recorded(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, RITA, "namespace", "rita", f"{receiver.url}/flaky", ["manifest.push"])
    receiver.fail_next["/flaky"] = 2
    with registry(api, RITA) as http:
        _, digest = push_image(http, "rita/one", "flaky")
    got = receiver.wait_for("/flaky", 3, seconds=20)
    assert [r.answered for r in got] == [500, 500, 200]
    assert len({r.headers["x-dockyard-delivery"] for r in got}) == 1  # one delivery, three attempts
    assert len({r.body for r in got}) == 1 and all(signed(r) for r in got)
    (record,) = settled(api, hook["id"], 1)
    assert record["status"] == "delivered" and record["attempts"] == 3 and record["responseStatus"] == 200
    assert json.loads(record["requestBody"])["data"]["digest"] == digest
    time.sleep(1)
    assert len(receiver.on("/flaky")) == 3  # delivered once: no attempt after the success


def test_a_hanging_receiver_neither_slows_a_push_nor_stops_delivery(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, RITA, "repository", "rita/one", f"{receiver.url}/slow", ["tag.push"])
    receiver.hang_next["/slow"], receiver.hang_seconds = 1, 15
    with registry(api, RITA) as http:
        started = time.monotonic()
        push_image(http, "rita/one", "slow")
        assert time.monotonic() - started < 5
    got = receiver.wait_for("/slow", 2, seconds=30)
    assert [r.answered for r in got] == [0, 200]
    (record,) = settled(api, hook["id"], 1)
    assert record["status"] == "delivered" and record["attempts"] == 2


def test_redeliver_sends_the_same_body_as_a_new_delivery(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, RITA, "repository", "rita/one", f"{receiver.url}/again", ["tag.push"])
    with registry(api, RITA) as http:
        push_image(http, "rita/one", "again")
    (first,) = settled(api, hook["id"], 1)
    r = api.call("POST", f"/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver", RITA)
    assert r.status_code == 202, r.text
    new = r.json()
    assert new["redeliveryOf"] == first["id"] and new["id"] != first["id"]
    assert new["requestBody"] == first["requestBody"]
    got = receiver.wait_for("/again", 2)
    assert got[0].body == got[1].body and signed(got[1])
    assert got[1].headers["x-dockyard-delivery"] == new["deliveryId"] != first["deliveryId"]
    records = settled(api, hook["id"], 2)
    assert records[0]["id"] == new["id"] and records[0]["status"] == "delivered"
    missing = api.call("POST", f"/webhooks/{hook['id']}/deliveries/999999/redeliver", RITA)
    assert missing.status_code == 404


def test_test_delivery_sends_a_signed_ping(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, OWEN, "namespace", "corp", f"{receiver.url}/ping", ["tag.delete"])
    r = api.call("POST", f"/webhooks/{hook['id']}/test", OWEN)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["event"] == "ping" and result["status"] == "delivered" and result["responseStatus"] == 200
    (got,) = receiver.on("/ping")
    assert got.headers["x-dockyard-event"] == "ping" and signed(got)
    assert got.json["type"] == "ping" and got.json["data"]["subscription"] == hook["id"]

    # a failing receiver: one attempt, recorded with a bounded excerpt of its answer
    receiver.fail_next["/ping"] = 1
    failed = api.ok("POST", f"/webhooks/{hook['id']}/test", auth=OWEN)
    assert failed["status"] == "failed" and failed["attempts"] == 1 and failed["responseStatus"] == 500
    assert failed["error"] and failed["responseBody"].startswith("failing on purpose")
    assert len(failed["responseBody"]) <= 4096


def test_deliveries_are_paginated_newest_first(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, ADMIN, "repository", "corp/b", f"{receiver.url}/pages", ["tag.push"])
    for _ in range(3):
        api.ok("POST", f"/webhooks/{hook['id']}/test")
    page = api.ok("GET", f"/webhooks/{hook['id']}/deliveries?limit=2")
    assert len(page["deliveries"]) == 2 and page["next"] == page["deliveries"][1]["id"]
    rest = api.ok("GET", f"/webhooks/{hook['id']}/deliveries?limit=2&before={page['next']}")
    assert len(rest["deliveries"]) == 1 and rest["next"] is None
    ids = [d["id"] for d in page["deliveries"] + rest["deliveries"]]
    assert ids == sorted(ids, reverse=True)


def test_secrets_are_returned_only_at_creation_and_stored_encrypted(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, RITA, "repository", "rita/one", f"{receiver.url}/secret", ["tag.push"])
    assert hook["secret"] == SECRET
    generated = api.ok(
        "POST",
        "/webhooks",
        {"scope": "namespace", "target": "rita", "url": f"{receiver.url}/gen", "events": ["tag.push"]},
        RITA,
    )
    assert len(generated["secret"]) >= 32
    for path in (f"/webhooks/{hook['id']}", f"/webhooks/{generated['id']}"):
        assert "secret" not in api.ok("GET", path, auth=RITA)
    assert all("secret" not in w for w in api.ok("GET", "/webhooks", auth=RITA)["webhooks"])
    patched = api.ok("PATCH", f"/webhooks/{hook['id']}", {"secret": "rotated", "active": False}, RITA)
    assert "secret" not in patched and patched["active"] is False
    with sqlite3.connect(api.server.data_dir / "db" / "dockyard.db") as db:
        stored = [bytes(row[0]) for row in db.execute("SELECT secret FROM webhook_subscriptions")]
    assert stored and not any(s in blob for blob in stored for s in (SECRET.encode(), b"rotated"))
    # the rotated secret signs from now on
    api.ok("PATCH", f"/webhooks/{hook['id']}", {"active": True}, RITA)
    api.ok("POST", f"/webhooks/{hook['id']}/test", auth=RITA)
    (ping,) = receiver.on("/secret")
    assert signed(ping, "rotated") and not signed(ping)


def test_inactive_subscriptions_get_nothing(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, OWEN, "repository", "corp/a", f"{receiver.url}/off", ["tag.push"])
    api.ok("PATCH", f"/webhooks/{hook['id']}", {"active": False}, OWEN)
    with registry(api, ADMIN) as http:
        push_image(http, "corp/a", "quiet")
    time.sleep(1)
    assert receiver.on("/off") == [] and deliveries(api, hook["id"], OWEN) == []


def test_permissions(api: Api, receiver: Receiver) -> None:
    url = f"{receiver.url}/perm"
    hook = subscribe(api, RITA, "namespace", "rita", url, ["tag.push"])
    global_hook = subscribe(api, ADMIN, "global", None, url, ["gc.done", "tag.push"])
    body = {"url": url, "events": ["tag.push"]}
    # creating: nina manages nothing
    for scope, target in (("namespace", "rita"), ("namespace", "corp"), ("repository", "corp/pub"), ("global", None)):
        r = api.call("POST", "/webhooks", NINA, {**body, "scope": scope, "target": target})
        assert r.status_code == 403 and errors_of(r) == ["DENIED"], (scope, target, r.text)
    for target in ("rita/one", "corp/a"):  # private repositories she cannot see do not exist for her
        r = api.call("POST", "/webhooks", NINA, {**body, "scope": "repository", "target": target})
        assert r.status_code == 404 and errors_of(r) == ["NOT_FOUND"], r.text
    assert api.call("POST", "/webhooks", RITA, {**body, "scope": "global"}).status_code == 403
    assert api.call("POST", "/webhooks", None, {**body, "scope": "namespace", "target": "rita"}).status_code == 401
    # someone else's subscription
    for method, path, payload in (
        ("GET", f"/webhooks/{hook['id']}", None),
        ("PATCH", f"/webhooks/{hook['id']}", {"active": False}),
        ("DELETE", f"/webhooks/{hook['id']}", None),
        ("GET", f"/webhooks/{hook['id']}/deliveries", None),
        ("POST", f"/webhooks/{hook['id']}/test", None),
        ("GET", f"/webhooks/{global_hook['id']}", None),
    ):
        r = api.call(method, path, NINA, payload)
        assert r.status_code == 403 and errors_of(r) == ["DENIED"], (method, path, r.text)
    assert api.call("GET", f"/webhooks/{hook['id']}", OWEN).status_code == 403
    assert api.call("GET", "/webhooks/999999", RITA).status_code == 404
    # listing shows only what one manages; administrators see all
    assert api.ok("GET", "/webhooks", auth=NINA)["webhooks"] == []
    rita_sees = {w["id"] for w in api.ok("GET", "/webhooks", auth=RITA)["webhooks"]}
    assert hook["id"] in rita_sees and global_hook["id"] not in rita_sees
    assert all(w["target"] in ("rita", "rita/one") for w in api.ok("GET", "/webhooks", auth=RITA)["webhooks"])
    everything = {w["id"] for w in api.ok("GET", "/webhooks")["webhooks"]}
    assert {hook["id"], global_hook["id"]} <= everything
    # the owner and administrators may delete
    assert api.call("DELETE", f"/webhooks/{hook['id']}", RITA).status_code == 204
    assert api.call("GET", f"/webhooks/{hook['id']}", RITA).status_code == 404
    assert api.call("DELETE", f"/webhooks/{global_hook['id']}", ADMIN).status_code == 204


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "ftp://example.com/hook"}, "http"),
        ({"url": "http://user:pw@example.com/hook"}, "credentials"),
        ({"url": "not a url"}, "http"),
        ({"url": "http:///nohost"}, "host"),
        ({"url": "http://example.com:99999/"}, "Port"),
        ({"events": []}, "at least one"),
        ({"events": ["tag.push", "tag.pull"]}, "tag.pull"),
        ({"events": ["gc.done"]}, "global"),
        ({"scope": "planet"}, "scope"),
        ({"target": "rita/one"}, "namespace"),
        ({"scope": "repository", "target": "rita"}, "namespace/repository"),
        ({"secret": ""}, "secret"),
    ],
)
def test_bad_subscriptions_are_400(api: Api, change: dict[str, Any], message: str) -> None:
    body = {"scope": "namespace", "target": "rita", "url": "http://example.com/h", "events": ["tag.push"], **change}
    r = api.call("POST", "/webhooks", RITA, body)
    assert r.status_code == 400 and errors_of(r) == ["BAD_REQUEST"], r.text
    assert message in r.json()["errors"][0]["message"], r.text


def test_patch_validates_too(api: Api) -> None:
    hook = subscribe(api, RITA, "namespace", "rita", "http://example.com/h", ["tag.push"])
    for change in ({"url": "http://a:b@example.com/"}, {"events": ["nope"]}, {"events": ["gc.done"]}):
        r = api.call("PATCH", f"/webhooks/{hook['id']}", RITA, change)
        assert r.status_code == 400, r.text
    assert api.call("PATCH", f"/webhooks/{hook['id']}", RITA, {"scope": "global"}).status_code == 422
    assert api.ok("GET", f"/webhooks/{hook['id']}", auth=RITA)["url"] == "http://example.com/h"


def test_everything_is_in_the_openapi_document(api: Api) -> None:
    paths = api.ok("GET", "/openapi.json", auth=None)["paths"]
    assert set(paths["/webhooks"]) >= {"get", "post"}
    assert set(paths["/webhooks/{webhook_id}"]) >= {"get", "patch", "delete"}
    assert "get" in paths["/webhooks/{webhook_id}/deliveries"]
    assert "post" in paths["/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"]
    assert "post" in paths["/webhooks/{webhook_id}/test"]
