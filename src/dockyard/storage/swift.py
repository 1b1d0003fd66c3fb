"""The OpenStack Swift driver: Swift's REST API spoken directly with httpx.

Settings (``storage.params``)::

    auth_url                 v1 (tempauth, swauth: ``…/auth/v1.0``) or Keystone v3 (``…/v3``)
    username, password       v1: ``account:user`` and its key (``key`` is accepted for password)
    project_name|project_id  Keystone v3 scope, with user_domain_name and
                             project_domain_name (both "Default" unless set), region,
                             interface ("public")
    container                required
    prefix                   "" by default: every path lives under it
    segment_size_mib         16: large files are written as segments of this size
    temp_url_key             the account's (or container's) X-…-Meta-Temp-URL-Key
    redirect                 false: with true, blob GETs are redirected to TempURLs
    redirect_expiry_seconds  1200
    create_container         false: with true, the container is made if missing
    tls_verify               true

Only v1 auth is tested against a real server. Keystone v3 (a password token scoped to a
project, the object-store endpoint picked from its catalog by interface and region) is
implemented from Keystone's API reference and tested only against a stand-in Keystone
that hands out tempauth tokens.

Layout. A path ``/a/b`` is the object ``<prefix>/a/b``; directories are name prefixes,
listed with ``delimiter=/``. A file is either a plain object (up to ``segment_size``, or
anything ``put`` is given) or a Static Large Object: a manifest at its name listing
segment objects. Segments live outside the paths, under ``<prefix>~segments/<path>/<nonce>/``
(``~`` never occurs in a path, so ``list`` and ``walk`` skip them by name, and deleting a
directory never deletes segments another manifest uses). Each writer has its own nonce, so
a segment belongs to exactly one manifest at a time: ``move`` hands it over, and deleting
or replacing a manifest deletes its segments.

Append writers. An upload begun in one process may be continued in another, so all the
state is in Swift: an append writer reads the current manifest, uploads what it is given
as new segments (one PUT per ``segment_size`` bytes as they fill, so memory stays at about
one segment), and ``commit`` rewrites the manifest as old segments + new ones. A plain
file being appended to is absorbed while the result stays small (one GET and one PUT),
else it becomes the first segment by a server-side copy. SLO limits: a manifest lists at
most 1000 entries (``max_manifest_segments``) and Swift HEADs every entry on each manifest
PUT, so when an append leaves more than FOLD_AT loose segments they are folded into a
sub-manifest (a nested SLO, one entry); Swift follows up to 10 levels. Zero-byte segments
are never written (SLO refuses them).

Crashes. Segments of a writer that is neither committed nor cancelled (its process died)
stay under ``<prefix>~segments/``, invisible but not reclaimed; deleting ``/`` removes them.
Concurrent writers to one path: the last manifest wins, and the segments of a manifest
replaced between another writer's look and its write may be left behind.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import anyio
import anyio.to_thread
import httpx

from . import params as params_
from .driver import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver

MiB = 1 << 20
SEGMENTS = "~segments"
DEFAULT_SEGMENT_MIB = 16
MAX_SEGMENT_MIB = 5 * 1024  # Swift's default max_file_size: 5 GiB per object
# Loose segments an append may leave in a manifest before they are folded into a nested
# manifest: Swift HEADs every entry at each manifest PUT, so this bounds a commit's cost.
FOLD_AT = 64
DEFAULT_MAX_SEGMENTS = 1000  # SLO's max_manifest_segments unless /info says otherwise
DEFAULT_MAX_DELETES = 10000  # bulk delete's max_deletes_per_request
CONCURRENCY = 8  # parallel deletes when bulk delete is unavailable, and SLO deletes
READ_CHUNK = 256 << 10
# A plain file an append grows is read back and rewritten up to this size; a larger one
# becomes a segment by a server-side copy (no memory, one request).
ABSORB_MAX = 1 * MiB
INLINE_MD5 = 256 << 10
SMALL_PART = 64 << 10  # larger MD5s run in a thread, off the event loop
RETRIES = 3  # attempts for a request that failed in transport or with 5xx
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class SwiftError(Exception):
    """Swift answered something the driver did not expect."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        try:
            body = response.text[:300]
        except httpx.ResponseNotRead:  # a streamed answer: its status says enough
            body = ""
        super().__init__(f"{what}: Swift answered {response.status_code} {body}".strip())
        self.status = response.status_code


# -- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SwiftSettings:
    auth_url: str
    username: str
    password: str
    container: str
    prefix: str = ""
    segment_size: int = DEFAULT_SEGMENT_MIB * MiB
    temp_url_key: str | None = None
    redirect: bool = False
    redirect_expiry_seconds: int = 1200
    create_container: bool = False
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region: str | None = None
    interface: str = "public"
    tls_verify: bool = True
    fold_at: int = FOLD_AT  # not a setting: tests lower it to exercise nested manifests

    @property
    def keystone(self) -> bool:
        return urlsplit(self.auth_url).path.rstrip("/").endswith("/v3")


