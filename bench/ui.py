#!/usr/bin/env python3
"""The web UI's API calls at scale: server time of every call the main pages make, as an
administrator and as a non-admin user, on 10,000 repositories and 100,000 tags.

    python bench/ui.py                        # 10,000 repositories x 10 tags
    python bench/ui.py --repositories 2000 --runs 5

The data folder is seeded directly in SQLite (as bench/gc.py does; pushing that much over
HTTP would take longer than the measurement): repositories "org<i>/app<j>" with 10 tags each
(9 images and one multi-arch index over two of them), 10% public, plus audit events and
finished jobs. The accounts go through the API: a user "dev" with 100 repositories of its own,
member of a team with a namespace grant on org0 and of a team with grants on 200 repositories
of org1. Then `dockyard serve` (auth on, access log on) answers each call --runs times over a
session cookie, as the UI's; the server time is the access log's (request in to response out),
the median is printed in ms, and calls at or over --flag-ms are flagged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.images import seeded_manifest  # noqa: E402
from benchlib.servers import dockyard_server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PASSWORD = "bench-admin-password"
DEV_PASSWORD = "bench-dev-password"
TAGS_PER_REPO = 10
REPOS_PER_ORG = 100


def seed(db_path: Path, repos: int, now: float) -> None:
    """Repositories, settings, blobs, manifests, references, tags, audit events and jobs."""
    conn = sqlite3.connect(db_path)
    rnd = random.Random(11)
    with conn:
        blob_pool = []
        for i in range(20_000):
            hexd = hashlib.sha256(f"blob {i}".encode()).hexdigest()
            blob_pool.append((f"sha256:{hexd}", 1000 + rnd.randrange(50_000_000)))
        conn.executemany(
            "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)", [(*b, now) for b in blob_pool]
        )
        names = [f"org{r // REPOS_PER_ORG}/app{r % REPOS_PER_ORG}" for r in range(repos)]
        names += [f"dev/tool{r}" for r in range(100)]
        conn.executemany(
            "INSERT INTO repositories (name, created_at) VALUES (?, ?)",
            [(n, now - rnd.random() * 86400 * 60) for n in names],
        )
        ids = [row[0] for row in conn.execute("SELECT id FROM repositories ORDER BY id")]
        conn.executemany(
            "INSERT INTO repository_settings (repository_id, visibility, short_description, signed_only,"
            " accepted_signatures) VALUES (?, ?, ?, 0, 'notary')",
            [(rid, "public" if rid % 10 == 0 else "private", f"repository {rid}") for rid in ids],
        )
        manifests, refs, tags, links = [], [], [], set()
        mid = 0
        for rid in ids:
            children = []
            for t in range(TAGS_PER_REPO - 1):
                layers = [blob_pool[rnd.randrange(len(blob_pool))] for _ in range(3)]
                body, digest = seeded_manifest(layers, {"n": f"{rid}-{t}"})
                mid += 1
                created = now - rnd.random() * 86400 * 30
                manifests.append((mid, rid, digest, DOCKER_MANIFEST, len(body), body, created))
                refs += [(mid, "blob", d) for d, _ in dict.fromkeys(layers)]
                links.update((rid, d) for d, _ in layers)
                tags.append((rid, f"v{t}", mid, created))
                if t < 2:
                    children.append(
                        {
                            "mediaType": DOCKER_MANIFEST,
                            "digest": digest,
                            "size": len(body),
                            "platform": {"os": "linux", "architecture": ("amd64", "arm64")[t]},
                        }
                    )
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
            mid += 1
            manifests.append((mid, rid, "sha256:" + hashlib.sha256(body).hexdigest(), OCI_INDEX, len(body), body, now))
            refs += [(mid, "manifest", c["digest"]) for c in children]
            tags.append((rid, "latest", mid, now))
        conn.executemany(
            "INSERT INTO manifests (id, repository_id, digest, media_type, size, content, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            manifests,
        )
        conn.executemany("INSERT OR IGNORE INTO manifest_references (manifest_id, kind, digest) VALUES (?, ?, ?)", refs)
        conn.executemany("INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?)", tags)
        conn.executemany(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)",
            [(r, d, now) for r, d in links],
        )
        conn.executemany(
            "INSERT INTO audit_events (at, actor, action, target, outcome, address, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(now - i, ("admin", "dev", "ci")[i % 3], "login", "", "ok", "127.0.0.1", None) for i in range(50_000)],
        )
        conn.executemany(
            "INSERT INTO jobs (action, parameters, status, attempts, max_attempts, run_after, created_at, started_at,"
            " finished_at, progress_done, cancel_requested, created_by) VALUES (?, '{}', 'done', 1, 3, ?, ?, ?, ?, 0,"
            " 0, 'admin')",
            [("gc", now - i * 60, now - i * 60, now - i * 60, now - i * 60 + 5) for i in range(2_000)],
        )
    conn.close()


def grant(db_path: Path, team_id: int, repo_names: list[str]) -> None:
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO repository_access (repository_id, account_id, team_id, level)"
            " SELECT id, NULL, ?, 'read-only' FROM repositories WHERE name = ?",
            [(team_id, n) for n in repo_names],
        )
    conn.close()


def signed_in(url: str, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{url}/api/v0", timeout=120)
    r = client.post("/session", json={"username": user, "password": password})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = r.json()["csrfToken"]
    return client


LOG_LINE = re.compile(r"(\S+) (GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) (\d+) ([\d.]+)ms")


def server_ms(log_path: Path, offset: int, request_id: str) -> tuple[float | None, int]:
    """The access log's time of one request, reading the log from ``offset`` on."""
    for _ in range(100):
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for m in LOG_LINE.finditer(text):
            if m.group(1) == request_id:
                return float(m.group(5)), offset + len(text.encode())
        time.sleep(0.01)
    return None, offset


