"""A non-admin's repository list (and /stats) applies the visibility rules in one SQL query
(metadata/visibility.py): it must list exactly the repositories the per-repository rules
(auth/access.py, behind GET /repositories/{ns}/{repo}) let the caller read."""

from __future__ import annotations

from tests.api.conftest import ADMIN, Api, Auth, creds

REPOS = {
    # the viewer's own namespace
    "vic/own": "private",
    "vic/ownpub": "public",
    # another user's: public, private, private with a user grant to vic
    "wes/pub": "public",
    "wes/priv": "private",
    "wes/granted": "private",
    # an organization where vic is an owner
    "owned/a": "private",
    "owned/b": "private",
    # an organization with a namespace grant to a team of vic's
    "nsgrant/a": "private",
    "nsgrant/b": "private",
    # an organization with a repository grant to a team of vic's, another to a team without vic
    "repogrant/yes": "private",
    "repogrant/no": "private",
    "repogrant/pub": "public",
    # an organization where vic is in a team without any grant
    "nogrant/a": "private",
    # names that share a prefix with vic's namespaces without being in them
    "vicky/x": "private",
    "ownedx/y": "private",
}


def every_page(api: Api, path: str, auth: Auth) -> list[str]:
    names: list[str] = []
    start = None
    while True:
        params = {"pageSize": 3, **({"pageStart": start} if start else {})}
        r = api.call("GET", path, auth, params=params)
        assert r.status_code == 200, r.text
        names += [f"{x['namespace']}/{x['name']}" for x in r.json()["repositories"]]
        start = r.headers.get("x-next-page-start")
        if start is None:
            return names


def test_listing_matches_the_per_repository_rules(api: Api) -> None:
    for user in ("vic", "wes", "vicky"):
        api.user(user)
    for org in ("owned", "nsgrant", "repogrant", "nogrant", "ownedx"):
        api.org(org)
    api.ok("PUT", "/accounts/owned/teams/owners/members/vic")
    api.team("nsgrant", "readers", ("vic",))
    api.ok("PUT", "/repositoryNamespaces/nsgrant/teamAccess/readers", {"accessLevel": "read-only"})
    api.team("repogrant", "devs", ("vic",))
    api.team("repogrant", "others", ("wes",))
    api.team("nogrant", "idle", ("vic",))
    api.team("ownedx", "readers", ("wes",))
    api.ok("PUT", "/repositoryNamespaces/ownedx/teamAccess/readers", {"accessLevel": "admin"})
    for name, visibility in REPOS.items():
        ns, repo = name.split("/")
        api.repo(ns, repo, visibility)
    api.grant_team("repogrant/yes", "devs", "read-write")
    api.grant_team("repogrant/no", "others", "admin")
    api.ok("PUT", "/repositories/wes/granted/userAccess/vic", {"accessLevel": "read-only"})

    expected = {
        "vic/own",
        "vic/ownpub",
        "wes/pub",
        "wes/granted",
        "owned/a",
        "owned/b",
        "nsgrant/a",
        "nsgrant/b",
        "repogrant/yes",
        "repogrant/pub",
    }
    for who in ("vic", "wes", None):
        auth = creds(who) if who else None
        per_repository = {name for name in REPOS if api.call("GET", f"/repositories/{name}", auth).status_code == 200}
        listed = every_page(api, "/repositories", auth)
        assert listed == sorted(listed)
        assert set(listed) & set(REPOS) == per_repository, who
        if who == "vic":
            assert per_repository == expected
        for ns in ("vic", "wes", "owned", "repogrant"):
            in_ns = every_page(api, f"/repositories/{ns}", auth)
            assert {n for n in in_ns if n in REPOS} == {n for n in per_repository if n.startswith(ns + "/")}
        searched = api.call("GET", "/repositories", auth, params={"search": "grant"}).json()["repositories"]
        assert {f"{x['namespace']}/{x['name']}" for x in searched} == {n for n in per_repository if "grant" in n}
        if who is not None:
            stats = api.ok("GET", "/stats", auth=auth)
            assert stats["repositories"] == len(set(every_page(api, "/repositories", auth)))
    assert set(REPOS) <= set(every_page(api, "/repositories", ADMIN))
