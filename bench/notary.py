#!/usr/bin/env python3
"""Notary publish + lookup with the real notary CLI: Dockyard vs notary-server + notary-signer.

    python bench/notary.py                      # 3 runs of 10 iterations, separate signers
    python bench/notary.py --signer local       # both sign in-process / in memory
    python bench/notary.py --runs 5 --iterations 20
    python bench/notary.py --reference-storage postgres   # the reference durable too

One iteration = ``notary init -p``, ``notary add -p`` and ``notary lookup`` on a fresh GUN with
a fresh client trust folder, against each server in turn (reference first, then Dockyard). The
ratio is reference time / Dockyard time: above 1, Dockyard is faster. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.postgres import Postgres  # noqa: E402
from benchlib.servers import LOOPBACK, _die_with_parent, clean_env, free_port  # noqa: E402

from dockyard.ca.authority import CertificateAuthority, plain_pem  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTARY = "/usr/bin/notary"
NOTARY_SERVER = "/usr/bin/notary-server"
NOTARY_SIGNER = "/usr/bin/notary-signer"
SIGNER_ALIAS = "bench"  # notary-signer reads the key passphrase from NOTARY_SIGNER_<ALIAS>

# The tables notary-server and notary-signer (0.7) expect on PostgreSQL, as their gorm models
# name them; Debian ships no migrations and neither program creates its tables.
NOTARY_SERVER_SCHEMA = """
CREATE TABLE tuf_files (
    id serial PRIMARY KEY, created_at timestamptz, updated_at timestamptz, deleted_at timestamptz,
    gun varchar(255) NOT NULL, role varchar(255) NOT NULL, version integer NOT NULL,
    sha256 varchar(64), data bytea NOT NULL, UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_sha256 ON tuf_files (sha256);
CREATE INDEX tuf_files_deleted_at ON tuf_files (deleted_at);
CREATE TABLE changefeed (
    id serial PRIMARY KEY, created_at timestamptz DEFAULT now(), gun varchar(255) NOT NULL,
    version integer NOT NULL, sha256 varchar(64), category varchar(20) NOT NULL DEFAULT 'update'
);
CREATE INDEX changefeed_gun ON changefeed (gun);
"""
NOTARY_SIGNER_SCHEMA = """
CREATE TABLE private_keys (
    id serial PRIMARY KEY, created_at timestamptz, updated_at timestamptz, deleted_at timestamptz,
    key_id varchar(255) NOT NULL UNIQUE, encryption_alg varchar(255) NOT NULL,
    keywrap_alg varchar(255) NOT NULL, algorithm varchar(50) NOT NULL,
    passphrase_alias varchar(50) NOT NULL, gun varchar(255) NOT NULL, role varchar(255) NOT NULL,
    public bytea NOT NULL, private bytea NOT NULL, last_used timestamptz
);
CREATE INDEX private_keys_deleted_at ON private_keys (deleted_at);
"""
PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "bench-root-passphrase",
    "NOTARY_TARGETS_PASSPHRASE": "bench-targets-passphrase",
    "NOTARY_SNAPSHOT_PASSPHRASE": "bench-snapshot-passphrase",
}


# --- certificates for the reference (its server TLS and the server <-> signer mutual TLS) ---------


def issue_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA (made by Dockyard's own CA code) and a certificate for 127.0.0.1 and
    localhost (server and client use), as PEM files."""
    ca = CertificateAuthority.create(folder, os.urandom(32), name="notary bench")
    leaf = ca.issue("notary-bench", ["localhost", LOOPBACK])
    paths = {"ca": folder / "ca.crt", "cert": folder / "tls.crt", "key": folder / "tls.key"}
    paths["ca"].write_bytes(ca.pem)
    paths["cert"].write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(plain_pem(leaf.key))
    paths["key"].chmod(0o600)
    return paths


# --- processes --------------------------------------------------------------------------------


@dataclass
class Process:
    label: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=clean_env)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{self.label} is not running:\n{tail}")

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def wait_https(proc: Process, port: int, ca: Path, path: str, seconds: float = 60) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.check_alive()
        conn = http.client.HTTPSConnection(LOOPBACK, port, timeout=2, context=context)
        try:
            conn.request("GET", path)
            if conn.getresponse().status in (200, 401):
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    raise RuntimeError(f"{proc.label} did not answer GET {path} in {seconds:.0f} s")


