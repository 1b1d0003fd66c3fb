"""Units of dockyard.webhooks: the signature, sealing, the subscription index, validation, and
the service in-process on a SQLite database (emit, the delivery loop, claims across processes)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.metadata import webhooks as q
from dockyard.metadata.db import Database
from dockyard.webhooks import (
    SecretBox,
    SubscriptionIndex,
    WebhookService,
    WebhookSettings,
    check_events,
    check_url,
    payload,
    sign,
    verify,
)
from tests.webhooks.receiver import Receiver, start_receiver

KEY = os.urandom(32)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"type":"ping"}'
    expected = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert sign("key", body) == f"sha256={expected}"
    assert verify("key", body, f"sha256={expected}")
    assert not verify("key", body + b" ", f"sha256={expected}")
    assert not verify("other", body, f"sha256={expected}")
    assert not verify("key", body, expected)  # the prefix is part of it


def test_secret_box_round_trip_and_wrong_key() -> None:
    box = SecretBox(KEY)
    sealed = box.seal("hush")
    assert b"hush" not in sealed and box.open(sealed) == "hush"
    assert box.seal("hush") != sealed  # a fresh nonce each time
    with pytest.raises(ValueError, match="master key"):
        SecretBox(os.urandom(32)).open(sealed)


def sub(id: int, scope: str, target: str, events: tuple[str, ...], active: bool = True) -> q.Subscription:
    return q.Subscription(id, scope, target, "http://x/", events, b"", active, "admin", 0.0, 0.0, None)


def test_index_matches_by_scope_target_and_event() -> None:
    index = SubscriptionIndex(
        [
            sub(1, "repository", "corp/a", ("tag.push",)),
            sub(2, "namespace", "corp", ("tag.push", "tag.delete")),
            sub(3, "global", "", ("gc.done", "tag.delete")),
            sub(4, "repository", "corp/a", ("tag.push",), active=False),
            sub(5, "namespace", "corpx", ("tag.push",)),
        ]
    )

    def ids(event: str, repo: str | None) -> list[int]:
        return sorted(s.id for s in index.match(event, repo))

    assert ids("tag.push", "corp/a") == [1, 2]
    assert ids("tag.push", "corp/b") == [2]
    assert ids("tag.delete", "corp/a") == [2, 3]
    assert ids("tag.push", "corpx/a") == [5]
    assert ids("manifest.push", "corp/a") == []
    assert ids("gc.done", None) == [3]
    assert ids("tag.push", "other/repo") == []
    assert len(index) == 4  # the inactive one is not indexed
    index.replace([])
    assert index.match("tag.push", "corp/a") == [] and len(index) == 0


@pytest.mark.parametrize(
    "url",
    ["ftp://h/", "http://u:p@h/", "http://u@h/", "//h/x", "http:///x", "http://h:0x/", "http://h/ x", "h" * 3000],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


def test_check_url_and_events_accept() -> None:
    assert check_url("https://hooks.example.com:8443/x?y=1") == "https://hooks.example.com:8443/x?y=1"
    assert check_events("repository", ["tag.push", "manifest.push", "tag.push"]) == ["tag.push", "manifest.push"]
    assert check_events("global", ["gc.done"]) == ["gc.done"]
    with pytest.raises(ValueError, match="registry-wide"):
        check_events("namespace", ["gc.done"])


def test_payload_shape() -> None:
    body = json.loads(payload("quota.warning", "corp/a", {"used": 9}, "event-1"))
    assert body["type"] == "quota.warning" and body["repository"] == "corp/a" and body["namespace"] == "corp"
    assert body["data"] == {"used": 9} and body["id"] == "event-1" and body["createdAt"].endswith("Z")
    assert json.loads(payload("gc.done", None, {}))["namespace"] is None


# --- the service in-process ---------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    db.migrate()
    db.dispose()
    return url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r, server = start_receiver()
    yield r
    server.shutdown()
    server.server_close()


FAST = WebhookSettings(backoff_seconds=0.05, poll_seconds=0.05, max_attempts=3)


async def until(check: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


def test_emit_without_subscriptions_touches_no_database(db_url: str) -> None:
    class NoWrites(Database):
        async def write(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("emit wrote to the database")

    async def main() -> None:
        service = WebhookService(NoWrites(db_url), KEY)
        await service.reload()
        await service.emit("tag.push", "corp/a", {"tag": "1"})  # nothing matches: no write

    asyncio.run(main())


def test_emit_never_raises(db_url: str) -> None:
    class Broken(Database):
        async def write(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("disk on fire")

    async def main() -> None:
        service = WebhookService(Broken(db_url), KEY)
        service.index.replace([sub(1, "global", "", ("gc.done",))])
        await service.emit("gc.done", None, {})

    asyncio.run(main())


def test_registry_wide_and_quota_events_are_delivered_with_retries(db_url: str, receiver: Receiver) -> None:
    async def main() -> None:
        db = Database(db_url)
        service = WebhookService(db, KEY, FAST)
        gsub = await service.create(
            scope="global", target="", url=f"{receiver.url}/g", events=["gc.done"], secret="k", active=True, author="a"
        )
        rsub = await service.create(
            scope="repository",
            target="corp/a",
            url=f"{receiver.url}/q",
            events=["quota.warning"],
            secret="k2",
            active=True,
            author="a",
        )
        receiver.fail_next["/g"] = 1
        loop = asyncio.create_task(service.run())
        try:
            await service.emit("gc.done", None, {"blobsDeleted": 3})
            await service.emit("quota.warning", "corp/a", {"used": 95, "quota": 100})
            await service.emit("quota.warning", "corp/b", {"used": 95, "quota": 100})

            async def both_delivered() -> bool:
                rows = await service.deliveries(gsub.id, 10) + await service.deliveries(rsub.id, 10)
                return len(rows) == 2 and all(d.status == "delivered" for d in rows)

            await until(both_delivered)
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
        (g,) = await service.deliveries(gsub.id, 10)
        assert g.attempts == 2 and g.event == "gc.done"
        db.dispose()

    asyncio.run(main())
    g1, g2 = receiver.on("/g")
    assert (g1.answered, g2.answered) == (500, 200) and verify("k", g2.body, g2.headers["x-dockyard-signature"])
    assert g2.json["data"] == {"blobsDeleted": 3} and g2.json["repository"] is None
    (quota,) = receiver.on("/q")
    assert quota.json["repository"] == "corp/a" and verify("k2", quota.body, quota.headers["x-dockyard-signature"])


def test_attempts_run_out(db_url: str, receiver: Receiver) -> None:
    async def main() -> q.Delivery:
        db = Database(db_url)
        service = WebhookService(db, KEY, FAST)
        s = await service.create(
            scope="global",
            target="",
            url=f"{receiver.url}/down",
            events=["gc.done"],
            secret="k",
            active=True,
            author="a",
        )
        receiver.fail_next["/down"] = 99
        loop = asyncio.create_task(service.run())
        await service.emit("gc.done", None, {})

        async def failed() -> bool:
            return [d.status for d in await service.deliveries(s.id, 10)] == ["failed"]

        await until(failed)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        (d,) = await service.deliveries(s.id, 10)
        db.dispose()
        return d

    d = asyncio.run(main())
    assert d.attempts == 3 and d.response_status == 500 and d.error == "the receiver answered 500"
    assert len(receiver.on("/down")) == 3


def test_a_delivery_is_claimed_once_across_processes(db_url: str) -> None:
    a, b = Database(db_url), Database(db_url)  # two engines on one database, as two servers
    sub_id = a.write_sync(
        q.create_subscription,
        scope="global",
        target="",
        url="http://x/",
        events=["gc.done"],
        secret=b"",
        active=True,
        author="a",
    )
    ids = a.write_sync(q.enqueue, [q.NewDelivery(sub_id, "gc.done", "{}", 3) for _ in range(20)], 0.0)
    claimed_a = a.write_sync(q.claim_due, 1.0, 60.0, 15)
    claimed_b = b.write_sync(q.claim_due, 1.0, 60.0, 15)
    assert len(claimed_a) == 15 and len(claimed_b) == 5
    assert sorted(d.id for d in claimed_a + claimed_b) == sorted(ids)
    assert b.write_sync(q.claim, ids[0], 2.0, 60.0) is None  # leased to a
    retaken = b.write_sync(q.claim, ids[0], 100.0, 60.0)  # the lease ran out: a died mid-send
    assert retaken is not None and retaken.attempts == 2
    a.dispose()
    b.dispose()


def test_two_services_sharing_a_database_send_each_delivery_once(db_url: str, receiver: Receiver) -> None:
    async def main() -> None:
        one, two = WebhookService(Database(db_url), KEY, FAST), WebhookService(Database(db_url), KEY, FAST)
        s = await one.create(
            scope="global",
            target="",
            url=f"{receiver.url}/once",
            events=["gc.done"],
            secret="k",
            active=True,
            author="a",
        )
        await two.reload()
        loops = [asyncio.create_task(one.run()), asyncio.create_task(two.run())]
        for i in range(10):
            await (one if i % 2 else two).emit("gc.done", None, {"n": i})

        async def all_delivered() -> bool:
            rows = await one.deliveries(s.id, 50)
            return len(rows) == 10 and all(d.status == "delivered" for d in rows)

        await until(all_delivered)
        for t in loops:
            t.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        one.db.dispose()
        two.db.dispose()

    asyncio.run(main())
    got = receiver.on("/once")
    assert sorted(r.json["data"]["n"] for r in got) == list(range(10))
