"""The cache behind settings and access answers: freshness, size bound, None cached, discard."""

from __future__ import annotations

import asyncio

from dockyard.ttlcache import TtlCache


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fresh_answers_are_reused_then_reloaded_and_none_is_an_answer() -> None:
    clock = Clock()
    cache: TtlCache[str, int | None] = TtlCache(5.0, clock=clock)
    loads: list[str] = []

    async def load(key: str, value: int | None) -> int | None:
        loads.append(key)
        return value

    async def go() -> None:
        assert await cache.get_or_load("a", lambda: load("a", 1)) == 1
        assert await cache.get_or_load("a", lambda: load("a", 2)) == 1  # fresh: not loaded again
        assert await cache.get_or_load("n", lambda: load("n", None)) is None
        assert await cache.get_or_load("n", lambda: load("n", 3)) is None  # a cached None counts
        clock.now += 5.0
        assert await cache.get_or_load("a", lambda: load("a", 2)) == 2  # stale: reloaded

    asyncio.run(go())
    assert loads == ["a", "n", "a"]


def test_the_oldest_entries_go_first_and_discard_keeps_what_it_is_told() -> None:
    cache: TtlCache[tuple[str, int], int] = TtlCache(60.0, size=3)

    async def value(v: int) -> int:
        return v

    async def go() -> None:
        for i in range(5):
            await cache.get_or_load(("r", i), lambda i=i: value(i))  # type: ignore[misc]
        assert len(cache) == 3
        assert await cache.get_or_load(("r", 0), lambda: value(99)) == 99  # dropped, so reloaded
        cache.discard(lambda key: key[1] != 3)
        assert await cache.get_or_load(("r", 3), lambda: value(33)) == 33

    asyncio.run(go())
    cache.clear()
    assert len(cache) == 0