def wait_port(proc: Process, port: int, seconds: float = 60) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.label} did not listen on {port} in {seconds:.0f} s")


@dataclass
class Target:
    """A notary server under test: its URL, the CA that verifies it, its processes."""

    label: str
    port: int
    ca: Path
    processes: list[Process]
    needs_repository: bool  # Dockyard keeps trust data only for repositories that exist

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()


def start_reference(work: Path, signer: str, postgres: Postgres | None = None) -> Target:
    """notary-server (and notary-signer): in memory, or on ``postgres`` when given."""
    work.mkdir(parents=True)
    certs = issue_certificates(work / "tls")
    port = free_port()
    processes = []
    trust_service: dict[str, object] = {"type": "local"}
    if signer == "remote":
        grpc_port, debug_port = free_port(), free_port()
        signer_config = {
            "server": {
                "grpc_addr": f"{LOOPBACK}:{grpc_port}",
                "http_addr": f"{LOOPBACK}:{debug_port}",
                "tls_cert_file": str(certs["cert"]),
                "tls_key_file": str(certs["key"]),
                "client_ca_file": str(certs["ca"]),
            },
            "logging": {"level": "error"},
            "storage": {"backend": "memory"},
        }
        signer_env = clean_env()
        if postgres is not None:
            url = postgres.create_database("notarysigner", NOTARY_SIGNER_SCHEMA)
            signer_config["storage"] = {"backend": "postgres", "db_url": url, "default_alias": SIGNER_ALIAS}
            signer_env[f"NOTARY_SIGNER_{SIGNER_ALIAS.upper()}"] = "bench-signer-passphrase"
        (work / "signer.json").write_text(json.dumps(signer_config, indent=2))
        signer_proc = Process(
            "notary-signer", [NOTARY_SIGNER, "-config", str(work / "signer.json")], work / "signer.log", signer_env
        )
        signer_proc.start()
        processes.append(signer_proc)
        wait_port(signer_proc, grpc_port)
        trust_service = {
            "type": "remote",
            "hostname": LOOPBACK,
            "port": str(grpc_port),
            "key_algorithm": "ecdsa",
            "tls_ca_file": str(certs["ca"]),
            "tls_client_cert": str(certs["cert"]),
            "tls_client_key": str(certs["key"]),
        }
    server_config = {
        "server": {
            "http_addr": f"{LOOPBACK}:{port}",
            "tls_cert_file": str(certs["cert"]),
            "tls_key_file": str(certs["key"]),
        },
        "trust_service": trust_service,
        "logging": {"level": "error"},
        "storage": {"backend": "memory"},
    }
    if postgres is not None:
        url = postgres.create_database("notaryserver", NOTARY_SERVER_SCHEMA)
        server_config["storage"] = {"backend": "postgres", "db_url": url}
    (work / "server.json").write_text(json.dumps(server_config, indent=2))
    server = Process("notary-server", [NOTARY_SERVER, "-config", str(work / "server.json")], work / "server.log")
    server.start()
    processes.append(server)
    storage = "postgres" if postgres is not None else "memory"
    target = Target(f"notary-server ({signer} signer, {storage})", port, certs["ca"], processes, needs_repository=False)
    try:
        wait_https(server, port, certs["ca"], "/_notary_server/health")
    except Exception:
        target.stop()
        raise
    return target


