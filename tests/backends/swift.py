"""A real OpenStack Swift for the tests: Debian's Swift packages run as a single-node
"Swift All In One" (one replica, one device, every server on loopback).

Needs (as root)::

    apt-get install -y --no-install-recommends swift swift-proxy swift-account \
        swift-container swift-object memcached

Everything lives in the work folder: ``swift.conf``, the three rings, the four server
configs, the device folder and the servers' logs. Nothing under /etc/swift is read: each
server runs through a tiny launcher that points Swift at our ``swift.conf`` before Swift
reads it (Swift otherwise always reads /etc/swift/swift.conf) and that logs to stderr
instead of syslog (there is no /dev/log here; Swift would fall back to UDP).

The rings are built with Swift's own ``RingBuilder`` (the library behind
``swift-ring-builder``) in one Python process: the CLI costs about a second per call, nine
calls for three rings, which alone would break the start-up budget.

Swift keeps object metadata in user xattrs. The folder must take a few KiB of them per
file (ext4 takes about 3.5 KiB per inode, plenty for our names); if the work folder
refuses, the servers run in a folder under /dev/shm instead (tmpfs keeps user xattrs
since Linux 6.6) and it is removed by ``stop``.

tempauth keeps its tokens in memcache, so a memcached runs beside the servers.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.backends import server_env
from tests.conftest import free_port

PYTHON = "/usr/bin/python3"  # Debian's Python, the one Swift's packages are installed for
USER = "test:tester"
KEY = "testing"
CONTAINER = "dockyard"
TEMP_URL_KEY = "dockyard-temp-url-key"
# Small segments in the tests, so that appends and moves go through SLO manifests.
SEGMENT_SIZE_MIB = 1
STARTUP_SECONDS = 30.0
SERVERS = ("account", "container", "object", "proxy")

LAUNCHER = '''\
"""Run one Swift server with swift.conf from our folder and logs on stderr."""
import logging
import sys

import eventlet.patcher

# Swift's own monkey patching (swift.common.utils.eventlet_monkey_patch), done first: done
# after the imports, greening the locks that exist already takes a second per server.
eventlet.patcher.monkey_patch(all=False, socket=True, select=True, thread=True)

from swift.common import utils  # noqa: E402

# Before anything reads it: storage policies and constraints load swift.conf on import.
utils.SWIFT_CONF_FILE = sys.argv[1]
utils.HASH_PATH_PREFIX = utils.HASH_PATH_SUFFIX = b""
# No syslog here; the console handler (verbose) writes to stderr, our log file.
utils.ThreadSafeSysLogHandler = lambda *args, **kwargs: logging.NullHandler()

from swift.common.wsgi import run_wsgi  # noqa: E402

sys.exit(run_wsgi(sys.argv[2], sys.argv[3], verbose=True))
'''

RING_BUILDER = '''\
"""Build the account, container and object rings: 1 replica, 1 device on 127.0.0.1."""
import sys

from swift.common.ring import RingBuilder

folder, device = sys.argv[1], sys.argv[2]
for name, port in zip(("account", "container", "object"), sys.argv[3:6]):
    builder = RingBuilder(4, 1, 0)  # 2**4 partitions, 1 replica, no move delay
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": device, "weight": 1.0})
    builder.rebalance()
    builder.save(f"{folder}/{name}.builder")
    builder.get_ring().save(f"{folder}/{name}.ring.gz")
'''


def _supports_xattrs(folder: Path) -> bool:
    """Can Swift keep its metadata here? Probed with a value the size of a big one."""
    probe = folder / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.swift.metadata", b"x" * 2048)
        return os.getxattr(probe, "user.swift.metadata") == b"x" * 2048
    except OSError:
        return False
    finally:
        probe.unlink()


def _server_conf(kind: str, folder: Path, port: int, user: str, memcache_port: int) -> str:
    common = f"""\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {folder}
devices = {folder / "srv"}
mount_check = false
disable_fallocate = true
log_level = WARNING
log_name = {kind}-server
"""
    if kind != "proxy":
        return (
            common
            + f"""
