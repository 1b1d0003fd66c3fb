"""Azurite, Microsoft's Azure Storage emulator (npm package ``azurite``), for the azure driver.

Installed by ``npm install --prefix <repo>/.tools azurite@3``; only its blob service runs,
on a free loopback port, keeping its data under the given work directory.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.backends import server_env, stop_process
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
INSTALL = f"npm install --prefix {ROOT / '.tools'} azurite@3"
# The emulator's fixed development account, published in Azurite's documentation.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "dockyard"


class Azurite:
    name = "azure"

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.endpoint};"

    def params(self, prefix: str) -> dict[str, Any]:
        return {
            "account_name": ACCOUNT,
            "account_key": KEY,
            "endpoint_url": self.endpoint,
            "container": CONTAINER,
            "prefix": prefix,
        }

    def server_env(self, prefix: str) -> dict[str, str]:
        return server_env("azure", self.params(prefix))

    def create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        credential = {"account_name": ACCOUNT, "account_key": KEY}
        with (
            BlobServiceClient(self.endpoint, credential=credential) as service,
            contextlib.suppress(ResourceExistsError),
        ):
            service.create_container(CONTAINER)

    def stop(self) -> None:
        stop_process(self.process)


def start(workdir: Path) -> Azurite:
    if not AZURITE.exists():
        raise RuntimeError(f"Azurite is not installed: run {INSTALL}")
    data = workdir / "azurite"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "azurite.log"
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                str(AZURITE),
                *("--blobHost", "127.0.0.1", "--blobPort", str(port)),
                *("--location", str(data)),
                "--silent",
                *(("--debug", os.environ["AZURITE_DEBUG_LOG"]) if os.environ.get("AZURITE_DEBUG_LOG") else ()),
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    backend = Azurite(process, port, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite-blob exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            # Any HTTP answer (an unsigned request is refused) means it is listening.
            httpx.get(f"{backend.endpoint}?comp=list", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        backend.stop()
        raise RuntimeError(f"azurite-blob did not answer in 60 s:\n{log_path.read_text()}")
    try:
        backend.create_container()
    except BaseException:
        backend.stop()
        raise
    return backend
