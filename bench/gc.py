#!/usr/bin/env python3
"""Online GC at scale: how long a collection of a large repository set takes, and what it
does to push throughput while it runs (issue: GC of 10,000 manifests and 50,000 blobs in
under a minute, with pushes within 20% of their idle throughput).

    python bench/gc.py                       # 10,000 manifests, 50,000 blobs
    python bench/gc.py --manifests 2000 --blobs 10000 --push-seconds 5

The data folder is seeded directly (rows and small blob files, as pushes would leave them;
seeding through HTTP would take longer than the measurement), then a real server is
started on it, half of the images are untagged, and `dockyard gc` runs while a client
pushes 4 MiB blobs in a loop. Push throughput is compared with the same loop with no GC.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.client import Registry, sha256_digest  # noqa: E402
from benchlib.images import seeded_manifest  # noqa: E402
from benchlib.servers import clean_env, dockyard_server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def seed(data_dir: Path, manifests: int, blobs: int, repos: int) -> None:
    """Rows and files for ``manifests`` images over ``blobs`` blobs (shared across images)."""
    db = data_dir / "db" / "dockyard.db"
    conn = sqlite3.connect(db)
    now = time.time() - 7200  # older than the default grace period
    rnd = random.Random(7)
    digests = []
    root = data_dir / "registry" / "blobs" / "sha256"
    with conn:
        for i in range(blobs):
            data = f"blob {i}".encode()
            hexd = hashlib.sha256(data).hexdigest()
            path = root / hexd[:2] / hexd
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            digests.append((f"sha256:{hexd}", len(data)))
        conn.executemany(
            "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)", [(d, s, now) for d, s in digests]
        )
        conn.executemany(
            "INSERT INTO repositories (name, created_at) VALUES (?, ?)", [(f"bench/r{r}", now) for r in range(repos)]
        )
        repo_ids = [row[0] for row in conn.execute("SELECT id FROM repositories ORDER BY id")]
        per_manifest = max(1, blobs // manifests)
        links: set[tuple[int, str]] = set()
        for m in range(manifests):
            repo_id = repo_ids[m % repos]
            own = digests[(m * per_manifest) % blobs : (m * per_manifest) % blobs + per_manifest]
            shared = [digests[rnd.randrange(blobs)]]
            layers = own + shared
            body, digest = seeded_manifest(layers)
            cur = conn.execute(
                "INSERT INTO manifests (repository_id, digest, media_type, size, content, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (repo_id, digest, DOCKER_MANIFEST, len(body), body, now),
            )
            mid = cur.lastrowid
            conn.executemany(
                "INSERT OR IGNORE INTO manifest_references (manifest_id, kind, digest) VALUES (?, 'blob', ?)",
                [(mid, d) for d, _ in layers],
            )
            conn.execute(
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?)",
                (repo_id, f"t{m}", mid, now),
            )
            links.update((repo_id, d) for d, _ in layers)
        conn.executemany(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)",
            [(r, d, now) for r, d in links],
        )
    conn.close()


def untag_half(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / "db" / "dockyard.db")
    with conn:
        n = conn.execute("DELETE FROM tags WHERE CAST(substr(name, 2) AS INTEGER) % 2 = 0").rowcount
    conn.close()
    return n


POOL: list[tuple[bytes, str]] = []


def push_loop(port: int, seconds: float, stop: threading.Event | None = None) -> float:
    """MiB/s of monolithic 4 MiB pushes for ``seconds`` (or until stop). The blobs come from a
    pool made (and hashed) beforehand, so the client's own CPU, standing in for clients on
    other machines, stays small next to the server's; a blob pushed again is received,
    hashed and made durable again by the server, and then found stored already."""
    if not POOL:
        for _ in range(64):
            data = os.urandom(4 * MiB)
            POOL.append((data, sha256_digest(data)))
    pushed = 0
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    with Registry(port) as reg:
        i = 0
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            data, digest = POOL[i % len(POOL)]
            reg.push_monolithic("bench/pushes", data, digest)
            pushed += len(data)
            i += 1
    return pushed / MiB / (time.monotonic() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifests", type=int, default=10_000)
    ap.add_argument("--blobs", type=int, default=50_000)
    ap.add_argument("--repositories", type=int, default=200)
    ap.add_argument("--push-seconds", type=float, default=8.0)
    ap.add_argument("--pace", type=float, default=3.0, help="dockyard gc --pace")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="dockyard-gc-bench-") as tmp:
        work = Path(tmp)
        server = dockyard_server("dockyard", "Dockyard", work / "dy", REPO_ROOT, [], {})
        server.start()  # creates and migrates the database
        data_dir = work / "dy" / "data"
        t0 = time.monotonic()
        seed(data_dir, args.manifests, args.blobs, args.repositories)
        print(f"seeded {args.manifests} manifests, {args.blobs} blobs in {time.monotonic() - t0:.1f}s")
        try:
            idle = push_loop(server.port, args.push_seconds)
            untagged = untag_half(data_dir)
            env = clean_env()
            env["PYTHONPATH"] = str(REPO_ROOT / "src")
            stop = threading.Event()
            during: list[float] = []
            pusher = threading.Thread(target=lambda: during.append(push_loop(server.port, 3600, stop)))
            pusher.start()
            time.sleep(1.0)
            g0 = time.monotonic()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dockyard",
                    "gc",
                    "--data-dir",
                    str(data_dir),
                    "--pace",
                    str(args.pace),
                    "--grace-period",
                    "3600",
                    "--untagged-retention",
                    "0",
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            gc_seconds = time.monotonic() - g0
            stop.set()
            pusher.join()
            report = json.loads(out.stdout)
        finally:
            server.stop()
    ratio = during[0] / idle
    print(
        json.dumps(
            {
                "manifests": args.manifests,
                "blobs": args.blobs,
                "untagged": untagged,
                "gc_seconds": round(gc_seconds, 2),
                "gc_report": report,
                "push_mib_s_idle": round(idle, 1),
                "push_mib_s_during_gc": round(during[0], 1),
                "push_ratio_during_gc": round(ratio, 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
