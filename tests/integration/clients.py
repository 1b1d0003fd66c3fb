"""Helpers for round-trip tests with real container clients (skopeo, umoci, podman, docker).

Everything here talks only to 127.0.0.1 and keeps its state in private temporary directories:
its own containers policy, registries.conf and auth file for skopeo and podman, a private
podman ``--root``/``--runroot``, and a private ``dockerd`` with its own data root, exec root and
socket.  A failing command raises :class:`CommandError` carrying the command line, the exit code,
the tail of its stdout/stderr (clients run with debug logging, so the HTTP requests are in there)
and the tail of the registry's log.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

# --------------------------------------------------------------------------------------------
# media types

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INSTALL_HINT = {
    "skopeo": "apt-get install skopeo",
    "umoci": "apt-get install umoci",
    "podman": "apt-get install podman",
    "docker": "apt-get install docker.io",
    "dockerd": "apt-get install docker.io",
    "docker-registry": "apt-get install docker-registry",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def require_tool(name: str) -> str:
    """Absolute path of a client tool.  Missing tools fail the test loudly: never a silent skip."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name!r} is not installed but the clients tests need it ({INSTALL_HINT.get(name, name)})"
        )
    return path


def docker_cli() -> str:
    """The docker CLI to drive the private daemon with.

    Prefer the CLI shipped with Debian's docker.io (same version as its dockerd and its legacy
    builder) over whatever else is first on PATH; DOCKYARD_TEST_DOCKER_CLI overrides."""
    override = os.environ.get("DOCKYARD_TEST_DOCKER_CLI")
    if override:
        return override
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return require_tool("docker")


# --------------------------------------------------------------------------------------------
# running commands


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode()

    def json(self) -> Any:
        return json.loads(self.stdout)


class CommandError(AssertionError):
    pass


def _tail(text: str, lines: int) -> str:
    parts = text.splitlines()
    if len(parts) <= lines:
        return text
    return f"[... {len(parts) - lines} earlier lines cut ...]\n" + "\n".join(parts[-lines:])


