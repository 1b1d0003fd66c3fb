"""Webhook subscriptions and their deliveries.

Who manages a subscription follows its scope: a repository's admins (and namespace managers
above them), a namespace's managers (the user, an organization's owners), administrators
everything; "global" subscriptions (registry-wide events such as ``gc.done``) are for
administrators only. The secret is returned once, when the subscription is created.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..metadata.webhooks import Delivery, Subscription
from ..webhooks import EVENTS, SCOPES, WebhookService
from .deps import Caller, User
from .errors import ApiError, BadRequest, NotFound, Unavailable
from .schemas import MAX_ROW_ID, RowId, timestamp, utc

router = APIRouter(tags=["webhooks"])

EVENTS_DOC = f"what to deliver: {', '.join(EVENTS)} (gc.done only for scope global)"


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class WebhookIn(_Body):
    scope: str = Field(description=f"one of {', '.join(SCOPES)}")
    target: str | None = Field(None, description='"namespace/repository", "namespace", or nothing for global')
    url: str = Field(description="http:// or https:// URL receiving POSTed JSON; no credentials in it")
    events: list[str] = Field(description=EVENTS_DOC)
    secret: str | None = Field(
        None, description="HMAC-SHA256 key of X-Dockyard-Signature; generated (and returned once) if omitted"
    )
    active: bool = True


class WebhookPatch(_Body):
    url: str | None = None
    events: list[str] | None = Field(None, description=EVENTS_DOC)
    secret: str | None = Field(None, description="a new secret (it is not returned)")
    active: bool | None = None


class WebhookOut(_Body):
    id: int
    scope: str
    target: str | None
    url: str
    events: list[str]
    active: bool
    author: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    last_successful_at: datetime.datetime | None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="shown only in this response")


class WebhookList(_Body):
    webhooks: list[WebhookOut]


class DeliveryOut(_Body):
    id: int
    delivery_id: str = Field(description="the X-Dockyard-Delivery header")
    event: str
    status: str = Field(description="pending, sending, delivered or failed")
    attempts: int
    max_attempts: int
    next_attempt_at: datetime.datetime | None = Field(description="when pending: the next attempt")
    last_attempt_at: datetime.datetime | None
    request_body: str
    response_status: int | None
    response_body: str | None = Field(description="the start of the receiver's answer")
    duration_ms: float | None
    error: str | None
    redelivery_of: int | None
    created_at: datetime.datetime


class DeliveryList(_Body):
    deliveries: list[DeliveryOut]
    next: int | None = Field(description="pass as ?before= for the next (older) page")


def _out(sub: Subscription) -> WebhookOut:
    return WebhookOut(
        id=sub.id,
        scope=sub.scope,
        target=sub.target or None,
        url=sub.url,
        events=list(sub.events),
        active=sub.active,
        author=sub.author,
        created_at=utc(sub.created_at),
        updated_at=utc(sub.updated_at),
        last_successful_at=timestamp(sub.last_success_at),
    )


def _delivery(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        delivery_id=d.guid,
        event=d.event,
        status=d.status,
        attempts=d.attempts,
        max_attempts=d.max_attempts,
        next_attempt_at=timestamp(d.next_attempt_at) if d.status == "pending" else None,
        last_attempt_at=timestamp(d.last_attempt_at),
        request_body=d.body,
        response_status=d.response_status,
        response_body=d.response_body,
        duration_ms=d.duration_ms,
        error=d.error,
        redelivery_of=d.redelivery_of,
        created_at=utc(d.created_at),
    )


def _service(caller: Caller) -> WebhookService:
    # The registry emits into the service; the API works with that same instance.
    sink = caller.ctx.registry.manifests.events
    if not isinstance(sink, WebhookService):
        raise Unavailable("webhooks are not enabled on this server")
    return sink


async def _authorize(caller: Caller, scope: str, target: str) -> str:
    """Deny unless the caller manages (scope, target); the target normalised."""
    caller.require_user()
    if scope == "global":
        caller.require_admin()
        if target:
            raise BadRequest("a global subscription has no target")
        return ""
    if scope not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if not target:
        raise BadRequest(f"a {scope} subscription needs a target")
    if scope == "namespace":
        if "/" in target:
            raise BadRequest(f"namespace target {target!r} must not contain '/' (use scope repository)")
        await caller.require_namespace_manager(target)
        return target
    namespace, sep, repo = target.partition("/")
    if not sep or not namespace or not repo:
        raise BadRequest(f"repository target {target!r} must be namespace/repository")
    if caller.principal.is_admin:
        return target
    row = await caller.repository(namespace, repo, "admin")
    return row.name


async def _may_manage(caller: Caller, sub: Subscription) -> bool:
    try:
        await _authorize(caller, sub.scope, sub.target)
    except ApiError:
        return False
    return True


async def _subscription(caller: Caller, webhook_id: int) -> tuple[WebhookService, Subscription]:
    caller.require_user()
    service = _service(caller)
    sub = await service.get(webhook_id)
    if sub is None:
        raise NotFound(f"webhook {webhook_id} does not exist")
    await _authorize(caller, sub.scope, sub.target)
    return service, sub


@router.get("/webhooks", response_model=WebhookList, summary="The webhooks the caller manages")
async def list_webhooks(
    caller: User,
    scope: Annotated[str | None, Query(description="only this scope")] = None,
    target: Annotated[str | None, Query(description="only this target")] = None,
) -> WebhookList:
    """Administrators see every subscription; others those of repositories and namespaces they manage."""
    subs = await _service(caller).subscriptions(scope, target)
    if not caller.principal.is_admin:
        subs = [sub for sub in subs if await _may_manage(caller, sub)]
    return WebhookList(webhooks=[_out(sub) for sub in subs])


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, summary="Subscribe to events")
async def create_webhook(caller: User, body: WebhookIn) -> WebhookCreated:
    """Repository admins subscribe to their repository, namespace managers to their namespace
    (every repository in it), administrators also to everything (scope global)."""
    service = _service(caller)
    target = await _authorize(caller, body.scope, body.target or "")
    secret = body.secret if body.secret is not None else secrets.token_urlsafe(32)
    if not secret or len(secret) > 1024:
        raise BadRequest("secret must be 1 to 1024 characters")
    try:
        sub = await service.create(
            scope=body.scope,
            target=target,
            url=body.url,
            events=body.events,
            secret=secret,
            active=body.active,
            author=caller.name,
        )
    except ValueError as e:
        raise BadRequest(str(e)) from None
    await caller.audit("webhook.create", f"webhook:{sub.id}", {"scope": sub.scope, "target": sub.target})
    return WebhookCreated(**_out(sub).model_dump(), secret=secret)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, summary="A webhook")
async def get_webhook(caller: User, webhook_id: RowId) -> WebhookOut:
    _, sub = await _subscription(caller, webhook_id)
    return _out(sub)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, summary="Change a webhook")
async def patch_webhook(caller: User, webhook_id: RowId, body: WebhookPatch) -> WebhookOut:
    """Change its URL, events, secret or whether it is active; scope and target stay."""
    service, sub = await _subscription(caller, webhook_id)
    if body.secret is not None and not 0 < len(body.secret) <= 1024:
        raise BadRequest("secret must be 1 to 1024 characters")
    try:
        updated = await service.update(sub, url=body.url, events=body.events, secret=body.secret, active=body.active)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    changed: dict[str, Any] = body.model_dump(exclude_none=True, by_alias=True)
    if "secret" in changed:
        changed["secret"] = "(changed)"
    await caller.audit("webhook.update", f"webhook:{sub.id}", changed)
    return _out(updated)


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook and its deliveries")
async def delete_webhook(caller: User, webhook_id: RowId) -> Response:
    service, sub = await _subscription(caller, webhook_id)
    await service.delete(sub.id)
    await caller.audit("webhook.delete", f"webhook:{sub.id}", {"scope": sub.scope, "target": sub.target})
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    summary="A webhook's deliveries, newest first",
)
async def list_deliveries(
    caller: User,
    webhook_id: RowId,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many")] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="only deliveries with a smaller id (the next page)")
    ] = None,
) -> DeliveryList:
    service, sub = await _subscription(caller, webhook_id)
    rows = await service.deliveries(sub.id, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryList(deliveries=[_delivery(d) for d in rows], next=rows[-1].id if more else None)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    status_code=202,
    summary="Send a delivery's body again, as a new delivery",
)
async def redeliver(caller: User, webhook_id: RowId, delivery_id: RowId) -> DeliveryOut:
    """The new delivery is pending; the delivery loop sends it (with retries) in a moment."""
    service, sub = await _subscription(caller, webhook_id)
    original = await service.delivery(sub.id, delivery_id)
    if original is None:
        raise NotFound(f"webhook {webhook_id} has no delivery {delivery_id}")
    new = await service.redeliver(original)
    await caller.audit("webhook.redeliver", f"webhook:{sub.id}", {"delivery": delivery_id, "new": new.id})
    return _delivery(new)


@router.post(
    "/webhooks/{webhook_id}/test",
    response_model=DeliveryOut,
    summary="Send a ping event now and return how it went",
)
async def test_webhook(caller: User, webhook_id: RowId) -> DeliveryOut:
    """One attempt, no retries; sent even when the webhook is inactive."""
    service, sub = await _subscription(caller, webhook_id)
    return _delivery(await service.ping(sub))