def start_dockyard(work: Path, signer: str, postgres: Postgres | None = None) -> Target:
    """Dockyard on its default SQLite, or on ``postgres`` when given (the signer's keystore is
    its own SQLite file either way)."""
    work.mkdir(parents=True)
    data = work / "data"
    env = clean_env()
    if postgres is not None:
        env["DOCKYARD_DATABASE_URL"] = postgres.create_dockyard_database("dockyard")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    env["DOCKYARD_AUTH__ENABLED"] = "false"  # the reference runs without authentication too
    python = [sys.executable, "-m", "dockyard"]
    subprocess.run(
        [*python, "install", "--data-dir", str(data), "--admin-password", "bench-admin-password"],
        env=env,
        check=True,
        capture_output=True,
    )
    processes = []
    if signer == "remote":
        signer_port = free_port()
        signer_proc = Process(
            "dockyard signer",
            [*python, "signer", "serve", "--data-dir", str(data), "--listen", f"{LOOPBACK}:{signer_port}"],
            work / "signer.log",
            env,
        )
        signer_proc.start()
        processes.append(signer_proc)
        wait_port(signer_proc, signer_port)
        env = {**env, "DOCKYARD_TRUST__SIGNER_URL": f"https://{LOOPBACK}:{signer_port}"}
    port = free_port()
    server = Process(
        "dockyard serve",
        [*python, "serve", "--data-dir", str(data), "--listen", f"{LOOPBACK}:{port}"],
        work / "server.log",
        env,
    )
    server.start()
    processes.append(server)
    database = "postgres" if postgres is not None else "sqlite"
    target = Target(
        f"Dockyard ({signer} signer, {database})", port, data / "ca" / "ca.crt", processes, needs_repository=True
    )
    try:
        wait_https(server, port, target.ca, "/v2/")
    except Exception:
        target.stop()
        raise
    return target


# --- the workload -----------------------------------------------------------------------------


