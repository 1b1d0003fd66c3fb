#!/usr/bin/env python3
"""Dockyard on each storage backend against Dockyard on the filesystem, same machine.

    python bench/backends.py                        # 256 MiB layer, 1 GiB chunked push
    python bench/backends.py --layer-mib 64 --big-mib 256 --only s3

For every backend the tests know (tests/backends: real S3, Azure, GCS and Swift servers on
loopback) it starts the object store and a Dockyard on it, then measures:

- push: one 256 MiB layer, POST then one streamed PUT (MiB/s);
- pull: GET of that layer through Dockyard (MiB/s), and with ``redirect`` on, the client
  following the 307 to the object store (MiB/s);
- peak RSS of the Dockyard process while a 1 GiB layer is pushed in 32 MiB PATCH chunks
  (memory must stay flat: far below the layer's size).

Ratios are backend / filesystem: the object stores here are emulators sharing the CPU, so
the figures say what Dockyard's own path costs, not what a cloud store would give.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO_ROOT))

from benchlib.client import Registry, sha256_digest  # noqa: E402
from benchlib.servers import LOOPBACK, MemorySampler, Server, clean_env, dockyard_server, free_port  # noqa: E402
from tests import backends  # noqa: E402

MiB = 1 << 20
CHUNK = 32 * MiB


def curl_get(url: str, size: int, follow: bool) -> float:
    """Seconds to GET url (following redirects if asked) into /dev/null; checks the size."""
    cmd = ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "600", "--output", "/dev/null"]
    cmd += ["--write-out", "%{http_code} %{size_download} %{time_total} %{num_redirects}"]
    if follow:
        cmd += ["--location", "--proto-redir", "=http"]
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, env=clean_env(), timeout=660, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"curl {url}: {proc.stderr.strip()}")
    code, got, seconds, redirects = proc.stdout.split()
    if code != "200" or int(got) != size:
        raise RuntimeError(f"GET {url}: HTTP {code}, {got} bytes (want {size})")
    if follow and int(redirects) != 1:
        raise RuntimeError(f"GET {url}: {redirects} redirects, want 1")
    return float(seconds)


def second_process(first: Server, extra_env: dict[str, str]) -> Server:
    """Another Dockyard on the same data folder (and so the same storage), as a replica."""
    port = free_port()
    listen = first.command.index("--listen") + 1
    command = [*first.command[:listen], f"{LOOPBACK}:{port}", *first.command[listen + 1 :]]
    return dataclasses.replace(
        first,
        port=port,
        command=command,
        env={**first.env, **extra_env},
        log_path=first.workdir / f"server-{port}.log",
        process=None,
    )


def store_direct(name: str, params: dict[str, Any], size: int, work: Path) -> tuple[float, float]:
    """MiB/s of writing then reading ``size`` bytes straight through the storage driver (no
    HTTP, no registry): what the object store itself gives here, to judge Dockyard's share."""
    from dockyard.storage.factory import create_driver

    data = os.urandom(size)

    async def go() -> tuple[float, float]:
        driver = create_driver(name, params, str(work / "direct"))
        try:
            t0 = time.perf_counter()
            writer = await driver.writer("/bench/direct")
            for i in range(0, size, MiB):
                await writer.write(data[i : i + MiB])
            await writer.commit()
            t1 = time.perf_counter()
            got = 0
            async for chunk in driver.read("/bench/direct"):
                got += len(chunk)
            t2 = time.perf_counter()
            assert got == size
            await driver.delete("/bench/direct")
            return size / MiB / (t1 - t0), size / MiB / (t2 - t1)
        finally:
            await driver.close()

    return asyncio.run(go())


