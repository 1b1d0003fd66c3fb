"""/api/v0/accounts: users and organizations, over HTTP against a real server."""

from __future__ import annotations

from tests.api.conftest import ADMIN, Api, creds, errors_of, password_of


def test_admin_creates_reads_lists_and_deletes_a_user(api: Api) -> None:
    created = api.user("ursula", fullName="Ursula U", email="u@example.org")
    assert created["name"] == "ursula"
    assert created["type"] == "user"
    assert created["fullName"] == "Ursula U"
    assert created["email"] == "u@example.org"
    assert created["isActive"] and not created["isAdmin"] and not created["isLdap"]
    assert "password" not in created and "passwordHash" not in created

    got = api.ok("GET", "/accounts/ursula")
    assert got == created
    names = [a["name"] for a in api.ok("GET", "/accounts")["accounts"]]
    assert "ursula" in names and "admin" in names

    r = api.call("DELETE", "/accounts/ursula", ADMIN)
    assert r.status_code == 204
    assert errors_of(api.call("GET", "/accounts/ursula", ADMIN)) == ["NOT_FOUND"]
    assert api.call("DELETE", "/accounts/ursula", ADMIN).status_code == 204  # as DTR: absent is fine


def test_list_filters_by_type(api: Api) -> None:
    api.user("filter-user")
    api.org("filter-org")
    users = api.ok("GET", "/accounts?type=user")["accounts"]
    orgs = api.ok("GET", "/accounts?type=organization")["accounts"]
    assert {a["type"] for a in users} == {"user"}
    assert {a["type"] for a in orgs} == {"organization"}
    assert "filter-org" in [a["name"] for a in orgs]
    assert api.call("GET", "/accounts?type=robot", ADMIN).status_code == 422


def test_email_is_shown_to_the_user_and_admins_only(api: Api) -> None:
    api.user("private-eve", email="eve@example.org")
    api.user("nosy-ned")
    assert api.ok("GET", "/accounts/private-eve", auth=creds("private-eve"))["email"] == "eve@example.org"
    assert api.ok("GET", "/accounts/private-eve", auth=creds("nosy-ned"))["email"] is None
    listed = {a["name"]: a for a in api.ok("GET", "/accounts", auth=creds("nosy-ned"))["accounts"]}
    assert listed["private-eve"]["email"] is None


def test_create_user_rejects_bad_input_and_duplicates(api: Api) -> None:
    r = api.call("POST", "/accounts", ADMIN, {"type": "user", "name": "Bad Name", "password": "long-enough"})
    assert r.status_code == 400 and errors_of(r) == ["BAD_REQUEST"]
    assert "invalid account name" in r.json()["errors"][0]["message"]
    r = api.call("POST", "/accounts", ADMIN, {"type": "user", "name": "shorty", "password": "short"})
    assert r.status_code == 400 and "8 characters" in r.text
    r = api.call("POST", "/accounts", ADMIN, {"type": "user", "name": "nopass"})
    assert r.status_code == 400 and "password" in r.text
    api.user("twice")
    r = api.call("POST", "/accounts", ADMIN, {"type": "user", "name": "twice", "password": "long-enough"})
    assert r.status_code == 409 and errors_of(r) == ["CONFLICT"]
    r = api.call("POST", "/accounts", ADMIN, {"type": "organization", "name": "twice"})
    assert r.status_code == 409


