"""Fixtures for /api/v0: a real `dockyard serve` (auth on) per test module, and small helpers
that drive the API over HTTP as a given account."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server

ADMIN = ("admin", ADMIN_PASSWORD)
Auth = tuple[str, str] | None


def password_of(name: str) -> str:
    return f"{name}-password"


def creds(name: str) -> tuple[str, str]:
    return (name, ADMIN_PASSWORD if name == "admin" else password_of(name))


def errors_of(r: httpx.Response) -> list[str]:
    """The error codes of an envelope (and that it is one)."""
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert set(body) == {"errors"}, body
    for e in body["errors"]:
        assert set(e) == {"code", "message"} and e["message"], e
    return [e["code"] for e in body["errors"]]


class Api:
    """An httpx client on /api/v0 with set-up helpers that assert success."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=f"{server.url}/api/v0", timeout=60)
        self.registry = httpx.Client(base_url=server.url, timeout=60)

    def close(self) -> None:
        self.http.close()
        self.registry.close()

    def call(self, method: str, path: str, auth: Auth = None, json: Any = None, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, auth=auth, json=json, **kw)

    def ok(self, method: str, path: str, json: Any = None, auth: Auth = ADMIN) -> Any:
        r = self.call(method, path, auth, json)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def user(self, name: str, **extra: Any) -> dict[str, Any]:
        body = {"type": "user", "name": name, "password": password_of(name), **extra}
        result: dict[str, Any] = self.ok("POST", "/accounts", body)
        return result

    def org(self, name: str, owners: tuple[str, ...] = ()) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("POST", "/accounts", {"type": "organization", "name": name})
        for owner in owners:
            self.ok("PUT", f"/accounts/{name}/teams/owners/members/{owner}")
        return result

    def team(self, org: str, name: str, members: tuple[str, ...] = ()) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("POST", f"/accounts/{org}/teams", {"name": name})
        for member in members:
            self.ok("PUT", f"/accounts/{org}/teams/{name}/members/{member}")
        return result

    def repo(self, namespace: str, name: str, visibility: str = "private", auth: Auth = ADMIN) -> dict[str, Any]:
        body = {"name": name, "visibility": visibility}
        result: dict[str, Any] = self.ok("POST", f"/repositories/{namespace}", body, auth)
        return result

    def grant_team(self, repo: str, team: str, level: str) -> None:
        self.ok("PUT", f"/repositories/{repo}/teamAccess/{team}", {"accessLevel": level})

    def push_blob(self, repo: str, data: bytes, auth: Auth) -> httpx.Response:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        url = f"/v2/{repo}/blobs/uploads/"
        if auth is None:
            return self.registry.post(url, params={"digest": digest}, content=data)
        return self.registry.post(url, params={"digest": digest}, content=data, auth=auth)


def start_api_server(tmp: pytest.TempPathFactory, **env: str) -> RunningServer:
    # Many tests log in with wrong credentials on purpose, all from 127.0.0.1.
    extra = {
        "DOCKYARD_AUTH__FAILED_LOGIN_LIMIT": "10000",
        "DOCKYARD_AUTH__FAILED_LOGIN_LIMIT_PER_ADDRESS": "10000",
        **env,
    }
    return start_server(tmp.mktemp("api") / "data", extra_env=extra, auth=True)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A fresh server for each test module (its own accounts and repositories)."""
    server = start_api_server(tmp_path_factory)
    client = Api(server)
    yield client
    client.close()
    server.stop()