def calls() -> list[tuple[str, str]]:
    """(page, path) of the API calls of the main pages, as the UI's code makes them."""
    repo = "org1/app6"  # one the non-admin may read (a repository grant to a team of theirs)
    return [
        ("dashboard", "/stats?days=30"),
        ("repositories p1", "/repositories?pageSize=25"),
        ("repositories p2", "/repositories?pageSize=25&pageStart=org1/app50"),
        ("repositories search", "/repositories?pageSize=25&search=app42"),
        ("repositories ns", "/repositories/org1?pageSize=25"),
        ("repository", f"/repositories/{repo}"),
        ("repository tags", f"/repositories/{repo}/tags?pageSize=50"),
        ("repository teams", f"/repositories/{repo}/teamAccess"),
        ("repository users", f"/repositories/{repo}/userAccess"),
        ("tag (index)", f"/repositories/{repo}/manifests/latest"),
        ("tag (image)", f"/repositories/{repo}/manifests/v3"),
        ("jobs", "/jobs?pageSize=50"),
        ("crons", "/crons"),
        ("audit", "/audit?limit=50"),
        ("users", "/accounts?type=user"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repositories", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--flag-ms", type=float, default=100.0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="dockyard-ui-bench-") as tmp:
        work = Path(tmp)
        env = {
            "DOCKYARD_AUTH__ENABLED": "true",
            "DOCKYARD_ADMIN_PASSWORD": PASSWORD,
            "DOCKYARD_SERVER__ACCESS_LOG": "true",
        }
        server = dockyard_server("dockyard", "Dockyard", work / "dy", REPO_ROOT, [], env)
        server.start()  # creates and migrates the database
        db_path = work / "dy" / "data" / "db" / "dockyard.db"
        try:
            admin = signed_in(server.url, "admin", PASSWORD)

            def ok(method: str, path: str, body: object = None) -> dict[str, object]:
                r = admin.request(method, path, json=body)
                assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
                return r.json() if r.content else {}

            ok("POST", "/accounts", {"type": "user", "name": "dev", "password": DEV_PASSWORD})
            for org in ("org0", "org1"):
                ok("POST", "/accounts", {"type": "organization", "name": org})
            ok("POST", "/accounts/org0/teams", {"name": "readers"})
            ok("PUT", "/accounts/org0/teams/readers/members/dev")
            ok("PUT", "/repositoryNamespaces/org0/teamAccess/readers", {"accessLevel": "read-only"})
            team = ok("POST", "/accounts/org1/teams", {"name": "devs"})
            ok("PUT", "/accounts/org1/teams/devs/members/dev")
            t0 = time.monotonic()
            seed(db_path, args.repositories, time.time())
            grant(
                db_path,
                int(str(team["id"])),
                [f"org1/app{j}" for j in range(0, REPOS_PER_ORG, 2)]
                + [f"org{o}/app{j}" for o in range(2, 8) for j in range(0, REPOS_PER_ORG, 4)],
            )
            counts = (
                sqlite3.connect(db_path)
                .execute("SELECT (SELECT count(*) FROM repositories), (SELECT count(*) FROM tags)")
                .fetchone()
            )
            print(f"seeded {counts[0]} repositories, {counts[1]} tags in {time.monotonic() - t0:.1f}s", flush=True)
            dev = signed_in(server.url, "dev", DEV_PASSWORD)
            results: dict[str, dict[str, tuple[float, float, int]]] = {}
            offset = server.log_path.stat().st_size
            for who, client in (("admin", admin), ("dev", dev)):
                for page, path in calls():
                    server_times, client_times, status = [], [], 0
                    for run in range(args.runs + 1):  # the first run warms caches and is dropped
                        c0 = time.perf_counter()
                        r = client.get(path)
                        elapsed = (time.perf_counter() - c0) * 1000
                        status = r.status_code
                        ms, offset = server_ms(server.log_path, offset, r.headers.get("x-request-id", ""))
                        if run:
                            client_times.append(elapsed)
                            if ms is not None:
                                server_times.append(ms)
                    med = statistics.median(server_times) if server_times else float("nan")
                    results.setdefault(page, {})[who] = (med, statistics.median(client_times), status)
            admin.close()
            dev.close()
        finally:
            server.stop()

    print(f"\nserver time, median of {args.runs} runs, ms ({counts[0]} repositories, {counts[1]} tags)")
    print(f"{'page / call':<22} {'admin':>9} {'status':>6} {'non-admin':>10} {'status':>6}  path")
    slow = 0
    for page, path in calls():
        row = results[page]
        cells = []
        for who in ("admin", "dev"):
            ms, _, status = row[who]
            mark = "!" if ms >= args.flag_ms else " "
            slow += ms >= args.flag_ms
            cells.append(f"{ms:>8.1f}{mark} {status:>6}")
        print(f"{page:<22} {cells[0]} {cells[1]:>17}  {path}")
    print(f"\n{slow} call(s) at or over {args.flag_ms:.0f} ms" + (" (marked !)" if slow else ""))
    if args.json:
        print(
            json.dumps(
                {
                    p: {w: {"ms": v[0], "client_ms": v[1], "status": v[2]} for w, v in r.items()}
                    for p, r in results.items()
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