def measure(
    name: str, env: dict[str, str], redirect_env: dict[str, str] | None, args: Any, work: Path
) -> dict[str, Any]:
    layer = os.urandom(args.layer_mib * MiB)
    digest = sha256_digest(layer)
    server = dockyard_server("dockyard", f"dockyard-{name}", work / f"{name}-a", REPO_ROOT, [], env)
    sampler = MemorySampler(interval=0.2)
    out: dict[str, Any] = {"backend": name}
    try:
        server.start(timeout=120)
        with Registry(server.port, timeout=900) as reg:
            t0 = time.perf_counter()
            reg.push_monolithic("bench/layer", layer, digest)
            out["push_mib_s"] = round(args.layer_mib / (time.perf_counter() - t0), 1)
            reg.check_blob("bench/layer", digest, len(layer))
        url = f"{server.url}/v2/bench/layer/blobs/{digest}"
        out["pull_mib_s"] = round(args.layer_mib / min(curl_get(url, len(layer), False) for _ in range(2)), 1)
        del layer

        big = os.urandom(args.big_mib * MiB)
        assert server.process is not None
        sampler.watch("server", server.process.pid)
        before = sampler.read("server").peak_total_rss_kb / 1024
        with Registry(server.port, timeout=900) as reg:
            reg.push_chunked("bench/big", big, sha256_digest(big), CHUNK)
        out["rss_before_mib"] = round(before)
        out["peak_rss_big_push_mib"] = round(sampler.read("server").peak_total_rss_kb / 1024)
        del big

        if redirect_env is not None:
            redirecting = second_process(server, redirect_env)
            try:
                redirecting.start(timeout=120)
                url = f"{redirecting.url}/v2/bench/layer/blobs/{digest}"
                best = min(curl_get(url, args.layer_mib * MiB, True) for _ in range(2))
                out["pull_redirect_mib_s"] = round(args.layer_mib / best, 1)
            finally:
                redirecting.stop()
    finally:
        sampler.close()
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer-mib", type=int, default=256)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--only", default="", help="comma-separated backends (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    names = [n for n in backends.names() if not args.only or n in args.only.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-backends-") as tmp:
        work = Path(tmp)
        print(f"filesystem: measuring ({args.layer_mib} MiB layer, {args.big_mib} MiB chunked)", file=sys.stderr)
        results.append(measure("filesystem", {}, None, args, work))
        print(f"filesystem: {json.dumps(results[-1])}", file=sys.stderr)
        for name in names:
            print(f"{name}: starting its server", file=sys.stderr)
            try:
                store = backends.start(name, work / f"store-{name}")
            except Exception as e:
                results.append({"backend": name, "error": f"cannot start its server: {type(e).__name__}: {e}"})
                continue
            try:
                prefix = f"bench-{uuid.uuid4().hex[:8]}"
                env = store.server_env(prefix)
                put, get = store_direct(name, store.params(f"{prefix}-direct"), args.layer_mib * MiB, work)
                redirect = {**env, "DOCKYARD_STORAGE__PARAMS__REDIRECT": "true"}
                print(f"{name}: measuring", file=sys.stderr)
                results.append(measure(name, env, redirect, args, work))
                results[-1].update(direct_put_mib_s=round(put, 1), direct_get_mib_s=round(get, 1))
                print(f"{name}: {json.dumps(results[-1])}", file=sys.stderr)
            except Exception as e:  # one backend failing still reports the others
                results.append({"backend": name, "error": f"{type(e).__name__}: {e}"})
            finally:
                store.stop()
    base = results[0]
    for row in results[1:]:
        for key in ("push_mib_s", "pull_mib_s", "pull_redirect_mib_s"):
            if key in row and base.get(key.replace("_redirect", "")):
                row[key.replace("_mib_s", "_ratio")] = round(row[key] / base[key.replace("_redirect", "")], 2)
    print(
        f"{'backend':<11}{'push MiB/s':>11}{'pull MiB/s':>11}{'redirect':>10}"
        f"{'push x':>8}{'pull x':>8}{'redir x':>8}{'peak RSS (MiB)':>16}{'store put/get MiB/s':>21}"
    )
    for r in results:
        if "error" in r:
            print(f"{r['backend']:<11}error: {r['error']}")
            continue
        print(
            f"{r['backend']:<11}{r['push_mib_s']:>11}{r['pull_mib_s']:>11}{r.get('pull_redirect_mib_s', '-'):>10}"
            f"{r.get('push_ratio', 1.0):>8}{r.get('pull_ratio', 1.0):>8}{r.get('pull_redirect_ratio', '-'):>8}"
            f"{r['peak_rss_big_push_mib']:>16}"
            f"{str(r.get('direct_put_mib_s', '-')) + '/' + str(r.get('direct_get_mib_s', '-')):>21}"
        )
    print(f"(ratios: backend / filesystem; peak RSS of Dockyard during a {args.big_mib} MiB push in 32 MiB chunks;")
    print(" store put/get: the same layer straight through the driver, no HTTP: the emulator's own speed)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