def file_tail(path: Path | None, lines: int = 60, width: int = 400) -> str:
    """The last lines of a log, each cut to ``width`` characters."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace")
    cut = [line if len(line) <= width else line[:width] + " [...]" for line in text.splitlines()]
    return _tail("\n".join(cut), lines)


def run(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180,
    check: bool = True,
    stdin: bytes | None = None,
    context: Callable[[], str] | None = None,
    log_dir: Path | None = None,
) -> Result:
    """Run a command; on failure raise CommandError with everything needed to see why.

    With ``log_dir`` the full stdout/stderr of every command is also kept there (commands.log),
    since the interesting HTTP exchange is not always in the tail."""
    argv = [str(a) for a in args]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
        )
        res = Result(argv, proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        err = (e.stderr or b"").decode(errors="replace")
        res = Result(argv, -1, out, err + f"\n[timed out after {timeout} s]")
    elapsed = time.monotonic() - started
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "commands.log", "a") as f:
            f.write(f"$ {shlex.join(argv)}\n# exit {res.returncode} after {elapsed:.1f}s\n")
            f.write(f"## stdout\n{res.stdout.decode(errors='replace')}\n## stderr\n{res.stderr}\n\n")
    if check and res.returncode != 0:
        msg = [
            f"command failed (exit {res.returncode}, {elapsed:.1f}s): {shlex.join(argv)}",
            f"--- stdout ---\n{_tail(res.stdout.decode(errors='replace'), 60)}",
            f"--- stderr ---\n{_tail(res.stderr, 150)}",
        ]
        if log_dir is not None:
            msg.append(f"(full output of every command in {log_dir / 'commands.log'})")
        if context is not None:
            msg.append(context())
        raise CommandError("\n".join(msg))
    return res


# --------------------------------------------------------------------------------------------
# layers and hand-built OCI image layouts


def tar_layer(files: Mapping[str, bytes], mtime: int = 1_700_000_000) -> bytes:
    """A deterministic uncompressed tar of ``files`` (path -> content), parent dirs included."""
    buf = io.BytesIO()
    dirs: set[str] = set()
    for name in files:
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = mtime
            tf.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name.strip("/"))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = mtime
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def layer_files(blob: bytes) -> dict[str, bytes]:
    """Regular files in a (possibly gzipped) layer tar, by path without leading './' or '/'."""
    raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        for m in tf.getmembers():
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                files[m.name.removeprefix("./").lstrip("/")] = f.read()
    return files


def diff_id(blob: bytes) -> str:
    return sha256(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)


def dump_json(obj: Any, pretty: bool) -> bytes:
    """Serialise a manifest.  The pretty form (3-space indent, trailing newline) is deliberately
    not what a registry would produce if it re-serialised: byte-exact round trips catch that."""
    if pretty:
        return (json.dumps(obj, indent=3) + "\n").encode()
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str = "linux"
    variant: str | None = None

    def as_dict(self) -> dict[str, str]:
        d = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d

    @property
    def slug(self) -> str:
        return "-".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass
class BuiltImage:
    descriptor: dict[str, Any]  # manifest descriptor (with platform)
    manifest: bytes
    config: bytes
    layers: list[bytes]  # compressed blobs
    platform: Platform

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def layer_digests(self) -> list[str]:
        return [sha256(b) for b in self.layers]


@dataclass
class BuiltIndex:
    descriptor: dict[str, Any]
    index: bytes
    children: list[BuiltImage]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    def child(self, architecture: str, variant: str | None = None) -> BuiltImage:
        for c in self.children:
            if c.platform.architecture == architecture and c.platform.variant == variant:
                return c
        raise KeyError((architecture, variant))


class LayoutWriter:
    """Writes an OCI image layout by hand: blobs, configs, manifests, indexes (OCI or Docker)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.refs: list[dict[str, Any]] = []
        self._write_index()

    def put(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(
        self,
        layers: Sequence[Mapping[str, bytes]],
        platform: Platform = Platform("amd64"),
        *,
        docker: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> BuiltImage:
        blobs = [gzip_bytes(tar_layer(files)) for files in layers]
        layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
        layer_descs = [self.put(b, layer_type) for b in blobs]
        config_obj: dict[str, Any] = {
            "created": "2024-01-01T00:00:00Z",
            **platform.as_dict(),
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": [diff_id(b) for b in blobs]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(blobs))],
        }
        config = dump_json(config_obj, pretty=False)
        config_desc = self.put(config, DOCKER_CONFIG if docker else OCI_CONFIG)
        manifest_obj: dict[str, Any] = {"schemaVersion": 2}
        manifest_obj["mediaType"] = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest_obj["config"] = config_desc
        manifest_obj["layers"] = layer_descs
        manifest = dump_json(manifest_obj, pretty=True)
        desc = self.put(manifest, manifest_obj["mediaType"])
        desc["platform"] = platform.as_dict()
        return BuiltImage(desc, manifest, config, blobs, platform)

    def index(self, children: Sequence[BuiltImage], *, docker: bool = False) -> BuiltIndex:
        media_type = DOCKER_LIST if docker else OCI_INDEX
        obj = {"schemaVersion": 2, "mediaType": media_type, "manifests": [c.descriptor for c in children]}
        data = dump_json(obj, pretty=True)
        return BuiltIndex(self.put(data, media_type), data, list(children))

    def tag(self, descriptor: Mapping[str, Any], name: str) -> None:
        ref = {k: v for k, v in descriptor.items() if k != "platform"}
        ref["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.refs.append(ref)
        self._write_index()

    def _write_index(self) -> None:
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.refs}))


