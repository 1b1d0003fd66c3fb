"""Statements for webhook subscriptions and their deliveries.

A delivery is claimed by one process with a conditional UPDATE inside a write transaction
(``claim_due``): the row moves from "pending" (due) to "sending" with a lease, so several
servers sharing the database never send it twice; a lease that runs out (the process died
mid-send) makes the row claimable again.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from .models import webhook_deliveries, webhook_subscriptions

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    scope: str  # "repository" | "namespace" | "global"
    target: str  # "ns/repo", "ns", or "" (global)
    url: str
    events: tuple[str, ...]
    secret: bytes  # sealed
    active: bool
    author: str
    created_at: float
    updated_at: float
    last_success_at: float | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    guid: str
    subscription_id: int
    event: str
    body: str
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: float
    last_attempt_at: float | None
    response_status: int | None
    response_body: str | None
    duration_ms: float | None
    error: str | None
    redelivery_of: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class NewDelivery:
    subscription_id: int
    event: str
    body: str
    max_attempts: int
    redelivery_of: int | None = None


def _subscription(r: object) -> Subscription:
    row = r._mapping  # type: ignore[attr-defined]
    return Subscription(
        id=row["id"],
        scope=row["scope"],
        target=row["target"],
        url=row["url"],
        events=tuple(json.loads(row["events"])),
        secret=bytes(row["secret"]),
        active=bool(row["active"]),
        author=row["author"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_success_at=row["last_success_at"],
    )


def _delivery(r: object) -> Delivery:
    row = r._mapping  # type: ignore[attr-defined]
    return Delivery(**{name: row[name] for name in Delivery.__slots__})


# --- subscriptions ------------------------------------------------------------------------


def subscriptions(conn: Connection, scope: str | None = None, target: str | None = None) -> list[Subscription]:
    q = select(webhook_subscriptions).order_by(webhook_subscriptions.c.id)
    if scope is not None:
        q = q.where(webhook_subscriptions.c.scope == scope)
    if target is not None:
        q = q.where(webhook_subscriptions.c.target == target)
    return [_subscription(r) for r in conn.execute(q)]


def subscription(conn: Connection, subscription_id: int) -> Subscription | None:
    row = conn.execute(select(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id)).first()
    return _subscription(row) if row is not None else None


def create_subscription(
    conn: Connection,
    *,
    scope: str,
    target: str,
    url: str,
    events: list[str],
    secret: bytes,
    active: bool,
    author: str,
) -> int:
    now = time.time()
    result = conn.execute(
        insert(webhook_subscriptions).values(
            scope=scope,
            target=target,
            url=url,
            events=json.dumps(events),
            secret=secret,
            active=active,
            author=author,
            created_at=now,
            updated_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def update_subscription(
    conn: Connection,
    subscription_id: int,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    secret: bytes | None = None,
    active: bool | None = None,
) -> bool:
    values: dict[str, object] = {"updated_at": time.time()}
    if url is not None:
        values["url"] = url
    if events is not None:
        values["events"] = json.dumps(events)
    if secret is not None:
        values["secret"] = secret
    if active is not None:
        values["active"] = active
    result = conn.execute(
        update(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id).values(**values)
    )
    return result.rowcount == 1


def delete_subscription(conn: Connection, subscription_id: int) -> bool:
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.subscription_id == subscription_id))
    result = conn.execute(delete(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id))
    return result.rowcount == 1


# --- deliveries ---------------------------------------------------------------------------


def enqueue(conn: Connection, items: list[NewDelivery], now: float | None = None) -> list[int]:
    """Record pending deliveries, due at once; their ids."""
    now = time.time() if now is None else now
    ids = []
    for item in items:
        result = conn.execute(
            insert(webhook_deliveries).values(
                guid=str(uuid.uuid4()),
                subscription_id=item.subscription_id,
                event=item.event,
                body=item.body,
                status=PENDING,
                attempts=0,
                max_attempts=item.max_attempts,
                next_attempt_at=now,
                redelivery_of=item.redelivery_of,
                created_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def _claimable(now: float) -> object:
    c = webhook_deliveries.c
    return or_(
        and_(c.status == PENDING, c.next_attempt_at <= now),
        and_(c.status == SENDING, c.claimed_until < now),
    )


def due_count(conn: Connection, now: float) -> int:
    """Whether anything is claimable (a read, so idle processes do not take the write lock)."""
    q = select(webhook_deliveries.c.id).where(_claimable(now)).limit(1)  # type: ignore[arg-type]
    return len(conn.execute(q).all())


def next_due(conn: Connection) -> float | None:
    c = webhook_deliveries.c
    row = conn.execute(
        select(c.next_attempt_at).where(c.status == PENDING).order_by(c.next_attempt_at).limit(1)
    ).first()
    return float(row[0]) if row is not None else None


def claim(conn: Connection, delivery_id: int, now: float, lease_seconds: float) -> Delivery | None:
    """Take one delivery if it is claimable: counts the attempt and leases it to the caller."""
    c = webhook_deliveries.c
    result = conn.execute(
        update(webhook_deliveries)
        .where(c.id == delivery_id, _claimable(now))  # type: ignore[arg-type]
        .values(status=SENDING, claimed_until=now + lease_seconds, attempts=c.attempts + 1, last_attempt_at=now)
    )
    if result.rowcount != 1:
        return None
    row = conn.execute(select(webhook_deliveries).where(c.id == delivery_id)).first()
    return _delivery(row) if row is not None else None


def claim_due(conn: Connection, now: float, lease_seconds: float, limit: int) -> list[Delivery]:
    c = webhook_deliveries.c
    ids = [
        r[0]
        for r in conn.execute(
            select(c.id).where(_claimable(now)).order_by(c.next_attempt_at, c.id).limit(limit)  # type: ignore[arg-type]
        )
    ]
    claimed = [claim(conn, i, now, lease_seconds) for i in ids]
    return [d for d in claimed if d is not None]


def finish(
    conn: Connection,
    delivery_id: int,
    *,
    ok: bool,
    next_attempt_at: float | None,
    response_status: int | None,
    response_body: str | None,
    duration_ms: float,
    error: str | None,
) -> None:
    """Record an attempt's outcome: delivered, failed for good, or pending again (a retry)."""
    now = time.time()
    status = DELIVERED if ok else (PENDING if next_attempt_at is not None else FAILED)
    c = webhook_deliveries.c
    conn.execute(
        update(webhook_deliveries)
        .where(c.id == delivery_id)
        .values(
            status=status,
            claimed_until=None,
            next_attempt_at=next_attempt_at if next_attempt_at is not None else c.next_attempt_at,
            response_status=response_status,
            response_body=response_body,
            duration_ms=duration_ms,
            error=error,
        )
    )
    if ok:
        sub_id = select(c.subscription_id).where(c.id == delivery_id).scalar_subquery()
        conn.execute(
            update(webhook_subscriptions).where(webhook_subscriptions.c.id == sub_id).values(last_success_at=now)
        )


def delivery(conn: Connection, subscription_id: int, delivery_id: int) -> Delivery | None:
    c = webhook_deliveries.c
    row = conn.execute(
        select(webhook_deliveries).where(c.id == delivery_id, c.subscription_id == subscription_id)
    ).first()
    return _delivery(row) if row is not None else None


def deliveries(conn: Connection, subscription_id: int, limit: int, before: int | None = None) -> list[Delivery]:
    """Newest first; ``before`` (an id) pages on."""
    c = webhook_deliveries.c
    q = select(webhook_deliveries).where(c.subscription_id == subscription_id).order_by(c.id.desc()).limit(limit)
    if before is not None:
        q = q.where(c.id < before)
    return [_delivery(r) for r in conn.execute(q)]
