#!/usr/bin/env python3
"""Dockyard vs the reference registry (distribution 2.8): same workload, same machine, one table.

    python bench/run.py                      # full run (~3-5 minutes)
    python bench/run.py --quick              # small sizes, short wrk: a smoke run
    python bench/run.py --only push,pull --json out.json
    python bench/run.py --candidate reference   # two reference registries (no Dockyard needed)

See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import workloads as w  # noqa: E402
from benchlib.client import RegistryError  # noqa: E402
from benchlib.images import OciLayout, write_oci_layout  # noqa: E402
from benchlib.servers import (  # noqa: E402
    LOOPBACK,
    REFERENCE_BINARY,
    MemorySampler,
    Server,
    ServerStartError,
    _die_with_parent,
    clean_env,
    dockyard_server,
    free_port,
    reference_server,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = w.MiB


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    run: w.Row
    digits: int


def metrics_for(s: w.Settings) -> list[Metric]:
    blob = f"{s.blob_bytes / MiB:g} MiB"
    conns = f"{s.wrk_connections} conns, {s.wrk_duration:g}s"
    return [
        Metric("push", f"Monolithic blob push ({blob}, POST+PUT)", "MiB/s", True, w.monolithic_push, 1),
        Metric("pull", f"Monolithic blob pull ({blob}, curl)", "MiB/s", True, w.monolithic_pull, 1),
        Metric(
            "chunked",
            f"Chunked blob push ({s.chunked_bytes / MiB:g} MiB in {s.chunk_bytes / MiB:g} MiB PATCHes)",
            "MiB/s",
            True,
            w.chunked_push,
            1,
        ),
        Metric("manifest", f"Manifest GET by tag (wrk, {conns})", "req/s", True, w.manifest_get, 0),
        Metric("blob", f"Small blob GET ~4 KiB (wrk, {conns})", "req/s", True, w.small_blob_get, 0),
        Metric(
            "skopeo-push",
            f"skopeo copy {s.layers}-layer image: OCI layout -> registry",
            "s",
            False,
            w.skopeo_push,
            2,
        ),
        Metric(
            "skopeo-pull",
            f"skopeo copy {s.layers}-layer image: registry -> OCI layout",
            "s",
            False,
            w.skopeo_pull,
            2,
        ),
        Metric("memory", "Peak server memory (sum of VmHWM, process tree)", "MiB", False, w.peak_memory, 1),
        Metric(
            "nginx-pull",
            f"Blob pull ({blob}, curl, HTTPS both): Dockyard behind nginx (X-Accel) vs reference TLS direct",
            "MiB/s",
            True,
            nginx_pull_unavailable,
            1,
        ),
        Metric(
            "nginx-pull-vs-plain",
            f"Blob pull ({blob}, curl), informational: Dockyard behind nginx (HTTPS) vs reference plain HTTP",
            "MiB/s",
            True,
            nginx_pull_unavailable,
            1,
        ),
    ]


METRIC_KEYS = [
    "push",
    "pull",
    "chunked",
    "manifest",
    "blob",
    "skopeo-push",
    "skopeo-pull",
    "memory",
    "nginx-pull",
    "nginx-pull-vs-plain",
]
NGINX_ROWS = ("nginx-pull", "nginx-pull-vs-plain")


# ---------------------------------------------------------------------------------------------
# The nginx rows: `dockyard nginx-config` in front of the Dockyard server, against a second
# reference instance serving HTTPS itself (nginx-pull) or the plain-HTTP one (nginx-pull-vs-plain)
# ---------------------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class NginxFront:
    """nginx from `dockyard nginx-config` before the benchmark's Dockyard (HTTPS on loopback)."""

    port: int
    ca_file: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_nginx_front(dockyard: Server, workdir: Path) -> NginxFront:
    """Generate the config with the working tree's `dockyard nginx-config` and start nginx (in its
    own session, dying with the benchmark, like the servers); before any thread exists."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = dockyard.workdir / "data"
    port = free_port()
    user = ["--user", "root"] if os.geteuid() == 0 else []  # else root's workers would be nobody
    env = clean_env({"PYTHONPATH": str(REPO_ROOT / "src")})
    cmd = [sys.executable, "-m", "dockyard", "nginx-config", "--data-dir", str(data_dir)]
    cmd += ["--upstream", dockyard.host, "--upstream-http", "--listen-address", LOOPBACK]
    cmd += ["--https-port", str(port), "--http-port", "0", "--runtime-dir", str(workdir / "run"), *user]
    made = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if made.returncode != 0:
        raise ServerStartError(f"dockyard nginx-config failed: {made.stderr.strip()}")
    conf = workdir / "nginx.conf"
    conf.write_text(made.stdout)
    with open(workdir / "nginx.log", "ab") as log:
        proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    front = NginxFront(port, data_dir / "ca" / "ca.crt", proc)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"nginx exited with {proc.returncode}: {(workdir / 'nginx.log').read_text()}")
        conn = http.client.HTTPSConnection(LOOPBACK, port, timeout=2, context=front.tls())
        try:
            conn.request("GET", "/v2/")
            if conn.getresponse().status == 200:
                return front
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    front.stop()
    raise ServerStartError("nginx did not answer GET /v2/ in 15 s")


REFERENCE_TLS_CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {cert}
    key: {key}
log:
  level: error
  accesslog:
    disabled: true
"""


