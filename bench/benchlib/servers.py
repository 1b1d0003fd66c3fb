"""Starting, watching and stopping the two registries, all on 127.0.0.1.

Each server runs in its own session (process group) so Ctrl-C in the terminal reaches only the
benchmark, which then stops the servers itself; stopping signals the whole group, so a server
that forks workers is cleaned up too.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_BINARY = "/usr/bin/docker-registry"
LOOPBACK = "127.0.0.1"

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every child process: no proxies, so traffic stays on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env.update(extra or {})
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGKILL the server if the benchmark itself dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Memory of a process tree
# ---------------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ..." -- comm may contain spaces and parentheses.
        rest = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _read_status(pid: int) -> tuple[int, int, int] | None:
    """(starttime, VmHWM kB, VmRSS kB) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            starttime = int(f.read().rsplit(b")", 1)[1].split()[19])
        hwm = rss = 0
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return starttime, hwm, rss


@dataclass
class TreeMemory:
    """High-water marks of every process seen in a server's tree (sampled, plus a final read)."""

    root: int
    hwm_kb: dict[tuple[int, int], int] = field(default_factory=dict)  # (pid, starttime) -> kB
    peak_total_rss_kb: int = 0

    def sample(self) -> None:
        total_rss = 0
        for pid in process_tree(self.root):
            st = _read_status(pid)
            if st is None:
                continue
            starttime, hwm, rss = st
            key = (pid, starttime)
            self.hwm_kb[key] = max(self.hwm_kb.get(key, 0), hwm)
            total_rss += rss
        self.peak_total_rss_kb = max(self.peak_total_rss_kb, total_rss)

    @property
    def sum_hwm_mib(self) -> float:
        return sum(self.hwm_kb.values()) / 1024

    @property
    def processes(self) -> int:
        return len(self.hwm_kb)


class MemorySampler:
    """Samples all registered servers' process trees every `interval` seconds in a thread.

    VmHWM is already a per-process high-water mark, so sampling only matters for children
    that exit before the final read; it is cheap (a scan of /proc twice a second).
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.trees: dict[str, TreeMemory] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def watch(self, key: str, pid: int) -> None:
        with self._lock:
            self.trees[key] = TreeMemory(pid)

    def unwatch(self, key: str) -> None:
        with self._lock:
            self.trees.pop(key, None)

    def read(self, key: str) -> TreeMemory:
        with self._lock:
            tree = self.trees[key]
            tree.sample()
            return tree

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for tree in self.trees.values():
                    tree.sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


class ServerStartError(RuntimeError):
    pass


@dataclass
class Server:
    key: str  # "reference" or "dockyard"
    label: str  # what the table calls it
    port: int
    workdir: Path
    log_path: Path
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: float | None = None

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 60.0) -> None:
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only called while the benchmark has no other threads (servers start first).
                preexec_fn=_die_with_parent,
            )
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"{self.label} exited with status {self.process.returncode} before answering "
                    f"GET /v2/\n--- command: {' '.join(self.command)}\n--- log tail:\n{self.log_tail()}"
                )
            if self._v2_status() in (200, 401):  # 401: up, with authentication on
                self.startup_seconds = time.perf_counter() - t0
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(
            f"{self.label} did not answer GET /v2/ within {timeout:.0f} s\n"
            f"--- command: {' '.join(self.command)}\n--- log tail:\n{self.log_tail()}"
        )

    def _v2_status(self) -> int | None:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self, grace: float = 10.0) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # The leader is gone; make sure no worker of its group outlived it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


REFERENCE_CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
log:
  level: error
  accesslog:
    disabled: true
"""


def reference_server(key: str, label: str, workdir: Path, extra_env: dict[str, str] | None = None) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = workdir / "storage"
    root.mkdir()
    config = workdir / "config.yml"
    config.write_text(REFERENCE_CONFIG.format(root=root, port=port))
    return Server(
        key=key,
        label=label,
        port=port,
        workdir=workdir,
        log_path=workdir / "server.log",
        command=[REFERENCE_BINARY, "serve", str(config)],
        env=clean_env(extra_env),
    )


def dockyard_server(
    key: str,
    label: str,
    workdir: Path,
    repo_root: Path,
    extra_args: list[str],
    extra_env: dict[str, str],
) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data_dir = workdir / "data"
    data_dir.mkdir()
    env = clean_env()
    # Benchmark the working tree, whether or not it is installed.
    src = str(repo_root / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    # The reference runs without authentication, so Dockyard does too unless asked
    # (bench/auth_overhead.py measures what authentication costs).
    env["DOCKYARD_AUTH__ENABLED"] = "false"
    env.update(extra_env)
    return Server(
        key=key,
        label=label,
        port=port,
        workdir=workdir,
        log_path=workdir / "server.log",
        command=[
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"{LOOPBACK}:{port}",
            "--http",  # the reference serves plain HTTP too
            *extra_args,
        ],
        env=env,
    )
