"""The workload: the same steps, run against one server at a time.

Every function takes the per-server state and the settings and returns a Measurement; a
failure of one row is recorded as that row's error and does not stop the other rows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import (
    DOCKER_MANIFEST_V2,
    Registry,
    schema2_manifest,
    sha256_digest,
)
from .images import OciLayout, image_config, random_layer
from .servers import MemorySampler, Server, clean_env

MiB = 1 << 20
CURL = shutil.which("curl") or "/usr/bin/curl"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


class WorkloadError(RuntimeError):
    pass


@dataclass
class Settings:
    runs: int = 3
    blob_bytes: int = 256 * MiB
    chunked_bytes: int = 64 * MiB
    chunk_bytes: int = 8 * MiB
    small_blob_payload: int = 3900  # -> a ~4 KiB gzip'ed tar layer
    wrk_threads: int = 2
    wrk_connections: int = 32
    wrk_duration: float = 10.0
    wrk_warmup: float = 2.0
    layers: int = 20
    layer_min: int = 1 * MiB
    layer_max: int = 2 * MiB


@dataclass
class Measurement:
    value: float | None = None
    runs: list[float] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "runs": self.runs,
            "error": self.error,
            "notes": self.notes,
            **self.extra,
        }


@dataclass
class ServerState:
    """What one server's earlier rows left behind for later rows to use."""

    server: Server
    layouts: list[OciLayout]
    sampler: MemorySampler | None = None
    pushed_blobs: list[tuple[str, str, int]] = field(default_factory=list)  # (repo, digest, size)
    small_image: tuple[str, str, int] | None = None  # (repo, layer digest, layer size)
    skopeo_repos: list[str] = field(default_factory=list)


def log(state: ServerState, msg: str) -> None:
    print(f"  [{state.server.label}] {msg}", file=sys.stderr, flush=True)


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- 1. monolithic push ---------------------------------------------------------------------------


def _push_one(state: ServerState, size: int, repo: str = "bench/monolithic") -> float:
    data = os.urandom(size)  # fresh bytes every run: no dedup
    digest = sha256_digest(data)
    with Registry(state.server.port) as reg:
        seconds = _timed(lambda: reg.push_monolithic(repo, data, digest))
        reg.check_blob(repo, digest, size)
    state.pushed_blobs.append((repo, digest, size))
    return seconds


def monolithic_push(state: ServerState, s: Settings) -> Measurement:
    m = Measurement()
    for i in range(s.runs):
        seconds = _push_one(state, s.blob_bytes)
        m.runs.append(s.blob_bytes / MiB / seconds)
        log(state, f"monolithic push {i + 1}/{s.runs}: {m.runs[-1]:.1f} MiB/s ({seconds:.2f} s)")
    m.value = max(m.runs)
    return m


# -- 2. monolithic pull ---------------------------------------------------------------------------


