"""/accounts: users and organizations (DTR 1.3's Accounts API)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from ..auth.accounts import AccountError, LoginFailed, TooManyAttempts
from ..metadata import admin
from .deps import User
from .errors import BadRequest, Conflict, Denied, TooManyRequests
from .schemas import (
    Account,
    AccountList,
    AccountPatch,
    ChangePassword,
    NewAccount,
    OrganizationList,
    account_out,
)

router = APIRouter(tags=["accounts"])


@router.get("/accounts", response_model=AccountList, summary="List accounts")
async def list_accounts(
    caller: User,
    response: Response,
    kind: Literal["user", "organization"] | None = Query(None, alias="type", description="only this kind"),
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=1000, description="at most this many")] = 1000,
    page_start: Annotated[str | None, Query(alias="pageStart", description="the last name of a previous page")] = None,
) -> AccountList:
    """Every signed-in user may list accounts (to find users to add to teams). Paged by name as
    the repositories are: when more follow, ``X-Next-Page-Start`` names the last one given."""
    accounts = await caller.ctx.auth.accounts.list_accounts(kind, page_start, page_size + 1)
    if len(accounts) > page_size:
        accounts = accounts[:page_size]
        response.headers["X-Next-Page-Start"] = accounts[-1].name
    return AccountList(accounts=[account_out(a, caller.principal) for a in accounts])


@router.post("/accounts", response_model=Account, status_code=status.HTTP_201_CREATED, summary="Create an account")
async def create_account(caller: User, body: NewAccount) -> Account:
    """Users need a password (at least 8 characters); organizations have none and start with an
    "owners" team holding their creator. Administrators only."""
    caller.require_admin()
    service = caller.ctx.auth.accounts
    if body.type == "user":
        if not body.password:
            raise BadRequest("a user needs a password")
        account = await service.create_user(
            caller.name,
            body.name,
            body.password,
            is_admin=body.is_admin,
            full_name=body.full_name,
            email=body.email,
        )
    else:
        if body.password is not None or body.is_admin or body.email:
            raise BadRequest("organizations have no password, email or administrator role")
        account = await service.create_org(caller.name, body.name, body.full_name)
    if not body.is_active:
        account = await service.update(caller.name, body.name, is_active=False)
    caller.ctx.auth.access.forget()
    return account_out(account, caller.principal)


@router.get("/accounts/{name}", response_model=Account, summary="Get an account")
async def get_account(caller: User, name: str) -> Account:
    return account_out(await caller.ctx.auth.accounts.get(name), caller.principal)


@router.patch("/accounts/{name}", response_model=Account, summary="Edit an account")
async def update_account(caller: User, name: str, body: AccountPatch) -> Account:
    """fullName and email: the user itself (for an organization, its owners) or an administrator;
    isAdmin and isActive: administrators, never on their own account."""
    service = caller.ctx.auth.accounts
    target = await service.get(name)
    values: dict[str, Any] = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "is_admin" in values or "is_active" in values:
        caller.require_admin()
        if name == caller.name and (values.get("is_admin") is False or values.get("is_active") is False):
            raise Conflict("administrators cannot demote or deactivate themselves")
        if target.kind != "user" and values.get("is_admin"):
            raise BadRequest("an organization cannot be an administrator")
    if target.kind == "organization":
        await caller.require_org_owner(name)
    else:
        caller.require_self_or_admin(name)
    account = await service.update(caller.name, name, **values)
    caller.ctx.auth.access.forget()
    return account_out(account, caller.principal)


@router.delete("/accounts/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an account")
async def delete_account(caller: User, name: str) -> Response:
    """Administrators only; 204 even when there was no such account (as DTR). An account
    whose namespace still holds repositories is not deleted (409): delete those first."""
    caller.require_admin()
    if name == caller.name:
        raise Conflict("administrators cannot delete their own account")
    if await caller.ctx.db.read(admin.namespace_has_repositories, name):
        raise Conflict(f"{name} still owns repositories; delete them first")
    try:
        await caller.ctx.auth.accounts.delete(caller.name, name)
    except AccountError as e:
        if e.status != 404:
            raise
    caller.ctx.auth.access.forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/accounts/{name}/changePassword", status_code=status.HTTP_204_NO_CONTENT, summary="Change a user's password"
)
async def change_password(caller: User, name: str, body: ChangePassword) -> Response:
    """The user itself, giving oldPassword (checked like a login, failures count towards the
    lock-out), or an administrator, who may leave it out."""
    caller.require_self_or_admin(name)
    service = caller.ctx.auth.accounts
    target = await service.get(name)
    if target.kind != "user":
        raise BadRequest("organizations have no password")
    if target.ldap_dn is not None:
        raise BadRequest(f"{name} logs in through LDAP; change the password in the directory")
    if not caller.principal.is_admin:
        if not body.old_password:
            raise BadRequest("oldPassword is required")
        try:
            checked = await service.authenticate(name, body.old_password, caller.address)
        except LoginFailed:
            raise Denied("oldPassword is not the current password") from None
        except TooManyAttempts as e:
            raise TooManyRequests(str(e), e.retry_after) from None
        if checked.via != "password":
            raise Denied("oldPassword is not the current password")
    await service.change_password(caller.name, name, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _set_active(caller: User, name: str, active: bool) -> Account:
    caller.require_admin()
    if name == caller.name and not active:
        raise Conflict("administrators cannot deactivate themselves")
    account = await caller.ctx.auth.accounts.update(caller.name, name, is_active=active)
    caller.ctx.auth.access.forget()
    return account_out(account, caller.principal)


@router.put("/accounts/{name}/activate", response_model=Account, summary="Activate an account")
async def activate(caller: User, name: str) -> Account:
    return await _set_active(caller, name, True)


@router.put("/accounts/{name}/deactivate", response_model=Account, summary="Deactivate an account")
async def deactivate(caller: User, name: str) -> Account:
    """A deactivated user can no longer log in, with a password or an access token."""
    return await _set_active(caller, name, False)


@router.get("/accounts/{name}/organizations", response_model=OrganizationList, summary="Organizations of a user")
async def organizations(caller: User, name: str) -> OrganizationList:
    caller.require_self_or_admin(name)
    service = caller.ctx.auth.accounts
    names = await service.organizations_of(name)
    return OrganizationList(organizations=[account_out(await service.get(n), caller.principal) for n in names])
