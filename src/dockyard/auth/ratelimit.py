"""Failed-login limiting per account and per client address (in this process)."""

from __future__ import annotations

import time
from collections import deque


class FailureLimiter:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] < now - self.window:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> float:
        """Seconds until a login may be tried again for any of keys; 0 when allowed."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.window - now)
        return wait

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray of random names
            for key in [k for k, q in self._failures.items() if not q or q[-1] < now - self.window]:
                del self._failures[key]

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)
