"""Accounts: users, organizations, teams, access tokens, and authentication (local, access
token, LDAP). Every change and every login decision goes to the audit log."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from ..metadata import accounts as q
from ..metadata.db import Database
from .audit import AuditLog
from .passwords import Passwords, check_strength
from .principal import Principal
from .ratelimit import FailureLimiter

if TYPE_CHECKING:
    from .ldap import LdapProvider

# A repository path component, so "<account>/<repo>" is always a valid repository name.
ACCOUNT_NAME = re.compile(r"^[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+)*$")
TOKEN_PREFIX = "dyat_"
_TOKEN = re.compile(r"^dyat_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})$")
OWNERS = "owners"
log = logging.getLogger("dockyard.auth")


class AccountError(Exception):
    """A request about accounts that cannot be done; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LoginFailed(Exception):
    """Wrong credentials (deliberately vague)."""


class TooManyAttempts(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {int(retry_after) + 1} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class NewToken:
    id: str
    name: str
    token: str  # shown once


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_account_name(name: str) -> str:
    if len(name) > 64 or not ACCOUNT_NAME.fullmatch(name):
        raise AccountError(
            f"invalid account name {name[:80]!r}: lowercase letters and digits, joined by '-' or '_', at most 64"
        )
    return name


class AccountService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        passwords: Passwords,
        limiter: FailureLimiter,
        address_limiter: FailureLimiter,
        ldap: LdapProvider | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.passwords = passwords
        self.limiter = limiter
        self.address_limiter = address_limiter
        self.ldap = ldap
        # Successful Basic logins, briefly, so clients that send Basic on every request do
        # not pay an argon2 check each time. Keyed by a hash of the credentials.
        self._recent: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    # --- bootstrap --------------------------------------------------------------------------

    async def ensure_admin(self, password: str) -> str | None:
        """Create "admin" on a database with no administrator. Returns the generated password
        (to print once) when none was given; None when nothing was created or it was given."""
        if await self.db.read(q.count_admins) > 0:
            return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(15)
        check_strength(password)
        hashed = await anyio.to_thread.run_sync(self.passwords.hash, password)
        await self.db.write(_create_admin, hashed)
        await self.audit.record("", "account.create", "admin", detail={"admin": True, "bootstrap": True})
        return generated

    # --- authentication ---------------------------------------------------------------------

    async def authenticate(self, username: str, password: str, address: str = "") -> Principal:
        """Check a username with a password or an access token. Raises LoginFailed or
        TooManyAttempts; the same time is spent whether or not the account exists."""
        # The limit applies before anything else, so a locked-out account cannot even learn
        # that a guess was right.
        keys = (f"user:{username}", f"addr:{address}")
        wait = max(self.limiter.blocked(keys[0]), self.address_limiter.blocked(keys[1]))
        if wait:
            await self.audit.record(username, "login", username, "denied", address, {"reason": "rate limited"})
            raise TooManyAttempts(wait)
        cache_key = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
        hit = self._recent.get(cache_key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        principal = await self._check(username, password)
        if principal is None:
            self.limiter.fail(keys[0])
            self.address_limiter.fail(keys[1])
            await self.audit.record(username, "login", username, "failed", address)
            raise LoginFailed("incorrect username or password")
        self.limiter.succeed(keys[0])
        await self.audit.record(username, "login", username, "ok", address, {"via": principal.via})
        self._recent[cache_key] = (principal, time.monotonic() + 60)
        while len(self._recent) > 1024:
            self._recent.popitem(last=False)
        return principal

    async def _check(self, username: str, password: str) -> Principal | None:
        account = await q.account_by_name(self.db, username) if ACCOUNT_NAME.fullmatch(username) else None
        token = _TOKEN.fullmatch(password)
        if token is not None:
            return await self._check_token(account, token.group(1), token.group(2))
        if account is not None and account.kind == "user" and account.password_hash:
            ok = await anyio.to_thread.run_sync(self.passwords.verify, account.password_hash, password)
            return _principal(account, "password") if ok and account.is_active else None
        if self.ldap is not None and password and (account is None or account.ldap_dn is not None):
            return await self._check_ldap(account, username, password)
        await anyio.to_thread.run_sync(self.passwords.verify, None, password)  # same time as a real check
        return None

    async def _check_token(self, account: q.Account | None, token_id: str, secret: str) -> Principal | None:
        rec = await self.db.read(q.get_token, token_id)
        if rec is None or account is None or rec.account != account.name:
            return None
        if rec.revoked_at is not None or not account.is_active:
            return None
        if not hmac.compare_digest(rec.secret_hash, _hash_secret(secret)):
            return None
        if rec.last_used_at is None or time.time() - rec.last_used_at > 60:
            await self.db.write(q.touch_token, token_id)
        return _principal(account, "access-token")

    async def _check_ldap(self, account: q.Account | None, username: str, password: str) -> Principal | None:
        assert self.ldap is not None
        user = await anyio.to_thread.run_sync(self.ldap.authenticate, username, password)
        if user is None:
            return None
        # The directory's own spelling names the account ("ALICE" logs in as alice), so a
        # user has one account whatever case they type, and team sync finds it.
        username = user.username.lower()
        if not ACCOUNT_NAME.fullmatch(username):
            log.warning("LDAP user %r cannot be a Dockyard account name", user.username)
            return None
        account = await self.db.read(q.get_account, username)
        if account is not None and (account.kind != "user" or account.ldap_dn is None):
            return None  # a local account of that name: LDAP does not take it over
        if account is None:
            await self.db.write(
                q.create_account,
                name=username,
                kind="user",
                full_name=user.full_name,
                email=user.email,
                ldap_dn=user.dn,
            )
            await self.audit.record(username, "account.create", username, detail={"ldap": user.dn})
        else:
            await self.db.write(q.update_account, username, ldap_dn=user.dn, full_name=user.full_name, email=user.email)
        fresh = await self.db.read(q.get_account, username)
        if fresh is None or not fresh.is_active:
            return None
        return _principal(fresh, "ldap")

    async def principal_for(self, name: str, via: str) -> Principal | None:
        """The principal of an existing, active account (refresh tokens name only a subject)."""
        account = await q.account_by_name(self.db, name)
        if account is None or not account.is_active or account.kind != "user":
            return None
        return _principal(account, via)

    # --- accounts ---------------------------------------------------------------------------

    async def get(self, name: str) -> q.Account:
        account = await self.db.read(q.get_account, name)
        if account is None:
            raise AccountError(f"account {name} does not exist", 404)
        return account

    async def list_accounts(
        self, kind: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[q.Account]:
        return await self.db.read(q.list_accounts, kind, after, limit)

    async def create_user(
        self, actor: str, name: str, password: str, *, is_admin: bool = False, full_name: str = "", email: str = ""
    ) -> q.Account:
        check_account_name(name)
        try:
            check_strength(password)
        except ValueError as e:
            raise AccountError(str(e)) from None
        if await self.db.read(q.get_account, name) is not None:
            raise AccountError(f"account {name} already exists", 409)
        hashed = await anyio.to_thread.run_sync(self.passwords.hash, password)
        await self.db.write(
            q.create_account,
            name=name,
            kind="user",
            password_hash=hashed,
            is_admin=is_admin,
            full_name=full_name,
            email=email,
        )
        await self.audit.record(actor, "account.create", name, detail={"kind": "user", "admin": is_admin})
        return await self.get(name)

    async def create_org(self, actor: str, name: str, full_name: str = "") -> q.Account:
        check_account_name(name)
        if await self.db.read(q.get_account, name) is not None:
            raise AccountError(f"account {name} already exists", 409)
        await self.db.write(_create_org, name, full_name, actor)
        await self.audit.record(actor, "account.create", name, detail={"kind": "organization"})
        return await self.get(name)

    async def update(self, actor: str, name: str, **values: Any) -> q.Account:
        await self.get(name)
        allowed = {k: v for k, v in values.items() if k in ("full_name", "email", "is_admin", "is_active")}
        if allowed:
            await self.db.write(q.update_account, name, **allowed)
            await self.audit.record(actor, "account.update", name, detail=allowed)
        self._recent.clear()
        return await self.get(name)

    async def change_password(self, actor: str, name: str, new_password: str) -> None:
        account = await self.get(name)
        if account.kind != "user":
            raise AccountError("organizations have no password")
        try:
            check_strength(new_password)
        except ValueError as e:
            raise AccountError(str(e)) from None
        hashed = await anyio.to_thread.run_sync(self.passwords.hash, new_password)
        await self.db.write(q.update_account, name, password_hash=hashed)
        self._recent.clear()
        await self.audit.record(actor, "account.password", name)

    async def verify_password(self, name: str, password: str) -> bool:
        account = await self.get(name)
        return await anyio.to_thread.run_sync(self.passwords.verify, account.password_hash, password)

    async def delete(self, actor: str, name: str) -> None:
        account = await self.get(name)
        if account.is_admin and await self.db.read(q.count_admins) <= 1:
            raise AccountError("cannot delete the last administrator", 409)
        await self.db.write(q.delete_account, name)
        self._recent.clear()
        await self.audit.record(actor, "account.delete", name)

    async def organizations_of(self, name: str) -> list[str]:
        account = await self.get(name)
        return await self.db.read(q.organizations_of, account.id)

    # --- teams ------------------------------------------------------------------------------

    async def _org(self, org: str) -> q.Account:
        account = await self.get(org)
        if account.kind != "organization":
            raise AccountError(f"{org} is not an organization")
        return account

    async def team(self, org: str, name: str) -> q.Team:
        team = await self.db.read(q.get_team, org, name)
        if team is None:
            raise AccountError(f"team {org}/{name} does not exist", 404)
        return team

    async def teams(self, org: str) -> list[q.Team]:
        await self._org(org)
        return await self.db.read(q.list_teams, org)

    async def create_team(
        self, actor: str, org: str, name: str, description: str = "", ldap_group_dn: str | None = None
    ) -> q.Team:
        account = await self._org(org)
        check_account_name(name)
        if await self.db.read(q.get_team, org, name) is not None:
            raise AccountError(f"team {org}/{name} already exists", 409)
        await self.db.write(q.create_team, account.id, name, description, ldap_group_dn)
        await self.audit.record(actor, "team.create", f"{org}/{name}", detail={"ldap_group_dn": ldap_group_dn})
        return await self.team(org, name)

    async def update_team(self, actor: str, org: str, name: str, **values: Any) -> q.Team:
        team = await self.team(org, name)
        allowed = {k: v for k, v in values.items() if k in ("description", "ldap_group_dn")}
        if allowed:
            await self.db.write(q.update_team, team.id, **allowed)
            await self.audit.record(actor, "team.update", f"{org}/{name}", detail=allowed)
        return await self.team(org, name)

    async def delete_team(self, actor: str, org: str, name: str) -> None:
        team = await self.team(org, name)
        if name == OWNERS:
            raise AccountError("the owners team cannot be deleted", 409)
        await self.db.write(q.delete_team, team.id)
        await self.audit.record(actor, "team.delete", f"{org}/{name}")

    async def members(self, org: str, name: str) -> list[str]:
        team = await self.team(org, name)
        return await self.db.read(q.team_member_names, team.id)

    async def add_member(self, actor: str, org: str, name: str, user: str) -> None:
        team = await self.team(org, name)
        account = await self.get(user)
        if account.kind != "user":
            raise AccountError("only users can be team members")
        await self.db.write(q.add_member, team.id, account.id)
        await self.audit.record(actor, "team.member.add", f"{org}/{name}", detail={"user": user})

    async def remove_member(self, actor: str, org: str, name: str, user: str) -> None:
        team = await self.team(org, name)
        account = await self.get(user)
        if not await self.db.write(q.remove_member, team.id, account.id):
            raise AccountError(f"{user} is not a member of {org}/{name}", 404)
        await self.audit.record(actor, "team.member.remove", f"{org}/{name}", detail={"user": user})

    async def sync_ldap_teams(self, actor: str = "") -> dict[str, list[str]]:
        """Make the members of every LDAP-linked team those of its LDAP group."""
        if self.ldap is None:
            return {}
        result: dict[str, list[str]] = {}
        from .ldap import LdapError

        for team in await self.db.read(q.ldap_teams):
            assert team.ldap_group_dn is not None
            try:
                names = await anyio.to_thread.run_sync(self.ldap.group_members, team.ldap_group_dn)
            except LdapError as e:  # one bad group must not stop the others
                log.warning("LDAP sync of team %s/%s failed: %s", team.org, team.name, e)
                await self.audit.record(actor, "team.ldap_sync", f"{team.org}/{team.name}", "failed", detail=str(e))
                continue
            names = [n.lower() for n in names]
            await self.db.write(_sync_members, team.id, names)
            result[f"{team.org}/{team.name}"] = names
            await self.audit.record(actor, "team.ldap_sync", f"{team.org}/{team.name}", detail={"members": names})
        return result

    # --- access tokens ----------------------------------------------------------------------

    async def create_token(self, actor: str, user: str, name: str) -> NewToken:
        account = await self.get(user)
        if account.kind != "user":
            raise AccountError("only users have access tokens")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(30)
        await self.db.write(q.create_token, token_id, account.id, name or "token", _hash_secret(secret))
        await self.audit.record(actor, "token.create", user, detail={"id": token_id, "name": name})
        return NewToken(token_id, name, f"{TOKEN_PREFIX}{token_id}_{secret}")

    async def tokens(self, user: str) -> list[q.TokenRecord]:
        account = await self.get(user)
        return await self.db.read(q.list_tokens, account.id)

    async def revoke_token(self, actor: str, user: str, token_id: str) -> None:
        rec = await self.db.read(q.get_token, token_id)
        if rec is None or rec.account != user:
            raise AccountError(f"no token {token_id} for {user}", 404)
        await self.db.write(q.revoke_token, token_id)
        self._recent.clear()
        await self.audit.record(actor, "token.revoke", user, detail={"id": token_id})


def _principal(account: q.Account, via: str) -> Principal:
    return Principal(account.name, account.id, account.is_admin, via)


def _create_admin(conn: Any, hashed: str) -> None:
    if q.get_account(conn, "admin") is None:
        q.create_account(
            conn, name="admin", kind="user", password_hash=hashed, is_admin=True, full_name="Administrator"
        )
    else:
        q.update_account(conn, "admin", is_admin=True, is_active=True, password_hash=hashed)


def _create_org(conn: Any, name: str, full_name: str, creator: str) -> None:
    org_id = q.create_account(conn, name=name, kind="organization", full_name=full_name)
    team_id = q.create_team(conn, org_id, OWNERS, "Owners of the organization", None)
    creator_account = q.get_account(conn, creator) if creator else None
    if creator_account is not None and creator_account.kind == "user":
        q.add_member(conn, team_id, creator_account.id)


def _sync_members(conn: Any, team_id: int, names: list[str]) -> None:
    ids = []
    for name in names:
        if not ACCOUNT_NAME.fullmatch(name):
            continue
        account = q.get_account(conn, name)
        if account is None:
            # Known from the directory before its first login; it can log in only through LDAP.
            ids.append(q.create_account(conn, name=name, kind="user", ldap_dn=""))
        elif account.kind == "user":
            ids.append(account.id)
    q.set_team_members(conn, team_id, ids)
