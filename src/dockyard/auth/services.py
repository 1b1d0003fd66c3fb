"""The auth services, built once per application by ``AuthServices.build``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Settings
from ..metadata.db import Database
from .access import AccessPolicy
from .accounts import AccountService
from .audit import AuditLog
from .keys import SigningKey, master_key
from .passwords import Passwords
from .ratelimit import FailureLimiter
from .sessions import SessionService
from .tokens import TokenService


@dataclass(frozen=True)
class AuthServices:
    accounts: AccountService
    access: AccessPolicy
    tokens: TokenService
    audit: AuditLog
    sessions: SessionService

    @classmethod
    def build(cls, settings: Settings, db: Database) -> AuthServices:
        a = settings.auth
        config_dir = settings.data_dir / "config"
        kek = master_key(config_dir, os.environ.get("DOCKYARD_MASTER_KEY"))
        key = SigningKey.load_or_create(config_dir, kek, a.issuer)
        ldap = None
        if a.ldap:
            from .ldap import LdapError, LdapProvider, LdapSettings

            try:
                ldap = LdapProvider(LdapSettings.from_parameters(a.ldap))
            except LdapError as e:  # e.g. an unreadable CA file: stop start-up with the reason
                raise ValueError(f"auth.ldap: {e}") from None
        audit = AuditLog(db)
        limiter = FailureLimiter(a.failed_login_limit, a.failed_login_window_seconds)
        by_address = FailureLimiter(a.failed_login_limit_per_address, a.failed_login_window_seconds)
        return cls(
            accounts=AccountService(db, audit, Passwords(), limiter, by_address, ldap),
            access=AccessPolicy(db, a.create_repository_on_push),
            tokens=TokenService(key, a.issuer, a.service, a.token_ttl_seconds, a.refresh_ttl_seconds),
            audit=audit,
            sessions=SessionService(db, a.session_idle_seconds, a.session_max_seconds),
        )
