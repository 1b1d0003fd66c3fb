"""/session: the web UI's cookie sessions, their expiry, sign-out, and CSRF protection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import ADMIN, Api, errors_of, start_api_server
from tests.conftest import ADMIN_PASSWORD, RunningServer

COOKIE = "dockyard_session"


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose sessions end after 2 s idle and 4 s in all."""
    server = start_api_server(
        tmp_path_factory, DOCKYARD_AUTH__SESSION_IDLE_SECONDS="2", DOCKYARD_AUTH__SESSION_MAX_SECONDS="4"
    )
    yield server
    server.stop()


def browser(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v0", timeout=30)


def sign_in(client: httpx.Client, user: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    r = client.post("/session", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["account"]["name"] == user
    token: str = body["csrfToken"]
    return token


def test_sign_in_sets_a_strict_http_only_cookie(api: Api) -> None:
    with browser(api.server) as c:
        r = c.post("/session", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith(f"{COOKIE}=")
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
        me = c.get("/session")
        assert me.status_code == 200 and me.json()["account"]["name"] == "admin"
        assert me.json()["csrfToken"] == r.json()["csrfToken"]
        assert c.get("/audit").status_code == 200  # the cookie signs the admin in


def test_wrong_password_and_access_tokens_do_not_sign_in(api: Api) -> None:
    with browser(api.server) as c:
        r = c.post("/session", json={"username": "admin", "password": "nope"})
        assert r.status_code == 401 and errors_of(r) == ["UNAUTHORIZED"]
        assert "set-cookie" not in r.headers
        token = api.ok("POST", "/accounts/admin/tokens", {"name": "script"})["token"]
        r = c.post("/session", json={"username": "admin", "password": token})
        assert r.status_code == 401 and "access tokens" in r.json()["errors"][0]["message"]
        assert c.get("/session").status_code == 401


def test_ui_requests_get_no_basic_challenge(api: Api) -> None:
    with browser(api.server) as c:
        r = c.get("/session", headers={"X-Requested-With": "dockyard-ui"})
        assert r.status_code == 401 and "www-authenticate" not in r.headers
        assert "www-authenticate" in c.get("/session").headers


def test_state_changes_need_the_csrf_token(api: Api) -> None:
    with browser(api.server) as c:
        csrf = sign_in(c)
        body = {"type": "organization", "name": "csrf-org"}
        r = c.post("/accounts", json=body)
        assert r.status_code == 403 and errors_of(r) == ["DENIED"]
        assert "X-CSRF-Token" in r.json()["errors"][0]["message"]
        r = c.post("/accounts", json=body, headers={"X-CSRF-Token": "wrong"})
        assert r.status_code == 403
        assert api.call("GET", "/accounts/csrf-org", ADMIN).status_code == 404
        r = c.post("/accounts", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        # Basic-authenticated scripts need no token, cookie or not.
        assert api.call("POST", "/accounts", ADMIN, {"type": "organization", "name": "basic-org"}).status_code == 201


def test_sign_out_ends_the_session_even_for_a_kept_cookie(api: Api) -> None:
    with browser(api.server) as c:
        csrf = sign_in(c)
        kept = c.cookies[COOKIE]
        assert c.delete("/session").status_code == 403  # sign-out is a state change too
        r = c.delete("/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        assert c.get("/session").status_code == 401
    with browser(api.server) as replay:
        replay.cookies.set(COOKIE, kept)
        assert replay.get("/session").status_code == 401
        assert replay.get("/audit").status_code == 401


def test_sessions_end_when_idle(short: RunningServer) -> None:
    with browser(short) as c:
        sign_in(c)
        assert c.get("/session").status_code == 200
        time.sleep(2.3)
        assert c.get("/session").status_code == 401


def test_sessions_end_at_the_absolute_limit_however_busy(short: RunningServer) -> None:
    with browser(short) as c:
        sign_in(c)
        deadline = time.monotonic() + 4.5
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(c.get("/session").status_code)
            time.sleep(0.5)
        assert statuses[0] == 200 and statuses[-1] == 401


def test_failed_sign_ins_are_rate_limited(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_api_server(tmp_path_factory, DOCKYARD_AUTH__FAILED_LOGIN_LIMIT="3")
    try:
        with browser(server) as c:
            for _ in range(3):
                assert c.post("/session", json={"username": "admin", "password": "bad"}).status_code == 401
            r = c.post("/session", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert r.status_code == 429 and "retry-after" in r.headers
    finally:
        server.stop()


def test_stats_and_manifest_detail(api: Api) -> None:
    api.repo("admin", "statsrepo")
    stats = api.ok("GET", "/stats?days=7")
    assert stats["repositories"] >= 1 and len(stats["pushes"]) == 7
    r = api.call("GET", "/repositories/admin/statsrepo/manifests/latest", ADMIN)
    assert r.status_code == 404 and errors_of(r) == ["NOT_FOUND"]
    r = api.call("GET", "/repositories/admin/statsrepo/manifests/bad%20tag", ADMIN)
    assert r.status_code == 400
    assert api.call("GET", "/stats").status_code == 401


def test_repository_list_filters(api: Api) -> None:
    api.org("filters")
    api.repo("filters", "alpha-web", "public")
    api.repo("filters", "beta-web", "private")
    api.repo("filters", "gamma-db", "public")

    def names(query: str) -> list[str]:
        return [r["name"] for r in api.ok("GET", f"/repositories/filters?{query}")["repositories"]]

    assert names("search=web") == ["alpha-web", "beta-web"]
    assert names("visibility=public") == ["alpha-web", "gamma-db"]
    assert names("search=web&visibility=private") == ["beta-web"]
    r = api.call("GET", "/repositories?search=web&pageSize=1&visibility=public", ADMIN)
    assert [x["name"] for x in r.json()["repositories"]] == ["alpha-web"]
