"""Over HTTPS the session cookie is Secure, and the UI's pages keep their headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("https") / "data", auth=True, tls=True)
    yield server
    server.stop()


def test_session_cookie_is_secure_over_https(https_server: RunningServer) -> None:
    with httpx.Client(base_url=https_server.url, verify=https_server.verify(), timeout=30) as c:
        r = c.post("/api/v0/session", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/v0/session").json()["account"]["name"] == "admin"
        shell = c.get("/")
        assert shell.status_code == 200 and "frame-ancestors 'none'" in shell.headers["content-security-policy"]
