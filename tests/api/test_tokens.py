"""/api/v0/accounts/{name}/tokens: access tokens, as Basic passwords for the API and the registry."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.api.conftest import ADMIN, Api, creds, errors_of


@pytest.fixture(scope="module", autouse=True)
def world(api: Api) -> Iterator[None]:
    for name in ("tara", "tom"):
        api.user(name)
    api.repo("tara", "box", auth=creds("tara"))
    yield


TARA, TOM = creds("tara"), creds("tom")


def new_token(api: Api, user: str = "tara", name: str = "ci") -> dict[str, str]:
    r = api.call("POST", f"/accounts/{user}/tokens", creds(user), {"name": name})
    assert r.status_code == 201, r.text
    body: dict[str, str] = r.json()
    return body


def test_create_shows_the_secret_once_and_list_never(api: Api) -> None:
    created = new_token(api, name="laptop")
    assert set(created) == {"id", "name", "token"}
    assert created["name"] == "laptop" and created["token"].startswith("dyat_")
    r = api.call("GET", "/accounts/tara/tokens", TARA)
    assert r.status_code == 200
    secret = created["token"].rsplit("_", 1)[1]
    assert secret not in r.text and created["token"] not in r.text
    listed = {t["id"]: t for t in r.json()["tokens"]}
    token = listed[created["id"]]
    assert set(token) == {"id", "name", "createdAt", "lastUsedAt", "revoked", "revokedAt"}
    assert token["name"] == "laptop" and token["revoked"] is False
    assert token["lastUsedAt"] is None and token["revokedAt"] is None


def test_token_is_a_basic_password_for_the_api_and_the_registry(api: Api) -> None:
    token = new_token(api)
    auth = ("tara", token["token"])
    assert api.ok("GET", "/accounts/tara", auth=auth)["name"] == "tara"
    assert api.push_blob("tara/box", os.urandom(64), auth).status_code == 201
    listed = {t["id"]: t for t in api.ok("GET", "/accounts/tara/tokens", auth=TARA)["tokens"]}
    assert listed[token["id"]]["lastUsedAt"] is not None
    # Only with its own user's name.
    assert api.call("GET", "/accounts/tara", ("tom", token["token"])).status_code == 401


def test_revoked_token_is_refused_at_once(api: Api) -> None:
    token = new_token(api)
    auth = ("tara", token["token"])
    assert api.call("GET", "/accounts/tara", auth).status_code == 200
    assert api.call("DELETE", f"/accounts/tara/tokens/{token['id']}", TARA).status_code == 204
    r = api.call("GET", "/accounts/tara", auth)
    assert r.status_code == 401 and errors_of(r) == ["UNAUTHORIZED"]
    assert api.push_blob("tara/box", os.urandom(64), auth).status_code == 401
    listed = {t["id"]: t for t in api.ok("GET", "/accounts/tara/tokens", auth=TARA)["tokens"]}
    assert listed[token["id"]]["revoked"] is True and listed[token["id"]]["revokedAt"]
    assert api.call("DELETE", "/accounts/tara/tokens/0123456789abcdef", TARA).status_code == 404


def test_a_token_cannot_mint_tokens(api: Api) -> None:
    token = new_token(api)
    r = api.call("POST", "/accounts/tara/tokens", ("tara", token["token"]), {"name": "child"})
    assert r.status_code == 403 and "password" in r.text
    # Nor pass for the old password when changing it.
    body = {"oldPassword": token["token"], "newPassword": "a-whole-new-password"}
    assert api.call("POST", "/accounts/tara/changePassword", ("tara", token["token"]), body).status_code == 403


def test_tokens_belong_to_their_user_and_admins(api: Api) -> None:
    token = new_token(api)
    assert api.call("GET", "/accounts/tara/tokens", TOM).status_code == 403
    assert api.call("POST", "/accounts/tara/tokens", TOM, {"name": "x"}).status_code == 403
    assert api.call("DELETE", f"/accounts/tara/tokens/{token['id']}", TOM).status_code == 403
    assert api.call("DELETE", f"/accounts/tom/tokens/{token['id']}", TOM).status_code == 404  # not tom's
    assert api.call("GET", "/accounts/tara/tokens", None).status_code == 401
    assert api.call("GET", "/accounts/tara/tokens", ADMIN).status_code == 200
    assert api.call("DELETE", f"/accounts/tara/tokens/{token['id']}", ADMIN).status_code == 204
    r = api.call("POST", "/accounts/tara/tokens", ADMIN, {"name": "issued-by-admin"})
    assert r.status_code == 201


def test_token_bodies_are_checked(api: Api) -> None:
    assert api.call("POST", "/accounts/tara/tokens", TARA, {}).status_code == 422
    assert api.call("POST", "/accounts/tara/tokens", TARA, {"name": ""}).status_code == 422
    assert api.call("POST", "/accounts/tara/tokens", TARA, {"name": "   "}).status_code == 400
    org = api.org("tokenless")
    r = api.call("POST", f"/accounts/{org['name']}/tokens", ADMIN, {"name": "x"})
    assert r.status_code == 400 and "only users" in r.text


def test_token_events_are_audited(api: Api) -> None:
    token = new_token(api, name="audited")
    api.call("DELETE", f"/accounts/tara/tokens/{token['id']}", TARA)
    events = api.ok("GET", "/audit?actor=tara&limit=1000")["events"]
    actions = [(e["action"], e["detail"]) for e in events if e["target"] == "tara"]
    assert ("token.create", {"id": token["id"], "name": "audited"}) in actions
    assert ("token.revoke", {"id": token["id"]}) in actions
