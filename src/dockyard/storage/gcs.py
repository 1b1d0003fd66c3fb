"""The Google Cloud Storage driver: one bucket, an optional key prefix, the JSON API spoken
directly over ``httpx`` (no google-cloud SDK).

Paths map to object names as ``<prefix>/<path without its leading slash>``. Directories are
only prefixes: ``list`` asks with ``delimiter=/``, a prefix with objects below it is a
directory, deleting a directory deletes every object below it.

Writes:

* A new file (``append=False``) is sent in ``chunk_size_mib`` pieces to a resumable upload
  session as the pieces fill, so memory stays at about one chunk plus one ``write``. The
  object appears only when the session is finalized in ``commit``; ``cancel`` deletes the
  session. A file smaller than one chunk goes in a single request at commit.
* An append writer cannot continue an unfinished resumable session: its bytes cannot be
  read back (uploads re-hash what was received when another process continues them), and
  only the process holding the session URI could finish it. So each append commit uploads
  what that writer received as its own *component* object, ``<name>~part~<random>`` (``~``
  is outside the path grammar, so ``list`` and ``walk`` never show one), then **composes**
  [current object, component] into the object at the path, with a generation precondition
  so a concurrent append elsewhere fails instead of being lost, and deletes the component.
  Nothing is held in memory or on local disk beyond one chunk, whatever the file's size.
  Appending to an empty file uploads straight to the path instead (same precondition).
  A crash between the component's upload and its compose leaves a component behind; it is
  invisible, and goes when its directory is deleted (uploads delete their whole directory).

Requests are retried with backoff on transport errors, 429 and 5xx; a resumable chunk that
failed is resumed from what the session reports it holds, and a conditional request whose
first answer was lost (the retry then fails its precondition) counts as done when the object
is there with the expected size.

``move`` is a server-side ``rewrite`` (looping on ``rewriteToken``) followed by a delete of
the source. ``redirect_url`` signs a V4 URL when ``redirect`` is on and the credentials are
a service account's key (the only kind that can sign locally); otherwise it returns None.

Credentials: ``credentials_file`` (a service-account key, or an ``authorized_user`` file as
written by ``gcloud auth application-default login``); without one, no authentication when
``endpoint_url`` is set (an emulator), else Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's well-known file, then the metadata server).
Service-account tokens come from an OAuth JWT-bearer grant signed here with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import logging
import os
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import params as params_
from .driver import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver

log = logging.getLogger("dockyard.storage.gcs")

MiB = 1 << 20
QUANTUM = 256 << 10  # resumable chunks must be multiples of 256 KiB
GOOGLE_ENDPOINT = "https://storage.googleapis.com"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
PART_MARK = "~part~"
READ_CHUNK = 512 << 10
SEND_PIECE = 1 << 20  # upload bodies are copied out this much at a time
LIST_PAGE = 1000
DELETE_CONCURRENCY = 16
MAX_RETRIES = 5
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
MAX_SIGNED_EXPIRY = 7 * 24 * 3600  # the V4 signing limit
_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")


class GcsError(Exception):
    """An answer from the JSON API that is neither success nor 'not found'."""

    def __init__(self, status: int, what: str, message: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}" if message else f"{what}: HTTP {status}")
        self.status = status


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])[:300]
    except Exception:
        return response.text[:300]


def _valid_name(rest: str) -> bool:
    """Whether an object name (below the prefix) is a path of ours, not litter or foreign."""
    parts = rest.split("/")
    return all(_COMPONENT.fullmatch(p) and p not in (".", "..") for p in parts)


def _mtime(resource: dict[str, Any]) -> float:
    stamp = resource.get("updated") or resource.get("timeCreated")
    if not stamp:
        return 0.0
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _persisted(response: httpx.Response) -> int:
    """Bytes a resumable session holds, from a 308's ``Range: bytes=0-N`` (none: 0)."""
    value = response.headers.get("range")
    if not value:
        return 0
    m = re.fullmatch(r"bytes=0-(\d+)", value.strip())
    if not m:
        raise GcsError(308, "resumable upload", f"unexpected Range header {value!r}")
    return int(m.group(1)) + 1


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _backoff(attempt: int) -> None:
    await anyio.sleep(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2))


# -- credentials ------------------------------------------------------------------------------