_STRINGS = (
    "auth_url",
    "username",
    "password",
    "key",
    "container",
    "prefix",
    "temp_url_key",
    "project_name",
    "project_id",
    "user_domain_name",
    "project_domain_name",
    "region",
    "interface",
)
_BOOLS = ("redirect", "create_container", "tls_verify")
_INTS = {"segment_size_mib": (1, MAX_SEGMENT_MIB), "redirect_expiry_seconds": (1, 7 * 24 * 3600)}
KNOWN = frozenset((*_STRINGS, *_BOOLS, *_INTS))


def _int(key: str, value: Any) -> int:
    return params_.whole(value, key, *_INTS[key])


def parse_settings(params: dict[str, Any]) -> SwiftSettings:
    """Validate ``storage.params``; every problem names its key."""
    params_.reject_unknown(params, KNOWN, "swift")
    strings: dict[str, str] = {}
    for key in _STRINGS:
        value = params.get(key)
        if value is None:
            continue
        strings[key] = params_.text(value, key)
    if "key" in strings and "password" in strings:
        raise ValueError("storage.params.key and storage.params.password are the same setting: give one")
    password = strings.pop("key", None) or strings.pop("password", "")
    for key in ("auth_url", "username", "container"):
        if not strings.get(key, "").strip():
            raise ValueError(f"storage.params.{key} is required")
    if not password:
        raise ValueError("storage.params.password (or key) is required")
    auth = urlsplit(strings["auth_url"])
    if auth.scheme not in ("http", "https") or not auth.netloc:
        raise ValueError(f"storage.params.auth_url must be an http(s) URL, not {strings['auth_url']!r}")
    container = strings["container"]
    if "/" in container or len(container) > 256:
        raise ValueError(
            f"storage.params.container must be a container name (no '/', at most 256 bytes): {container!r}"
        )
    prefix = strings.get("prefix", "").strip("/")
    if prefix and not _SEGMENT_RE.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/")):
        raise ValueError(f"storage.params.prefix must be path components of [A-Za-z0-9._-], not {prefix!r}")
    bools = {key: params_.flag(params[key], key) for key in _BOOLS if params.get(key) is not None}
    ints = {key: _int(key, params[key]) for key in _INTS if params.get(key) is not None}
    settings = SwiftSettings(
        auth_url=strings["auth_url"].rstrip("/"),
        username=strings["username"],
        password=password,
        container=container,
        prefix=prefix,
        segment_size=ints.get("segment_size_mib", DEFAULT_SEGMENT_MIB) * MiB,
        temp_url_key=strings.get("temp_url_key") or None,
        redirect=bools.get("redirect", False),
        redirect_expiry_seconds=ints.get("redirect_expiry_seconds", 1200),
        create_container=bools.get("create_container", False),
        project_name=strings.get("project_name") or None,
        project_id=strings.get("project_id") or None,
        user_domain_name=strings.get("user_domain_name") or "Default",
        project_domain_name=strings.get("project_domain_name") or "Default",
        region=strings.get("region") or None,
        interface=strings.get("interface") or "public",
        tls_verify=bools.get("tls_verify", True),
    )
    if settings.redirect and not settings.temp_url_key:
        raise ValueError("storage.params.redirect needs storage.params.temp_url_key (the key TempURLs are signed with)")
    if settings.keystone and not (settings.project_name or settings.project_id):
        raise ValueError("storage.params.project_name (or project_id) is required with a Keystone v3 auth_url")
    if settings.interface not in ("public", "internal", "admin"):
        raise ValueError(f"storage.params.interface must be public, internal or admin, not {settings.interface!r}")
    return settings


def from_parameters(params: dict[str, Any], data_dir: str) -> SwiftDriver:
    return SwiftDriver(parse_settings(params))


# -- the HTTP session: auth and retries ------------------------------------------------------

Content = bytes | Callable[[], AsyncIterator[bytes]]