def build_multiarch(
    root: Path,
    tag: str,
    platforms: Iterable[Platform],
    *,
    docker: bool = False,
    nonce: str = "",
) -> BuiltIndex:
    """An image layout whose tag is an index (OCI) or manifest list (Docker) of one image per
    platform.  Each child has two layers; /etc/platform holds the platform, so a pulled child
    can be identified by content as well as by config."""
    w = LayoutWriter(root)
    children = []
    for p in platforms:
        children.append(
            w.image(
                [
                    {"etc/platform": p.slug.encode() + b"\n", "etc/nonce": nonce.encode()},
                    {f"opt/{p.architecture}/data.bin": os.urandom(2048)},
                ],
                p,
                docker=docker,
                labels={"dockyard.test.platform": p.slug},
            )
        )
    idx = w.index(children, docker=docker)
    w.tag(idx.descriptor, tag)
    return idx


def write_dir_transport(index: BuiltIndex, dest: Path) -> None:
    """The same image list as a directory for skopeo's ``dir:`` transport.

    skopeo 1.9's ``oci:`` transport only resolves tags that point at OCI manifests or indexes,
    so a Docker manifest list has to be fed to skopeo from a ``dir:`` directory instead:
    manifest.json is the list, <hex>.manifest.json each instance, <hex> each blob."""
    dest.mkdir(parents=True)
    (dest / "version").write_text("Directory Transport Version: 1.1\n")
    (dest / "manifest.json").write_bytes(index.index)
    for child in index.children:
        (dest / f"{child.digest.removeprefix('sha256:')}.manifest.json").write_bytes(child.manifest)
        for blob in (child.config, *child.layers):
            (dest / sha256(blob).removeprefix("sha256:")).write_bytes(blob)


