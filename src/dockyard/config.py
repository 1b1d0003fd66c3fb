"""Bootstrap settings, in layers: the data folder's own ``config/dockyard.yml`` (written by
``dockyard install`` and ``dockyard reconfigure``), then a YAML file given with ``--config`` /
``DOCKYARD_CONFIG``, then ``DOCKYARD_*`` environment overrides, then command-line flags;
validated once at start into a frozen tree, with readable errors.

Environment names map to keys with ``__`` between levels, e.g.
``DOCKYARD_STORAGE__DRIVER=inmemory`` or ``DOCKYARD_REGISTRY__DELETE_ENABLED=false``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "DOCKYARD_"
# The data folder's settings file, relative to the data folder.
DATA_CONFIG = Path("config") / "dockyard.yml"


class ConfigError(ValueError):
    """A setting is missing, unknown or of the wrong kind; the message says which."""


@dataclass(frozen=True)
class StorageSettings:
    driver: str = "filesystem"
    # The driver's own block; each driver validates it (see storage.factory).
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistrySettings:
    delete_enabled: bool = True
    max_manifest_bytes: int = 4 << 20
    upload_expiry_seconds: int = 7 * 24 * 3600
    catalog_max_entries: int = 1000
    tags_max_entries: int = 10000
    # Check that an index's children exist in the repository before accepting it.
    validate_index_children: bool = True
    # Pulls are counted in memory and written this often (a killed process loses at most these).
    pull_flush_seconds: float = 5.0


@dataclass(frozen=True)
class AuthSettings:
    # Off only for protocol tests and benchmarks against registries without auth.
    enabled: bool = True
    service: str = "dockyard"  # the token audience ("service" in the challenge)
    issuer: str = "dockyard"
    token_ttl_seconds: int = 300
    refresh_ttl_seconds: int = 30 * 24 * 3600
    # The first admin's password on an empty database; empty = generate one and print it.
    admin_password: str = ""
    create_repository_on_push: bool = True
    failed_login_limit: int = 10  # per account
    failed_login_limit_per_address: int = 50  # wider: many users may share a NAT or a CI farm
    failed_login_window_seconds: int = 300
    # LDAP provider settings (see auth.ldap.LdapSettings); empty = local accounts only.
    ldap: dict[str, Any] = field(default_factory=dict)
    ldap_sync_interval_seconds: int = 600
    # Web UI sessions end after this long without a request, and this long after sign-in.
    session_idle_seconds: int = 3600
    session_max_seconds: int = 12 * 3600


def _default_trusted_proxies() -> list[str]:
    return ["127.0.0.1", "::1"]


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    log_level: str = "info"
    access_log: bool = False
    log_format: str = "text"  # "text" or "json" (one object per line, with the request id)
    # Peers whose X-Forwarded-Proto/-For are believed (a front proxy such as `dockyard
    # nginx-config`): addresses or CIDR networks; empty = trust no one's forwarded headers.
    trusted_proxies: list[str] = field(default_factory=_default_trusted_proxies)


def _default_hostnames() -> list[str]:
    return ["localhost", "127.0.0.1", "::1"]


@dataclass(frozen=True)
class TlsSettings:
    # HTTPS by default, with a certificate from the built-in CA (see dockyard.ca).
    enabled: bool = True
    # Names and addresses in the server certificate (plus server.host unless a wildcard).
    hostnames: list[str] = field(default_factory=_default_hostnames)
    # Bring your own: both or neither; then the built-in CA does not issue the server certificate.
    cert_file: str = ""
    key_file: str = ""
    # A second listener that answers every request with 308 to https; 0 = off.
    redirect_http_port: int = 0


@dataclass(frozen=True)
class TrustSettings:
    # Content trust (Notary v1) at /v2/<gun>/_trust/; on with the registry by default.
    enabled: bool = True
    # Empty: the signer runs in-process. Else https://HOST:PORT of `dockyard signer serve`,
    # reached with a client certificate from the built-in CA (mutual TLS).
    signer_url: str = ""
    # The passphrase that seals the signer's keys: from this file, else DOCKYARD_SIGNER_PASSPHRASE,
    # else derived from config/master.key.
    signer_passphrase_file: str = ""
    # Re-sign a timestamp when less than this is left of its 14 days; checked every hour.
    timestamp_refresh_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True)
class JobsSettings:
    # Run workers inside `dockyard serve`; off when separate `dockyard worker` processes do.
    enabled: bool = True
    workers: int = 1  # workers per process, each running one job at a time
    # A running job whose heartbeat is older than this is taken over by another worker.
    lease_seconds: float = 30
    poll_seconds: float = 1  # how often an idle worker (and the scheduler) looks for work
    # A failed attempt is retried after base * 2**(attempt - 1) seconds, at most max.
    retry_base_seconds: float = 10
    retry_max_seconds: float = 3600


@dataclass(frozen=True)
class WebhookSettings:
    max_attempts: int = 8  # a delivery is tried this many times in all
    backoff_seconds: float = 1.0  # wait before the 2nd attempt; doubles after each failure
    max_backoff_seconds: float = 3600.0
    connect_timeout_seconds: float = 5.0
    total_timeout_seconds: float = 10.0  # the whole request, response excerpt included
    response_excerpt_bytes: int = 4096  # of the receiver's answer, kept with the delivery
    concurrency: int = 8  # deliveries in flight per process
    lease_seconds: float = 60.0  # a claimed delivery another process may retake after this
    refresh_seconds: float = 5.0  # reload subscriptions made by other processes
    poll_seconds: float = 1.0  # look for due retries (and other processes' deliveries)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("dockyard-data")
    database_url: str = ""  # empty: SQLite in <data_dir>/db/dockyard.db
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.absolute() / 'db' / 'dockyard.db'}"


def _coerce(value: Any, typ: Any, where: str) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if typ is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if typ == list[str]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{where}: expected a list (or comma-separated string), got {value!r}")
        out = [_coerce(item, str, where).strip() for item in items]
        return [item for item in out if item]
    if typ == dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    raise ConfigError(f"{where}: unsupported setting type {typ!r}")  # pragma: no cover


def _build(cls: Any, raw: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'configuration'}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"unknown setting {where + '.' if where else ''}{unknown[0]} (known here: {known})")
    kwargs: dict[str, Any] = {}
    types = typing.get_type_hints(cls)
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        typ = types[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value or {}, key)
        else:
            kwargs[name] = _coerce(value, typ, key)
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(keys)}: {k} is not a mapping")
        node = child
    node[keys[-1]] = value


def _storage_from_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept distribution's shape too: ``storage: {filesystem: {rootdirectory: …}}``."""
    storage = raw.get("storage")
    if not isinstance(storage, dict):
        return raw
    if "driver" not in storage and len(storage) == 1:
        ((driver, params),) = storage.items()
        raw["storage"] = {"driver": driver, "params": params or {}}
    return raw


