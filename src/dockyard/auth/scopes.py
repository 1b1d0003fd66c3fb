"""Token scopes: ``type:name:action[,action]`` joined by spaces (distribution's scope.md)."""

from __future__ import annotations

from dataclasses import dataclass

REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete", "*"})


@dataclass(frozen=True, slots=True)
class Scope:
    type: str  # "repository" | "registry"
    name: str
    actions: frozenset[str]
    resource_class: str | None = None  # e.g. "plugin" from "repository(plugin)"

    def __str__(self) -> str:
        t = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{t}:{self.name}:{','.join(sorted(self.actions))}"


def parse_one(text: str) -> Scope | None:
    """One resource scope, or None if it is not understood (ignored, never an error)."""
    first = text.find(":")
    last = text.rfind(":")
    if first <= 0 or last == first:
        return None
    rtype, name, actions = text[:first], text[first + 1 : last], text[last + 1 :]
    rclass = None
    if rtype.endswith(")") and "(" in rtype:
        rtype, _, rest = rtype.partition("(")
        rclass = rest[:-1]
    if not rtype.isalnum() or not name:
        return None
    acts = frozenset(a for a in actions.split(",") if a)
    return Scope(rtype, name, acts, rclass)


def parse(values: list[str]) -> list[Scope]:
    """Scopes from repeated ``scope`` parameters, each possibly space-separated."""
    out: list[Scope] = []
    for value in values:
        for part in value.split():
            s = parse_one(part)
            if s is not None:
                out.append(s)
    return out