@dataclass
class TlsReference(Server):
    """A second reference registry serving HTTPS itself (distribution's ``http.tls``) with a
    certificate from Dockyard's CA, on the first reference's storage folder: it reads the blobs
    pushed there, and apart from TLS runs with the same configuration."""

    ca_file: Path = Path("/nonexistent")

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _v2_status(self) -> int | None:
        conn = http.client.HTTPSConnection(LOOPBACK, self.port, timeout=2, context=self.tls())
        try:
            conn.request("GET", "/v2/")
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()


def reference_tls_server(
    reference: Server, ca_data_dir: Path, workdir: Path, extra_env: dict[str, str]
) -> TlsReference:
    """Issue a certificate for 127.0.0.1 with the working tree's `dockyard ca issue` (Dockyard's CA
    in ca_data_dir, made if missing) and configure the TLS twin of ``reference``; not started."""
    workdir.mkdir(parents=True, exist_ok=True)
    tls_dir = workdir / "tls"
    env = clean_env({"PYTHONPATH": str(REPO_ROOT / "src")})
    cmd = [sys.executable, "-m", "dockyard", "ca", "issue", "--name", "reference", "--output-dir", str(tls_dir)]
    cmd += ["--san", LOOPBACK, "--days", "2", "--data-dir", str(ca_data_dir)]
    made = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if made.returncode != 0:
        raise ServerStartError(f"dockyard ca issue failed: {made.stderr.strip() or made.stdout.strip()}")
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        REFERENCE_TLS_CONFIG.format(
            root=reference.workdir / "storage",
            port=port,
            cert=tls_dir / "reference.crt",
            key=tls_dir / "reference.key",
        )
    )
    return TlsReference(
        key="reference-tls",
        label="Reference (TLS)",
        port=port,
        workdir=workdir,
        log_path=workdir / "server.log",
        command=[REFERENCE_BINARY, "serve", str(config)],
        env=clean_env(extra_env),
        ca_file=tls_dir / "ca.crt",
    )


TLS13_CIPHER = "TLS_AES_128_GCM_SHA256"


def _curl_https(url: str, cacert: Path, expected_size: int) -> tuple[float, str]:
    """Seconds to GET url over HTTPS into /dev/null with curl, verifying the server's certificate
    with cacert, and the negotiated TLS version and cipher. The same protocol for both servers:
    HTTP/1.1 (the reference, in Go, would otherwise negotiate HTTP/2 through ALPN; nginx's
    listener does not) and TLS 1.3 with AES-128-GCM (what Go, and so docker, prefers; nginx would
    follow curl's preference, AES-256-GCM, which costs more per byte)."""
    cmd = [w.CURL, "--silent", "--show-error", "--verbose", "--noproxy", "*", "--proto", "=https", "--http1.1"]
    cmd += ["--tlsv1.3", "--tls13-ciphers", TLS13_CIPHER]
    cmd += ["--cacert", str(cacert), "--max-time", "300", "--output", "/dev/null"]
    cmd += ["--write-out", "%{http_code} %{size_download} %{time_total}"]
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, env=clean_env(), timeout=330)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("curl:")]
        raise w.WorkloadError(f"curl exited {proc.returncode}: {' '.join(errors) or proc.stderr[-300:]}")
    code, size, total = proc.stdout.split()
    if code != "200" or int(size) != expected_size:
        raise w.WorkloadError(f"GET {url}: HTTP {code}, {size} bytes, want 200 and {expected_size}")
    tls = next(
        (line.split("using", 1)[1].strip() for line in proc.stderr.splitlines() if "SSL connection using" in line), "?"
    )
    return float(total), tls