class _Session:
    """Tokens, the storage URL, and requests that survive token expiry and brief outages."""

    def __init__(self, settings: SwiftSettings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(300.0, connect=10.0),
            verify=settings.tls_verify,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.token: str | None = None
        self.storage_url = ""
        self._auth_lock = anyio.Lock()

    async def authenticate(self, stale: str | None) -> None:
        """Get a token, unless another task already replaced the stale one."""
        async with self._auth_lock:
            if self.token is not None and self.token != stale:
                return
            if self.settings.keystone:
                self.token, self.storage_url = await self._keystone_v3()
            else:
                self.token, self.storage_url = await self._v1()
            self.storage_url = self.storage_url.rstrip("/")

    async def _v1(self) -> tuple[str, str]:
        s = self.settings
        r = await self.http.get(s.auth_url, headers={"X-Auth-User": s.username, "X-Auth-Key": s.password})
        if r.status_code not in (200, 204):
            raise SwiftError(f"authentication at {s.auth_url}", r)
        token, url = r.headers.get("X-Auth-Token"), r.headers.get("X-Storage-Url")
        if not token or not url:
            raise RuntimeError(f"authentication at {s.auth_url} gave no X-Auth-Token or X-Storage-Url")
        return token, url

    async def _keystone_v3(self) -> tuple[str, str]:
        s = self.settings
        project: dict[str, Any] = (
            {"id": s.project_id}
            if s.project_id
            else {"name": s.project_name, "domain": {"name": s.project_domain_name}}
        )
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": s.username, "domain": {"name": s.user_domain_name}, "password": s.password}
                    },
                },
                "scope": {"project": project},
            }
        }
        r = await self.http.post(f"{s.auth_url}/auth/tokens", json=body)
        if r.status_code != 201:
            raise SwiftError(f"Keystone authentication at {s.auth_url}", r)
        token = r.headers.get("X-Subject-Token")
        if not token:
            raise RuntimeError("Keystone gave no X-Subject-Token")
        for service in r.json().get("token", {}).get("catalog", []):
            if service.get("type") != "object-store":
                continue
            for endpoint in service.get("endpoints", []):
                if endpoint.get("interface") != s.interface:
                    continue
                if s.region and s.region not in (endpoint.get("region_id"), endpoint.get("region")):
                    continue
                return token, str(endpoint["url"])
        where = f" in region {s.region}" if s.region else ""
        raise RuntimeError(f"Keystone's catalog has no {s.interface} object-store endpoint{where}")

    async def send(
        self,
        method: str,
        target: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: Content | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """``target`` is relative to the storage URL ("" is the account). Re-authenticates
        once on 401 (an expired token) and retries transport errors and 5xx a few times
        (every request the driver makes may be repeated safely)."""
        reauthenticated = False
        attempt = 0
        while True:
            if self.token is None:
                await self.authenticate(None)
            token = self.token
            assert token is not None
            body = content() if callable(content) else content
            request = self.http.build_request(
                method,
                self.storage_url + target,
                params=params,
                headers={"X-Auth-Token": token, **(headers or {})},
                content=body,
            )
            try:
                response = await self.http.send(request, stream=stream)
            except httpx.TransportError:
                attempt += 1
                if attempt >= RETRIES:
                    raise
                await anyio.sleep(0.2 * attempt)
                continue
            if response.status_code == 401 and not reauthenticated:
                await response.aclose()
                reauthenticated = True
                await self.authenticate(token)
                continue
            if response.status_code in (500, 502, 503, 504) and attempt + 1 < RETRIES:
                await response.aclose()
                attempt += 1
                await anyio.sleep(0.2 * attempt)
                continue
            return response


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    """One entry of an SLO manifest."""

    name: str  # object name in the container
    etag: str | None
    size: int
    sub_slo: bool = False  # a nested manifest
    range: str | None = None


def _mtime(headers: httpx.Headers) -> float:
    stamp = headers.get("X-Timestamp")
    if stamp:
        try:
            return float(stamp)
        except ValueError:
            pass
    modified = headers.get("Last-Modified")
    return email.utils.parsedate_to_datetime(modified).timestamp() if modified else 0.0


def _listing_mtime(item: dict[str, Any]) -> float:
    stamp = item.get("last_modified")
    if not stamp:
        return 0.0
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def _is_slo(response: httpx.Response) -> bool:
    return response.headers.get("X-Static-Large-Object", "").lower() in ("true", "1", "yes")


async def _each(items: list[Any], fn: Callable[[Any], Awaitable[None]]) -> None:
    """fn over items, CONCURRENCY at a time."""
    limit = anyio.Semaphore(CONCURRENCY)

    async def one(item: Any) -> None:
        async with limit:
            await fn(item)

    async with anyio.create_task_group() as tg:
        for item in items:
            tg.start_soon(one, item)


def _check_bulk_result(what: str, response: httpx.Response) -> None:
    """Bulk and SLO deletes answer 200 and report failures in the body."""
    if response.status_code == 404:
        return
    if response.status_code != 200:
        raise SwiftError(what, response)
    try:
        result = response.json()
    except ValueError:
        raise SwiftError(what, response) from None
    errors = [e for e in result.get("Errors") or [] if "404" not in str(e[1:])]
    status = str(result.get("Response Status", "200"))
    if errors or not (status.startswith("2") or status.startswith("404")):
        raise RuntimeError(f"{what}: {status} {errors[:5]}")


# -- the writer --------------------------------------------------------------------------------


class _SwiftWriter(FileWriter):
    def __init__(
        self,
        driver: SwiftDriver,
        path: str,
        key: str,
        append: bool,
        base_size: int = 0,
        base_manifest: list[_Segment] | None = None,
    ) -> None:
        self._d = driver
        self._path, self._key = path, key
        self._append = append
        self._base_size = base_size
        self._base_manifest = base_manifest  # None: the base is a plain object (or nothing)
        self._parts: deque[bytes] = deque()  # received, not yet uploaded
        self._buffered = 0
        self._written = 0
        self._segments: list[_Segment] = []  # data segments uploaded by this writer
        self._extra: list[str] = []  # its other objects: a copied base, nested manifests
        self._published = False  # the final PUT was sent: what it wrote is no longer ours to delete
        self._seg_prefix = f"{driver._seg_root}{path.lstrip('/')}/{uuid.uuid4().hex}/"
        self._counter = 0
        self._closed = False
        self._failed = False  # a segment upload failed: this writer can only be thrown away

    @property
    def size(self) -> int:
        return self._base_size + self._written

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")

    def _next_name(self, suffix: str = "") -> str:
        self._counter += 1
        return f"{self._seg_prefix}{self._counter:08d}{suffix}"

    async def write(self, data: bytes) -> None:
        self._require_open()
        if not data:
            return
        chunk = data if isinstance(data, bytes) else bytes(data)  # callers may reuse their buffer
        if len(chunk) < SMALL_PART and self._parts and len(self._parts[-1]) < SMALL_PART:
            self._parts[-1] += chunk  # tiny writes, gathered: a segment is not 10**6 pieces
        else:
            self._parts.append(chunk)
        self._buffered += len(chunk)
        self._written += len(chunk)
        try:
            while self._buffered >= self._d._settings.segment_size:
                await self._upload_segment(self._d._settings.segment_size)
        except BaseException:
            self._failed = True
            raise

    def _take(self, n: int) -> list[bytes]:
        """The first n buffered bytes, as the parts they arrived in (no copy but one split)."""
        taken: list[bytes] = []
        while n:
            part = self._parts[0]
            if len(part) <= n:
                taken.append(part)
                self._parts.popleft()
                n -= len(part)
            else:
                taken.append(part[:n])
                self._parts[0] = part[n:]
                n = 0
        return taken

    async def _upload_segment(self, n: int) -> None:
        parts = self._take(n)
        self._buffered -= n
        name = self._next_name()
        # Recorded before the PUT, so cancel also removes a segment whose PUT failed halfway.
        self._segments.append(_Segment(name, None, n))
        etag = await self._d._put_parts(name, parts)
        self._segments[-1] = _Segment(name, etag, n)

    async def commit(self, durable: bool = True) -> None:
        # Swift acknowledges a PUT once its replicas are on disk: durable either way.
        self._require_open()
        self._closed = True
        try:
            if self._failed:
                raise RuntimeError(f"{self._path}: a write failed, so nothing was committed")
            await self._commit()
        except BaseException:
            if not self._published:  # else the file may well reference them: leave them
                with anyio.CancelScope(shield=True):
                    await self._discard()
            raise
        finally:
            self._parts, self._buffered = deque(), 0

    async def _discard(self) -> None:
        """Delete what this writer uploaded. Nested manifests go without their segments:
        they list segments of the file's committed content too."""
        names = [s.name for s in self._segments] + self._extra
        self._segments, self._extra = [], []
        with contextlib.suppress(Exception):  # best effort: litter stays invisible
            await self._d._delete_objects(names)

    async def _commit(self) -> None:
        d, size = self._d, self._d._settings.segment_size
        if self._append and not self._written:
            return  # nothing new: the file is as it was
        small_base = self._base_manifest is None and self._base_size <= min(ABSORB_MAX, size)
        if not self._segments and small_base and self._base_size + self._buffered <= size:
            # Small enough for one plain object (with what it held before, for an append:
            # read back while that is cheap; a larger base is copied server side below).
            head = await d._get_object(self._key, self._path) if self._append and self._base_size else b""
            parts = [head, *self._parts] if head else list(self._parts)
            self._parts, self._buffered = deque(), 0
            if self._append:
                await self._publish(d._put_parts(self._key, parts))
            else:
                await d._replace(self._key, lambda: self._publish(d._put_parts(self._key, parts)))
            return
        if self._buffered:
            await self._upload_segment(self._buffered)
        entries: list[_Segment] = []
        if self._base_manifest is not None:
            entries += self._base_manifest
        elif self._base_size:
            # A plain file grows into a large object: it becomes the first segment, copied
            # server side (it may be large: put() writes any size as one object).
            name = self._next_name()
            self._extra.append(name)
            await d._copy(self._key, name, self._path)
            entries.append(_Segment(name, None, self._base_size))
        entries = await self._fold(entries + self._segments)
        if self._append:
            await self._publish(d._put_manifest(self._key, entries))
        else:
            await d._replace(self._key, lambda: self._publish(d._put_manifest(self._key, entries)))

    async def _publish(self, put: Awaitable[Any]) -> None:
        self._published = True
        try:
            await put
        except SwiftError:
            self._published = False  # Swift refused it: nothing references our segments
            raise

    async def _fold(self, entries: list[_Segment]) -> list[_Segment]:
        """Keep the manifest within SLO's limits and each PUT's validation cheap."""
        d = self._d
        loose = len(entries)
        while loose and not entries[loose - 1].sub_slo:
            loose -= 1
        tail = len(entries) - loose  # segments after the last nested manifest
        step = d._max_segments
        if (self._append and tail > d._settings.fold_at) or len(entries) > step:
            folded = [await self._sub_manifest(entries[i : i + step]) for i in range(loose, len(entries), step)]
            entries = entries[:loose] + folded
        while len(entries) > step:  # only after very many folds: one level more
            entries = [await self._sub_manifest(entries[i : i + step]) for i in range(0, len(entries), step)]
        return entries

    async def _sub_manifest(self, entries: list[_Segment]) -> _Segment:
        name = self._next_name(".slo")
        self._extra.append(name)
        etag = await self._d._put_manifest(name, entries)
        return _Segment(name, etag, sum(e.size for e in entries), sub_slo=True)

    async def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._parts, self._buffered = deque(), 0
        await self._discard()


# -- the driver ----------------------------------------------------------------------------------


@dataclass
class _Capabilities:
    bulk_delete: bool = False
    max_deletes: int = DEFAULT_MAX_DELETES
    max_segments: int = DEFAULT_MAX_SEGMENTS
    tempurl_digest: str = "sha256"


class SwiftDriver(StorageDriver):
    name = "swift"

    def __init__(self, settings: SwiftSettings) -> None:
        self._settings = settings
        self._session = _Session(settings)
        self._root = settings.prefix  # "" or "a/b"
        self._seg_root = f"{settings.prefix}{SEGMENTS}/"
        self._caps = _Capabilities()
        self._ready = False
        self._ready_lock = anyio.Lock()

    # -- names -------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return f"{self._root}{path}" if self._root else path[1:]

    def _dir_prefix(self, path: str) -> str:
        """Names below path start with this."""
        if path == "/":
            return f"{self._root}/" if self._root else ""
        return self._key(path) + "/"

    def _target(self, name: str | None = None) -> str:
        container = "/" + quote(self._settings.container, safe="")
        return container if name is None else f"{container}/{quote(name)}"

    @property
    def _max_segments(self) -> int:
        return self._caps.max_segments

    # -- start-up ------------------------------------------------------------------------------

    async def _ensure_ready(self) -> None:
        """Authenticate, read the cluster's limits and check the container, once."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            await self._session.authenticate(None)
            await self._load_capabilities()
            if self._settings.create_container:
                r = await self._session.send("PUT", self._target())
                if r.status_code not in (201, 202):
                    raise SwiftError(f"creating container {self._settings.container}", r)
            else:
                r = await self._session.send("HEAD", self._target())
                if r.status_code == 404:
                    raise RuntimeError(
                        f"Swift container {self._settings.container!r} does not exist "
                        "(create it, or set storage.params.create_container: true)"
                    )
                if r.status_code not in (200, 204):
                    raise SwiftError(f"checking container {self._settings.container}", r)
            self._ready = True

    async def _load_capabilities(self) -> None:
        """/info beside the storage URL; Swift's defaults when a cluster hides it."""
        url = self._session.storage_url
        parts = urlsplit(url)
        base_path = parts.path.split("/v1/", 1)[0] if "/v1/" in parts.path else ""
        try:
            r = await self._session.http.get(f"{parts.scheme}://{parts.netloc}{base_path}/info")
            info = r.json() if r.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            info = {}
        if not isinstance(info, dict):
            info = {}
        bulk = info.get("bulk_delete")
        if isinstance(bulk, dict):
            self._caps.bulk_delete = True
            self._caps.max_deletes = int(bulk.get("max_deletes_per_request", DEFAULT_MAX_DELETES))
        slo = info.get("slo")
        if isinstance(slo, dict):
            self._caps.max_segments = int(slo.get("max_manifest_segments", DEFAULT_MAX_SEGMENTS))
        tempurl = info.get("tempurl")
        if isinstance(tempurl, dict):
            digests = tempurl.get("allowed_digests") or ["sha1"]
            self._caps.tempurl_digest = next((d for d in ("sha256", "sha512", "sha1") if d in digests), "sha256")

    # -- object primitives -------------------------------------------------------------------

    async def _head(self, name: str) -> httpx.Response | None:
        r = await self._session.send("HEAD", self._target(name))
        if r.status_code == 404:
            return None
        if r.status_code not in (200, 204):
            raise SwiftError(f"HEAD {name}", r)
        return r

    async def _get_object(self, name: str, path: str) -> bytes:
        # A GET may find a manifest whose segments a concurrent replace just deleted (409,
        # or a body cut short): the next attempt finds the new content.
        for attempt in range(RETRIES):
            try:
                r = await self._session.send("GET", self._target(name))
            except httpx.TransportError:
                if attempt + 1 == RETRIES:
                    raise
                continue
            if r.status_code == 404:
                raise PathNotFound(path)
            if r.status_code == 409 and attempt + 1 < RETRIES:
                continue
            if r.status_code != 200:
                raise SwiftError(f"GET {name}", r)
            return r.content
        raise AssertionError("unreachable")

    async def _put_parts(self, name: str, parts: list[bytes]) -> str:
        """PUT the concatenation of parts without joining them (memory: no second copy);
        Swift checks the MD5, so a body cut short is refused. Returns the MD5."""

        def md5() -> str:
            h = hashlib.md5(usedforsecurity=False)
            for part in parts:
                h.update(part)
            return h.hexdigest()

        size = sum(len(part) for part in parts)
        etag = await anyio.to_thread.run_sync(md5) if size > INLINE_MD5 else md5()

        async def body() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        await self._put_object(name, body, {"Content-Length": str(size), "Etag": etag})
        return etag

    async def _put_object(self, name: str, content: Content, headers: dict[str, str]) -> None:
        r = await self._session.send(
            "PUT", self._target(name), content=content, headers={"Content-Type": "application/octet-stream", **headers}
        )
        if r.status_code != 201:
            raise SwiftError(f"PUT {name}", r)

    async def _copy(self, src: str, dst: str, path: str) -> None:
        """Server-side copy; of an SLO, the manifest only (the copy shares its segments)."""
        r = await self._session.send(
            "PUT",
            self._target(dst),
            params={"multipart-manifest": "get"},
            headers={"X-Copy-From": self._target(src), "Content-Length": "0"},
        )
        if r.status_code == 404:
            raise PathNotFound(path)
        if r.status_code != 201:
            raise SwiftError(f"copy {src} to {dst}", r)

    async def _put_manifest(self, name: str, entries: list[_Segment]) -> str | None:
        """Write an SLO manifest; returns its ETag (what a parent manifest lists)."""
        body: list[dict[str, Any]] = []
        for e in entries:
            item: dict[str, Any] = {"path": f"/{self._settings.container}/{e.name}", "etag": e.etag}
            item["size_bytes"] = None if e.sub_slo else e.size  # a nested manifest's size is Swift's to check
            if e.range:
                item["range"] = e.range
            body.append(item)
        r = await self._session.send(
            "PUT",
            self._target(name),
            params={"multipart-manifest": "put"},
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/octet-stream", "Accept": "application/json"},
        )
        if r.status_code != 201:
            raise SwiftError(f"manifest PUT {name}", r)
        etag = r.headers.get("Etag")
        return etag.strip('"') if etag else None

    async def _manifest(self, name: str) -> list[_Segment] | None:
        """The entries of the SLO at name; None if it is not one (or gone)."""
        r = await self._session.send("GET", self._target(name), params={"multipart-manifest": "get"})
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise SwiftError(f"manifest GET {name}", r)
        if not _is_slo(r):
            return None
        prefix = f"/{self._settings.container}/"
        entries: list[_Segment] = []
        for item in r.json():
            seg_name = str(item["name"])
            if not seg_name.startswith(prefix):
                raise RuntimeError(f"manifest {name} lists a segment in another container: {seg_name}")
            entries.append(
                _Segment(
                    seg_name[len(prefix) :],
                    item.get("hash"),
                    int(item.get("bytes", 0)),
                    bool(item.get("sub_slo")),
                    item.get("range"),
                )
            )
        return entries

    async def _replace(self, name: str, write: Callable[[], Awaitable[Any]]) -> None:
        """Write a new file at name, then delete the segments of the large object it replaced."""
        old = await self._head(name)
        old_segments = await self._manifest(name) if old is not None and _is_slo(old) else None
        await write()
        if old_segments:
            await self._delete_segments(old_segments, quiet=True)

    async def _delete_segments(self, segments: list[_Segment], quiet: bool = False) -> None:
        """Delete segment objects (nested manifests with their own segments)."""
        if not segments:
            return
        try:
            await self._delete_objects([s.name for s in segments if not s.sub_slo])
            await _each([s.name for s in segments if s.sub_slo], self._delete_slo)
        except Exception:
            if not quiet:
                raise
            # Best effort (cancel, clean-up after a failure): the caller's outcome stands;
            # what is left is invisible litter under the segments prefix.

    async def _delete_slo(self, name: str) -> None:
        r = await self._session.send(
            "DELETE",
            self._target(name),
            params={"multipart-manifest": "delete"},
            headers={"Accept": "application/json"},
        )
        _check_bulk_result(f"DELETE {name}?multipart-manifest=delete", r)

    async def _delete_plain(self, name: str) -> None:
        r = await self._session.send("DELETE", self._target(name))
        if r.status_code not in (204, 404):
            raise SwiftError(f"DELETE {name}", r)

    async def _delete_objects(self, names: list[str]) -> None:
        """Delete plain objects: bulk delete if the cluster has it, else in parallel."""
        if not names:
            return
        if not self._caps.bulk_delete:
            await _each(names, self._delete_plain)
            return
        step = max(1, self._caps.max_deletes)
        for i in range(0, len(names), step):
            body = "\n".join(quote(f"/{self._settings.container}/{n}") for n in names[i : i + step])
            r = await self._session.send(
                "POST",
                "",
                params={"bulk-delete": "true"},
                content=body.encode(),
                headers={"Content-Type": "text/plain", "Accept": "application/json"},
            )
            _check_bulk_result("bulk delete", r)

    async def _listing(self, prefix: str, delimiter: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Container listing entries whose names start with prefix, page by page."""
        marker = ""
        while True:
            params = {"format": "json", "prefix": prefix, "marker": marker}
            if delimiter:
                params["delimiter"] = delimiter
            r = await self._session.send("GET", self._target(), params=params)
            if r.status_code == 204:
                return
            if r.status_code != 200:
                raise SwiftError(f"listing {prefix!r}", r)
            page = r.json()
            if not page:
                return
            for item in page:
                yield item
            last = page[-1]
            marker = last.get("subdir") or last["name"]

    async def _children(self, path: str) -> AsyncGenerator[tuple[str, bool, dict[str, Any]], None]:
        """(name, is_dir, listing entry) of the visible direct children of a directory."""
        prefix = self._dir_prefix(path)
        async for item in self._listing(prefix, "/"):
            full = item.get("subdir") or item["name"]
            child = full[len(prefix) :]
            is_dir = child.endswith("/")
            child = child.rstrip("/")
            if not child or "~" in child or "/" in child:
                continue  # segments and other names outside the path grammar
            yield child, is_dir, item

    # -- the contract ----------------------------------------------------------------------------

    async def stat(self, path: str) -> FileInfo:
        await self._ensure_ready()
        if path == "/":
            return FileInfo("/", 0, True, 0.0)
        r = await self._head(self._key(path))
        if r is not None:
            return FileInfo(path, int(r.headers.get("Content-Length", 0)), False, _mtime(r.headers))
        async with contextlib.aclosing(self._children(path)) as children:
            async for _ in children:
                return FileInfo(path, 0, True, 0.0)
        raise PathNotFound(path)

    async def get(self, path: str) -> bytes:
        await self._ensure_ready()
        if path == "/":
            raise PathNotFound(path)
        return await self._get_object(self._key(path), path)

    async def put(self, path: str, data: bytes) -> None:
        await self._ensure_ready()
        key = self._key(path)
        body = bytes(data)
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()  # Swift checks it: no torn writes
        await self._replace(key, lambda: self._put_object(key, body, {"Etag": etag}))

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        await self._ensure_ready()
        if path == "/":
            raise PathNotFound(path)
        key = self._key(path)
        if length == 0:
            r = await self._head(key)
            if r is None:
                raise PathNotFound(path)
            if offset > int(r.headers.get("Content-Length", 0)):
                raise InvalidOffset(path, offset)
            return
        end = None if length is None else offset + length  # exclusive
        pos = offset
        etag: str | None = None  # of the first answer: a resumed read must see the same object
        failures = 0
        while True:
            headers = {}
            if pos or end is not None:
                headers["Range"] = f"bytes={pos}-{'' if end is None else end - 1}"
            if etag:
                headers["If-Match"] = etag
            response = await self._session.send("GET", self._target(key), headers=headers, stream=True)
            try:
                status = response.status_code
                if status == 404:
                    raise PathNotFound(path)
                if status == 416 and etag is None:
                    await response.aclose()
                    head = await self._head(key)
                    if head is None:
                        raise PathNotFound(path)
                    if pos > int(head.headers.get("Content-Length", 0)):
                        raise InvalidOffset(path, offset)
                    return  # offset == size: nothing to read
                if status == 409 and etag is None and failures + 1 < RETRIES:
                    failures += 1  # segments of a just-replaced manifest: read again
                    continue
                if status not in (200, 206):
                    await response.aread()
                    raise SwiftError(f"GET {key}", response)
                etag = etag or response.headers.get("Etag")
                skip = pos if status == 200 else 0  # a server that ignored Range
                try:
                    async for chunk in response.aiter_bytes(READ_CHUNK):
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                        if end is not None and pos + len(chunk) > end:
                            chunk = chunk[: end - pos]
                        if chunk:
                            pos += len(chunk)
                            yield chunk
                        if end is not None and pos >= end:
                            return
                except httpx.TransportError:
                    # A long read cut off: resume where it stopped, from the same object.
                    failures += 1
                    if failures >= RETRIES or not etag:
                        raise
                    continue
                return
            finally:
                await response.aclose()

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        await self._ensure_ready()
        key = self._key(path)
        if not append:
            return _SwiftWriter(self, path, key, append=False)
        r = await self._head(key)
        if r is None:
            raise PathNotFound(path)
        size = int(r.headers.get("Content-Length", 0))
        manifest = await self._manifest(key) if _is_slo(r) else None
        if _is_slo(r) and manifest is None:
            raise PathNotFound(path)  # replaced or deleted between the two requests
        return _SwiftWriter(self, path, key, append=True, base_size=size, base_manifest=manifest)

    async def move(self, src: str, dst: str) -> None:
        await self._ensure_ready()
        src_key, dst_key = self._key(src), self._key(dst)
        if src_key == dst_key:
            if await self._head(src_key) is None:
                raise PathNotFound(src)
            return
        # The copy of a large object is its manifest: dst takes over src's segments, and
        # src's manifest is then deleted alone. Whatever dst held before goes, segments too.
        await self._replace(dst_key, lambda: self._copy(src_key, dst_key, src))
        r = await self._session.send("DELETE", self._target(src_key))
        if r.status_code not in (204, 404):
            raise SwiftError(f"DELETE {src_key}", r)

    async def delete(self, path: str) -> None:
        await self._ensure_ready()
        plain: list[str] = []
        large: list[str] = []
        if path != "/":
            r = await self._head(self._key(path))
            if r is not None:
                (large if _is_slo(r) else plain).append(self._key(path))
        prefixes = {self._dir_prefix(path)}
        if path == "/" and self._root:
            prefixes.add(self._seg_root)  # everything goes, unclaimed segments too
        for prefix in sorted(prefixes):
            async for item in self._listing(prefix):
                (large if "slo_etag" in item else plain).append(item["name"])
        if not plain and not large and path != "/":
            raise PathNotFound(path)
        await _each(large, self._delete_slo)
        await self._delete_objects(plain)

    async def list(self, path: str) -> list[str]:
        await self._ensure_ready()
        base = "" if path == "/" else path
        children = {f"{base}/{name}" async for name, _, _ in self._children(path)}
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        await self._ensure_ready()
        found = False
        async for info in self._walk_dir(path):
            found = True
            yield info
        if found or path == "/":
            return
        r = await self._head(self._key(path))
        if r is None:
            raise PathNotFound(path)
        yield FileInfo(path, int(r.headers.get("Content-Length", 0)), False, _mtime(r.headers))

    async def _walk_dir(self, path: str) -> AsyncIterator[FileInfo]:
        # One listing per directory, children sorted by name with a file before a directory
        # of the same name: depth first in component order ("b/x" before "b-c"), streamed.
        unique = {(name, is_dir): item async for name, is_dir, item in self._children(path)}
        entries = sorted(((name, is_dir, item) for (name, is_dir), item in unique.items()), key=lambda e: (e[0], e[1]))
        base = "" if path == "/" else path
        for name, is_dir, item in entries:
            if is_dir:
                async for info in self._walk_dir(f"{base}/{name}"):
                    yield info
            else:
                yield FileInfo(f"{base}/{name}", int(item.get("bytes", 0)), False, _listing_mtime(item))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        s = self._settings
        if not (s.redirect and s.temp_url_key) or method not in ("GET", "HEAD") or path == "/":
            return None
        await self._ensure_ready()
        expires = int(time.time()) + s.redirect_expiry_seconds
        target = self._target(self._key(path))
        # TempURL signs the decoded path, as the proxy sees it.
        signed_path = unquote(urlsplit(self._session.storage_url).path + target)
        digest = getattr(hashlib, self._caps.tempurl_digest)
        signature = hmac.new(s.temp_url_key.encode(), f"{method}\n{expires}\n{signed_path}".encode(), digest)
        return f"{self._session.storage_url}{target}?temp_url_sig={signature.hexdigest()}&temp_url_expires={expires}"

    async def close(self) -> None:
        await self._session.http.aclose()
