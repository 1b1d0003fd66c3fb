"""Who is asking. Built by authentication, read by authorization; never an ORM row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # "" for anonymous
    account_id: int | None = None
    is_admin: bool = False
    via: str = "anonymous"  # "password" | "access-token" | "ldap" | "bearer" | "refresh-token" | "anonymous"

    @property
    def anonymous(self) -> bool:
        return self.account_id is None


ANONYMOUS = Principal("")