[pipeline:main]
pipeline = {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[{kind}-replicator]
[{kind}-updater]
[{kind}-auditor]
"""
        )
    middlewares = [
        "catch_errors",
        "gatekeeper",
        "healthcheck",
        "proxy-logging",
        "cache",
        "listing_formats",
        "bulk",
        "tempurl",
        "tempauth",
        "copy",
        "slo",
        "dlo",
    ]
    entry_points = {"cache": "memcache", "proxy-logging": "proxy_logging"}
    settings = {m: f"use = egg:swift#{entry_points.get(m, m)}" for m in middlewares}
    settings["cache"] += f"\nmemcache_servers = 127.0.0.1:{memcache_port}"
    settings["tempauth"] += f"\nuser_test_tester = {KEY} .admin"  # account AUTH_test
    settings["tempurl"] += "\nallowed_digests = sha1 sha256 sha512"
    filters = "\n".join(f"[filter:{m}]\n{conf}\n" for m, conf in settings.items())
    return (
        common
        + f"""
[pipeline:main]
pipeline = {" ".join(middlewares)} proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

{filters}"""
    )


@dataclass
class SwiftBackend:
    name = "swift"
    folder: Path
    proxy_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    scratch: Path | None = None  # a folder of ours under /dev/shm, removed at stop
    token: str = ""
    storage_url: str = ""

    @property
    def auth_url(self) -> str:
        return f"{self.proxy_url}/auth/v1.0"

    def authenticate(self) -> None:
        r = httpx.get(self.auth_url, headers={"X-Auth-User": USER, "X-Auth-Key": KEY}, timeout=10)
        r.raise_for_status()
        self.token, self.storage_url = r.headers["X-Auth-Token"], r.headers["X-Storage-Url"]

    def request(self, method: str, path: str = "", **kwargs: Any) -> httpx.Response:
        """An authenticated request to the account (path "") or below it."""
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        return httpx.request(method, self.storage_url + path, headers=headers, timeout=30, **kwargs)

    def params(self, prefix: str) -> dict[str, Any]:
        return {
            "auth_url": self.auth_url,
            "username": USER,
            "password": KEY,
            "container": CONTAINER,
            "prefix": prefix,
            "segment_size_mib": SEGMENT_SIZE_MIB,
            "temp_url_key": TEMP_URL_KEY,
        }

    def server_env(self, prefix: str) -> dict[str, str]:
        return server_env("swift", self.params(prefix))

    def object_names(self, prefix: str = "") -> list[str]:
        """Every object in the container whose name starts with prefix (test helper)."""
        names: list[str] = []
        marker = ""
        while True:
            r = self.request("GET", f"/{CONTAINER}", params={"prefix": prefix, "marker": marker, "format": "json"})
            r.raise_for_status()
            page = [item["name"] for item in r.json()]
            if not page:
                return names
            names += page
            marker = page[-1]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def start(workdir: Path) -> SwiftBackend:
    workdir.mkdir(parents=True, exist_ok=True)
    scratch: Path | None = None
    folder = workdir
    if not _supports_xattrs(workdir):
        scratch = Path(tempfile.mkdtemp(prefix="dockyard-swift-", dir="/dev/shm"))
        if not _supports_xattrs(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
            raise RuntimeError(f"neither {workdir} nor /dev/shm keeps user xattrs, which Swift needs")
        folder = scratch
    user = pwd.getpwuid(os.getuid()).pw_name
    ports = {kind: free_port() for kind in (*SERVERS, "memcached")}
    (folder / "srv" / "d1").mkdir(parents=True, exist_ok=True)
    (folder / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = dockyard-tests\nswift_hash_path_prefix = dockyard\n\n"
        "[storage-policy:0]\nname = gold\ndefault = yes\n"
    )
    for kind in SERVERS:
        (folder / f"{kind}-server.conf").write_text(_server_conf(kind, folder, ports[kind], user, ports["memcached"]))
    (folder / "launch.py").write_text(LAUNCHER)
    (folder / "rings.py").write_text(RING_BUILDER)
    backend = SwiftBackend(folder=folder, proxy_url=f"http://127.0.0.1:{ports['proxy']}", scratch=scratch)
    try:
        rings = subprocess.run(
            [PYTHON, str(folder / "rings.py"), str(folder), "d1", *(str(ports[k]) for k in SERVERS[:3])],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if rings.returncode != 0:
            raise RuntimeError(f"building the rings failed:\n{rings.stdout}\n{rings.stderr}")
        _spawn(
            backend,
            "memcached",
            ["memcached", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0"] + ["-m", "64", "-u", user],
        )
        for kind in SERVERS:
            conf = folder / f"{kind}-server.conf"
            _spawn(
                backend,
                kind,
                [PYTHON, str(folder / "launch.py"), str(folder / "swift.conf"), str(conf), f"{kind}-server"],
            )
        _wait_until_ready(backend)
        # The account's TempURL key, for the redirect tests.
        backend.request("POST", headers={"X-Account-Meta-Temp-URL-Key": TEMP_URL_KEY}).raise_for_status()
    except Exception as e:
        logs = backend.logs()
        backend.stop()
        raise RuntimeError(f"Swift did not start: {e}\n{logs}") from e
    except BaseException:
        backend.stop()
        raise
    return backend


def _die_with_parent() -> None:
    """In the child before exec: a SIGTERM when the test process dies, even by SIGKILL,
    so no server outlives an interrupted run (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _spawn(backend: SwiftBackend, name: str, argv: list[str]) -> None:
    with open(backend.folder / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
        backend.processes.append(
            subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=backend.folder,
                # Loopback addresses only: eventlet's green DNS (dnspython, which pulls in
                # httpx and more) would only cost start-up time.
                env={**os.environ, "EVENTLET_NO_GREENDNS": "yes"},
                preexec_fn=_die_with_parent,
            )
        )


def _wait_until_ready(backend: SwiftBackend) -> None:
    """Until tempauth hands out a token and the shared container is made (every test
    uses it, each under its own prefix): then all four servers answer."""
    deadline = time.monotonic() + STARTUP_SECONDS
    last = ""
    while time.monotonic() < deadline:
        for proc in backend.processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            backend.authenticate()
            r = backend.request("PUT", f"/{CONTAINER}")  # autocreates the account too
            if r.status_code in (201, 202):
                return
            last = f"container PUT answered {r.status_code}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"Swift did not answer in {STARTUP_SECONDS:.0f} s ({last})")
