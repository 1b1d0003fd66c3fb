"""The ``X-Dockyard-Signature`` header: HMAC-SHA256 of the exact request body, keyed with the
subscription's secret, as ``sha256=<hex>``. Receivers recompute it and compare in constant time."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Dockyard-Signature"
PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header.strip())
