"""An unexpected failure inside the API: a 500 envelope naming the request, and nothing
escaping to the application around it. In process (ASGI), as no real server can be made to
fail this way from outside."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette

from dockyard.api import build_api
from dockyard.auth.principal import Principal
from tests.conftest import asgi_get


class _Accounts:
    async def authenticate(self, username: str, password: str, address: str = "") -> Principal:
        return Principal("admin", 1, True, "password")

    async def list_accounts(self, kind: str | None = None) -> list[Any]:
        raise RuntimeError("the database fell over")


def test_unexpected_error_is_a_500_envelope() -> None:
    auth: Any = SimpleNamespace(accounts=_Accounts())
    unused: Any = None  # the database and the registry: this call never reaches them
    outer = Starlette()
    outer.mount("/api/v0", build_api(auth, unused, unused))
    r = asgi_get(outer, "/api/v0/accounts", auth=("admin", "x"))  # raises whatever escapes the app
    assert r.status_code == 500
    assert r.json()["errors"][0]["code"] == "UNKNOWN"
    assert "request id" in r.json()["errors"][0]["message"]