class _Credentials:
    """Where access tokens come from; the base class is anonymous (an emulator)."""

    anonymous = True
    project_id: str | None = None

    async def fetch(self, client: httpx.AsyncClient) -> tuple[str, float]:
        """A new access token and how many seconds it lives."""
        raise NotImplementedError

    def signer(self) -> tuple[str, rsa.RSAPrivateKey] | None:
        return None


class _ServiceAccount(_Credentials):
    anonymous = False

    def __init__(self, info: dict[str, Any], where: str) -> None:
        try:
            self.email = str(info["client_email"])
            key = serialization.load_pem_private_key(str(info["private_key"]).encode(), password=None)
        except KeyError as e:
            raise ValueError(f"{where}: a service-account key needs {e.args[0]!r}") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: the private_key is not a usable PEM key ({e})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{where}: the private_key must be an RSA key")
        self.key = key
        self.key_id = str(info.get("private_key_id") or "")
        self.token_uri = str(info.get("token_uri") or GOOGLE_TOKEN_URI)
        self.project_id = str(info["project_id"]) if info.get("project_id") else None

    def assertion(self, now: float) -> str:
        header = {"alg": "RS256", "typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        claims = {"iss": self.email, "scope": SCOPE, "aud": self.token_uri, "iat": int(now), "exp": int(now) + 3600}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def fetch(self, client: httpx.AsyncClient) -> tuple[str, float]:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.assertion(time.time())}
        return await _token_request(client, "POST", self.token_uri, data=form)

    def signer(self) -> tuple[str, rsa.RSAPrivateKey] | None:
        return self.email, self.key


class _AuthorizedUser(_Credentials):
    anonymous = False

    def __init__(self, info: dict[str, Any], where: str) -> None:
        try:
            self.form = {
                "grant_type": "refresh_token",
                "client_id": str(info["client_id"]),
                "client_secret": str(info["client_secret"]),
                "refresh_token": str(info["refresh_token"]),
            }
        except KeyError as e:
            raise ValueError(f"{where}: authorized_user credentials need {e.args[0]!r}") from None
        self.token_uri = str(info.get("token_uri") or GOOGLE_TOKEN_URI)

    async def fetch(self, client: httpx.AsyncClient) -> tuple[str, float]:
        return await _token_request(client, "POST", self.token_uri, data=self.form)


class _MetadataServer(_Credentials):
    """The instance's service account on Google Cloud (GCE, GKE, Cloud Run)."""

    anonymous = False

    async def fetch(self, client: httpx.AsyncClient) -> tuple[str, float]:
        host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
        url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
        return await _token_request(client, "GET", url, headers={"Metadata-Flavor": "Google"})


async def _token_request(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> tuple[str, float]:
    for attempt in range(MAX_RETRIES + 1):
        try:
            r = await client.request(method, url, **kw)
        except httpx.TransportError:
            if attempt == MAX_RETRIES:
                raise
        else:
            if r.status_code == 200:
                body = r.json()
                return str(body["access_token"]), float(body.get("expires_in", 3600))
            if r.status_code not in RETRYABLE or attempt == MAX_RETRIES:
                raise GcsError(r.status_code, f"access token from {url}", r.text[:300])
        await _backoff(attempt)
    raise AssertionError("unreachable")


def _credentials_from_file(path: str, where: str) -> _Credentials:
    try:
        info = json.loads(Path(path).expanduser().read_text())
    except OSError as e:
        raise ValueError(f"{where}: cannot read {path!r}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: {path!r} is not JSON ({e})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{where}: {path!r} is not a credentials object")
    kind = info.get("type")
    if kind == "service_account":
        return _ServiceAccount(info, where)
    if kind == "authorized_user":
        return _AuthorizedUser(info, where)
    raise ValueError(f"{where}: {path!r} has type {kind!r}; expected 'service_account' or 'authorized_user'")


def _application_default() -> _Credentials:
    env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if env:
        return _credentials_from_file(env, "GOOGLE_APPLICATION_CREDENTIALS")
    config = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    well_known = os.path.join(config, "application_default_credentials.json")
    if os.path.isfile(well_known):
        return _credentials_from_file(well_known, "application default credentials")
    return _MetadataServer()


# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GcsSettings:
    bucket: str
    prefix: str = ""
    credentials_file: str | None = None
    endpoint_url: str | None = None
    chunk_size: int = 16 * MiB
    redirect: bool = False
    redirect_expiry_seconds: int = 1200
    create_bucket: bool = False
    project: str | None = None


KNOWN = (
    "bucket",
    "prefix",
    "credentials_file",
    "endpoint_url",
    "chunk_size_mib",
    "redirect",
    "redirect_expiry_seconds",
    "create_bucket",
    "project",
)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


_where = params_.where
_as_bool = params_.flag
_as_number = params_.number
_as_str = params_.text


def parse_settings(params: dict[str, Any]) -> GcsSettings:
    params_.reject_unknown(params, KNOWN, "gcs")
    bucket = _as_str(params.get("bucket", ""), "bucket")
    if not bucket:
        raise ValueError(f"{_where('bucket')} is required: the bucket's name")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{_where('bucket')}: {bucket!r} is not a valid bucket name")
    prefix = _as_str(params.get("prefix") or "", "prefix").strip("/")
    if prefix and not _valid_name(prefix):
        raise ValueError(f"{_where('prefix')}: {prefix!r} must be '/'-separated names of [A-Za-z0-9._-]")
    endpoint = params.get("endpoint_url")
    if endpoint is not None and endpoint != "":
        endpoint = _as_str(endpoint, "endpoint_url").rstrip("/")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{_where('endpoint_url')}: {endpoint!r} must be an http(s)://host[:port] URL")
    else:
        endpoint = None
    credentials = params.get("credentials_file")
    credentials = _as_str(credentials, "credentials_file") if credentials not in (None, "") else None
    mib = _as_number(params.get("chunk_size_mib", 16), "chunk_size_mib")
    chunk = mib * MiB
    if chunk <= 0 or chunk != int(chunk) or int(chunk) % QUANTUM or chunk > 1024 * MiB:
        raise ValueError(f"{_where('chunk_size_mib')} must be a multiple of 0.25 (256 KiB) up to 1024, not {mib:g}")
    expiry = _as_number(params.get("redirect_expiry_seconds", 1200), "redirect_expiry_seconds")
    if expiry != int(expiry) or not 1 <= expiry <= MAX_SIGNED_EXPIRY:
        raise ValueError(f"{_where('redirect_expiry_seconds')} must be a whole number from 1 to {MAX_SIGNED_EXPIRY}")
    project = params.get("project")
    return GcsSettings(
        bucket=bucket,
        prefix=prefix,
        credentials_file=credentials,
        endpoint_url=endpoint,
        chunk_size=int(chunk),
        redirect=_as_bool(params.get("redirect", False), "redirect"),
        redirect_expiry_seconds=int(expiry),
        create_bucket=_as_bool(params.get("create_bucket", False), "create_bucket"),
        project=_as_str(project, "project") if project not in (None, "") else None,
    )


# -- the client -------------------------------------------------------------------------------


class _LoopState:
    """An httpx client and locks belong to one event loop; a driver used from another loop
    (a CLI command after a server, a test) gets its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(120.0, connect=15.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.token_lock = asyncio.Lock()
        self.bucket_lock = asyncio.Lock()


Body = bytes | Callable[[], AsyncIterator[bytes]]


def _pieces_body(pieces: list[memoryview]) -> Callable[[], AsyncIterator[bytes]]:
    """A re-playable request body over buffered pieces, copied out a MiB at a time."""

    async def gen() -> AsyncIterator[bytes]:
        for piece in pieces:
            for pos in range(0, len(piece), SEND_PIECE):
                yield bytes(piece[pos : pos + SEND_PIECE])

    return lambda: gen()


class GcsDriver(StorageDriver):
    name = "gcs"

    def __init__(self, settings: GcsSettings, credentials: _Credentials) -> None:
        self.settings = settings
        self._credentials = credentials
        endpoint = settings.endpoint_url or GOOGLE_ENDPOINT
        self._api = f"{endpoint}/storage/v1/b/{quote(settings.bucket, safe='')}"
        self._upload_api = f"{endpoint}/upload/storage/v1/b/{quote(settings.bucket, safe='')}/o"
        self._root = f"{settings.prefix}/" if settings.prefix else ""
        self._token: str | None = None
        self._token_expiry = 0.0
        self._bucket_ready = not settings.create_bucket
        self._state: _LoopState | None = None
        if settings.redirect and credentials.signer() is None:
            log.warning("storage.params.redirect is on but the credentials cannot sign URLs; blobs are served directly")

    # -- plumbing ---------------------------------------------------------------------------

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            self._state = _LoopState(loop)
        return self._state

    def _key(self, path: str) -> str:
        return self._root + path[1:]

    def _dir_prefix(self, path: str) -> str:
        return self._root if path == "/" else self._key(path) + "/"

    def _path_of(self, name: str) -> str | None:
        if not name.startswith(self._root):
            return None
        rest = name[len(self._root) :]
        return "/" + rest if rest and _valid_name(rest) else None

    def _object_url(self, key: str) -> str:
        return f"{self._api}/o/{quote(key, safe='')}"

    async def _auth(self, state: _LoopState) -> dict[str, str]:
        if self._credentials.anonymous:
            return {}
        if self._token is None or time.time() > self._token_expiry - 300:
            async with state.token_lock:
                if self._token is None or time.time() > self._token_expiry - 300:
                    token, lifetime = await self._credentials.fetch(state.client)
                    self._token, self._token_expiry = token, time.time() + lifetime
        return {"Authorization": f"Bearer {self._token}"}

    async def _ensure_bucket(self, state: _LoopState) -> None:
        async with state.bucket_lock:
            if self._bucket_ready:
                return
            r = await self._request("GET", self._api, allow=(200, 404), ensure_bucket=False)
            if r.status_code == 404:
                project = (
                    self.settings.project or self._credentials.project_id or os.environ.get("GOOGLE_CLOUD_PROJECT")
                )
                if project is None and self.settings.endpoint_url is None:
                    raise ValueError("storage.params.create_bucket needs storage.params.project (gcs): the project")
                await self._request(
                    "POST",
                    self._api.rsplit("/", 1)[0],
                    params={"project": project or "dockyard"},  # an emulator takes any project
                    json_body={"name": self.settings.bucket},
                    allow=(200, 409),  # 409: made meanwhile by another process
                    ensure_bucket=False,
                )
            self._bucket_ready = True

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        body: Body | None = None,
        allow: Iterable[int] = (200,),
        ensure_bucket: bool = True,
    ) -> httpx.Response:
        """Send with credentials and retries (transport errors, 429, 5xx); a status outside
        ``allow`` raises GcsError."""
        state = self._loop_state()
        if ensure_bucket and not self._bucket_ready:
            await self._ensure_bucket(state)
        allowed = frozenset(allow)
        refreshed = False
        attempt = 0
        while True:
            send_headers = {**(headers or {}), **await self._auth(state)}
            content: Any = body() if callable(body) else body
            try:
                r = await state.client.request(
                    method, url, params=params, headers=send_headers, json=json_body, content=content
                )
            except httpx.TransportError:
                if attempt >= MAX_RETRIES:
                    raise
            else:
                if r.status_code in allowed:
                    return r
                if r.status_code == 401 and not refreshed and not self._credentials.anonymous:
                    self._token, refreshed = None, True  # revoked or expired early: one fresh token
                    continue
                if r.status_code not in RETRYABLE or attempt >= MAX_RETRIES:
                    raise GcsError(r.status_code, f"{method} {urlsplit(url).path}", _error_message(r))
            await _backoff(attempt)
            attempt += 1

    async def _metadata(self, path: str) -> dict[str, Any]:
        r = await self._request("GET", self._object_url(self._key(path)), allow=(200, 404))
        if r.status_code == 404:
            raise PathNotFound(path)
        resource: dict[str, Any] = r.json()
        return resource

    async def _names(
        self, prefix: str, delimiter: str | None = None
    ) -> AsyncIterator[tuple[bool, str, dict[str, Any]]]:
        """Everything listed under prefix, page by page: (is_prefix, name, resource)."""
        params = {"prefix": prefix, "maxResults": str(LIST_PAGE)}
        if delimiter:
            params["delimiter"] = delimiter
        while True:
            page = (await self._request("GET", f"{self._api}/o", params=params)).json()
            for p in page.get("prefixes") or ():
                yield True, str(p), {}
            for item in page.get("items") or ():
                yield False, str(item["name"]), item
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    async def _delete_key(self, key: str) -> bool:
        """Delete one object; False if it was not there."""
        r = await self._request("DELETE", self._object_url(key), allow=(200, 204, 404))
        return r.status_code != 404

    async def _delete_quietly(self, key: str) -> None:
        try:
            await self._delete_key(key)
        except Exception as e:  # litter at worst: it is invisible and goes with its directory
            log.warning("could not delete %s: %r", key, e)

    # -- uploads ----------------------------------------------------------------------------

    async def _upload_simple(self, key: str, pieces: list[memoryview], if_generation: str | None) -> dict[str, Any]:
        length = sum(len(p) for p in pieces)
        if length == 0:
            # An empty object through a resumable session: gcp-storage-emulator fails on an
            # empty single-request upload, and real GCS accepts both.
            session = await self._start_session(key, if_generation)
            _, finished = await self._put_range(session, [], 0, 0)
            assert finished is not None
            return finished
        params = {"uploadType": "media", "name": key}
        if if_generation is not None:
            params["ifGenerationMatch"] = if_generation
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        r = await self._request(
            "POST", self._upload_api, params=params, headers=headers, body=_pieces_body(pieces), allow=(200, 201)
        )
        resource: dict[str, Any] = r.json()
        return resource

    async def _start_session(self, key: str, if_generation: str | None) -> str:
        params = {"uploadType": "resumable", "name": key}
        if if_generation is not None:
            params["ifGenerationMatch"] = if_generation
        r = await self._request(
            "POST",
            self._upload_api,
            params=params,
            headers={"X-Upload-Content-Type": "application/octet-stream"},
            json_body={"name": key, "contentType": "application/octet-stream"},
            allow=(200, 201),
        )
        location = r.headers.get("location")
        if not location:
            raise GcsError(r.status_code, "resumable upload", "no session URI in the answer")
        return str(location)

    async def _put_range(
        self, session: str, pieces: list[memoryview], start: int, total: int | None
    ) -> tuple[int, dict[str, Any] | None]:
        """Send ``pieces`` (the session's bytes from ``start``); ``total`` finalizes the
        object. After a failure, asks the session what it holds and resends the rest.
        Returns (bytes the session holds, the object resource once finalized)."""
        state = self._loop_state()
        length = sum(len(p) for p in pieces)
        held = start
        attempt = 0
        while True:
            if held < start:
                raise GcsError(308, "resumable upload", f"the session lost data: it holds {held}, sent from {start}")
            if total is None and held >= start + length:
                return held, None
            n = start + length - held
            size = "*" if total is None else str(total)
            content_range = f"bytes {held}-{held + n - 1}/{size}" if n else f"bytes */{size}"
            headers = {"Content-Range": content_range, "Content-Length": str(n), **await self._auth(state)}
            failure = ""
            try:
                body = _pieces_body(_skip(pieces, held - start))()
                r = await state.client.put(session, headers=headers, content=body)
            except httpx.TransportError as e:
                failure = repr(e)
            else:
                if r.status_code in (200, 201):
                    resource: dict[str, Any] = r.json()
                    return total or 0, resource
                if r.status_code == 308:
                    before, held = held, _persisted(r)
                    if held > before:
                        attempt = 0  # progress: the session kept some or all of it
                        continue
                    failure = "the session kept nothing"
                elif r.status_code in (404, 410):
                    raise GcsError(r.status_code, "resumable upload", "the upload session expired or was cancelled")
                elif r.status_code not in RETRYABLE:
                    raise GcsError(r.status_code, "resumable upload", _error_message(r))
                else:
                    failure = f"HTTP {r.status_code}"
            if attempt >= MAX_RETRIES:
                raise GcsError(0, "resumable upload", f"gave up after {attempt} retries: {failure}")
            await _backoff(attempt)
            attempt += 1
            held, finished = await self._session_status(session, total)
            if finished is not None:  # the last attempt did finish the upload
                return held, finished

    async def _session_status(self, session: str, total: int | None) -> tuple[int, dict[str, Any] | None]:
        """How many bytes the session holds, and the object resource if it is complete."""
        state = self._loop_state()
        size = "*" if total is None else str(total)
        for attempt in range(MAX_RETRIES + 1):
            headers = {"Content-Range": f"bytes */{size}", "Content-Length": "0", **await self._auth(state)}
            try:
                r = await state.client.put(session, headers=headers)
            except httpx.TransportError:
                if attempt == MAX_RETRIES:
                    raise
            else:
                if r.status_code in (200, 201):
                    resource: dict[str, Any] = r.json()
                    return total or 0, resource
                if r.status_code == 308:
                    return _persisted(r), None
                if r.status_code not in RETRYABLE or attempt == MAX_RETRIES:
                    raise GcsError(r.status_code, "resumable upload status", _error_message(r))
            await _backoff(attempt)
        raise AssertionError("unreachable")

    async def _cancel_session(self, session: str) -> None:
        state = self._loop_state()
        try:
            await state.client.delete(session, headers={**await self._auth(state)})
        except Exception as e:  # an abandoned session expires by itself within a week
            log.debug("could not cancel an upload session: %r", e)

    async def _compose(self, key: str, generation: str, component: str) -> None:
        await self._request(
            "POST",
            f"{self._object_url(key)}/compose",
            params={"ifGenerationMatch": generation},
            json_body={
                "sourceObjects": [
                    {"name": key, "generation": generation, "objectPreconditions": {"ifGenerationMatch": generation}},
                    {"name": component},
                ],
                "destination": {"contentType": "application/octet-stream"},
            },
        )

    async def _landed(self, error: GcsError, key: str, size: int) -> bool:
        """Whether a precondition failure is only a retry of a request that had landed
        (its answer was lost): the object is there with the size it was given."""
        if error.status != 412:
            return False
        r = await self._request("GET", self._object_url(key), allow=(200, 404))
        return r.status_code == 200 and int(r.json()["size"]) == size

    # -- the contract -----------------------------------------------------------------------

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, True, 0.0)
        try:
            meta = await self._metadata(path)
        except PathNotFound:
            pass
        else:
            return FileInfo(path, int(meta["size"]), False, _mtime(meta))
        async for is_prefix, name, _ in self._names(self._dir_prefix(path), "/"):
            if is_prefix or self._path_of(name) is not None:
                return FileInfo(path, 0, True, 0.0)
        raise PathNotFound(path)

    async def get(self, path: str) -> bytes:
        r = await self._request("GET", self._object_url(self._key(path)), params={"alt": "media"}, allow=(200, 404))
        if r.status_code == 404:
            raise PathNotFound(path)
        return r.content

    async def put(self, path: str, data: bytes) -> None:
        await self._upload_simple(self._key(path), [memoryview(bytes(data))], None)

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        meta = await self._metadata(path)
        size = int(meta["size"])
        if offset < 0 or offset > size:
            raise InvalidOffset(path, offset)
        end = size if length is None else min(size, offset + length)
        params = {"alt": "media"}
        if meta.get("generation"):
            params["generation"] = str(meta["generation"])  # one version, even if replaced meanwhile
        url = self._object_url(self._key(path))
        pos, attempt, refreshed = offset, 0, False
        while pos < end:
            state = self._loop_state()
            headers = {"Range": f"bytes={pos}-{end - 1}", **await self._auth(state)}
            failure = ""
            try:
                async with state.client.stream("GET", url, params=params, headers=headers) as r:
                    if r.status_code == 404:
                        raise PathNotFound(path)
                    if r.status_code in (200, 206):
                        skip = pos if r.status_code == 200 else 0  # a server that ignored Range
                        async for chunk in r.aiter_bytes(READ_CHUNK):
                            if skip:
                                cut = min(skip, len(chunk))
                                chunk, skip = chunk[cut:], skip - cut
                            chunk = chunk[: end - pos]
                            if chunk:
                                pos += len(chunk)
                                attempt = 0
                                yield chunk
                            if pos >= end:
                                break
                        if pos < end:
                            failure = "the response ended early"
                    elif r.status_code == 401 and not refreshed and not self._credentials.anonymous:
                        self._token, refreshed = None, True
                        continue
                    else:
                        await r.aread()
                        if r.status_code not in RETRYABLE:
                            raise GcsError(r.status_code, f"GET {urlsplit(url).path}", _error_message(r))
                        failure = f"HTTP {r.status_code}"
            except httpx.TransportError as e:
                failure = repr(e)
            if pos < end:
                if attempt >= MAX_RETRIES:
                    raise GcsError(0, f"GET {urlsplit(url).path}", f"gave up at byte {pos}: {failure}")
                await _backoff(attempt)
                attempt += 1

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self._key(path)
        if not append:
            return _GcsWriter(self, key, key, 0, None, component=False)
        meta = await self._metadata(path)
        size, generation = int(meta["size"]), str(meta.get("generation") or "0")
        if size == 0:
            # Nothing to keep: upload to the path itself, unless someone else got there first.
            return _GcsWriter(self, key, key, 0, generation, component=False)
        component = f"{key}{PART_MARK}{secrets.token_hex(8)}"
        return _GcsWriter(self, key, component, size, generation, component=True)

    async def move(self, src: str, dst: str) -> None:
        if src == dst:
            await self._metadata(src)  # PathNotFound if absent; nothing to do otherwise
            return
        src_key, dst_key = self._key(src), self._key(dst)
        bucket = quote(self.settings.bucket, safe="")
        url = f"{self._object_url(src_key)}/rewriteTo/b/{bucket}/o/{quote(dst_key, safe='')}"
        params: dict[str, str] = {}
        while True:
            r = await self._request("POST", url, params=params, allow=(200, 404))
            if r.status_code == 404:
                raise PathNotFound(src)
            answer = r.json()
            if answer.get("done", True):
                break
            params["rewriteToken"] = str(answer["rewriteToken"])  # a large or cross-class copy goes in steps
        await self._delete_key(src_key)

    async def delete(self, path: str) -> None:
        found = path != "/" and await self._delete_key(self._key(path))
        # Everything below, component litter included.
        doomed = [name async for _, name, _ in self._names(self._dir_prefix(path))]
        if doomed:
            found = True
            limiter = anyio.Semaphore(DELETE_CONCURRENCY)

            async def one(key: str) -> None:
                async with limiter:
                    await self._delete_key(key)

            async with anyio.create_task_group() as tg:
                for key in doomed:
                    tg.start_soon(one, key)
        if not found and path != "/":
            raise PathNotFound(path)

    async def list(self, path: str) -> list[str]:
        found: set[str] = set()
        async for is_prefix, name, _ in self._names(self._dir_prefix(path), "/"):
            child = self._path_of(name.rstrip("/") if is_prefix else name)
            if child is not None:
                found.add(child)
        if not found and path != "/":
            raise PathNotFound(path)
        return sorted(found)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        if path != "/":
            try:
                meta = await self._metadata(path)
            except PathNotFound:
                pass
            else:
                yield FileInfo(path, int(meta["size"]), False, _mtime(meta))
                return
        infos = []
        async for _, name, item in self._names(self._dir_prefix(path)):
            child = self._path_of(name)
            if child is not None:
                infos.append(FileInfo(child, int(item.get("size") or 0), False, _mtime(item)))
        if not infos and path != "/":
            raise PathNotFound(path)
        # Depth first by component: "/a/b/x" before "/a/b-c", unlike plain string order.
        infos.sort(key=lambda info: info.path.split("/"))
        for info in infos:
            yield info

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        signer = self._credentials.signer() if self.settings.redirect else None
        if signer is None:
            return None
        return sign_url(
            signer,
            self.settings.endpoint_url or GOOGLE_ENDPOINT,
            self.settings.bucket,
            self._key(path),
            method,
            self.settings.redirect_expiry_seconds,
        )

    async def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            try:
                if state.loop is asyncio.get_running_loop():
                    await state.client.aclose()
            except RuntimeError:  # no running loop: nothing to close from here
                pass


def _skip(pieces: list[memoryview], n: int) -> list[memoryview]:
    """The pieces after their first n bytes (views, no copies)."""
    out: list[memoryview] = []
    for piece in pieces:
        if n >= len(piece):
            n -= len(piece)
            continue
        out.append(piece[n:])
        n = 0
    return out


def sign_url(
    signer: tuple[str, rsa.RSAPrivateKey],
    endpoint: str,
    bucket: str,
    key: str,
    method: str,
    expiry: int,
    now: datetime | None = None,
) -> str:
    """A V4 signed URL (GOOG4-RSA-SHA256, path style, only ``host`` signed)."""
    email, private_key = signer
    parts = urlsplit(endpoint)
    host = parts.netloc
    resource = f"{parts.path.rstrip('/')}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{stamp[:8]}/auto/storage/goog4_request"
    query = {
        "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
        "X-Goog-Credential": f"{email}/{scope}",
        "X-Goog-Date": stamp,
        "X-Goog-Expires": str(expiry),
        "X-Goog-SignedHeaders": "host",
    }
    canonical_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items()))
    canonical_request = "\n".join([method, resource, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["GOOG4-RSA-SHA256", stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    signature = private_key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
    return f"{parts.scheme}://{host}{resource}?{canonical_query}&X-Goog-Signature={signature}"


class _GcsWriter(FileWriter):
    def __init__(
        self, driver: GcsDriver, key: str, target: str, base: int, generation: str | None, component: bool
    ) -> None:
        self._driver = driver
        self._key = key  # the object at the path
        self._target = target  # where this writer's bytes go: the path, or a component
        self._base = base
        self._generation = generation  # the precondition on the path's object, if any
        self._component = component
        self._chunk = driver.settings.chunk_size
        self._pieces: collections.deque[memoryview] = collections.deque()
        self._buffered = 0
        self._written = 0
        self._sent = 0  # bytes the resumable session holds
        self._session: str | None = None
        self._unsure = False  # a chunk failed: the session may hold more than _sent
        self._closed = False

    @property
    def size(self) -> int:
        return self._base + self._written

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")

    def _take(self, n: int) -> list[memoryview]:
        out: list[memoryview] = []
        while n > 0:
            piece = self._pieces.popleft()
            if len(piece) > n:
                out.append(piece[:n])
                self._pieces.appendleft(piece[n:])
                n = 0
            else:
                out.append(piece)
                n -= len(piece)
        return out

    async def write(self, data: bytes) -> None:
        self._require_open()
        if not data:
            return
        # Keep a reference, not a copy; a caller's bytearray may change later, so own that.
        self._pieces.append(memoryview(data if isinstance(data, bytes) else bytes(data)))
        self._buffered += len(data)
        self._written += len(data)
        while self._buffered >= self._chunk:
            await self._send_chunk()

    async def _send_chunk(self) -> None:
        if self._session is None:
            self._session = await self._driver._start_session(self._target, self._generation_for_target())
        elif self._unsure:
            await self._resync()
        pieces = self._take(self._chunk)
        try:
            held, _ = await self._driver._put_range(self._session, pieces, self._sent, None)
        except BaseException:
            # Keep the bytes: uploads commit what arrived even after a failed write, and the
            # session may hold some of them; _resync finds out how many before going on.
            self._pieces.extendleft(reversed(pieces))
            self._unsure = True
            raise
        self._buffered -= self._chunk
        self._sent = held

    async def _resync(self) -> None:
        assert self._session is not None
        held, _ = await self._driver._session_status(self._session, None)
        if held < self._sent or held > self._sent + self._buffered:
            raise GcsError(308, "resumable upload", f"the session holds {held} bytes; {self._sent} were confirmed")
        self._take(held - self._sent)
        self._buffered -= held - self._sent
        self._sent = held
        self._unsure = False

    def _generation_for_target(self) -> str | None:
        # A component is new; the path's own object must still be the one this writer saw.
        return "0" if self._component else self._generation

    async def commit(self, durable: bool = True) -> None:  # GCS is durable once an upload is finalized
        self._require_open()
        self._closed = True
        committed_component = False
        try:
            if self._component and self._written == 0:
                return  # nothing to append
            if self._unsure:
                await self._resync()
            pieces = self._take(self._buffered)
            self._buffered = 0
            if self._session is None:
                try:
                    await self._driver._upload_simple(self._target, pieces, self._generation_for_target())
                except GcsError as e:
                    if not await self._driver._landed(e, self._target, self._written):
                        raise
            else:
                await self._driver._put_range(self._session, pieces, self._sent, self._written)
                self._session = None
            if self._component:
                committed_component = True
                assert self._generation is not None
                try:
                    await self._driver._compose(self._key, self._generation, self._target)
                except GcsError as e:
                    # 412 is also what another process appending at the same time gets.
                    if not await self._driver._landed(e, self._key, self._base + self._written):
                        raise
                await self._driver._delete_quietly(self._target)
        except BaseException:
            if self._session is not None:
                await self._driver._cancel_session(self._session)
            if committed_component:
                await self._driver._delete_quietly(self._target)
            raise
        finally:
            self._pieces.clear()

    async def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pieces.clear()
        self._buffered = 0
        if self._session is not None:
            session, self._session = self._session, None
            await self._driver._cancel_session(session)


def from_parameters(params: dict[str, Any], data_dir: str) -> GcsDriver:
    settings = parse_settings(params)
    if settings.credentials_file:
        credentials = _credentials_from_file(settings.credentials_file, _where("credentials_file"))
    elif settings.endpoint_url:
        credentials = _Credentials()  # an emulator: no authentication
    else:
        credentials = _application_default()
    project = settings.project or credentials.project_id or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if settings.create_bucket and not settings.endpoint_url and not project:
        raise ValueError(f"{_where('create_bucket')} needs {_where('project')}: the project to make it in")
    return GcsDriver(settings, credentials)