# --------------------------------------------------------------------------------------------
# reading OCI image layouts (as written by skopeo/umoci)


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root

    def index_json(self) -> dict[str, Any]:
        return json.loads((self.root / "index.json").read_text())  # type: ignore[no-any-return]

    def ref(self, tag: str) -> dict[str, Any]:
        for m in self.index_json()["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return m  # type: ignore[no-any-return]
        raise KeyError(f"tag {tag!r} not in {self.root}/index.json: {self.index_json()}")

    def blob(self, digest: str) -> bytes:
        algo, hexpart = digest.split(":", 1)
        data = (self.root / "blobs" / algo / hexpart).read_bytes()
        assert sha256(data) == digest, f"blob {digest} in {self.root} does not match its digest"
        return data

    def has_blob(self, digest: str) -> bool:
        algo, hexpart = digest.split(":", 1)
        return (self.root / "blobs" / algo / hexpart).is_file()

    def manifest(self, tag: str) -> tuple[str, dict[str, Any]]:
        digest = self.ref(tag)["digest"]
        return digest, json.loads(self.blob(digest))

    def files(self, manifest_digest: str) -> dict[str, bytes]:
        """Flattened view of the files of an image (no whiteout handling needed here)."""
        m = json.loads(self.blob(manifest_digest))
        files: dict[str, bytes] = {}
        for layer in m["layers"]:
            files.update(layer_files(self.blob(layer["digest"])))
        return files


# --------------------------------------------------------------------------------------------
# umoci-built images


def build_umoci_image(layout: Path, tag: str, layers: Sequence[Mapping[str, bytes]], work: Path) -> None:
    """A real image built with umoci: ``umoci new``, a config change, then per layer ``umoci
    unpack --rootless``, add the files to the rootfs, ``umoci repack``.

    (Not ``umoci insert``: umoci 0.4.7's insert writes layer tars without the end-of-archive
    blocks or the padding of the last file, which Python's tarfile rejects.)"""
    umoci = require_tool("umoci")
    if not (layout / "index.json").exists():
        run([umoci, "init", "--layout", layout])
    image = f"{layout}:{tag}"
    run([umoci, "new", "--image", image])
    run([umoci, "config", "--image", image, "--author", "dockyard-tests", "--config.label", f"tag={tag}"])
    for i, files in enumerate(layers):
        bundle = work / f"bundle-{tag}-{i}"
        run([umoci, "unpack", "--rootless", "--image", image, bundle])
        for name, data in files.items():
            path = bundle / "rootfs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        run([umoci, "repack", "--image", image, bundle])
        shutil.rmtree(bundle)
    run([umoci, "gc", "--layout", layout])


# --------------------------------------------------------------------------------------------
# client environments


class HasLog(Protocol):
    """What the tests need of a registry: Dockyard's RunningServer or the reference registry."""

    host: str
    url: str
    log_path: Path

    def client(self) -> httpx.Client: ...


POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


class Clients:
    """skopeo and podman in an isolated configuration, bound to one registry and one work dir."""

    def __init__(self, registry: HasLog, work: Path) -> None:
        self.registry = registry
        self.host = registry.host
        self.work = work
        self.cfg = work / "containers-config"
        self.cfg.mkdir(parents=True, exist_ok=True)
        self.policy = self.cfg / "policy.json"
        self.policy.write_text(json.dumps(POLICY))
        (self.cfg / "registries.conf").write_text("unqualified-search-registries = []\n")
        (self.cfg / "auth.json").write_text('{"auths": {}}\n')
        (self.cfg / "containers.conf").write_text("")
        (self.cfg / "tmp").mkdir(exist_ok=True)
        (self.cfg / "registries.d").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "CONTAINERS_REGISTRIES_CONF": str(self.cfg / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(self.cfg / "auth.json"),
            "CONTAINERS_CONF": str(self.cfg / "containers.conf"),
            "TMPDIR": str(self.cfg / "tmp"),
        }
        self._podman: Podman | None = None

    def context(self) -> str:
        return f"--- registry log ({self.registry.log_path}) ---\n{file_tail(self.registry.log_path, 40)}"

    def run(self, args: Sequence[str | Path], **kw: Any) -> Result:
        kw.setdefault("env", self.env)
        kw.setdefault("context", self.context)
        kw.setdefault("log_dir", self.work)
        return run(args, **kw)

    def ref(self, repo: str, tag_or_digest: str) -> str:
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    # skopeo ----------------------------------------------------------------------------------

    def skopeo(self, *args: str | Path, check: bool = True) -> Result:
        return self.run(
            [
                require_tool("skopeo"),
                "--debug",
                "--policy",
                str(self.policy),
                "--registries.d",
                str(self.cfg / "registries.d"),
                "--registries-conf",  # skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF
                str(self.cfg / "registries.conf"),
                *map(str, args),
            ],
            check=check,
        )

    def push(self, src: str, repo: str, tag: str, *extra: str) -> str:
        """skopeo copy SRC docker://HOST/REPO:TAG; returns the digest skopeo reports."""
        digestfile = self.work / f"digest-{os.urandom(4).hex()}"
        dest = f"docker://{self.ref(repo, tag)}"
        self.skopeo("copy", "--dest-tls-verify=false", "--digestfile", digestfile, *extra, src, dest)
        return digestfile.read_text().strip()

    def pull(self, repo: str, tag_or_digest: str, dest: str, *extra: str) -> None:
        self.skopeo("copy", "--src-tls-verify=false", *extra, f"docker://{self.ref(repo, tag_or_digest)}", dest)

    def inspect_raw(self, repo: str, tag_or_digest: str, *extra: str) -> bytes:
        return self.skopeo(
            "inspect", "--raw", "--tls-verify=false", *extra, f"docker://{self.ref(repo, tag_or_digest)}"
        ).stdout

    def inspect(self, repo: str, tag_or_digest: str, *extra: str) -> dict[str, Any]:
        res = self.skopeo("inspect", "--tls-verify=false", *extra, f"docker://{self.ref(repo, tag_or_digest)}")
        return res.json()  # type: ignore[no-any-return]

    def inspect_config(self, repo: str, tag_or_digest: str) -> bytes:
        """The config blob, as served (skopeo inspect --config --raw)."""
        ref = f"docker://{self.ref(repo, tag_or_digest)}"
        return self.skopeo("inspect", "--config", "--raw", "--tls-verify=false", ref).stdout

    def list_tags(self, repo: str) -> list[str]:
        res = self.skopeo("list-tags", "--tls-verify=false", f"docker://{self.host}/{repo}")
        return list(res.json()["Tags"])

    def close(self) -> None:
        if self._podman is not None:
            self._podman.close()

    # podman ----------------------------------------------------------------------------------

    @property
    def podman(self) -> Podman:
        if self._podman is None:
            self._podman = Podman(self)
        return self._podman


class Podman:
    """Rootful podman with private storage (vfs) under the test's work dir."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        base = clients.work / "podman"
        self.root = base / "root"
        # podman refuses a runroot longer than 50 characters.
        self.runroot = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
        self.tmpdir = base / "tmp"
        for d in (self.root, self.runroot, self.tmpdir):
            d.mkdir(parents=True, exist_ok=True)
        storage_conf = base / "storage.conf"
        storage_conf.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{self.runroot}"\ngraphroot = "{self.root}"\n')
        self.env = {**clients.env, "CONTAINERS_STORAGE_CONF": str(storage_conf)}

    def __call__(self, *args: str | Path, check: bool = True) -> Result:
        return self.clients.run(
            [
                require_tool("podman"),
                "--log-level=debug",
                "--root",
                str(self.root),
                "--runroot",
                str(self.runroot),
                "--tmpdir",
                str(self.tmpdir),
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                *map(str, args),
            ],
            env=self.env,
            check=check,
        )

    def close(self) -> None:
        shutil.rmtree(self.runroot, ignore_errors=True)

    def pull(self, ref: str, *extra: str) -> Result:
        return self("pull", "--tls-verify=false", "--signature-policy", str(self.clients.policy), *extra, ref)

    def push(self, ref: str, *extra: str, dest: str | None = None) -> str:
        """podman push [extra] REF [DEST]; returns the digest podman reports (--digestfile)."""
        digestfile = self.clients.work / f"podman-digest-{os.urandom(4).hex()}"
        self(
            "push",
            "--tls-verify=false",
            "--signature-policy",
            str(self.clients.policy),
            "--digestfile",
            str(digestfile),
            *extra,
            ref,
            *([dest] if dest else []),
        )
        return digestfile.read_text().strip()

    def inspect(self, ref: str) -> dict[str, Any]:
        data = self("image", "inspect", ref).json()
        assert isinstance(data, list) and len(data) == 1, data
        return data[0]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# a private dockerd


def _pids_mentioning(needle: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4]
            if mountpoint == prefix or mountpoint.startswith(prefix + "/"):
                mounts.append(mountpoint)
    return mounts


@dataclass
class DockerDaemon:
    """``dockerd`` with vfs storage, no iptables and no bridge, all state in a short /tmp dir."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dk", dir="/tmp")))
    cli: str = field(default_factory=docker_cli)
    process: subprocess.Popen[bytes] | None = None
    registry: HasLog | None = None

    @property
    def sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def start(self, timeout: float = 60) -> None:
        dockerd = require_tool("dockerd")
        assert len(str(self.sock)) < 100, f"socket path too long for a unix socket: {self.sock}"
        (self.root / "daemon.json").write_text("{}\n")
        (self.root / "cli-config").mkdir(exist_ok=True)
        ns = f"dockyard-test-{os.getpid()}"
        args = [
            dockerd,
            "--debug",
            "--config-file",
            str(self.root / "daemon.json"),
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "-H",
            f"unix://{self.sock}",
            "--pidfile",
            str(self.root / "docker.pid"),
            "--containerd-namespace",
            ns,
            "--containerd-plugins-namespace",
            ns + "-plugins",
        ]
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dockerd exited with {self.process.returncode} before answering; command: "
                    f"{shlex.join(args)}\n--- dockerd log ---\n{file_tail(self.log_path, 80)}"
                )
            if self.sock.exists():
                last = self.docker("info", "--format", "{{.ServerVersion}} {{.Driver}}", check=False)
                if last.returncode == 0:
                    return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"dockerd did not answer `docker info` in {timeout} s; last attempt: "
            f"{last.stderr if last else 'socket never appeared'}\n--- dockerd log ---\n{file_tail(self.log_path, 80)}"
        )

    def context(self) -> str:
        parts = [f"--- dockerd log ({self.log_path}) ---\n{file_tail(self.log_path, 60)}"]
        if self.registry is not None:
            parts.append(f"--- registry log ({self.registry.log_path}) ---\n{file_tail(self.registry.log_path, 40)}")
        return "\n".join(parts)

    def docker(self, *args: str | Path, check: bool = True, timeout: float = 180, stdin: bytes | None = None) -> Result:
        env = {**os.environ, "DOCKER_CONFIG": str(self.root / "cli-config"), "DOCKER_BUILDKIT": "0"}
        env.pop("DOCKER_HOST", None)
        env.pop("DOCKER_CONTEXT", None)
        return run(
            [self.cli, "-H", f"unix://{self.sock}", *map(str, args)],
            env=env,
            check=check,
            stdin=stdin,
            timeout=timeout,
            context=self.context,
            log_dir=self.root,
        )

    def stop(self) -> list[str]:
        """Stop dockerd (and the containerd it started); return a list of problems (leftover
        processes or mounts), after killing/unmounting what was left."""
        problems: list[str] = []
        containerd_pid = None
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            containerd_pid = int(pidfile.read_text().strip())
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("dockerd ignored SIGTERM for 30 s; killed")
                self.process.kill()
                self.process.wait()
        # dockerd stops its own containerd; give it a moment, then check.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _pids_mentioning(str(self.root)):
            time.sleep(0.2)
        for pid, cmdline in _pids_mentioning(str(self.root)):
            problems.append(f"left running after dockerd stopped: pid {pid}: {cmdline}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if containerd_pid is not None:
            with contextlib.suppress(OSError):
                os.kill(containerd_pid, 0)
                cmd = Path(f"/proc/{containerd_pid}/cmdline").read_bytes()
                if str(self.root).encode() in cmd:
                    problems.append(f"containerd pid {containerd_pid} still alive; killed")
                    os.kill(containerd_pid, signal.SIGKILL)
        for mnt in sorted(_mounts_under(self.root), reverse=True):
            problems.append(f"left mounted after dockerd stopped: {mnt}")
            subprocess.run(["umount", "-l", mnt], check=False)
        return problems

    def remove(self, keep_logs_in: Path | None = None) -> None:
        """Delete the daemon's directory, first copying its logs (dockerd.log, commands.log)."""
        if keep_logs_in is not None:
            keep_logs_in.mkdir(parents=True, exist_ok=True)
            for name in ("dockerd.log", "commands.log"):
                if (self.root / name).exists():
                    shutil.copy2(self.root / name, keep_logs_in / name)
        if not _mounts_under(self.root):
            shutil.rmtree(self.root, ignore_errors=True)


_PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")
_PULL_DIGEST = re.compile(r"^Digest: (sha256:[0-9a-f]{64})$", re.M)


def docker_push_digest(output: str) -> str:
    m = _PUSH_DIGEST.search(output)
    assert m, f"no digest line in docker push output:\n{output}"
    return m.group(1)


def docker_pull_digest(output: str) -> str:
    m = _PULL_DIGEST.search(output)
    assert m, f"no Digest line in docker pull output:\n{output}"
    return m.group(1)