def test_created_user_can_log_in_and_an_inactive_one_cannot(api: Api) -> None:
    api.user("sleeper", isActive=False)
    assert api.call("GET", "/accounts/sleeper", creds("sleeper")).status_code == 401
    assert api.ok("PUT", "/accounts/sleeper/activate")["isActive"] is True
    assert api.call("GET", "/accounts/sleeper", creds("sleeper")).status_code == 200
    assert api.ok("PUT", "/accounts/sleeper/deactivate")["isActive"] is False
    r = api.call("GET", "/accounts/sleeper", creds("sleeper"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="dockyard"'


def test_organization_starts_with_owners_team_holding_its_creator(api: Api) -> None:
    org = api.org("globex")
    assert org["type"] == "organization" and org["email"] is not None  # admin sees it
    teams = api.ok("GET", "/accounts/globex/teams")["teams"]
    assert [t["name"] for t in teams] == ["owners"]
    members = api.ok("GET", "/accounts/globex/teams/owners/members")["members"]
    assert [m["name"] for m in members] == ["admin"]
    r = api.call("POST", "/accounts", ADMIN, {"type": "organization", "name": "pw-org", "password": "x" * 10})
    assert r.status_code == 400


def test_patch_account(api: Api) -> None:
    api.user("patchy")
    api.user("other-patchy")
    me = creds("patchy")
    r = api.call("PATCH", "/accounts/patchy", me, {"fullName": "Patchy P", "email": "p@example.org"})
    assert r.status_code == 200 and r.json()["fullName"] == "Patchy P"
    assert api.call("PATCH", "/accounts/patchy", me, {"isAdmin": True}).status_code == 403
    assert api.call("PATCH", "/accounts/patchy", creds("other-patchy"), {"fullName": "x"}).status_code == 403
    assert api.call("PATCH", "/accounts/patchy", None, {"fullName": "x"}).status_code == 401
    assert api.ok("PATCH", "/accounts/patchy", {"isAdmin": True})["isAdmin"] is True
    # Now an administrator, patchy still cannot demote or deactivate itself.
    assert api.call("PATCH", "/accounts/patchy", me, {"isAdmin": False}).status_code == 409
    assert api.call("PUT", "/accounts/patchy/deactivate", me).status_code == 409
    assert api.ok("PATCH", "/accounts/patchy", {"isAdmin": False})["isAdmin"] is False
    r = api.call("PATCH", "/accounts/patchy", me, {"nickname": "pp"})
    assert r.status_code == 422 and "nickname" in r.json()["errors"][0]["message"]


def test_organization_owner_edits_the_org_but_not_an_outsider(api: Api) -> None:
    api.user("org-boss")
    api.user("org-stranger")
    api.org("initech", owners=("org-boss",))
    r = api.call("PATCH", "/accounts/initech", creds("org-boss"), {"fullName": "Initech Corp"})
    assert r.status_code == 200 and r.json()["fullName"] == "Initech Corp"
    assert api.call("PATCH", "/accounts/initech", creds("org-stranger"), {"fullName": "x"}).status_code == 403
    r = api.call("PATCH", "/accounts/initech", ADMIN, {"isAdmin": True})
    assert r.status_code == 400


def test_change_password(api: Api) -> None:
    api.user("rotator")
    old, new = password_of("rotator"), "a-brand-new-password"
    me = ("rotator", old)
    r = api.call("POST", "/accounts/rotator/changePassword", me, {"newPassword": new})
    assert r.status_code == 400 and "oldPassword" in r.text
    r = api.call("POST", "/accounts/rotator/changePassword", me, {"oldPassword": "wrong-password", "newPassword": new})
    assert r.status_code == 403
    r = api.call("POST", "/accounts/rotator/changePassword", me, {"oldPassword": old, "newPassword": "short"})
    assert r.status_code == 400
    r = api.call("POST", "/accounts/rotator/changePassword", me, {"oldPassword": old, "newPassword": new})
    assert r.status_code == 204
    assert api.call("GET", "/accounts/rotator", me).status_code == 401
    assert api.call("GET", "/accounts/rotator", ("rotator", new)).status_code == 200
    # An administrator may leave the old password out; another user may not change it at all.
    api.user("meddler")
    body = {"oldPassword": new, "newPassword": "meddled-password"}
    assert api.call("POST", "/accounts/rotator/changePassword", creds("meddler"), body).status_code == 403
    r = api.call("POST", "/accounts/rotator/changePassword", ADMIN, {"newPassword": old})
    assert r.status_code == 204
    assert api.call("GET", "/accounts/rotator", me).status_code == 200


def test_organizations_of_a_user(api: Api) -> None:
    api.user("joiner")
    api.user("peeker")
    api.org("umbrella", owners=("joiner",))
    api.org("hooli")
    api.team("hooli", "devs", members=("joiner",))
    orgs = api.ok("GET", "/accounts/joiner/organizations", auth=creds("joiner"))["organizations"]
    assert [o["name"] for o in orgs] == ["hooli", "umbrella"]
    assert api.call("GET", "/accounts/joiner/organizations", creds("peeker")).status_code == 403
    assert [o["name"] for o in api.ok("GET", "/accounts/joiner/organizations")["organizations"]] == [
        "hooli",
        "umbrella",
    ]


def test_account_owning_repositories_is_not_deleted(api: Api) -> None:
    api.user("hoarder")
    api.repo("hoarder", "stuff")
    r = api.call("DELETE", "/accounts/hoarder", ADMIN)
    assert r.status_code == 409 and "repositories" in r.text
    assert api.call("DELETE", "/repositories/hoarder/stuff", ADMIN).status_code == 204
    assert api.call("DELETE", "/accounts/hoarder", ADMIN).status_code == 204


def test_admin_cannot_delete_itself_and_others_cannot_delete(api: Api) -> None:
    api.user("victim")
    assert api.call("DELETE", "/accounts/admin", ADMIN).status_code == 409
    assert api.call("DELETE", "/accounts/victim", creds("victim")).status_code == 403
    assert api.call("DELETE", "/accounts/victim").status_code == 401


def test_accounts_list_pages_by_name(api: Api) -> None:
    for name in ("pg-a", "pg-b", "pg-c", "pg-d", "pg-e"):
        api.user(name)
    everyone = [a["name"] for a in api.ok("GET", "/accounts?type=user")["accounts"]]
    seen: list[str] = []
    start = None
    while True:
        params = {"type": "user", "pageSize": 2, **({"pageStart": start} if start else {})}
        r = api.call("GET", "/accounts", ADMIN, params=params)
        assert r.status_code == 200
        page = [a["name"] for a in r.json()["accounts"]]
        seen += page
        start = r.headers.get("x-next-page-start")
        if start is None:
            break
        assert len(page) == 2 and start == page[-1]
    assert seen == everyone == sorted(everyone) and {"pg-a", "pg-e"} <= set(seen)
    assert api.call("GET", "/accounts?pageSize=0", ADMIN).status_code == 422
