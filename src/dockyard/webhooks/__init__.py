"""Webhooks: subscriptions per repository, namespace or the whole registry, signed JSON
deliveries recorded in the database and sent (with retries) by a background loop.

Built once in ``create_app``; the registry emits into it (``Registry.build(events=...)``) and
other code calls ``await webhooks.emit("gc.done", None, {...})`` for registry-wide events.
"""

from __future__ import annotations

from ..config import WebhookSettings
from .index import EVENTS, REGISTRY_EVENTS, REPOSITORY_EVENTS, SCOPES, SubscriptionIndex
from .sealing import SecretBox
from .service import PING, WebhookService, check_events, check_url, payload
from .signature import sign, verify

__all__ = [
    "EVENTS",
    "PING",
    "REGISTRY_EVENTS",
    "REPOSITORY_EVENTS",
    "SCOPES",
    "SecretBox",
    "SubscriptionIndex",
    "WebhookService",
    "WebhookSettings",
    "check_events",
    "check_url",
    "payload",
    "sign",
    "verify",
]
