"""/accounts/{name}/tokens: access tokens, used as the Basic password in place of the real one.

The secret is shown once, in the answer to its creation; lists show everything else. A
user manages their own tokens, an administrator anyone's. Creating a token needs the
password: a token cannot mint further tokens that would outlive its own revocation.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from .deps import User
from .errors import BadRequest, Denied
from .schemas import CreatedToken, NewToken, TokenList, token_out

router = APIRouter(tags=["access tokens"])


@router.get("/accounts/{name}/tokens", response_model=TokenList, summary="List a user's access tokens")
async def list_tokens(caller: User, name: str) -> TokenList:
    caller.require_self_or_admin(name)
    return TokenList(tokens=[token_out(t) for t in await caller.ctx.auth.accounts.tokens(name)])


@router.post(
    "/accounts/{name}/tokens",
    response_model=CreatedToken,
    status_code=status.HTTP_201_CREATED,
    summary="Create an access token",
)
async def create_token(caller: User, name: str, body: NewToken) -> CreatedToken:
    caller.require_self_or_admin(name)
    if caller.principal.via == "access-token":
        raise Denied("access tokens cannot create access tokens; sign in with the password")
    if not body.name.strip():
        raise BadRequest("a token needs a name")
    created = await caller.ctx.auth.accounts.create_token(caller.name, name, body.name.strip())
    return CreatedToken(id=created.id, name=created.name, token=created.token)


@router.delete(
    "/accounts/{name}/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an access token"
)
async def revoke_token(caller: User, name: str, token_id: str) -> Response:
    """A revoked token is refused at once, by this API and by the registry."""
    caller.require_self_or_admin(name)
    await caller.ctx.auth.accounts.revoke_token(caller.name, name, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