def push_small_image(target: Target, repository: str) -> None:
    """An image with an empty config and no layers, so the repository exists (untimed)."""
    context = ssl.create_default_context(cafile=str(target.ca))
    conn = http.client.HTTPSConnection(LOOPBACK, target.port, timeout=30, context=context)
    try:
        config = b"{}"
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        conn.request("POST", f"/v2/{repository}/blobs/uploads/")
        r = conn.getresponse()
        r.read()
        location = r.getheader("Location") or ""
        if r.status != 202 or not location:
            raise RuntimeError(f"upload start: {r.status}")
        path = location.split(LOOPBACK, 1)[-1].split(f":{target.port}", 1)[-1] if "://" in location else location
        sep = "&" if "?" in path else "?"
        conn.request("PUT", f"{path}{sep}digest={digest}", body=config)
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError(f"upload commit: {r.status}")
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 2},
                "layers": [],
            }
        ).encode()
        conn.request(
            "PUT",
            f"/v2/{repository}/manifests/v1",
            body=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError(f"manifest: {r.status}")
    finally:
        conn.close()


def notary(target: Target, trust: Path, *args: str) -> str:
    env = {**clean_env(), **PASSPHRASES}
    env.pop("NOTARY_AUTH", None)
    cmd = [NOTARY, "-s", target.url, "-d", str(trust), "--tlscacert", str(target.ca), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{target.label}: notary {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def round_trip(target: Target, work: Path, name: str, payload: Path) -> float:
    """Seconds for init -p, add -p, lookup on a fresh GUN with a fresh trust folder."""
    repository = f"bench/{name}"
    gun = f"{LOOPBACK}:{target.port}/{repository}"
    trust = work / "trust" / name
    if target.needs_repository:
        push_small_image(target, repository)
    t0 = time.perf_counter()
    notary(target, trust, "init", "-p", gun)
    notary(target, trust, "add", "-p", gun, "v1", str(payload))
    out = notary(target, trust, "lookup", gun, "v1").split()
    elapsed = time.perf_counter() - t0
    expected = "sha256:" + hashlib.sha256(payload.read_bytes()).hexdigest()
    if out[:2] != ["v1", expected]:
        raise RuntimeError(f"{target.label}: lookup answered {out}, expected v1 {expected}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs (a ratio each; default 3)")
    parser.add_argument("--iterations", type=int, default=10, help="round trips per server per run (default 10)")
    parser.add_argument(
        "--signer",
        choices=("remote", "local"),
        default="remote",
        help="remote: notary-signer and `dockyard signer serve` as separate processes over mutual TLS"
        " (default); local: notary-server's in-memory signer and Dockyard's in-process one",
    )
    parser.add_argument(
        "--tmp-dir",
        help="where to put the temporary folder (Dockyard's data); e.g. /dev/shm to take fsync out,"
        " since the reference's memory storage never writes to disk",
    )
    parser.add_argument(
        "--reference-storage",
        choices=("memory", "postgres"),
        default="memory",
        help="memory: notary-server and notary-signer keep everything in memory (default);"
        " postgres: both on a PostgreSQL started here, durable, as notary runs in production",
    )
    parser.add_argument(
        "--dockyard-database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite: Dockyard's embedded default (default); postgres: the same PostgreSQL as the reference",
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (configs, logs)")
    args = parser.parse_args(argv)
    for binary in (NOTARY, NOTARY_SERVER, NOTARY_SIGNER):
        if not Path(binary).exists():
            print(f"missing {binary} (Debian package notary)", file=sys.stderr)
            return 1

    work = Path(tempfile.mkdtemp(prefix="dockyard-notary-bench-", dir=args.tmp_dir))
    targets: list[Target] = []
    postgres: Postgres | None = None
    try:
        if "postgres" in (args.reference_storage, args.dockyard_database):
            postgres = Postgres.start()
        reference = start_reference(
            work / "reference", args.signer, postgres if args.reference_storage == "postgres" else None
        )
        targets.append(reference)
        dockyard = start_dockyard(
            work / "dockyard", args.signer, postgres if args.dockyard_database == "postgres" else None
        )
        targets.append(dockyard)
        payload = work / "payload"
        payload.write_bytes(os.urandom(1024).hex().encode())
        # Warm-up (untimed): first connections, lazily opened keystores, Python imports.
        for t in targets:
            round_trip(t, work / t.label.split()[0], "warmup", payload)

        print(f"notary init -p + add -p + lookup, {args.iterations} fresh GUNs per run")
        print(f"reference: {reference.label}; Dockyard: {dockyard.label}")
        print(f"{'run':>3}  {'reference s':>11}  {'Dockyard s':>10}  {'ref/iter ms':>11}  {'dy/iter ms':>10}  ratio")
        ratios = []
        for run in range(1, args.runs + 1):
            times: dict[str, list[float]] = {reference.label: [], dockyard.label: []}
            for i in range(args.iterations):
                for t in targets:  # reference first, then Dockyard, turn by turn
                    name = f"r{run}-i{i}"
                    times[t.label].append(round_trip(t, work / t.label.split()[0], name, payload))
            ref_total, dy_total = sum(times[reference.label]), sum(times[dockyard.label])
            ratio = ref_total / dy_total
            ratios.append(ratio)
            print(
                f"{run:>3}  {ref_total:>11.2f}  {dy_total:>10.2f}"
                f"  {statistics.median(times[reference.label]) * 1000:>11.0f}"
                f"  {statistics.median(times[dockyard.label]) * 1000:>10.0f}  {ratio:.2f}"
            )
        print(
            f"ratio (reference / Dockyard, >1 = Dockyard faster): median {statistics.median(ratios):.2f}, "
            f"min {min(ratios):.2f}, max {max(ratios):.2f}"
        )
        return 0
    finally:
        for t in targets:
            t.stop()
        if postgres is not None:
            postgres.stop()
        if args.keep_tmp:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
