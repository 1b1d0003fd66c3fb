"""Webhooks: subscriptions, the event sink the registry emits into, and the delivery loop.

``emit`` never sends anything: it looks the event up in the in-memory ``SubscriptionIndex``
and, only when a subscription matches, records one pending delivery per subscription. The
loop (``run``, one task per process) claims due deliveries in the database (see
``dockyard.metadata.webhooks``), POSTs them with httpx and records the outcome; failures
(connection errors, timeouts, non-2xx) are retried with exponential backoff until
``max_attempts``. Each process reloads the index every ``refresh_seconds``, so subscriptions
made through another process sharing the database are seen soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..config import WebhookSettings
from ..metadata import webhooks as q
from ..metadata.db import Database
from .index import EVENTS, REGISTRY_EVENTS, SubscriptionIndex, namespace_of
from .sealing import SecretBox
from .signature import HEADER, sign

log = logging.getLogger("dockyard.webhooks")

PING = "ping"
USER_AGENT = "Dockyard-Webhooks/1"


def check_url(url: str) -> str:
    """The URL if deliveries may go there; ValueError saying why not otherwise."""
    if len(url) > 2048:
        raise ValueError("url is longer than 2048 characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise ValueError(f"url {url!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url must be http:// or https://, not {parts.scheme or 'without a scheme'}")
    if not parts.hostname:
        raise ValueError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not contain credentials; the signature authenticates deliveries")
    if any(ch.isspace() for ch in url):
        raise ValueError("url must not contain spaces")
    return url


def check_events(scope: str, events: list[str]) -> list[str]:
    if not events:
        raise ValueError(f"events must name at least one of: {', '.join(EVENTS)}")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; known: {', '.join(EVENTS)}")
    registry_wide = [e for e in events if e in REGISTRY_EVENTS]
    if registry_wide and scope != "global":
        raise ValueError(f"{registry_wide[0]} is a registry-wide event: only global subscriptions receive it")
    return sorted(set(events), key=EVENTS.index)


def payload(kind: str, repository: str | None, data: dict[str, Any], event_id: str | None = None) -> str:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "type": kind,
            "createdAt": now,
            "repository": repository,
            "namespace": namespace_of(repository) if repository is not None else None,
            "data": data,
            "id": event_id or str(uuid.uuid4()),
        },
        separators=(",", ":"),
        default=str,
    )


class WebhookService:
    def __init__(
        self, db: Database, master_key: bytes | Callable[[], bytes], settings: WebhookSettings | None = None
    ) -> None:
        self.db = db
        self.box = SecretBox(master_key)
        self.settings = settings or WebhookSettings()
        self.index = SubscriptionIndex()
        self._loaded_at = float("-inf")
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None

    # --- the event sink ---------------------------------------------------------------------

    async def emit(self, kind: str, repository: str | None, data: dict[str, Any]) -> None:
        """Record a delivery for every subscription that wants this event; never raises."""
        try:
            subs = self.index.match(kind, repository)
            if not subs:
                return
            body = payload(kind, repository, data)
            attempts = self.settings.max_attempts
            await self.db.write(q.enqueue, [q.NewDelivery(s.id, kind, body, attempts) for s in subs])
            self._wake.set()
        except Exception:
            log.exception("could not record %s webhook deliveries for %s", kind, repository)

    async def reload(self) -> None:
        self.index.replace(await self.db.read(q.subscriptions))
        self._loaded_at = time.monotonic()

    # --- subscriptions ----------------------------------------------------------------------

    async def create(
        self, *, scope: str, target: str, url: str, events: list[str], secret: str, active: bool, author: str
    ) -> q.Subscription:
        sub_id = await self.db.write(
            q.create_subscription,
            scope=scope,
            target=target,
            url=check_url(url),
            events=check_events(scope, events),
            secret=self.box.seal(secret),
            active=active,
            author=author,
        )
        await self.reload()
        sub = await self.get(sub_id)
        assert sub is not None
        return sub

    async def get(self, subscription_id: int) -> q.Subscription | None:
        return await self.db.read(q.subscription, subscription_id)

    async def subscriptions(self, scope: str | None = None, target: str | None = None) -> list[q.Subscription]:
        return await self.db.read(q.subscriptions, scope, target)

    async def update(
        self,
        sub: q.Subscription,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        secret: str | None = None,
        active: bool | None = None,
    ) -> q.Subscription:
        await self.db.write(
            q.update_subscription,
            sub.id,
            url=check_url(url) if url is not None else None,
            events=check_events(sub.scope, events) if events is not None else None,
            secret=self.box.seal(secret) if secret is not None else None,
            active=active,
        )
        await self.reload()
        updated = await self.get(sub.id)
        assert updated is not None
        return updated

    async def delete(self, subscription_id: int) -> None:
        await self.db.write(q.delete_subscription, subscription_id)
        await self.reload()

    # --- deliveries -------------------------------------------------------------------------

    async def deliveries(self, subscription_id: int, limit: int, before: int | None = None) -> list[q.Delivery]:
        return await self.db.read(q.deliveries, subscription_id, limit, before)

    async def delivery(self, subscription_id: int, delivery_id: int) -> q.Delivery | None:
        return await self.db.read(q.delivery, subscription_id, delivery_id)

    async def redeliver(self, original: q.Delivery) -> q.Delivery:
        """A new delivery of the same body (same event id), sent by the loop as soon as it can."""
        new = q.NewDelivery(
            original.subscription_id, original.event, original.body, self.settings.max_attempts, original.id
        )
        (new_id,) = await self.db.write(q.enqueue, [new])
        self._wake.set()
        out = await self.delivery(original.subscription_id, new_id)
        assert out is not None
        return out

    async def ping(self, sub: q.Subscription) -> q.Delivery:
        """Send a ``ping`` at once (one attempt, no retries) and return its recorded outcome."""
        body = payload(PING, None, {"subscription": sub.id, "scope": sub.scope, "target": sub.target})
        (new_id,) = await self.db.write(q.enqueue, [q.NewDelivery(sub.id, PING, body, 1)])
        claimed = await self.db.write(q.claim, new_id, time.time(), self.settings.lease_seconds)
        if claimed is not None:
            await self._attempt(claimed)
        out = await self.delivery(sub.id, new_id)
        assert out is not None
        return out

    # --- the delivery loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled (one task per process, from the application's lifespan)."""
        s = self.settings
        inflight: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            self._wake.set()  # a slot is free

        try:
            while True:
                self._wake.clear()
                claimed: list[q.Delivery] = []
                try:
                    if time.monotonic() - self._loaded_at >= s.refresh_seconds:
                        await self.reload()
                    free = s.concurrency - len(inflight)
                    now = time.time()
                    due = await self.db.read(q.due_count, now) if free > 0 else 0
                    if due:
                        claimed = await self.db.write(q.claim_due, now, s.lease_seconds, free)
                except Exception:
                    log.exception("webhook delivery loop failed; will try again")
                for d in claimed:
                    task = asyncio.create_task(self._attempt(d))
                    inflight.add(task)
                    task.add_done_callback(done)
                if claimed and len(inflight) < s.concurrency:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), s.poll_seconds)
        finally:
            for task in list(inflight):
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self.settings
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(s.total_timeout_seconds, connect=s.connect_timeout_seconds),
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._client

    async def _attempt(self, d: q.Delivery) -> None:
        """One attempt of a claimed delivery; the outcome is recorded, nothing raised."""
        s = self.settings
        started = time.monotonic()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            sub = await self.get(d.subscription_id)
            if sub is None:
                return  # deleted meanwhile, its deliveries with it
            body = d.body.encode()
            headers = {
                "Content-Type": "application/json",
                "X-Dockyard-Event": d.event,
                "X-Dockyard-Delivery": d.guid,
                HEADER: sign(self.box.open(sub.secret), body),
            }
            async with asyncio.timeout(s.total_timeout_seconds):
                async with self._http().stream("POST", sub.url, content=body, headers=headers) as response:
                    status = response.status_code
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size >= s.response_excerpt_bytes:
                            break
                    excerpt = b"".join(chunks)[: s.response_excerpt_bytes].decode("utf-8", "replace")
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except TimeoutError:
            error = f"timed out after {s.total_timeout_seconds:g} s"
        except httpx.TimeoutException as e:
            error = f"timed out ({type(e).__name__})"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        except Exception as e:  # a bad stored URL, an undecryptable secret...
            log.exception("webhook delivery %s failed", d.guid)
            error = f"{type(e).__name__}: {e}"
        duration_ms = (time.monotonic() - started) * 1000
        ok = error is None
        retry_at = None
        if not ok and d.attempts < d.max_attempts:
            retry_at = time.time() + min(s.max_backoff_seconds, s.backoff_seconds * 2 ** (d.attempts - 1))
        try:
            await self.db.write(
                q.finish,
                d.id,
                ok=ok,
                next_attempt_at=retry_at,
                response_status=status,
                response_body=excerpt,
                duration_ms=round(duration_ms, 3),
                error=error,
            )
        except Exception:
            log.exception("could not record the outcome of webhook delivery %s", d.guid)
        if not ok:
            log.info("webhook delivery %s (attempt %d) failed: %s", d.guid, d.attempts, error)
