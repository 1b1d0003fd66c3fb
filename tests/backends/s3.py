"""A real S3 API for the tests: moto's standalone server (``moto[server]``) as a subprocess
on a free loopback port. One bucket per server; tests keep apart by key prefix."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.backends import server_env, stop_process
from tests.conftest import free_port

BUCKET = "dockyard-tests"
REGION = "us-east-1"
# moto accepts any credentials; fixed ones keep the driver off the environment's chain.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"


class MotoS3:
    name = "s3"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "moto.log"
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready()
            self.client().create_bucket(Bucket=BUCKET)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"moto server did not answer in {seconds:.0f} s:\n{self.log_path.read_text()}")

    def client(self) -> Any:
        """A plain boto3 client on the same server, for tests that look behind the driver."""
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def params(self, prefix: str) -> dict[str, Any]:
        return {
            "bucket": BUCKET,
            "region": REGION,
            "endpoint_url": self.endpoint_url,
            "prefix": prefix,
            "force_path_style": True,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
        }

    def server_env(self, prefix: str) -> dict[str, str]:
        return server_env("s3", self.params(prefix))

    def stop(self) -> None:
        stop_process(self.process)


def start(workdir: Path) -> MotoS3:
    return MotoS3(workdir)