def _curl_get(url: str, expected_size: int) -> float:
    """Seconds to GET url into /dev/null with curl; checks status and size."""
    cmd = [
        CURL,
        "--silent",
        "--show-error",
        "--noproxy",
        "*",
        "--proto",
        "=http",
        "--max-time",
        "300",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{size_download} %{time_total}",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=330)
    if proc.returncode != 0:
        raise WorkloadError(f"curl exited {proc.returncode}: {proc.stderr.strip()}")
    code, size, total = proc.stdout.split()
    if code != "200":
        raise WorkloadError(f"GET {url}: HTTP {code}")
    if int(size) != expected_size:
        raise WorkloadError(f"GET {url}: {size} bytes, want {expected_size}")
    return float(total)


def monolithic_pull(state: ServerState, s: Settings) -> Measurement:
    m = Measurement()
    blobs = [b for b in state.pushed_blobs if b[2] == s.blob_bytes]
    if not blobs:
        log(state, "pull: pushing a blob first (untimed)")
        _push_one(state, s.blob_bytes)
        blobs = state.pushed_blobs[-1:]
    repo, digest, size = blobs[0]
    with Registry(state.server.port) as reg:  # untimed: is the content right?
        reg.verify_blob_content(repo, digest, size)
    for i in range(s.runs):
        repo, digest, size = blobs[i % len(blobs)]
        seconds = _curl_get(f"{state.server.url}/v2/{repo}/blobs/{digest}", size)
        m.runs.append(size / MiB / seconds)
        log(state, f"monolithic pull {i + 1}/{s.runs}: {m.runs[-1]:.1f} MiB/s ({seconds:.2f} s)")
    m.value = max(m.runs)
    return m


# -- 3. chunked push ------------------------------------------------------------------------------


def chunked_push(state: ServerState, s: Settings) -> Measurement:
    m = Measurement()
    repo = "bench/chunked"
    for i in range(s.runs):
        data = os.urandom(s.chunked_bytes)
        digest = sha256_digest(data)
        with Registry(state.server.port) as reg:
            seconds = _timed(lambda: reg.push_chunked(repo, data, digest, s.chunk_bytes))  # noqa: B023
            reg.check_blob(repo, digest, s.chunked_bytes)
        m.runs.append(s.chunked_bytes / MiB / seconds)
        log(state, f"chunked push {i + 1}/{s.runs}: {m.runs[-1]:.1f} MiB/s ({seconds:.2f} s)")
    m.value = max(m.runs)
    return m


# -- 4./5. wrk rows -------------------------------------------------------------------------------


def _small_image(state: ServerState, s: Settings) -> tuple[str, str, int]:
    """Push (once) config + one ~4 KiB layer + a schema 2 manifest tagged latest."""
    if state.small_image is not None:
        return state.small_image
    repo = "bench/small"
    layer = random_layer(s.small_blob_payload, "small")
    config = image_config([layer])
    manifest = schema2_manifest(config, [layer.blob])
    with Registry(state.server.port) as reg:
        for blob in (config, layer.blob):
            reg.push_monolithic(repo, blob, sha256_digest(blob))
        reg.put_manifest(repo, "latest", manifest, DOCKER_MANIFEST_V2)
        got = reg.get_manifest(repo, "latest", DOCKER_MANIFEST_V2)
        if got.body != manifest:
            raise WorkloadError("GET manifest by tag did not return the pushed bytes")
        reg.check_blob(repo, sha256_digest(layer.blob), len(layer.blob))
    state.small_image = (repo, sha256_digest(layer.blob), len(layer.blob))
    return state.small_image


_WRK_NUMBER = r"([0-9.]+)([a-zA-Z%]*)"
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_latency_ms(out: str, label: str) -> float | None:
    match = re.search(rf"^\s*{re.escape(label)}\s+{_WRK_NUMBER}", out, re.MULTILINE)
    if not match or match.group(2) not in _TIME_UNITS:
        return None
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def run_wrk(url: str, s: Settings, duration: float, headers: dict[str, str]) -> dict[str, Any]:
    cmd = [WRK, f"-t{s.wrk_threads}", f"-c{s.wrk_connections}", f"-d{duration:g}s", "--timeout", "5s"]
    cmd.append("--latency")
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=duration + 60)
    out = proc.stdout
    if proc.returncode != 0:
        raise WorkloadError(f"wrk exited {proc.returncode}: {(proc.stderr or out).strip()[-300:]}")
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    if not rps or not total:
        raise WorkloadError(f"could not parse wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests_per_second": float(rps.group(1)),
        "requests": int(total.group(1)),
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
        if sock
        else {},
        "latency_ms": {
            "avg": _wrk_latency_ms(out, "Latency"),
            "p50": _wrk_latency_ms(out, "50%"),
            "p99": _wrk_latency_ms(out, "99%"),
        },
        "raw": out,
    }


