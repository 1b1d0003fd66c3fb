"""Who may call what: every kind of caller against the API's calls, one test per cell.

Callers (organization "acme", private repository acme/app, public repository acme/site):

    anonymous    no credentials
    outsider     a user with no relation to acme
    reader       member of team "readers", granted read-only on acme/app
    writer       member of team "writers", granted read-write on acme/app
    repoadmin    member of team "admins", granted admin on acme/app
    nsreader     member of team "viewers", granted read-only on the whole acme namespace
    nsadmin      member of team "ops", granted admin on the whole acme namespace
    owner        member of acme's owners team
    sysadmin     the system administrator
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.api.conftest import ADMIN, Api, creds

CALLERS = ("anonymous", "outsider", "reader", "writer", "repoadmin", "nsreader", "nsadmin", "owner", "sysadmin")
MEMBERS = ("reader", "writer", "repoadmin", "nsreader", "nsadmin", "owner")


def auth_of(caller: str) -> tuple[str, str] | None:
    if caller == "anonymous":
        return None
    return ADMIN if caller == "sysadmin" else creds(caller)


@pytest.fixture(scope="module", autouse=True)
def world(api: Api) -> Iterator[None]:
    for name in ("outsider", "reader", "writer", "repoadmin", "nsreader", "nsadmin", "owner"):
        api.user(name)
    api.org("acme", owners=("owner",))
    for team, member in (
        ("readers", "reader"),
        ("writers", "writer"),
        ("admins", "repoadmin"),
        ("viewers", "nsreader"),
        ("ops", "nsadmin"),
    ):
        api.team("acme", team, members=(member,))
    api.repo("acme", "app")
    api.repo("acme", "site", "public")
    grant_levels(api, "acme/app")
    api.ok("PUT", "/repositoryNamespaces/acme/teamAccess/viewers", {"accessLevel": "read-only"})
    api.ok("PUT", "/repositoryNamespaces/acme/teamAccess/ops", {"accessLevel": "admin"})
    yield


def grant_levels(api: Api, repo: str) -> None:
    for team, level in (("readers", "read-only"), ("writers", "read-write"), ("admins", "admin")):
        api.grant_team(repo, team, level)


def expect(default: int, **by_caller: int) -> dict[str, int]:
    return {c: by_caller.get(c, default) for c in CALLERS}


READ_PRIVATE = expect(200, anonymous=401, outsider=404)
ADMIN_PRIVATE = expect(200, anonymous=401, outsider=404, reader=403, writer=403, nsreader=403)
ADMIN_PUBLIC = expect(200, anonymous=401, outsider=403, reader=403, writer=403, repoadmin=403, nsreader=403)
ORG_MEMBERS = expect(200, anonymous=401, outsider=403)
ORG_OWNERS = expect(403, anonymous=401, owner=200, sysadmin=200)
SIGNED_IN = expect(200, anonymous=401)
ADMINS_ONLY = expect(403, anonymous=401, sysadmin=200)
REPO_ADMINS = ("repoadmin", "nsadmin", "owner", "sysadmin")
SELF_READER = expect(403, anonymous=401, reader=200, sysadmin=200)
_names = itertools.count()


def unique(prefix: str) -> Callable[[str], dict[str, Any]]:
    return lambda caller: {"name": f"{prefix}-{caller}-{next(_names)}"}


def user_body(caller: str) -> dict[str, Any]:
    return {"type": "user", "name": f"made-by-{caller}-{next(_names)}", "password": "some-password"}


def doomed(api: Api, caller: str) -> str:
    """A fresh repository with the same grants as acme/app, for DELETE to consume."""
    name = f"doomed-{caller}-{next(_names)}"
    api.repo("acme", name)
    grant_levels(api, f"acme/{name}")
    return name


Body = dict[str, Any] | Callable[[str], dict[str, Any]] | None
CASES: list[tuple[str, str, Body, dict[str, int]]] = [
    ("GET", "/repositories/acme/app", None, READ_PRIVATE),
    ("GET", "/repositories/acme/app/tags", None, READ_PRIVATE),
    ("PATCH", "/repositories/acme/app", {"shortDescription": "the app"}, ADMIN_PRIVATE),
    ("GET", "/repositories/acme/app/teamAccess", None, ADMIN_PRIVATE),
    ("GET", "/repositories/acme/app/teamAccess/readers", None, ADMIN_PRIVATE),
    ("PUT", "/repositories/acme/app/teamAccess/readers", {"accessLevel": "read-only"}, ADMIN_PRIVATE),
    ("DELETE", "/repositories/acme/{doomed}", None, {**ADMIN_PRIVATE, **dict.fromkeys(REPO_ADMINS, 204)}),
    ("GET", "/repositories/acme/site", None, expect(200)),
    ("GET", "/repositories/acme/site/tags", None, expect(200)),
    ("PATCH", "/repositories/acme/site", {"shortDescription": "public"}, ADMIN_PUBLIC),
    ("GET", "/repositories", None, expect(200)),
    ("GET", "/repositories/acme", None, expect(200)),
    ("POST", "/repositories/acme", unique("made"), expect(403, anonymous=401, nsadmin=201, owner=201, sysadmin=201)),
    ("POST", "/repositories/outsider", unique("own"), expect(403, anonymous=401, outsider=201, sysadmin=201)),
    ("GET", "/accounts/acme/teams", None, ORG_MEMBERS),
    ("GET", "/accounts/acme/teams/readers", None, ORG_MEMBERS),
    ("GET", "/accounts/acme/teams/readers/members", None, ORG_MEMBERS),
    (
        "GET",
        "/accounts/acme/teams/readers/members/reader",
        None,
        {**ORG_MEMBERS, **dict.fromkeys(MEMBERS, 204), "sysadmin": 204},
    ),
    ("GET", "/accounts/acme/teams/readers/repositoryAccess", None, ORG_MEMBERS),
    ("POST", "/accounts/acme/teams", unique("team"), {**ORG_OWNERS, "owner": 201, "sysadmin": 201}),
    ("PATCH", "/accounts/acme/teams/readers", {"description": "they read"}, ORG_OWNERS),
    ("PUT", "/accounts/acme/teams/readers/members/reader", None, {**ORG_OWNERS, "owner": 204, "sysadmin": 204}),
    ("GET", "/repositoryNamespaces/acme/teamAccess", None, ORG_MEMBERS),
    ("GET", "/repositoryNamespaces/acme/teamAccess/viewers", None, ORG_MEMBERS),
    ("PUT", "/repositoryNamespaces/acme/teamAccess/viewers", {"accessLevel": "read-only"}, ORG_OWNERS),
    ("PATCH", "/accounts/acme", {"fullName": "ACME"}, ORG_OWNERS),
    ("GET", "/accounts", None, SIGNED_IN),
    ("GET", "/accounts/reader", None, SIGNED_IN),
    ("POST", "/accounts", user_body, {**ADMINS_ONLY, "sysadmin": 201}),
    ("PUT", "/accounts/reader/activate", None, ADMINS_ONLY),
    ("PATCH", "/accounts/reader", {"fullName": "Reader"}, SELF_READER),
    ("GET", "/accounts/reader/organizations", None, SELF_READER),
    ("GET", "/accounts/reader/tokens", None, SELF_READER),
    ("GET", "/audit", None, ADMINS_ONLY),
    ("POST", "/ldapSync", None, {**ADMINS_ONLY, "sysadmin": 409}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "caller", "status"),
    [pytest.param(m, p, b, c, want[c], id=f"{m} {p} {c}") for m, p, b, want in CASES for c in CALLERS],
)
def test_matrix(api: Api, method: str, path: str, body: Body, caller: str, status: int) -> None:
    if "{doomed}" in path:
        path = path.replace("{doomed}", doomed(api, caller))
    payload = body(caller) if callable(body) else body
    r = api.call(method, path, auth_of(caller), payload)
    assert r.status_code == status, f"{caller}: {method} {path} -> {r.status_code} {r.text}"
    if status >= 400:
        assert r.json()["errors"][0]["code"], r.text
    if status == 401:
        assert r.headers["www-authenticate"] == 'Basic realm="dockyard"'


def test_repository_listing_per_caller(api: Api) -> None:
    """What each caller finds in GET /repositories/acme (the DELETE cells leave no repositories
    behind that they could see, so only the fixed ones are compared)."""
    expected = {
        "anonymous": {"site"},
        "outsider": {"site"},
        "reader": {"app", "site"},
        "nsreader": {"app", "site"},
        "owner": {"app", "site"},
        "sysadmin": {"app", "site"},
    }
    for caller, names in expected.items():
        r = api.call("GET", "/repositories/acme", auth_of(caller))
        found = {x["name"] for x in r.json()["repositories"]}
        assert found & {"app", "site"} == names, caller