def build_section(cls: Any, raw: Mapping[str, Any], where: str) -> Any:
    """One settings block (a dataclass above) from a mapping, validated like a whole file."""
    return _build(cls, raw, where)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A settings file as a mapping (distribution's storage shape accepted), or a ConfigError."""
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {path} is not valid YAML: {e}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top")
    return _storage_from_raw(loaded)


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``top`` replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in (ENV_PREFIX + "CONFIG", ENV_PREFIX + "MASTER_KEY"):
            continue
        if name == ENV_PREFIX + "SIGNER_PASSPHRASE":  # a secret read by the signer, not a setting
            continue
        if name == ENV_PREFIX + "ADMIN_PASSWORD":  # the documented short form
            name = ENV_PREFIX + "AUTH__ADMIN_PASSWORD"
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if keys[0] == "storage" and len(keys) > 1 and keys[1] not in ("driver", "params"):
            keys = ["storage", "params", *keys[1:]]
        if keys[:2] == ["auth", "ldap"] and len(keys) == 2:
            raise ConfigError("auth.ldap is a block: set its keys, e.g. DOCKYARD_AUTH__LDAP__URL")
        _set_path(raw, keys, value)
    return raw


def load(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    data_config: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the layers (data folder file, explicit file, environment, overrides) and validate.

    ``data_config`` replaces the data folder's file (``dockyard reconfigure`` validates a
    proposed file this way before writing it)."""
    env = os.environ if environ is None else environ
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    explicit = read_yaml(path) if path else {}
    env_raw = _env_layer(env)
    top: dict[str, Any] = merge(explicit, env_raw)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(top, dotted.split("."), value)
    # The data folder is known only once the upper layers are read; its own file goes underneath.
    data_dir = Path(str(top.get("data_dir") or Settings.data_dir))
    if data_config is None:
        folder_file = data_dir / DATA_CONFIG
        data_config = read_yaml(folder_file) if folder_file.is_file() else {}
    base = {k: v for k, v in data_config.items() if k != "data_dir"}  # the folder cannot move itself
    top_storage = top.get("storage")
    if isinstance(top_storage, dict) and "driver" in top_storage:
        base.pop("storage", None)  # another driver: the folder's driver settings do not apply
    raw = merge(base, top)
    settings: Settings = _build(Settings, raw, "")
    if not 0 <= settings.server.port <= 65535:
        raise ConfigError(f"server.port: {settings.server.port} is not a port number")
    if settings.auth.admin_password and len(settings.auth.admin_password) < 8:
        raise ConfigError("auth.admin_password (--admin-password, DOCKYARD_ADMIN_PASSWORD): at least 8 characters")
    if bool(settings.tls.cert_file) != bool(settings.tls.key_file):
        raise ConfigError("tls.cert_file and tls.key_file: set both (bring your own certificate) or neither")
    if not 0 <= settings.tls.redirect_http_port <= 65535:
        raise ConfigError(f"tls.redirect_http_port: {settings.tls.redirect_http_port} is not a port number")
    if settings.tls.redirect_http_port and settings.tls.redirect_http_port == settings.server.port:
        raise ConfigError("tls.redirect_http_port: must differ from server.port")
    if settings.server.log_format not in ("text", "json"):
        raise ConfigError(f"server.log_format: expected text or json, got {settings.server.log_format!r}")
    for entry in settings.server.trusted_proxies:
        _check_trusted_proxy(entry)
    if settings.trust.signer_url and not settings.trust.signer_url.startswith("https://"):
        raise ConfigError("trust.signer_url: the signer is reached over mutual TLS: https://HOST:PORT")
    if settings.registry.max_manifest_bytes < 4 << 20:
        raise ConfigError("registry.max_manifest_bytes: the spec requires at least 4 MiB")
    _check_positive(
        "jobs",
        settings.jobs,
        ("workers", "lease_seconds", "poll_seconds", "retry_base_seconds", "retry_max_seconds"),
        zero_ok=("workers",),
    )
    _check_positive(
        "webhooks",
        settings.webhooks,
        tuple(f.name for f in dataclasses.fields(WebhookSettings)),
        zero_ok=("backoff_seconds",),
    )
    return settings


def _check_positive(section: str, values: object, names: tuple[str, ...], zero_ok: tuple[str, ...]) -> None:
    # A zero or negative count or interval would stall a loop or spin it; say which.
    for name in names:
        value = getattr(values, name)
        if value < 0 or (value == 0 and name not in zero_ok):
            least = "0 or more" if name in zero_ok else "more than 0"
            raise ConfigError(f"{section}.{name}: expected {least}, got {value}")


def _check_trusted_proxy(entry: str) -> None:
    """One ``server.trusted_proxies`` entry: an IP address or a network in CIDR form with no
    host bits set (what uvicorn's ``forwarded_allow_ips`` matches; it would silently treat
    anything else as a literal that never matches a peer address)."""
    where = "server.trusted_proxies (DOCKYARD_SERVER__TRUSTED_PROXIES)"
    if entry == "*":
        raise ConfigError(f"{where}: '*' is not accepted; to trust every peer, list 0.0.0.0/0 and ::/0")
    try:
        if "/" in entry:
            ipaddress.ip_network(entry, strict=True)
        else:
            ipaddress.ip_address(entry)
    except ValueError as e:
        if "has host bits set" in str(e):
            network = ipaddress.ip_network(entry, strict=False)
            raise ConfigError(f"{where}: {entry!r} has host bits set (the network is {network})") from None
        kind = "a network (ADDRESS/PREFIX)" if "/" in entry else "an IP address or a CIDR network"
        raise ConfigError(f"{where}: {entry!r} is not {kind}") from None


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
