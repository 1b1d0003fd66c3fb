"""Real clients against a registry with accounts: docker login (identity tokens), podman
login, skopeo --creds, access tokens as passwords, and refusals where rights are missing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.world import PASSWORD, offline_services, populate
from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server

from .clients import Clients, DockerDaemon, LayoutWriter, Platform, docker_pull_digest, docker_push_digest

pytestmark = [pytest.mark.clients, pytest.mark.xdist_group("dockerd")]


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("auth-clients") / "data", auth=True)
    populate(s.data_dir)
    yield s
    s.stop()


@pytest.fixture
def authed(auth_registry: RunningServer, tmp_path: Path) -> Iterator[Clients]:
    c = Clients(auth_registry, tmp_path)
    yield c
    c.close()


def _image(tmp_path: Path, name: str) -> str:
    writer = LayoutWriter(tmp_path / name)
    image = writer.image([{f"{name}.txt": name.encode() * 100}], Platform("amd64"))
    writer.tag(image.descriptor, "latest")
    return f"oci:{tmp_path / name}:latest"


async def _token(data_dir: Path, user: str, revoke: bool) -> str:
    db, accounts = offline_services(data_dir)
    new = await accounts.create_token(user, user, "ci")
    if revoke:
        await accounts.revoke_token(user, user, new.id)
    db.dispose()
    return new.token


def test_skopeo_with_creds_and_access_tokens(authed: Clients, auth_registry: RunningServer, tmp_path: Path) -> None:
    src = _image(tmp_path, "skopeo-auth")
    digest = authed.push(src, "acme/app", "skopeo", "--dest-creds", f"bob:{PASSWORD}")
    raw = authed.inspect_raw("acme/app", "skopeo", "--creds", f"carol:{PASSWORD}")
    assert authed.inspect("acme/app", digest, "--creds", f"carol:{PASSWORD}")["Digest"] == digest
    assert json.loads(raw)["schemaVersion"] == 2
    # Refusals: a reader cannot push, an outsider cannot read, anonymous cannot read private.
    for args in (
        [
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"carol:{PASSWORD}",
            src,
            f"docker://{authed.ref('acme/app', 'x')}",
        ],
        [
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"dave:{PASSWORD}",
            f"docker://{authed.ref('acme/app', 'skopeo')}",
        ],
        ["inspect", "--tls-verify=false", f"docker://{authed.ref('acme/app', 'skopeo')}"],
        [
            "inspect",
            "--tls-verify=false",
            "--creds",
            "bob:wrong-password",
            f"docker://{authed.ref('acme/app', 'skopeo')}",
        ],
    ):
        res = authed.skopeo(*args, check=False)
        assert res.returncode != 0
        assert "denied" in res.stderr or "unauthorized" in res.stderr.lower()
    # An access token works as the password; a revoked one does not.
    token = asyncio.run(_token(auth_registry.data_dir, "bob", revoke=False))
    authed.push(src, "acme/app", "token", "--dest-creds", f"bob:{token}")
    revoked = asyncio.run(_token(auth_registry.data_dir, "bob", revoke=True))
    res = authed.skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"bob:{revoked}",
        f"docker://{authed.ref('acme/app', 'token')}",
        check=False,
    )
    assert res.returncode != 0


def test_podman_login_push_pull(authed: Clients, tmp_path: Path) -> None:
    src = _image(tmp_path, "podman-auth")
    authed.push(src, "admin/base", "v1", "--dest-creds", f"admin:{ADMIN_PASSWORD}")
    podman = authed.podman
    res = podman("login", "--tls-verify=false", "-u", "bob", "-p", "wrong-password", authed.host, check=False)
    assert res.returncode != 0
    podman("login", "--tls-verify=false", "-u", "admin", "-p", ADMIN_PASSWORD, authed.host)
    podman.pull(authed.ref("admin/base", "v1"))
    podman("logout", authed.host)
    podman("login", "--tls-verify=false", "-u", "bob", "-p", PASSWORD, authed.host)
    podman("tag", authed.ref("admin/base", "v1"), authed.ref("acme/app", "from-podman"))
    pushed = podman.push(authed.ref("acme/app", "from-podman"))
    assert authed.inspect("acme/app", "from-podman", "--creds", f"carol:{PASSWORD}")["Digest"] == pushed
    res = podman(
        "push", "--tls-verify=false", authed.ref("acme/app", "from-podman"), authed.ref("alice/own", "x"), check=False
    )
    assert res.returncode != 0  # bob may not write alice's namespace


def test_docker_login_push_pull(
    dockerd: DockerDaemon, authed: Clients, auth_registry: RunningServer, tmp_path: Path
) -> None:
    dockerd.registry = auth_registry
    src = _image(tmp_path, "docker-auth")
    authed.push(src, "acme/pub", "v1", "--dest-creds", f"alice:{PASSWORD}")
    # Public content pulls without logging in.
    out = dockerd.docker("pull", authed.ref("acme/pub", "v1")).out
    assert docker_pull_digest(out)
    res = dockerd.docker("login", "-u", "bob", "--password-stdin", authed.host, check=False, stdin=b"wrong-password\n")
    assert res.returncode != 0 and "unauthorized" in (res.stderr + res.out).lower()
    res = dockerd.docker("login", "-u", "bob", "--password-stdin", authed.host, stdin=f"{PASSWORD}\n".encode())
    assert "Login Succeeded" in res.out
    # docker stores the refresh token it was given (an identity token), not the password.
    config = json.loads((dockerd.root / "cli-config" / "config.json").read_text())
    entry = config["auths"][authed.host]
    assert entry.get("identitytoken") and PASSWORD not in json.dumps(config)
    dockerd.docker("tag", authed.ref("acme/pub", "v1"), authed.ref("acme/app", "from-docker"))
    out = dockerd.docker("push", authed.ref("acme/app", "from-docker")).out
    pushed = docker_push_digest(out)
    assert "Mounted from acme/pub" in out  # cross-repository mount with the from-repo in scope
    dockerd.docker("rmi", authed.ref("acme/app", "from-docker"))
    out = dockerd.docker("pull", authed.ref("acme/app", "from-docker")).out
    assert docker_pull_digest(out) == pushed
    # Pushing where bob has no rights fails with docker's "denied" message.
    dockerd.docker("tag", authed.ref("acme/pub", "v1"), authed.ref("alice/own", "nope"))
    res = dockerd.docker("push", authed.ref("alice/own", "nope"), check=False)
    assert res.returncode != 0 and "denied" in (res.stderr + res.out)
    dockerd.docker("logout", authed.host)
    res = dockerd.docker("pull", authed.ref("acme/app", "from-docker"), check=False)
    assert res.returncode != 0
    dockerd.docker("rmi", "-f", authed.ref("acme/pub", "v1"), authed.ref("alice/own", "nope"), check=False)
