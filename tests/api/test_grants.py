"""Grants through /api/v0 (team, user and namespace access) and the registry honouring them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.api.conftest import ADMIN, Api, creds, errors_of


@pytest.fixture(scope="module", autouse=True)
def world(api: Api) -> Iterator[None]:
    """Organization "labs" (owner "lena") with teams "devs" (member "dan") and "qa" (member
    "quinn"); user "uma" with repository "uma/tool"; "carl" a collaborator-to-be; "xavier" nobody.
    Everything is made through the API."""
    for name in ("lena", "dan", "quinn", "uma", "carl", "xavier"):
        api.user(name)
    api.org("labs", owners=("lena",))
    api.team("labs", "devs", members=("dan",))
    api.team("labs", "qa", members=("quinn",))
    api.repo("labs", "engine")
    api.repo("uma", "tool", auth=creds("uma"))
    api.org("rival")
    api.team("rival", "spies")
    yield


LENA, DAN, QUINN, UMA, CARL, XAVIER = (creds(n) for n in ("lena", "dan", "quinn", "uma", "carl", "xavier"))


def test_team_access_crud(api: Api) -> None:
    path = "/repositories/labs/engine/teamAccess"
    r = api.call("PUT", f"{path}/devs", LENA, {"accessLevel": "read-write"})
    assert r.status_code == 200, r.text
    assert r.json()["accessLevel"] == "read-write"
    assert r.json()["team"]["name"] == "devs" and r.json()["repository"]["name"] == "engine"
    assert api.ok("GET", f"{path}/devs", auth=LENA)["accessLevel"] == "read-write"
    api.ok("PUT", f"{path}/qa", {"accessLevel": "read-only"}, LENA)
    listed = api.ok("GET", path, auth=LENA)
    assert listed["repository"]["name"] == "engine"
    assert [(g["team"]["name"], g["accessLevel"]) for g in listed["teamAccessList"]] == [
        ("devs", "read-write"),
        ("qa", "read-only"),
    ]
    # Changing a level replaces the grant.
    api.ok("PUT", f"{path}/qa", {"accessLevel": "admin"}, LENA)
    assert api.ok("GET", f"{path}/qa", auth=LENA)["accessLevel"] == "admin"
    assert api.call("DELETE", f"{path}/qa", LENA).status_code == 204
    assert errors_of(api.call("GET", f"{path}/qa", LENA)) == ["NOT_FOUND"]
    assert [g["team"]["name"] for g in api.ok("GET", path, auth=LENA)["teamAccessList"]] == ["devs"]


def test_team_access_is_for_teams_of_the_owning_organization(api: Api) -> None:
    r = api.call("PUT", "/repositories/labs/engine/teamAccess/spies", ADMIN, {"accessLevel": "admin"})
    assert r.status_code == 404  # looked up in labs: rival's team is not there
    r = api.call("PUT", "/repositories/uma/tool/teamAccess/devs", ADMIN, {"accessLevel": "read-only"})
    assert r.status_code == 400 and "owned by a user" in r.text
    r = api.call("PUT", "/repositories/labs/engine/teamAccess/devs", ADMIN, {"accessLevel": "superuser"})
    assert r.status_code == 422 and "accessLevel" in r.json()["errors"][0]["message"]
    r = api.call("PUT", "/repositories/labs/engine/teamAccess/devs", ADMIN, {})
    assert r.status_code == 422 and "accessLevel: Field required" in r.text


def test_user_access_crud_on_user_owned_repository(api: Api) -> None:
    path = "/repositories/uma/tool/userAccess"
    r = api.call("PUT", f"{path}/carl", UMA, {"accessLevel": "read-only"})
    assert r.status_code == 200 and r.json()["user"]["name"] == "carl"
    assert api.ok("GET", f"{path}/carl", auth=UMA)["accessLevel"] == "read-only"
    listed = api.ok("GET", path, auth=UMA)["userAccessList"]
    assert [(g["user"]["name"], g["accessLevel"]) for g in listed] == [("carl", "read-only")]
    assert api.call("GET", "/repositories/uma/tool", CARL).status_code == 200
    assert api.call("PATCH", "/repositories/uma/tool", CARL, {"visibility": "public"}).status_code == 403
    assert api.call("DELETE", f"{path}/carl", UMA).status_code == 204
    assert api.call("GET", f"{path}/carl", UMA).status_code == 404
    assert api.call("GET", "/repositories/uma/tool", CARL).status_code == 404

    assert api.call("PUT", f"{path}/labs", UMA, {"accessLevel": "read-only"}).status_code == 400  # an org
    assert api.call("PUT", f"{path}/uma", UMA, {"accessLevel": "read-only"}).status_code == 400  # the owner
    assert api.call("PUT", f"{path}/ghost", UMA, {"accessLevel": "read-only"}).status_code == 404
    r = api.call("PUT", "/repositories/labs/engine/userAccess/carl", ADMIN, {"accessLevel": "read-only"})
    assert r.status_code == 400 and "owned by an organization" in r.text


def test_namespace_access_crud(api: Api) -> None:
    api.team("labs", "auditors")
    path = "/repositoryNamespaces/labs/teamAccess"
    r = api.call("PUT", f"{path}/auditors", LENA, {"accessLevel": "read-only"})
    assert r.status_code == 200 and r.json() == {
        "accessLevel": "read-only",
        "team": r.json()["team"],
        "namespace": "labs",
    }
    assert api.ok("GET", f"{path}/auditors", auth=DAN)["accessLevel"] == "read-only"
    assert ("auditors", "read-only") in [
        (g["team"]["name"], g["accessLevel"]) for g in api.ok("GET", path, auth=DAN)["teamAccessList"]
    ]
    assert api.call("PUT", f"{path}/auditors", DAN, {"accessLevel": "admin"}).status_code == 403
    assert api.call("GET", path, XAVIER).status_code == 403
    assert api.call("DELETE", f"{path}/auditors", LENA).status_code == 204
    assert api.call("GET", f"{path}/auditors", LENA).status_code == 404
    assert api.call("PUT", "/repositoryNamespaces/uma/teamAccess/x", ADMIN, {"accessLevel": "admin"}).status_code == 400


def test_grant_changes_are_audited(api: Api) -> None:
    api.ok("PUT", "/repositories/labs/engine/teamAccess/qa", {"accessLevel": "read-only"}, LENA)
    api.call("DELETE", "/repositories/labs/engine/teamAccess/qa", LENA)
    api.ok("PUT", "/repositoryNamespaces/labs/teamAccess/qa", {"accessLevel": "read-only"}, LENA)
    events = api.ok("GET", "/audit?actor=lena&limit=1000")["events"]
    actions = [(e["action"], e["target"], e["detail"]) for e in events]
    assert ("repository.access.grant", "labs/engine", {"team": "qa", "level": "read-only"}) in actions
    assert ("repository.access.revoke", "labs/engine", {"team": "qa"}) in actions
    assert ("namespace.access.grant", "labs", {"team": "qa", "level": "read-only"}) in actions
    assert all(e["outcome"] == "ok" and e["address"] == "127.0.0.1" for e in events if e["actor"] == "lena")


# --- the registry honours what the API grants ---------------------------------------------


def test_registry_honours_team_grant_made_through_the_api(api: Api) -> None:
    """Org, team, member, repository and grant all made through /api/v0; then /v2/ pushes."""
    api.user("pusher")
    api.user("bystander")
    api.org("shipyard")
    api.team("shipyard", "builders", members=("pusher",))
    api.repo("shipyard", "hull")
    pusher, bystander = creds("pusher"), creds("bystander")

    r = api.push_blob("shipyard/hull", os.urandom(64), pusher)
    assert r.status_code == 403, r.text  # no grant yet
    api.grant_team("shipyard/hull", "builders", "read-write")
    r = api.push_blob("shipyard/hull", os.urandom(64), pusher)
    assert r.status_code == 201, r.text
    blob = r.headers["location"]
    assert api.registry.get(blob, auth=pusher).status_code == 200
    assert api.push_blob("shipyard/hull", os.urandom(64), bystander).status_code == 403
    assert api.push_blob("shipyard/hull", os.urandom(64), None).status_code == 401
    assert api.registry.get(blob, auth=bystander).status_code == 403

    # Read-only: pull but no push. Revoked: nothing, at once (cached decisions are dropped).
    api.grant_team("shipyard/hull", "builders", "read-only")
    assert api.registry.get(blob, auth=pusher).status_code == 200
    assert api.push_blob("shipyard/hull", os.urandom(64), pusher).status_code == 403
    assert api.call("DELETE", "/repositories/shipyard/hull/teamAccess/builders", ADMIN).status_code == 204
    assert api.registry.get(blob, auth=pusher).status_code == 403

    # Membership, too: the grant comes back, the member leaves.
    api.grant_team("shipyard/hull", "builders", "read-write")
    assert api.push_blob("shipyard/hull", os.urandom(64), pusher).status_code == 201
    assert api.call("DELETE", "/accounts/shipyard/teams/builders/members/pusher", ADMIN).status_code == 204
    assert api.push_blob("shipyard/hull", os.urandom(64), pusher).status_code == 403


def test_registry_honours_namespace_and_user_grants(api: Api) -> None:
    api.team("labs", "pushers", members=("xavier",))
    assert api.push_blob("labs/engine", os.urandom(64), XAVIER).status_code == 403
    api.ok("PUT", "/repositoryNamespaces/labs/teamAccess/pushers", {"accessLevel": "read-write"}, LENA)
    assert api.push_blob("labs/engine", os.urandom(64), XAVIER).status_code == 201
    api.ok("PUT", "/repositories/uma/tool/userAccess/carl", {"accessLevel": "read-write"}, UMA)
    assert api.push_blob("uma/tool", os.urandom(64), CARL).status_code == 201
    assert api.push_blob("uma/tool", os.urandom(64), XAVIER).status_code == 403


def test_registry_refuses_deactivated_users(api: Api) -> None:
    api.user("leaver")
    api.repo("leaver", "own", auth=creds("leaver"))
    assert api.push_blob("leaver/own", os.urandom(64), creds("leaver")).status_code == 201
    api.ok("PUT", "/accounts/leaver/deactivate")
    assert api.push_blob("leaver/own", os.urandom(64), creds("leaver")).status_code == 401