def _verify_https(port: int, context: ssl.SSLContext, repo: str, digest: str, size: int, what: str) -> None:
    """Untimed: the bytes the server sends over HTTPS are the blob's."""
    conn = http.client.HTTPSConnection(LOOPBACK, port, timeout=120, context=context)
    try:
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        resp = conn.getresponse()
        h, total = hashlib.sha256(), 0
        while chunk := resp.read(4 << 20):
            h.update(chunk)
            total += len(chunk)
    finally:
        conn.close()
    if resp.status != 200 or total != size or "sha256:" + h.hexdigest() != digest:
        raise w.WorkloadError(f"{what}: HTTP {resp.status}, {total} bytes, not the blob")


def _blobs_of(state: w.ServerState, s: w.Settings) -> list[tuple[str, str, int]]:
    blobs = [b for b in state.pushed_blobs if b[2] == s.blob_bytes]
    if not blobs:
        w.log(state, "nginx pull: pushing a blob first (untimed)")
        w._push_one(state, s.blob_bytes)
        blobs = state.pushed_blobs[-1:]
    return blobs


def _https_pulls(
    state: w.ServerState, s: w.Settings, m: w.Measurement, base: str, ca_file: Path, what: str
) -> Iterator[float]:
    blobs = _blobs_of(state, s)
    tls_seen: set[str] = set()
    for i in range(s.runs):
        repo, digest, size = blobs[i % len(blobs)]
        seconds, tls = _curl_https(f"{base}/v2/{repo}/blobs/{digest}", ca_file, size)
        tls_seen.add(tls)
        rate = size / MiB / seconds
        w.log(state, f"pull {what} {i + 1}/{s.runs}: {rate:.1f} MiB/s ({seconds:.2f} s, {tls})")
        yield rate
    m.extra["tls"] = sorted(tls_seen)
    m.notes.append(f"{what}, HTTP/1.1, {', '.join(sorted(tls_seen))}")


def nginx_pull(front: NginxFront | None, reference_tls: TlsReference | None, reference_over_tls: bool) -> w.Row:
    """Dockyard through nginx over HTTPS: nginx sends the bytes from the file after Dockyard
    answers with X-Accel-Redirect. The reference directly: over HTTPS from its TLS twin
    (reference_over_tls, like for like), or over plain HTTP as in the pull row (informational:
    on 2 cores without kernel TLS, encryption and decryption cost about as much as the transfer)."""

    def row(state: w.ServerState, s: w.Settings, m: w.Measurement) -> Iterator[float]:
        if state.server.key != "dockyard":
            if not reference_over_tls:
                m.notes.append("direct over plain HTTP (as in the pull row)")
                yield from w.monolithic_pull(state, s, m)
                return
            if reference_tls is None:
                raise w.WorkloadError("no TLS reference instance (it did not start; see the log above)")
            repo, digest, size = _blobs_of(state, s)[0]
            _verify_https(reference_tls.port, reference_tls.tls(), repo, digest, size, "reference over TLS")
            yield from _https_pulls(state, s, m, reference_tls.url, reference_tls.ca_file, "direct over HTTPS")
            return
        if front is None:
            raise w.WorkloadError("no nginx front (nginx missing, or --candidate reference)")
        repo, digest, size = _blobs_of(state, s)[0]
        _verify_https(front.port, front.tls(), repo, digest, size, "through nginx")
        yield from _https_pulls(state, s, m, front.url, front.ca_file, "through nginx over HTTPS (X-Accel-Redirect)")

    return row


