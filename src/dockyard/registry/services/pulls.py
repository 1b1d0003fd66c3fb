"""Pull counting without a database write per pull.

Each manifest GET (not HEAD) adds to counters in this process's memory; ``run`` flushes them
every ``interval`` seconds, and ``flush`` once more at shutdown, as upserts that add to what
the database holds (metadata/pulls.py), so several processes sum up. A process that is
killed (SIGKILL, power loss) loses at most the pulls of its last ``interval`` seconds; a
failed flush keeps its counts for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ...metadata import pulls as q
from ...metadata.db import Database

log = logging.getLogger("dockyard.pulls")


class PullCounter:
    def __init__(self, db: Database, interval: float = 5.0) -> None:
        self.db = db
        self.interval = interval
        self._days: dict[tuple[str, int], tuple[int, float]] = {}
        self._tags: dict[tuple[str, str], float] = {}
        self._lock = asyncio.Lock()

    def record(self, repo: str, tag: str | None, at: float | None = None) -> None:
        """One pull of ``repo`` (by ``tag``, or by digest when None); memory only."""
        now = time.time() if at is None else at
        key = (repo, int(now // q.DAY))
        count, _ = self._days.get(key, (0, 0.0))
        self._days[key] = (count + 1, now)
        if tag is not None:
            self._tags[(repo, tag)] = now

    @property
    def pending(self) -> int:
        return sum(n for n, _ in self._days.values())

    async def flush(self) -> None:
        async with self._lock:
            days, tags = self._days, self._tags
            if not days and not tags:
                return
            self._days, self._tags = {}, {}
            try:
                await self.db.write(q.record, days, tags)
            except BaseException:
                self._merge_back(days, tags)
                raise

    def _merge_back(self, days: dict[tuple[str, int], tuple[int, float]], tags: dict[tuple[str, str], float]) -> None:
        for key, (n, at) in days.items():
            count, last = self._days.get(key, (0, 0.0))
            self._days[key] = (count + n, max(at, last))
        for tkey, at in tags.items():
            self._tags[tkey] = max(at, self._tags.get(tkey, 0.0))

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled; the application's shutdown calls
        ``flush`` once more after cancelling this."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("could not record pulls; will try again")