def _wrk_row(state: ServerState, s: Settings, path: str, headers: dict[str, str], name: str) -> Measurement:
    m = Measurement()
    url = f"{state.server.url}{path}"
    if s.wrk_warmup > 0:
        run_wrk(url, s, s.wrk_warmup, headers)
    res = run_wrk(url, s, s.wrk_duration, headers)
    m.extra["wrk"] = res
    m.runs.append(res["requests_per_second"])
    lat = res["latency_ms"]
    log(
        state,
        f"{name}: {res['requests_per_second']:.0f} req/s, {res['requests']} requests, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms",
    )
    if res["requests"] == 0:
        m.error = "wrk completed no request"
        return m
    if res["non_2xx_3xx"]:
        m.error = f"{res['non_2xx_3xx']} of {res['requests']} responses were not 2xx/3xx"
        return m
    errors = {k: v for k, v in res["socket_errors"].items() if v}
    if errors:
        m.notes.append("wrk socket errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    m.value = res["requests_per_second"]
    return m


def manifest_get(state: ServerState, s: Settings) -> Measurement:
    repo, _, _ = _small_image(state, s)
    return _wrk_row(
        state,
        s,
        f"/v2/{repo}/manifests/latest",
        {"Accept": DOCKER_MANIFEST_V2},
        "manifest GET by tag",
    )


def small_blob_get(state: ServerState, s: Settings) -> Measurement:
    repo, digest, size = _small_image(state, s)
    m = _wrk_row(state, s, f"/v2/{repo}/blobs/{digest}", {}, f"small blob GET ({size} B)")
    m.extra["blob_bytes"] = size
    return m


# -- 6. skopeo ------------------------------------------------------------------------------------


def _skopeo(args: list[str]) -> float:
    cmd = [SKOPEO, "--insecure-policy", "copy", "--quiet", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise WorkloadError(f"skopeo copy {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return seconds


def _skopeo_push_one(state: ServerState, layout: OciLayout, index: int) -> tuple[str, float]:
    repo = f"bench/twenty-{index}"
    seconds = _skopeo(
        [
            "--dest-tls-verify=false",
            f"oci:{layout.path}:{layout.tag}",
            f"docker://{state.server.host}/{repo}:latest",
        ]
    )
    state.skopeo_repos.append(repo)
    return repo, seconds


def skopeo_push(state: ServerState, s: Settings) -> Measurement:
    m = Measurement()
    for i, layout in enumerate(state.layouts):
        _, seconds = _skopeo_push_one(state, layout, i)
        m.runs.append(seconds)
        log(state, f"skopeo push {i + 1}/{len(state.layouts)}: {seconds:.2f} s")
    m.value = min(m.runs)
    m.extra["image_bytes"] = state.layouts[0].total_bytes
    return m


def skopeo_pull(state: ServerState, s: Settings) -> Measurement:
    m = Measurement()
    if not state.skopeo_repos:
        log(state, "skopeo pull: pushing the images first (untimed)")
        for i, layout in enumerate(state.layouts):
            _skopeo_push_one(state, layout, i)
    for i, repo in enumerate(state.skopeo_repos):
        dest = state.server.workdir / f"skopeo-pull-{i}"
        seconds = _skopeo(
            ["--src-tls-verify=false", f"docker://{state.server.host}/{repo}:latest", f"oci:{dest}:latest"]
        )
        index = json.loads((dest / "index.json").read_text())
        blobs = list((dest / "blobs" / "sha256").iterdir())
        want = state.layouts[i].layers + 2  # layers + config + manifest
        if len(index.get("manifests", [])) != 1 or len(blobs) != want:
            raise WorkloadError(f"pulled layout {dest} has {len(blobs)} blobs, want {want}")
        shutil.rmtree(dest)
        m.runs.append(seconds)
        log(state, f"skopeo pull {i + 1}/{len(state.skopeo_repos)}: {seconds:.2f} s")
    m.value = min(m.runs)
    return m


# -- 7. memory ------------------------------------------------------------------------------------


def peak_memory(state: ServerState, s: Settings) -> Measurement:
    if state.sampler is None:
        raise WorkloadError("no memory sampler")
    tree = state.sampler.read(state.server.key)
    m = Measurement(value=tree.sum_hwm_mib)
    m.extra["processes"] = tree.processes
    m.extra["peak_sampled_total_rss_mib"] = tree.peak_total_rss_kb / 1024
    if tree.processes > 1:
        m.notes.append(f"sum over {tree.processes} processes")
    log(state, f"peak memory: {tree.sum_hwm_mib:.1f} MiB VmHWM over {tree.processes} process(es)")
    return m


def needed_tools(metric: str) -> list[str]:
    return {
        "pull": [CURL],
        "manifest": [WRK],
        "blob": [WRK],
        "skopeo-push": [SKOPEO],
        "skopeo-pull": [SKOPEO],
    }.get(metric, [])


def missing_tools(metric: str) -> list[str]:
    return [t for t in needed_tools(metric) if not Path(t).exists()]
