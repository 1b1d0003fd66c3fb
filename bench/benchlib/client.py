"""A thin, low-overhead registry client on http.client (one keep-alive connection).

Bodies are sent as one bytes/memoryview object, which http.client hands to a single
`socket.sendall`: no per-chunk Python work, so the client is not what limits throughput.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from .servers import LOOPBACK

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCTET = "application/octet-stream"


class RegistryError(RuntimeError):
    pass


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def sha256_digest(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """Requests to one registry on 127.0.0.1:<port>. Never talks to any other address."""

    def __init__(self, port: int, timeout: float = 300.0) -> None:
        self.port = port
        self.base = f"http://{LOOPBACK}:{port}"
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | memoryview | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        hdrs = dict(headers or {})
        if body is not None or method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", str(len(body) if body is not None else 0))
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            raise RegistryError(f"{method} {path}: {type(e).__name__}: {e}") from e
        return Response(resp.status, resp.headers, data)

    def expect(self, resp: Response, status: int, what: str) -> Response:
        if resp.status != status:
            snippet = resp.body[:300].decode(errors="replace")
            raise RegistryError(f"{what}: expected HTTP {status}, got {resp.status}: {snippet}")
        return resp

    def location(self, resp: Response, request_path: str, what: str) -> str:
        """The path+query of a Location header, resolved against the request that returned it."""
        loc = resp.header("Location")
        if not loc:
            raise RegistryError(f"{what}: no Location header")
        parts = urlsplit(urljoin(self.base + request_path, loc))
        # Whatever host the server names, we only ever talk to our own loopback server.
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @staticmethod
    def with_digest(path: str, digest: str) -> str:
        return f"{path}{'&' if '?' in path else '?'}digest={quote(digest, safe='')}"

    # -- registry operations ------------------------------------------------------------------

    def start_upload(self, repo: str) -> str:
        path = f"/v2/{repo}/blobs/uploads/"
        resp = self.expect(self.request("POST", path), 202, f"POST {path}")
        return self.location(resp, path, f"POST {path}")

    def push_monolithic(self, repo: str, data: bytes | memoryview, digest: str) -> None:
        """POST, then one PUT <Location>?digest= carrying the whole blob."""
        loc = self.start_upload(repo)
        put = self.with_digest(loc, digest)
        resp = self.request("PUT", put, body=data, headers={"Content-Type": OCTET})
        self.expect(resp, 201, "monolithic PUT")
        got = resp.header("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"monolithic PUT: Docker-Content-Digest {got} != {digest}")

    def push_chunked(self, repo: str, data: bytes | memoryview, digest: str, chunk: int) -> None:
        """POST, PATCH each chunk with Content-Range (following the latest Location), empty PUT."""
        view = memoryview(data)
        loc = self.start_upload(repo)
        for start in range(0, len(view), chunk):
            part = view[start : start + chunk]
            end = start + len(part) - 1
            resp = self.request(
                "PATCH",
                loc,
                body=part,
                headers={"Content-Type": OCTET, "Content-Range": f"{start}-{end}"},
            )
            self.expect(resp, 202, f"PATCH bytes {start}-{end}")
            rng = resp.header("Range")
            if rng is not None and rng.replace("bytes=", "") != f"0-{end}":
                raise RegistryError(f"PATCH bytes {start}-{end}: Range header {rng!r}, want '0-{end}'")
            loc = self.location(resp, loc, "PATCH")
        resp = self.request("PUT", self.with_digest(loc, digest), body=b"")
        self.expect(resp, 201, "closing PUT of chunked upload")

    def check_blob(self, repo: str, digest: str, size: int) -> None:
        path = f"/v2/{repo}/blobs/{digest}"
        resp = self.expect(self.request("HEAD", path), 200, f"HEAD {path}")
        length = resp.header("Content-Length")
        if length is not None and int(length) != size:
            raise RegistryError(f"HEAD {path}: Content-Length {length}, want {size}")

    def verify_blob_content(self, repo: str, digest: str, size: int) -> None:
        """GET the blob streamed through sha256 (untimed correctness check)."""
        path = f"/v2/{repo}/blobs/{digest}"
        try:
            self.conn.request("GET", path)
            resp = self.conn.getresponse()
            if resp.status != 200:
                body = resp.read()[:300].decode(errors="replace")
                raise RegistryError(f"GET {path}: HTTP {resp.status}: {body}")
            h = hashlib.sha256()
            buf = bytearray(4 << 20)
            view = memoryview(buf)
            total = 0
            while n := resp.readinto(buf):
                h.update(view[:n])
                total += n
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            raise RegistryError(f"GET {path}: {type(e).__name__}: {e}") from e
        if total != size or "sha256:" + h.hexdigest() != digest:
            raise RegistryError(f"GET {path}: got {total} bytes with a different digest")

    def put_manifest(self, repo: str, reference: str, manifest: bytes, media_type: str) -> None:
        path = f"/v2/{repo}/manifests/{reference}"
        resp = self.request("PUT", path, body=manifest, headers={"Content-Type": media_type})
        self.expect(resp, 201, f"PUT {path}")

    def get_manifest(self, repo: str, reference: str, accept: str) -> Response:
        path = f"/v2/{repo}/manifests/{reference}"
        return self.expect(self.request("GET", path, headers={"Accept": accept}), 200, f"GET {path}")


def schema2_manifest(config: bytes, layers: list[bytes]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_V2,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [
            {"mediaType": DOCKER_LAYER_GZIP, "size": len(layer), "digest": sha256_digest(layer)} for layer in layers
        ],
    }
    return json.dumps(doc, indent=3).encode()
