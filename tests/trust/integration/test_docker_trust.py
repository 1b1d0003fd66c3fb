"""The real docker CLI with DOCKER_CONTENT_TRUST=1 against Dockyard over HTTPS with accounts:
a trusted push signs (the CLI talks to the trust server under the registry's host), ``docker
trust inspect`` shows the signature, a trusted pull resolves the tag through the trust data,
and with the repository set to signed-only an ordinary pull by tag needs a valid signature.

dockerd (the shared fixture of tests/integration) reaches 127.0.0.1 as an insecure registry,
so it needs no CA; the CLI's notary client reads the trust server's CA from
``$DOCKER_CONFIG/tls/<host:port>/ca.crt``. Each test module keeps its own DOCKER_CONFIG
(credentials and the trust keys under ``trust/``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server
from tests.integration.clients import DockerDaemon, Result, docker_pull_digest, docker_push_digest, run, tar_layer

pytestmark = [pytest.mark.clients, pytest.mark.xdist_group("dockerd")]

PASSPHRASES = {
    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "docker-root-passphrase",
    "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "docker-repository-passphrase",
}


@pytest.fixture(scope="module")
def trust_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("docker-trust") / "data", auth=True, tls=True)
    yield s
    s.stop()


@dataclass
class DockerTrust:
    """The docker CLI bound to the shared dockerd, with a private config, logged in as admin."""

    daemon: DockerDaemon
    server: RunningServer
    config: Path

    def __call__(
        self, *args: str | Path, trust: bool = False, check: bool = True, stdin: bytes | None = None
    ) -> Result:
        env = {**os.environ, "DOCKER_CONFIG": str(self.config), "DOCKER_BUILDKIT": "0", **PASSPHRASES}
        for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONTENT_TRUST", "DOCKER_CONTENT_TRUST_SERVER"):
            env.pop(name, None)
        if trust:
            env["DOCKER_CONTENT_TRUST"] = "1"
        return run(
            [self.daemon.cli, "-H", f"unix://{self.daemon.sock}", *map(str, args)],
            env=env,
            check=check,
            stdin=stdin,
            timeout=180,
            context=self.daemon.context,
            log_dir=self.daemon.root,
        )

    def ref(self, repo: str, tag: str) -> str:
        return f"{self.server.host}/{repo}:{tag}"

    def image(self, repo: str, tag: str, content: str) -> str:
        """A one-layer image made locally by ``docker import`` of a tiny tar."""
        ref = self.ref(repo, tag)
        self("import", "-", ref, stdin=tar_layer({f"{tag}.txt": content.encode() * 50}))
        return ref

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.server.url}/api/v0",
            timeout=60,
            verify=self.server.verify(),
            auth=("admin", ADMIN_PASSWORD),
        )

    def forget_local(self, *refs: str) -> None:
        self("rmi", "-f", *refs, check=False)


@pytest.fixture(scope="module")
def cli(
    dockerd: DockerDaemon,
    trust_server: RunningServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DockerTrust]:
    config = tmp_path_factory.mktemp("docker-trust-config")
    tls = config / "tls" / trust_server.host
    tls.mkdir(parents=True)
    shutil.copy(trust_server.data_dir / "ca" / "ca.crt", tls / "ca.crt")
    dockerd.registry = trust_server
    c = DockerTrust(dockerd, trust_server, config)
    out = c("login", "-u", "admin", "--password-stdin", trust_server.host, stdin=f"{ADMIN_PASSWORD}\n".encode())
    assert "Login Succeeded" in out.out
    yield c
    c("logout", trust_server.host, check=False)


def failure(res: Result) -> str:
    assert res.returncode != 0, f"expected a failure: {res.args}\n{res.out}\n{res.stderr}"
    return res.out + res.stderr


def trusted_push(cli: DockerTrust, ref: str) -> str:
    res = cli("push", ref, trust=True)
    assert f"Successfully signed {ref}" in res.out + res.stderr, res.out + res.stderr
    return docker_push_digest(res.out)


def test_trusted_push_inspect_and_pull(cli: DockerTrust) -> None:
    repo = "admin/trusted"
    signed = cli.image(repo, "v1", "signed")
    digest = trusted_push(cli, signed)
    gun = f"{cli.server.host}/{repo}"

    inspected: list[dict[str, Any]] = json.loads(cli("trust", "inspect", signed).out)
    (entry,) = inspected
    assert entry["Name"] == signed
    assert [(t["SignedTag"], t["Digest"]) for t in entry["SignedTags"]] == [("v1", digest.removeprefix("sha256:"))]
    assert entry["SignedTags"][0]["Signers"] == ["Repo Admin"]  # signed with the targets key
    keys = {k["Name"]: k["Keys"] for k in entry["AdministrativeKeys"]}
    assert set(keys) == {"Root", "Repository"} and all(len(v) == 1 for v in keys.values())
    pretty = cli("trust", "inspect", "--pretty", signed).out
    assert "Signatures for " + signed in pretty and "Repo Admin" in pretty

    # The tags listing of the API shows the same signature.
    with cli.api() as api:
        tags = {t["name"]: t for t in api.get(f"/repositories/{repo}/tags").json()}
    assert tags["v1"]["signed"] is True and tags["v1"]["digest"] == digest
    (sig,) = tags["v1"]["signatures"]
    assert sig["gun"] == gun and sig["role"] == "targets" and sig["keyIds"] == [keys["Repository"][0]["ID"]]

    # A trusted pull asks the trust server for the tag's digest and pulls by digest.
    cli.forget_local(signed)
    res = cli("pull", signed, trust=True)
    assert f"{repo}@{digest}" in res.out and docker_pull_digest(res.out) == digest

    # A tag pushed without trust has no trust data: a trusted pull refuses it.
    unsigned = cli.image(repo, "unsigned", "unsigned")
    cli("push", unsigned)
    cli.forget_local(unsigned)
    text = failure(cli("pull", unsigned, trust=True, check=False))
    assert "No valid trust data for unsigned" in text, text
    # A repository never signed at all: "does not have trust data".
    never = cli.image("admin/never-signed", "v1", "never")
    cli("push", never)
    cli.forget_local(never)
    text = failure(cli("pull", never, trust=True, check=False))
    assert f"does not have trust data for {cli.server.host}/admin/never-signed" in text, text
    cli.forget_local(signed, unsigned)


def test_signed_only_repository_refuses_untrusted_pulls_of_unsigned_tags(cli: DockerTrust) -> None:
    repo = "admin/guarded"
    signed = cli.image(repo, "signed", "signed")
    signed_digest = trusted_push(cli, signed)
    moved = cli.image(repo, "moved", "moved-before")
    moved_digest = trusted_push(cli, moved)
    unsigned = cli.image(repo, "unsigned", "unsigned")
    cli("push", unsigned)
    # The signed tag "moved" now points at a different image, pushed without trust.
    cli("import", "-", moved, stdin=tar_layer({"moved.txt": b"moved-after" * 50}))
    new_digest = docker_push_digest(cli("push", moved).out)
    assert new_digest != moved_digest
    cli.forget_local(signed, moved, unsigned)

    with cli.api() as api:
        r = api.patch(f"/repositories/{repo}", json={"signedOnly": True, "acceptedSignatures": ["notary"]})
        assert r.status_code == 200 and r.json()["signedOnly"] is True, r.text

    text = failure(cli("pull", unsigned, check=False))
    assert f"denied: {repo}:unsigned may not be pulled by tag" in text, text
    assert "accepts only signed content (notary)" in text, text
    text = failure(cli("pull", moved, check=False))
    assert "is not the one it points to" in text and moved_digest in text and new_digest in text, text
    assert docker_pull_digest(cli("pull", signed).out) == signed_digest
    # By digest the policy does not apply.
    res = cli("pull", f"{cli.server.host}/{repo}@{new_digest}")
    assert docker_pull_digest(res.out) == new_digest
    # A trusted pull of the moved tag gets the signed digest, which the policy allows.
    res = cli("pull", moved, trust=True)
    assert f"{repo}@{moved_digest}" in res.out

    with cli.api() as api:
        assert api.patch(f"/repositories/{repo}", json={"signedOnly": False}).status_code == 200
    assert docker_pull_digest(cli("pull", unsigned).out)
    cli.forget_local(signed, moved, unsigned, f"{cli.server.host}/{repo}@{new_digest}")
