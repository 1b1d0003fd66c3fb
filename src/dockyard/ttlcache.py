"""A small in-process cache of answers that may be a few seconds stale (settings and access
decisions read on every request), bounded in size, oldest entries dropped first.

Each service owns its own instance (no module state); a service that changes what it
caches calls ``clear`` or ``discard`` so its own process sees the change at once, and other
processes within ``seconds``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, size: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value if fresh, else ``await load()`` (cached, None included)."""
        now = self.clock()
        hit = self._items.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        value = await load()
        self._items[key] = (value, now + self.seconds)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()

    def discard(self, keep: Callable[[K], bool]) -> None:
        """Drop the entries whose key ``keep`` says no to."""
        for key in [k for k in self._items if not keep(k)]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
