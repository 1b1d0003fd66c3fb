"""GET /api/v0/system: the server's set-up for administrators, secrets never shown."""

from __future__ import annotations

from dockyard.api.system import REDACTED, redacted
from tests.api.conftest import Api, creds, errors_of


def test_administrators_see_how_the_server_is_set_up(api: Api) -> None:
    info = api.ok("GET", "/system")
    assert info["database"] == "sqlite"
    assert info["storage"]["driver"] == "filesystem"
    assert info["auth"]["providers"] == ["local"] and info["auth"]["ldap"] is None
    assert info["auth"]["sessionIdleSeconds"] == 3600 and info["jobsInServer"] is True
    assert info["gcSchedules"] == []
    api.ok("POST", "/crons", {"name": "nightly-gc", "action": "gc", "schedule": "0 3 * * *"})
    api.ok("POST", "/crons", {"name": "hourly-sleep", "action": "sleep", "schedule": "@hourly"})
    schedules = api.ok("GET", "/system")["gcSchedules"]
    assert schedules == [{"name": "nightly-gc", "schedule": "0 3 * * *", "enabled": True, "parameters": {}}]


def test_others_are_refused(api: Api) -> None:
    api.user("sysuser")
    r = api.call("GET", "/system", creds("sysuser"))
    assert r.status_code == 403 and errors_of(r) == ["DENIED"]
    assert api.call("GET", "/system").status_code == 401


def test_secrets_are_never_shown() -> None:
    params = {
        "bucket": "b",
        "access_key_id": "AKIA1",
        "secret_access_key": "s3cr3t",
        "session_token": "tok",
        "sse_kms_key_id": "kms-1",
        "account_key": "azure-key",
        "connection_string": "AccountName=a;AccountKey=k",
        "temp_url_key": "swift",
        "key": "swift-v1",
        "password": "pw",
        "bind_password": "ldap-pw",
        "empty_password": "",
        "nested": {"client_secret": "x", "region": "r"},
    }
    out = redacted(params)
    shown = {k: v for k, v in out.items() if v != REDACTED}
    assert shown == {
        "bucket": "b",
        "access_key_id": "AKIA1",
        "sse_kms_key_id": "kms-1",
        "empty_password": "",
        "nested": {"client_secret": REDACTED, "region": "r"},
    }
    assert "s3cr3t" not in repr(out) and "AccountKey" not in repr(out)