def nginx_pull_unavailable(state: w.ServerState, s: w.Settings, m: w.Measurement) -> Iterator[float]:
    yield from nginx_pull(None, None, False)(state, s, m)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Dockyard against the reference registry on 127.0.0.1.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="metrics: " + ", ".join(METRIC_KEYS),
    )
    p.add_argument("--only", help="comma-separated metrics to run (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes, 1 run, short wrk: a smoke run")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--runs", type=int, help="runs per transfer and skopeo row, best reported (default 3, quick 1)")
    p.add_argument("--blob-mib", type=float, help="monolithic blob size (default 256, quick 32)")
    p.add_argument("--chunked-mib", type=float, help="chunked upload size (default 64, quick 16)")
    p.add_argument("--chunk-mib", type=float, help="PATCH size (default 8, quick 4)")
    p.add_argument("--wrk-duration", type=float, help="seconds per wrk row (default 10, quick 3)")
    p.add_argument(
        "--wrk-runs", type=int, help="wrk runs per wrk row, alternating servers; best reported (default 3, quick 1)"
    )
    p.add_argument("--layers", type=int, help="layers of the skopeo image (default 20, quick 5)")
    p.add_argument(
        "--candidate",
        choices=["dockyard", "reference"],
        default="dockyard",
        help="what goes in the Dockyard column; 'reference' runs a second reference registry "
        "(to check the benchmark itself, or before Dockyard's server exists)",
    )
    p.add_argument(
        "--dockyard-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `dockyard serve` (repeatable; use --dockyard-arg=--flag for flags). "
        "Also read from $DOCKYARD_BENCH_ARGS (shell-quoted).",
    )
    p.add_argument(
        "--dockyard-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for Dockyard (repeatable). "
        "Also read from $DOCKYARD_BENCH_ENV (shell-quoted KEY=VALUE words).",
    )
    p.add_argument(
        "--reference-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for the reference registry (repeatable), e.g. GOGC=400",
    )
    p.add_argument(
        "--order",
        choices=["reference-first", "dockyard-first"],
        default="reference-first",
        help="which server is measured first (default reference-first)",
    )
    p.add_argument("--tmp-dir", help="where to make the temporary directory (default: system temp)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (data, logs)")
    args = p.parse_args(argv)

    if args.only:
        chosen = [m.strip() for m in args.only.split(",") if m.strip()]
        unknown = [m for m in chosen if m not in METRIC_KEYS]
        if unknown:
            p.error(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_KEYS)}")
        args.metrics = [m for m in METRIC_KEYS if m in chosen]
    else:
        args.metrics = list(METRIC_KEYS)

    env_args = shlex.split(os.environ.get("DOCKYARD_BENCH_ARGS", ""))
    args.dockyard_args = env_args + args.dockyard_arg
    args.dockyard_environ = {}
    for item in shlex.split(os.environ.get("DOCKYARD_BENCH_ENV", "")) + args.dockyard_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--dockyard-env / DOCKYARD_BENCH_ENV items must be KEY=VALUE, got {item!r}")
        args.dockyard_environ[key] = value
    args.reference_environ = {}
    for item in args.reference_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--reference-env items must be KEY=VALUE, got {item!r}")
        args.reference_environ[key] = value
    for name in ("runs", "wrk_runs", "layers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def settings_from(args: argparse.Namespace) -> w.Settings:
    s = w.Settings()
    if args.quick:
        s = w.Settings(
            runs=1,
            blob_bytes=32 * MiB,
            chunked_bytes=16 * MiB,
            chunk_bytes=4 * MiB,
            wrk_duration=3.0,
            wrk_warmup=1.0,
            wrk_runs=1,
            layers=5,
            layer_min=256 * 1024,
            layer_max=512 * 1024,
        )
    if args.runs is not None:
        s.runs = args.runs
    if args.blob_mib is not None:
        s.blob_bytes = int(args.blob_mib * MiB)
    if args.chunked_mib is not None:
        s.chunked_bytes = int(args.chunked_mib * MiB)
    if args.chunk_mib is not None:
        s.chunk_bytes = int(args.chunk_mib * MiB)
    if args.wrk_duration is not None:
        s.wrk_duration = args.wrk_duration
    if args.wrk_runs is not None:
        s.wrk_runs = args.wrk_runs
    if args.layers is not None:
        s.layers = args.layers
    return s


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def _git_rev() -> str:
    return _version(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--tags"])


def run_row(states: list[w.ServerState], metric: Metric, s: w.Settings) -> dict[str, w.Measurement]:
    """Run one row on every server, alternating their runs; the best run is the row's value."""
    results = {state.server.key: w.Measurement() for state in states}
    active: dict[str, tuple[w.ServerState, Iterator[float]]] = {}
    for state in states:
        m = results[state.server.key]
        missing = w.missing_tools(metric.key)
        if missing:
            m.error = f"missing tool(s): {', '.join(missing)}"
        else:
            active[state.server.key] = (state, metric.run(state, s, m))
    while active:
        for key, (state, samples) in list(active.items()):
            m = results[key]
            server = state.server
            if not server.alive():
                m.error = f"server not running (log tail: {server.log_tail(5)})"
                del active[key]
                continue
            try:
                m.runs.append(next(samples))
            except StopIteration:
                del active[key]
            except (w.WorkloadError, RegistryError, OSError, subprocess.SubprocessError, ValueError) as e:
                msg = str(e) if isinstance(e, w.WorkloadError | RegistryError) else f"{type(e).__name__}: {e}"
                if not server.alive():
                    msg += f" (server exited; log tail: {server.log_tail(5)})"
                print(f"  [{server.label}] {metric.key} FAILED: {msg}", file=sys.stderr, flush=True)
                if os.environ.get("BENCH_DEBUG"):
                    traceback.print_exc()
                m.error = msg
                del active[key]
    for m in results.values():
        if m.error is None and m.runs:
            m.value = max(m.runs) if metric.higher_is_better else min(m.runs)
    return results


def ratio(metric: Metric, ref: w.Measurement, dy: w.Measurement) -> float | None:
    if ref.value is None or dy.value is None or ref.error or dy.error:
        return None
    num, den = (dy.value, ref.value) if metric.higher_is_better else (ref.value, dy.value)
    return num / den if den else None


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_table(
    metrics: list[Metric],
    results: dict[str, dict[str, w.Measurement]],
    ref_label: str,
    dy_label: str,
) -> str:
    headers = ["Metric", "Unit", "Better", ref_label, dy_label, "Score (>1 = Dockyard better)"]
    rows: list[list[str]] = []
    footnotes: list[str] = []
    for metric in metrics:
        ref, dy = results["reference"][metric.key], results["dockyard"][metric.key]
        cells = []
        for who, m in ((ref_label, ref), (dy_label, dy)):
            if m.error:
                cells.append("FAILED")
                footnotes.append(f"{metric.key} / {who}: FAILED: {m.error}")
            else:
                cells.append(fmt(m.value, metric.digits))
            footnotes.extend(f"{metric.key} / {who}: {note}" for note in m.notes)
        r = ratio(metric, ref, dy)
        how = "Dockyard/ref" if metric.higher_is_better else "ref/Dockyard"
        score = "-" if r is None else f"{r:.2f}x  ({how})"
        better = "higher" if metric.higher_is_better else "lower"
        rows.append([metric.label, metric.unit, better, *cells, score])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = {3, 4}

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * wd for wd in widths)
    text = [line(headers), sep, *(line(r) for r in rows), sep]
    text.append(
        "Score: throughput rows = Dockyard/reference; seconds and memory rows = reference/Dockyard. "
        "Either way >1 means Dockyard did better."
    )
    text.extend(f"  * {note}" for note in footnotes)
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)
    all_metrics = {m.key: m for m in metrics_for(s)}
    metrics = [all_metrics[k] for k in args.metrics]

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    if not Path(REFERENCE_BINARY).exists():
        print(f"error: the reference registry {REFERENCE_BINARY} is not installed", file=sys.stderr)
        return 2

    stand_in = args.candidate == "reference"
    ref_label = "Reference"
    dy_label = "Dockyard" if not stand_in else "Dockyard(stand-in: 2nd ref)"
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=args.tmp_dir))
    servers: list[Server] = []
    front: NginxFront | None = None
    reference_tls: TlsReference | None = None
    sampler: MemorySampler | None = None
    results: dict[str, dict[str, w.Measurement]] = {"reference": {}, "dockyard": {}}
    start_info: dict[str, Any] = {}
    started = time.time()
    load_before = os.getloadavg()
    try:
        layouts: list[OciLayout] = []
        if {"skopeo-push", "skopeo-pull"} & set(args.metrics):
            t0 = time.perf_counter()
            for i in range(s.runs):
                layouts.append(write_oci_layout(tmp / "layouts" / f"image-{i}", s.layers, s.layer_min, s.layer_max))
            print(
                f"built {len(layouts)} OCI layout(s) of {s.layers} random layers "
                f"(~{layouts[0].total_bytes / MiB:.1f} MiB each) in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )

        ref = reference_server("reference", ref_label, tmp / "reference", args.reference_environ)
        if stand_in:
            dy = reference_server("dockyard", dy_label, tmp / "dockyard", args.reference_environ)
        else:
            dy = dockyard_server(
                "dockyard", dy_label, tmp / "dockyard", REPO_ROOT, args.dockyard_args, args.dockyard_environ
            )
        # Start both side by side (before any thread exists: the servers' preexec_fn needs that).
        ready: list[Server] = []
        for server in (ref, dy):
            servers.append(server)
            try:
                server.start()
                ready.append(server)
                start_info[server.key] = {"startup_seconds": server.startup_seconds}
                print(
                    f"started {server.label} on {server.url} in {server.startup_seconds:.2f} s "
                    f"(pid {server.process.pid if server.process else '?'})",
                    file=sys.stderr,
                )
            except ServerStartError as e:
                print(f"error: {e}", file=sys.stderr)
                if server.key == "dockyard" and not stand_in:
                    print(
                        "hint: until `python -m dockyard serve` works, try `--candidate reference`",
                        file=sys.stderr,
                    )
                start_info[server.key] = {"error": str(e)}
                for metric in metrics:
                    results[server.key][metric.key] = w.Measurement(error=f"{server.label} did not start")

        if set(NGINX_ROWS) & set(args.metrics) and dy in ready and not stand_in:
            try:
                front = start_nginx_front(dy, tmp / "nginx")
                print(f"started nginx in front of {dy.label} on {front.url}", file=sys.stderr)
            except (ServerStartError, OSError, subprocess.SubprocessError) as e:
                print(f"error: nginx front: {e}", file=sys.stderr)
        if "nginx-pull" in args.metrics and ref in ready:
            # Dockyard's CA (the one nginx's certificate comes from) issues the reference's too.
            ca_data_dir = tmp / "tls-ca" if stand_in else dy.workdir / "data"
            try:
                reference_tls = reference_tls_server(ref, ca_data_dir, tmp / "reference-tls", args.reference_environ)
                reference_tls.start()
                start_info[reference_tls.key] = {"startup_seconds": reference_tls.startup_seconds}
                print(f"started {reference_tls.label} on {reference_tls.url}", file=sys.stderr)
            except (ServerStartError, OSError, subprocess.SubprocessError) as e:
                print(f"error: TLS reference: {e}", file=sys.stderr)
                start_info["reference-tls"] = {"error": str(e)}
                if reference_tls is not None:
                    reference_tls.stop()
                reference_tls = None
        metrics = [
            dataclasses.replace(m, run=nginx_pull(front, reference_tls, m.key == "nginx-pull"))
            if m.key in NGINX_ROWS
            else m
            for m in metrics
        ]

        sampler = MemorySampler()
        for server in ready:
            assert server.process is not None
            sampler.watch(server.key, server.process.pid)
        # Row by row, and within a row run by run, each server in turn: on a noisy machine both
        # see about the same stretch of time.
        order = [ref, dy] if args.order == "reference-first" else [dy, ref]
        states = [w.ServerState(server=x, layouts=layouts, sampler=sampler) for x in order if x in ready]
        for metric in metrics:
            print(f"== {metric.label}", file=sys.stderr, flush=True)
            for key, measurement in run_row(states, metric, s).items():
                results[key][metric.key] = measurement
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers and cleaning up", file=sys.stderr)
        return 130
    finally:
        if sampler is not None:
            sampler.close()
        if front is not None:
            front.stop()
        if reference_tls is not None:
            reference_tls.stop()
        for server in servers:
            server.stop()
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    table = render_table(metrics, results, ref_label, dy_label)
    load_after = os.getloadavg()
    print()
    print(
        f"Dockyard benchmark - {platform.node()} {os.cpu_count()} CPUs, loadavg before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f}; best of {s.runs} run(s) per transfer/skopeo row, "
        f"{s.wrk_runs} wrk run(s) per wrk row" + (" [QUICK]" if args.quick else "")
    )
    if stand_in:
        print("NOTE: the 'Dockyard' column is a second reference registry (--candidate reference).")
    print(table)

    if args.json:
        doc = {
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 1),
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "quick": args.quick,
                "candidate": args.candidate,
                "dockyard_args": args.dockyard_args,
                "dockyard_env": args.dockyard_environ,
                "reference_env": args.reference_environ,
                "order": args.order,
                "settings": vars(s),
                "servers": start_info,
                "versions": {
                    "python": sys.version.split()[0],
                    "reference": _version([REFERENCE_BINARY, "--version"]),
                    "skopeo": _version([w.SKOPEO, "--version"]),
                    "curl": _version([w.CURL, "--version"]),
                    "dockyard_git": _git_rev(),
                },
            },
            "results": [
                {
                    "metric": m.key,
                    "label": m.label,
                    "unit": m.unit,
                    "better": "higher" if m.higher_is_better else "lower",
                    "reference": results["reference"][m.key].as_json(),
                    "dockyard": results["dockyard"][m.key].as_json(),
                    "score": ratio(m, results["reference"][m.key], results["dockyard"][m.key]),
                    "score_is": "dockyard/reference" if m.higher_is_better else "reference/dockyard",
                }
                for m in metrics
            ],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)

    failed = any(results[k][m.key].error or results[k][m.key].value is None for k in results for m in metrics)
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
