"""Authentication and authorization on /v2/ and the token service, over HTTP."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.auth.world import PASSWORD, basic, populate
from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server
from tests.helpers import DOCKER_MANIFEST, errors_of, sha256

ADMIN = basic("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(
        tmp_path_factory.mktemp("auth") / "data",
        auth=True,
        extra_env={
            "DOCKYARD_AUTH__FAILED_LOGIN_LIMIT": "5",
            "DOCKYARD_AUTH__FAILED_LOGIN_WINDOW_SECONDS": "3",
            "DOCKYARD_AUTH__FAILED_LOGIN_LIMIT_PER_ADDRESS": "1000",
        },
    )
    populate(s.data_dir)
    yield s
    s.stop()


@pytest.fixture
def http(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with auth_server.client() as c:
        yield c


def challenge(r: httpx.Response) -> dict[str, str]:
    header = r.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def token_for(http: httpx.Client, scope: str, user: str | None = None, password: str = PASSWORD) -> str:
    """The docker client's dance: GET the realm with the challenge's service and scope."""
    headers = basic(user, password) if user else {}
    r = http.get("/auth/token", params={"service": "dockyard", "scope": scope}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] >= 60
    return str(body["token"])


def granted(token: str) -> dict[str, list[str]]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return {f"{a['type']}:{a['name']}": a["actions"] for a in claims["access"]}


def test_base_challenges_anonymous_and_accepts_credentials(http: httpx.Client) -> None:
    r = http.get("/v2/")
    assert r.status_code == 401 and errors_of(r) == ["UNAUTHORIZED"]
    c = challenge(r)
    assert c["realm"].endswith("/auth/token") and c["service"] == "dockyard" and "scope" not in c
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert http.get("/v2/", headers=ADMIN).status_code == 200
    token = token_for(http, "", "bob")
    assert http.get("/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = http.get("/v2/", headers=basic("bob", "wrong-password"))
    assert r.status_code == 401


def test_the_full_token_dance(http: httpx.Client) -> None:
    data = os.urandom(100)
    url = f"/v2/acme/app/blobs/uploads/?digest={sha256(data)}"
    r = http.post(url, content=data)
    assert r.status_code == 401
    c = challenge(r)
    assert c["scope"] == "repository:acme/app:pull,push"
    assert json.loads(r.text)["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "acme/app", "Action": "pull"},
        {"Type": "repository", "Name": "acme/app", "Action": "push"},
    ]
    token = token_for(http, c["scope"], "bob")
    assert granted(token) == {"repository:acme/app": ["pull", "push"]}
    r = http.post(url, content=data, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text


def test_token_has_kid_and_x5c_and_verifies_with_the_certificate(http: httpx.Client) -> None:
    from cryptography import x509

    token = token_for(http, "repository:acme/pub:pull", None)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", header["kid"])
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    claims = jwt.decode(token, cert.public_key(), algorithms=["ES256"], audience="dockyard")  # type: ignore[arg-type]
    assert claims["sub"] == "" and claims["iss"] == "dockyard"
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 300


# (who, scope asked) -> actions granted: requested ∩ allowed, never an error
GRANTS = [
    (None, "repository:acme/app:pull", []),
    (None, "repository:acme/pub:pull,push", ["pull"]),
    ("carol", "repository:acme/app:pull,push", ["pull"]),
    ("bob", "repository:acme/app:pull,push,delete", ["delete", "pull", "push"]),
    ("bob", "repository:acme/app:*", []),
    ("alice", "repository:acme/app:*", ["*"]),
    ("dave", "repository:acme/app:pull", []),
    ("dave", "repository:acme/pub:pull,push", ["pull"]),
    ("alice", "repository:alice/own:pull,push", ["pull", "push"]),
    ("bob", "repository:alice/own:pull", []),
    ("dave", "repository:dave/new-repo:pull,push", ["pull", "push"]),  # create on push, own namespace
    ("dave", "repository:acme/new-repo:pull,push", []),
    ("alice", "repository:acme/new-repo:pull,push", ["pull", "push"]),  # org owner
    ("bob", "registry:catalog:*", ["*"]),
    (None, "registry:catalog:*", []),
    ("bob", "unknown:thing:read", []),
]


@pytest.mark.parametrize(("user", "scope", "expected"), GRANTS)
def test_granted_is_requested_intersected_with_allowed(
    http: httpx.Client, user: str | None, scope: str, expected: list[str]
) -> None:
    token = token_for(http, scope, user)
    got = granted(token)
    key = ":".join(scope.split(":")[:2])
    assert got.get(key, []) == expected


def _manifest_push(http: httpx.Client, repo: str, headers: dict[str, str]) -> int:
    config = b'{"architecture":"amd64","os":"linux"}'
    r = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config, headers=headers)
    if r.status_code != 201:
        return r.status_code
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": sha256(config),
            },
            "layers": [],
        }
    ).encode()
    r = http.put(f"/v2/{repo}/manifests/latest", content=body, headers={**headers, "Content-Type": DOCKER_MANIFEST})
    return r.status_code


@pytest.fixture(scope="module")
def seeded(auth_server: RunningServer) -> None:
    with auth_server.client() as c:
        for repo in ("acme/app", "acme/pub", "alice/own"):
            assert _manifest_push(c, repo, ADMIN) == 201


# The permission matrix with Basic credentials straight on /v2/ (no token).
MATRIX = [
    # who, method, repo, allowed
    (None, "pull", "acme/pub", True),
    (None, "pull", "acme/app", False),
    (None, "push", "acme/pub", False),
    ("carol", "pull", "acme/app", True),
    ("carol", "push", "acme/app", False),
    ("carol", "delete", "acme/app", False),
    ("bob", "pull", "acme/app", True),
    ("bob", "push", "acme/app", True),
    ("bob", "delete", "acme/app", True),
    ("bob", "push", "acme/pub", False),
    ("dave", "pull", "acme/app", False),
    ("dave", "pull", "acme/pub", True),
    ("dave", "pull", "alice/own", False),
    ("alice", "pull", "alice/own", True),
    ("alice", "push", "acme/app", True),
    ("admin", "delete", "alice/own", True),
]


@pytest.mark.parametrize(("user", "action", "repo", "allowed"), MATRIX)
def test_permission_matrix(
    http: httpx.Client, seeded: None, user: str | None, action: str, repo: str, allowed: bool
) -> None:
    headers = {} if user is None else ADMIN if user == "admin" else basic(user)
    if action == "pull":
        r = http.get(f"/v2/{repo}/manifests/latest", headers=headers)
        ok = r.status_code == 200
    elif action == "push":
        r = http.post(f"/v2/{repo}/blobs/uploads/", headers=headers)
        ok = r.status_code == 202
    else:
        r = http.delete(f"/v2/{repo}/manifests/{sha256(b'nothing')}", headers=headers)
        ok = r.status_code == 404 and errors_of(r) == ["MANIFEST_UNKNOWN"]  # allowed through, nothing there
    assert ok == allowed, (r.status_code, r.text)
    if not allowed:
        assert r.status_code == (401 if user is None else 403)


def test_catalog_lists_only_what_the_caller_may_see(http: httpx.Client, seeded: None) -> None:
    assert http.get("/v2/_catalog").status_code == 401
    seen = {u: set(http.get("/v2/_catalog", headers=basic(u)).json()["repositories"]) for u in ("carol", "dave")}
    assert {"acme/app", "acme/pub"} <= seen["carol"] and "alice/own" not in seen["carol"]
    assert "acme/pub" in seen["dave"] and not seen["dave"] & {"acme/app", "alice/own"}
    everything = set(http.get("/v2/_catalog", headers=ADMIN).json()["repositories"])
    assert {"acme/app", "acme/pub", "alice/own"} <= everything
    token = token_for(http, "registry:catalog:*", "carol")
    r = http.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
    assert set(r.json()["repositories"]) == seen["carol"]


def test_create_on_push_only_in_own_namespace(http: httpx.Client) -> None:
    assert _manifest_push(http, "dave/made-by-push", basic("dave")) == 201
    assert _manifest_push(http, "acme/made-by-dave", basic("dave")) == 403
    # The new repository is private: others cannot pull it.
    assert http.get("/v2/dave/made-by-push/manifests/latest", headers=basic("bob")).status_code == 403
    assert http.get("/v2/dave/made-by-push/manifests/latest", headers=basic("dave")).status_code == 200


def test_mount_needs_pull_on_the_source(http: httpx.Client, seeded: None) -> None:
    secret = os.urandom(64)
    r = http.post(
        "/v2/alice/own/blobs/uploads/", params={"digest": sha256(secret)}, content=secret, headers=basic("alice")
    )
    assert r.status_code == 201
    for params in ({"mount": sha256(secret), "from": "alice/own"}, {"mount": sha256(secret)}):
        r = http.post("/v2/dave/loot/blobs/uploads/", params=params, headers=basic("dave"))
        assert r.status_code == 202  # an ordinary upload, not a mount
    assert http.head(f"/v2/dave/loot/blobs/{sha256(secret)}", headers=basic("dave")).status_code == 404
    r = http.post(
        "/v2/alice/copy/blobs/uploads/", params={"mount": sha256(secret), "from": "alice/own"}, headers=basic("alice")
    )
    assert r.status_code == 201


def test_refresh_tokens_with_the_post_grant(http: httpx.Client) -> None:
    r = http.get(
        "/auth/token",
        params={"service": "dockyard", "offline_token": "true", "client_id": "docker", "account": "bob"},
        headers=basic("bob"),
    )
    refresh = r.json()["refresh_token"]
    r = http.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "dockyard",
            "client_id": "docker",
            "scope": "repository:acme/app:pull,push repository:alice/own:pull",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "repository:acme/app:pull,push"
    assert granted(body["access_token"]) == {"repository:acme/app": ["pull", "push"], "repository:alice/own": []}
    # Password grant with access_type=offline gives a refresh token too.
    r = http.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": "carol",
            "password": PASSWORD,
            "service": "dockyard",
            "client_id": "test",
            "access_type": "offline",
            "scope": "repository:acme/app:pull",
        },
    )
    assert r.status_code == 200 and "refresh_token" in r.json()
    # A refresh token is bound to its service and is not an access token.
    r = http.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "service": "other", "client_id": "docker"},
    )
    assert r.status_code == 400
    assert http.get("/v2/", headers={"Authorization": f"Bearer {refresh}"}).status_code == 401
    r = http.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh + "x",
            "service": "dockyard",
            "client_id": "docker",
        },
    )
    assert r.status_code == 401


def test_tampered_expired_and_foreign_tokens_are_refused(http: httpx.Client, auth_server: RunningServer) -> None:
    token = token_for(http, "repository:acme/app:pull", "carol")
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["access"][0]["actions"] = ["pull", "push"]
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged_body}.{sig}", token[:-4] + "AAAA", "not.a.token", "x"):
        r = http.post("/v2/acme/app/blobs/uploads/", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
        assert challenge(r)["error"] == "invalid_token"
    # Signed by another key (another installation): refused.
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    foreign = jwt.encode(
        {
            "iss": "dockyard",
            "sub": "admin",
            "aud": "dockyard",
            "exp": now + 300,
            "nbf": now,
            "iat": now,
            "access": [{"type": "repository", "name": "acme/app", "actions": ["*"]}],
        },
        other,
        algorithm="ES256",
    )
    assert http.get("/v2/acme/app/manifests/latest", headers={"Authorization": f"Bearer {foreign}"}).status_code == 401
    # A token for another service (audience) is refused too.
    r = http.get("/auth/token", params={"service": "elsewhere", "scope": "repository:acme/pub:pull"})
    assert r.status_code == 400
    # A valid token without the needed action: 401 insufficient_scope.
    r = http.post("/v2/acme/app/blobs/uploads/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and challenge(r)["error"] == "insufficient_scope"


def test_wrong_password_gets_the_docker_error_shape(http: httpx.Client) -> None:
    r = http.get("/auth/token", params={"service": "dockyard"}, headers=basic("bob", "nope-nope"))
    assert r.status_code == 401 and r.json()["details"] == "incorrect username or password"
    r = http.get("/auth/token", params={"service": "dockyard"}, headers=basic("nobody-here", "nope-nope"))
    assert r.status_code == 401 and r.json()["details"] == "incorrect username or password"


def test_failed_logins_are_rate_limited(http: httpx.Client) -> None:
    for _ in range(5):
        assert http.get("/v2/", headers=basic("carol", "bad-guess-123")).status_code == 401
    r = http.get("/v2/", headers=basic("carol", PASSWORD))
    assert r.status_code == 429 and errors_of(r) == ["TOOMANYREQUESTS"] and "retry-after" in r.headers
    time.sleep(3.2)  # the test server's window is 3 s
    assert http.get("/v2/", headers=basic("carol", PASSWORD)).status_code == 200


def test_no_timing_difference_between_unknown_user_and_wrong_password(http: httpx.Client) -> None:
    def timed(user: str) -> float:
        best = 10.0
        for _ in range(4):
            t = time.perf_counter()
            http.get("/auth/token", params={"service": "dockyard"}, headers=basic(user, f"wrong-{os.urandom(4).hex()}"))
            best = min(best, time.perf_counter() - t)
        return best

    known, unknown = timed("dave"), timed(f"ghost{os.getpid()}")
    # Both pay one argon2 check; a short-cut for unknown users would be many times faster.
    assert unknown > known * 0.5 and known > unknown * 0.5, (known, unknown)


def test_keys_are_encrypted_at_rest(auth_server: RunningServer) -> None:
    key = (auth_server.data_dir / "config" / "token-signing.key").read_text()
    assert "ENCRYPTED PRIVATE KEY" in key
    assert oct((auth_server.data_dir / "config" / "master.key").stat().st_mode & 0o777) == "0o600"


def test_auth_decisions_are_audited(auth_server: RunningServer, http: httpx.Client) -> None:
    import sqlite3

    http.get("/auth/token", params={"service": "dockyard"}, headers=basic("bob", "definitely-wrong"))
    token_for(http, "repository:alice/own:pull", "bob")
    con = sqlite3.connect(Path(auth_server.data_dir) / "db" / "dockyard.db")
    rows = con.execute("select actor, action, outcome from audit_events where actor = 'bob'").fetchall()
    con.close()
    assert ("bob", "login", "failed") in rows
    assert ("bob", "token", "denied") in rows


def test_the_authorized_name_is_the_served_name(http: httpx.Client, seeded: None) -> None:
    """A path naming a public repository early on must not unlock a private one whose name
    contains it: the router's name is the one authorized."""
    secret = os.urandom(32)
    r = http.post(
        "/v2/acme/pub/manifests/x/blobs/uploads/", params={"digest": sha256(secret)}, content=secret, headers=ADMIN
    )
    assert r.status_code == 201
    for headers in ({}, basic("dave")):
        r = http.get(f"/v2/acme/pub/manifests/x/blobs/{sha256(secret)}", headers=headers)
        assert r.status_code in (401, 403) and secret not in r.content
    assert http.get(f"/v2/acme/pub/manifests/x/blobs/{sha256(secret)}", headers=ADMIN).content == secret
