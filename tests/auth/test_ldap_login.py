"""Logging in to the registry through LDAP, and LDAP groups synced into teams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from dockyard.metadata import accounts as q
from dockyard.metadata import queries
from tests.auth.conftest import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd, password_of
from tests.auth.world import basic, offline_services
from tests.conftest import RunningServer, start_server


async def _prepare(data_dir: Path) -> None:
    """Before the server starts: an org whose team follows the LDAP group "devs"."""
    db, accounts = offline_services(data_dir)
    db.migrate()
    await accounts.create_org("", "acme")
    await accounts.create_team("", "acme", "devs", ldap_group_dn=f"cn=devs,{GROUPS}")

    def grant(conn: object) -> None:
        repo = queries.ensure_repository(conn, "acme/app")  # type: ignore[arg-type]
        team = q.get_team(conn, "acme", "devs")  # type: ignore[arg-type]
        assert team is not None
        q.set_repository_grant(conn, repo, "read-write", team_id=team.id)  # type: ignore[arg-type]

    await db.write(grant)
    db.dispose()


@pytest.fixture(scope="module")
def ldap_server(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("ldap-registry") / "data"
    data_dir.mkdir(parents=True)
    asyncio.run(_prepare(data_dir))
    env = {
        "DOCKYARD_AUTH__LDAP__URL": slapd.ldap_url,
        "DOCKYARD_AUTH__LDAP__START_TLS": "true",
        "DOCKYARD_AUTH__LDAP__CA_FILE": slapd.ca_file,
        "DOCKYARD_AUTH__LDAP__BIND_DN": SERVICE_DN,
        "DOCKYARD_AUTH__LDAP__BIND_PASSWORD": SERVICE_PASSWORD,
        "DOCKYARD_AUTH__LDAP__USER_SEARCH_BASE": PEOPLE,
    }
    s = start_server(data_dir, auth=True, extra_env=env)
    yield s
    s.stop()


def _actions(http: httpx.Client, user: str, password: str, scope: str) -> list[str]:
    r = http.get("/auth/token", params={"service": "dockyard", "scope": scope}, headers=basic(user, password))
    assert r.status_code == 200, r.text
    access = jwt.decode(r.json()["token"], options={"verify_signature": False})["access"]
    return list(access[0]["actions"]) if access else []


def test_ldap_users_log_in_and_get_their_team_rights(ldap_server: RunningServer) -> None:
    with ldap_server.client() as http:
        scope = "repository:acme/app:pull,push"
        deadline = time.monotonic() + 15  # the first team sync runs as the server starts
        while _actions(http, "alice", password_of("alice"), scope) != ["pull", "push"]:
            assert time.monotonic() < deadline, "alice never got the devs team's rights"
            time.sleep(0.3)
        assert _actions(http, "bob", password_of("bob"), scope) == ["pull", "push"]
        assert _actions(http, "carol", password_of("carol"), scope) == []  # ops, not devs
        # The directory's spelling names the account: "ALICE" is alice, not a second account.
        assert _actions(http, "ALICE", password_of("alice"), scope) == ["pull", "push"]
        r = http.get("/auth/token", params={"service": "dockyard"}, headers=basic("alice", "wrong-password"))
        assert r.status_code == 401
        r = http.get("/auth/token", params={"service": "dockyard"}, headers=basic("alice", ""))
        assert r.status_code == 401
        # An LDAP user can push where its team may.
        r = http.post("/v2/acme/app/blobs/uploads/", headers=basic("bob", password_of("bob")))
        assert r.status_code == 202
        # LDAP users have their own namespace like everyone else.
        assert _actions(http, "carol", password_of("carol"), "repository:carol/tools:pull,push") == ["pull", "push"]
    import sqlite3

    con = sqlite3.connect(ldap_server.data_dir / "db" / "dockyard.db")
    names = [r[0] for r in con.execute("select name from accounts where kind = 'user' order by name")]
    synced = con.execute("select count(*) from audit_events where action = 'team.ldap_sync'").fetchone()[0]
    con.close()
    assert names.count("alice") == 1 and "ALICE" not in names
    assert synced >= 1
