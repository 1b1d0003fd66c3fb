"""/api/v0/accounts/{org}/teams: teams and members, over HTTP against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import ADMIN, Api, creds, errors_of


@pytest.fixture(scope="module", autouse=True)
def org(api: Api) -> Iterator[str]:
    """The organization "acme": owner "olga", plain member "mike", outsider "otto"."""
    for name in ("olga", "mike", "otto"):
        api.user(name)
    api.org("acme", owners=("olga",))
    api.team("acme", "staff", members=("mike",))
    yield "acme"


OLGA, MIKE, OTTO = creds("olga"), creds("mike"), creds("otto")


def test_owner_creates_reads_edits_and_deletes_a_team(api: Api) -> None:
    r = api.call("POST", "/accounts/acme/teams", OLGA, {"name": "builders", "description": "CI"})
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["name"] == "builders" and team["orgName"] == "acme"
    assert team["description"] == "CI" and team["type"] == "managed" and team["ldapDN"] is None
    assert api.ok("GET", "/accounts/acme/teams/builders", auth=MIKE) == team
    names = [t["name"] for t in api.ok("GET", "/accounts/acme/teams", auth=MIKE)["teams"]]
    assert names == ["builders", "owners", "staff"]

    r = api.call("PATCH", "/accounts/acme/teams/builders", OLGA, {"description": "the build team"})
    assert r.status_code == 200 and r.json()["description"] == "the build team"
    r = api.call("PATCH", "/accounts/acme/teams/builders", OLGA, {"type": "ldap", "ldapDN": "cn=b,dc=example"})
    assert r.status_code == 200 and r.json()["type"] == "ldap" and r.json()["ldapDN"] == "cn=b,dc=example"
    r = api.call("PATCH", "/accounts/acme/teams/builders", OLGA, {"type": "managed"})
    assert r.status_code == 200 and r.json()["type"] == "managed" and r.json()["ldapDN"] is None
    r = api.call("PATCH", "/accounts/acme/teams/builders", OLGA, {"name": "renamed"})
    assert r.status_code == 422

    assert api.call("DELETE", "/accounts/acme/teams/builders", OLGA).status_code == 204
    assert errors_of(api.call("GET", "/accounts/acme/teams/builders", OLGA)) == ["NOT_FOUND"]


def test_ldap_team_needs_a_group_and_managed_has_none(api: Api) -> None:
    r = api.call("POST", "/accounts/acme/teams", OLGA, {"name": "dirless", "type": "ldap"})
    assert r.status_code == 400 and "ldapDN" in r.text
    r = api.call("POST", "/accounts/acme/teams", OLGA, {"name": "mixed", "ldapDN": "cn=x"})
    assert r.status_code == 400
    r = api.call("POST", "/accounts/acme/teams", OLGA, {"name": "dirful", "type": "ldap", "ldapDN": "cn=g,dc=x"})
    assert r.status_code == 201 and r.json()["type"] == "ldap"
    # Members of an LDAP-linked team come from the directory, not from the API.
    assert api.call("PUT", "/accounts/acme/teams/dirful/members/mike", OLGA).status_code == 409


def test_team_names_and_duplicates(api: Api) -> None:
    assert api.call("POST", "/accounts/acme/teams", OLGA, {"name": "Has Space"}).status_code == 400
    api.ok("POST", "/accounts/acme/teams", {"name": "once"})
    assert errors_of(api.call("POST", "/accounts/acme/teams", OLGA, {"name": "once"})) == ["CONFLICT"]


def test_teams_belong_to_organizations_only(api: Api) -> None:
    r = api.call("GET", "/accounts/otto/teams", ADMIN)
    assert r.status_code == 400 and "not an organization" in r.text
    assert api.call("GET", "/accounts/no-such-org/teams", ADMIN).status_code == 404


def test_members_are_added_checked_listed_and_removed(api: Api) -> None:
    api.ok("POST", "/accounts/acme/teams", {"name": "crew"}, OLGA)
    assert api.call("PUT", "/accounts/acme/teams/crew/members/otto", OLGA).status_code == 204
    assert api.call("GET", "/accounts/acme/teams/crew/members/otto", MIKE).status_code == 204
    assert api.call("GET", "/accounts/acme/teams/crew/members/mike", MIKE).status_code == 404
    members = api.ok("GET", "/accounts/acme/teams/crew/members", auth=OTTO)["members"]
    assert [m["name"] for m in members] == ["otto"]
    assert api.call("PUT", "/accounts/acme/teams/crew/members/acme", OLGA).status_code == 400  # an org
    assert api.call("PUT", "/accounts/acme/teams/crew/members/nobody", OLGA).status_code == 404
    assert api.call("DELETE", "/accounts/acme/teams/crew/members/otto", OLGA).status_code == 204
    assert api.call("DELETE", "/accounts/acme/teams/crew/members/otto", OLGA).status_code == 404
    assert api.call("GET", "/accounts/acme/teams/crew", OTTO).status_code == 403  # no longer a member


def test_owners_team_keeps_an_owner_and_cannot_be_deleted(api: Api) -> None:
    api.org("solo", owners=("olga",))
    assert api.call("DELETE", "/accounts/solo/teams/owners/members/admin", ADMIN).status_code == 204
    r = api.call("DELETE", "/accounts/solo/teams/owners/members/olga", OLGA)
    assert r.status_code == 409 and "last owner" in r.text
    assert api.call("DELETE", "/accounts/solo/teams/owners", OLGA).status_code == 409


def test_who_may_read_and_change_teams(api: Api) -> None:
    # Reading: organization members and administrators; changing: owners and administrators.
    assert api.call("GET", "/accounts/acme/teams", None).status_code == 401
    assert api.call("GET", "/accounts/acme/teams", OTTO).status_code == 403
    assert api.call("GET", "/accounts/acme/teams", MIKE).status_code == 200
    assert api.call("GET", "/accounts/acme/teams/staff/members", OTTO).status_code == 403
    assert api.call("POST", "/accounts/acme/teams", MIKE, {"name": "mikes"}).status_code == 403
    assert api.call("PUT", "/accounts/acme/teams/staff/members/otto", MIKE).status_code == 403
    assert api.call("DELETE", "/accounts/acme/teams/staff/members/mike", MIKE).status_code == 403
    assert api.call("DELETE", "/accounts/acme/teams/staff", MIKE).status_code == 403
    assert api.call("PATCH", "/accounts/acme/teams/staff", MIKE, {"description": "x"}).status_code == 403
    assert api.call("POST", "/accounts/acme/teams", ADMIN, {"name": "by-admin"}).status_code == 201


def test_team_repository_access_lists_its_grants(api: Api) -> None:
    api.repo("acme", "web")
    api.repo("acme", "db")
    api.grant_team("acme/web", "staff", "read-write")
    api.grant_team("acme/db", "staff", "read-only")
    body = api.ok("GET", "/accounts/acme/teams/staff/repositoryAccess", auth=MIKE)
    assert body["team"]["name"] == "staff"
    got = [
        (g["repository"]["namespace"], g["repository"]["name"], g["accessLevel"]) for g in body["repositoryAccessList"]
    ]
    assert got == [("acme", "db", "read-only"), ("acme", "web", "read-write")]
    assert api.call("GET", "/accounts/acme/teams/staff/repositoryAccess", OTTO).status_code == 403


def test_ldap_sync_is_for_admins_and_needs_ldap(api: Api) -> None:
    assert api.call("POST", "/ldapSync", OLGA).status_code == 403
    r = api.call("POST", "/ldapSync", ADMIN)
    assert r.status_code == 409 and "LDAP is not configured" in r.text
