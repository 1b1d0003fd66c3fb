"""The in-memory index of active subscriptions, so ``emit`` for a repository nobody watches
costs a few dictionary lookups and no database work."""

from __future__ import annotations

from collections.abc import Iterable

from ..metadata.webhooks import Subscription

# Events about one repository, and registry-wide ones (only "global" subscriptions get those).
REPOSITORY_EVENTS = ("tag.push", "tag.delete", "manifest.push", "manifest.delete", "quota.warning")
REGISTRY_EVENTS = ("gc.done",)
EVENTS = REPOSITORY_EVENTS + REGISTRY_EVENTS
SCOPES = ("repository", "namespace", "global")


def namespace_of(repository: str) -> str:
    return repository.split("/", 1)[0]


class SubscriptionIndex:
    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        self._by_key: dict[tuple[str, str], list[Subscription]] = {}
        self.replace(subscriptions)

    def replace(self, subscriptions: Iterable[Subscription]) -> None:
        by_key: dict[tuple[str, str], list[Subscription]] = {}
        for sub in subscriptions:
            if sub.active:
                by_key.setdefault((sub.scope, sub.target), []).append(sub)
        self._by_key = by_key  # swapped whole: readers never see a half-built index

    def __len__(self) -> int:
        return sum(len(subs) for subs in self._by_key.values())

    def match(self, event: str, repository: str | None) -> list[Subscription]:
        """The active subscriptions that want ``event`` about ``repository`` (None: registry-wide)."""
        by_key = self._by_key
        if not by_key:
            return []
        candidates = list(by_key.get(("global", ""), ()))
        if repository is not None:
            candidates += by_key.get(("namespace", namespace_of(repository)), ())
            candidates += by_key.get(("repository", repository), ())
        return [sub for sub in candidates if event in sub.events]
