"""The workload: the same steps, run against each server in turn.

Every row is a generator `row(state, settings, measurement)` that does its untimed setup, then
yields one sample per run (MiB/s, req/s, seconds, MiB), and may add notes, extra data or an
error to the measurement. The runner advances the rows of both servers alternately, so run 1
of the reference, run 1 of Dockyard, run 2 of the reference... share the same stretch of time
on a noisy machine. A failure of one row is recorded as that row's error; other rows go on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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
    wrk_runs: int = 3
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
    small_manifest_bytes: int = 0
    skopeo_repos: list[str] = field(default_factory=list)


def log(state: ServerState, msg: str) -> None:
    print(f"  [{state.server.label}] {msg}", file=sys.stderr, flush=True)


def settle() -> None:
    """Flush what earlier runs left dirty in the page cache, untimed. Servers take turns, so
    without this one server's run pays for the writeback of the other's previous run."""
    os.sync()


def _timed(fn: Callable[[], None]) -> float:
    settle()
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


Row = Callable[[ServerState, Settings, Measurement], Iterator[float]]


def monolithic_push(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
    for i in range(s.runs):
        seconds = _push_one(state, s.blob_bytes)
        rate = s.blob_bytes / MiB / seconds
        log(state, f"monolithic push {i + 1}/{s.runs}: {rate:.1f} MiB/s ({seconds:.2f} s)")
        yield rate


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


def monolithic_pull(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
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
        rate = size / MiB / seconds
        log(state, f"monolithic pull {i + 1}/{s.runs}: {rate:.1f} MiB/s ({seconds:.2f} s)")
        yield rate


# -- 3. chunked push ------------------------------------------------------------------------------


def chunked_push(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
    repo = "bench/chunked"
    for i in range(s.runs):
        data = os.urandom(s.chunked_bytes)
        digest = sha256_digest(data)
        with Registry(state.server.port) as reg:
            seconds = _timed(lambda: reg.push_chunked(repo, data, digest, s.chunk_bytes))  # noqa: B023
            reg.check_blob(repo, digest, s.chunked_bytes)
        rate = s.chunked_bytes / MiB / seconds
        log(state, f"chunked push {i + 1}/{s.runs}: {rate:.1f} MiB/s ({seconds:.2f} s)")
        yield rate


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
    state.small_manifest_bytes = len(manifest)
    return state.small_image


_WRK_NUMBER = r"([0-9.]+)([a-zA-Z%]*)"
_SIZE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
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
    read = re.search(r"requests in [0-9.]+\w+, ([0-9.]+)([KMGT]?B) read", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests_per_second": float(rps.group(1)),
        "requests": int(total.group(1)),
        "bytes_read": float(read.group(1)) * _SIZE_UNITS[read.group(2)] if read else None,
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {},
        "latency_ms": {
            "avg": _wrk_latency_ms(out, "Latency"),
            "p50": _wrk_latency_ms(out, "50%"),
            "p99": _wrk_latency_ms(out, "99%"),
        },
        "raw": out,
    }


def _wrk_row(
    state: ServerState,
    s: Settings,
    m: Measurement,
    path: str,
    headers: dict[str, str],
    name: str,
    body_size: int,
) -> Iterator[float]:
    url = f"{state.server.url}{path}"
    if s.wrk_warmup > 0:
        run_wrk(url, s, s.wrk_warmup, headers)
    m.extra["wrk"] = []
    for i in range(s.wrk_runs):
        res = run_wrk(url, s, s.wrk_duration, headers)
        m.extra["wrk"].append(res)
        lat = res["latency_ms"]
        log(
            state,
            f"{name} {i + 1}/{s.wrk_runs}: {res['requests_per_second']:.0f} req/s, "
            f"{res['requests']} requests, p50 {lat['p50']} ms, p99 {lat['p99']} ms",
        )
        if res["requests"] == 0:
            raise WorkloadError("wrk completed no request")
        if res["non_2xx_3xx"]:
            raise WorkloadError(f"{res['non_2xx_3xx']} of {res['requests']} responses were not 2xx/3xx")
        # wrk does not look at bodies: at least make sure the responses were not shorter than one.
        if res["bytes_read"] is not None and res["bytes_read"] < 0.95 * body_size * res["requests"]:
            raise WorkloadError(f"{res['bytes_read'] / res['requests']:.0f} bytes per response, body is {body_size}")
        errors = {k: v for k, v in res["socket_errors"].items() if v}
        if errors:
            m.notes.append(f"wrk run {i + 1} socket errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
        yield res["requests_per_second"]


def manifest_get(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
    repo, _, _ = _small_image(state, s)
    yield from _wrk_row(
        state,
        s,
        m,
        f"/v2/{repo}/manifests/latest",
        {"Accept": DOCKER_MANIFEST_V2},
        "manifest GET by tag",
        state.small_manifest_bytes,
    )


def small_blob_get(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
    repo, digest, size = _small_image(state, s)
    m.extra["blob_bytes"] = size
    yield from _wrk_row(state, s, m, f"/v2/{repo}/blobs/{digest}", {}, f"small blob GET ({size} B)", size)


# -- 6. skopeo ------------------------------------------------------------------------------------


def _skopeo(args: list[str]) -> float:
    cmd = [SKOPEO, "--insecure-policy", "copy", "--quiet", *args]
    settle()
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


def skopeo_push(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
    m.extra["image_bytes"] = [layout.total_bytes for layout in state.layouts]
    for i, layout in enumerate(state.layouts):
        _, seconds = _skopeo_push_one(state, layout, i)
        log(state, f"skopeo push {i + 1}/{len(state.layouts)}: {seconds:.2f} s")
        yield seconds


def skopeo_pull(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
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
        log(state, f"skopeo pull {i + 1}/{len(state.skopeo_repos)}: {seconds:.2f} s")
        yield seconds


# -- 7. memory ------------------------------------------------------------------------------------


def peak_memory(state: ServerState, s: Settings, m: Measurement) -> Iterator[float]:
    if state.sampler is None:
        raise WorkloadError("no memory sampler")
    tree = state.sampler.read(state.server.key)
    m.extra["processes"] = tree.processes
    m.extra["peak_sampled_total_rss_mib"] = tree.peak_total_rss_kb / 1024
    if tree.processes > 1:
        m.notes.append(f"sum over {tree.processes} processes")
    log(state, f"peak memory: {tree.sum_hwm_mib:.1f} MiB VmHWM over {tree.processes} process(es)")
    yield tree.sum_hwm_mib


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
