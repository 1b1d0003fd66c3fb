"""What authentication costs the hot path: manifest GET by tag on two Dockyard servers side
by side, one with authentication off and one with it on, where wrk sends a valid bearer
token (as docker does after its token dance). Not a test; prints one small table.

    python bench/auth_overhead.py [--runs 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import workloads as w  # noqa: E402
from benchlib.client import sha256_digest  # noqa: E402
from benchlib.servers import LOOPBACK, Server, dockyard_server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-admin-password"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
REPO = "bench/small"


def _request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:300]!r}")
        return data
    finally:
        conn.close()


def push_small_image(port: int, headers: dict[str, str]) -> int:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"x" * 4000
    for blob in (config, layer):
        _request(port, "POST", f"/v2/{REPO}/blobs/uploads/?digest={sha256_digest(blob)}", blob, headers)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": w.DOCKER_MANIFEST_V2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": sha256_digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": sha256_digest(layer),
                }
            ],
        }
    ).encode()
    _request(port, "PUT", f"/v2/{REPO}/manifests/latest", manifest, {**headers, "Content-Type": w.DOCKER_MANIFEST_V2})
    return len(manifest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="wrk runs per server, alternating; best reported")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    args = ap.parse_args(argv)
    s = w.Settings(wrk_duration=args.duration)
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-auth-bench-"))
    servers: list[Server] = []
    try:
        off = dockyard_server("off", "Dockyard, auth off", tmp / "off", REPO_ROOT, [], {})
        on = dockyard_server(
            "on", "Dockyard, auth on", tmp / "on", REPO_ROOT, [],
            {"DOCKYARD_AUTH__ENABLED": "true", "DOCKYARD_ADMIN_PASSWORD": PASSWORD},
        )  # fmt: skip
        for server in (off, on):
            servers.append(server)
            server.start()
        size = push_small_image(off.port, {})
        push_small_image(on.port, BASIC)
        token = json.loads(
            _request(on.port, "GET", f"/auth/token?service=dockyard&scope=repository:{REPO}:pull", headers=BASIC)
        )["token"]
        plans = [
            (off, {"Accept": w.DOCKER_MANIFEST_V2}),
            (on, {"Accept": w.DOCKER_MANIFEST_V2, "Authorization": f"Bearer {token}"}),
        ]
        best: dict[str, float] = {}
        for url, headers in ((f"{srv.url}/v2/{REPO}/manifests/latest", h) for srv, h in plans):
            w.run_wrk(url, s, 2.0, headers)  # warm-up
        for i in range(args.runs):
            for srv, headers in plans:
                res = w.run_wrk(f"{srv.url}/v2/{REPO}/manifests/latest", s, s.wrk_duration, headers)
                if res["non_2xx_3xx"] or (res["bytes_read"] or 0) < 0.95 * size * res["requests"]:
                    raise RuntimeError(f"{srv.label}: failed responses in run {i + 1}")
                rps = res["requests_per_second"]
                print(f"  [{srv.label}] run {i + 1}/{args.runs}: {rps:.0f} req/s", flush=True)
                best[srv.key] = max(best.get(srv.key, 0.0), rps)
        print()
        print(f"{'Manifest GET by tag (wrk, 32 conns)':40}  {'auth off':>9}  {'auth on, bearer':>15}  on/off")
        print(
            f"{'requests/s (best of ' + str(args.runs) + ')':40}  {best['off']:>9.0f}  {best['on']:>15.0f}  "
            f"{best['on'] / best['off']:.2f}"
        )
        return 0
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
