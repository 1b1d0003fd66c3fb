"""skopeo pushes and pulls over HTTPS, trusting the CA through --dest-cert-dir/--src-cert-dir."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.integration.clients import Clients, LayoutWriter, Platform

pytestmark = [pytest.mark.clients, pytest.mark.xdist_group("tls")]


@pytest.fixture
def tls_clients(tls_server: RunningServer, tmp_path: Path) -> Iterator[Clients]:
    c = Clients(tls_server, tmp_path)
    yield c
    c.close()


def test_skopeo_copy_over_https_and_pull_back(tls_server: RunningServer, tls_clients: Clients, tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "layout")
    image = writer.image([{"f.txt": b"x"}], Platform("amd64"))
    writer.tag(image.descriptor, "latest")
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(tls_server.data_dir / "ca" / "ca.crt", certs / "ca.crt")
    ref = f"docker://{tls_server.host}/tls/app:latest"
    digestfile = tmp_path / "digest"
    tls_clients.skopeo("copy", "--dest-cert-dir", certs, "--digestfile", digestfile, f"oci:{writer.root}:latest", ref)
    assert digestfile.read_text().strip() == image.digest
    back = tmp_path / "back"
    tls_clients.skopeo("copy", "--src-cert-dir", certs, ref, f"oci:{back}:latest")
    index = json.loads((back / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    # Without the CA skopeo refuses the certificate (it is not in the system trust store).
    res = tls_clients.skopeo("inspect", "--raw", ref, check=False)
    assert res.returncode != 0
    assert "certificate" in res.stderr
