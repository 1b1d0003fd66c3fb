from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.config import ConfigError, load, parse_listen


def test_defaults_are_the_embedded_setup() -> None:
    s = load(environ={})
    assert s.storage.driver == "filesystem"
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("dockyard-data/db/dockyard.db")
    assert (s.server.host, s.server.port) == ("127.0.0.1", 5000)


def test_yaml_then_environment_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yml"
    f.write_text("server: {port: 6000, log_level: debug}\nstorage: {filesystem: {rootdirectory: /srv/x}}\n")
    s = load(f, environ={"DOCKYARD_SERVER__PORT": "7000", "DOCKYARD_REGISTRY__DELETE_ENABLED": "no"})
    assert s.server.port == 7000 and s.server.log_level == "debug"
    assert s.storage.driver == "filesystem" and s.storage.params == {"rootdirectory": "/srv/x"}
    assert s.registry.delete_enabled is False
    s = load(f, environ={}, overrides={"server.port": 8000, "data_dir": "/d"})
    assert s.server.port == 8000 and str(s.data_dir) == "/d"


def test_storage_params_from_environment() -> None:
    s = load(environ={"DOCKYARD_STORAGE__DRIVER": "inmemory", "DOCKYARD_STORAGE__BUCKET": "b"})
    assert s.storage.driver == "inmemory" and s.storage.params == {"bucket": "b"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DOCKYARD_NOPE": "1"}, "unknown setting nope"),
        ({"DOCKYARD_SERVER__PORT": "http"}, "server.port: expected a whole number"),
        ({"DOCKYARD_SERVER__PORT": "70000"}, "not a port number"),
        ({"DOCKYARD_REGISTRY__DELETE_ENABLED": "maybe"}, "expected true or false"),
        ({"DOCKYARD_REGISTRY__MAX_MANIFEST_BYTES": "1000"}, "at least 4 MiB"),
        ({"DOCKYARD_SERVER__BOGUS": "1"}, "unknown setting server.bogus"),
    ],
)
def test_readable_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(environ=env)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.yml", environ={})
    bad = tmp_path / "bad.yml"
    bad.write_text("server: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad, environ={})
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping at the top"):
        load(bad, environ={})


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ConfigError):
        parse_listen("nonsense")


def test_tls_settings() -> None:
    s = load(environ={})
    assert s.tls.enabled and s.tls.hostnames == ["localhost", "127.0.0.1", "::1"]
    assert (s.tls.cert_file, s.tls.key_file, s.tls.redirect_http_port) == ("", "", 0)
    s = load(environ={"DOCKYARD_TLS__HOSTNAMES": " a.example ,10.0.0.1,, ", "DOCKYARD_TLS__ENABLED": "off"})
    assert s.tls.hostnames == ["a.example", "10.0.0.1"] and not s.tls.enabled
    assert load(environ={}, overrides={"tls.hostnames": ["x", 5]}).tls.hostnames == ["x", "5"]
    with pytest.raises(ConfigError, match="tls.hostnames"):
        load(environ={}, overrides={"tls.hostnames": {"a": 1}})
    with pytest.raises(ConfigError, match="set both"):
        load(environ={"DOCKYARD_TLS__KEY_FILE": "/k"})
    with pytest.raises(ConfigError, match="redirect_http_port"):
        load(environ={"DOCKYARD_TLS__REDIRECT_HTTP_PORT": "5000"})


def test_the_data_folders_file_is_the_lowest_layer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "config").mkdir(parents=True)
    (data / "config" / "dockyard.yml").write_text(
        "registry: {delete_enabled: false, tags_max_entries: 7}\n"
        "server: {port: 6000}\n"
        "data_dir: /somewhere/else\n"  # ignored: the folder cannot move itself
        "storage: {driver: filesystem, params: {rootdirectory: /srv/blobs}}\n"
    )
    explicit = tmp_path / "explicit.yml"
    explicit.write_text("registry: {tags_max_entries: 9}\n")
    s = load(explicit, environ={"DOCKYARD_SERVER__PORT": "7000"}, overrides={"data_dir": str(data)})
    assert s.data_dir == data
    assert s.registry.delete_enabled is False  # from the folder's file
    assert s.registry.tags_max_entries == 9  # the explicit file wins over it
    assert s.server.port == 7000  # the environment wins over both
    assert s.storage.params == {"rootdirectory": "/srv/blobs"}
    # Another driver above replaces the folder's storage block instead of merging its params into it.
    s = load(environ={"DOCKYARD_STORAGE__DRIVER": "inmemory"}, overrides={"data_dir": str(data)})
    assert (s.storage.driver, s.storage.params) == ("inmemory", {})
    (data / "config" / "dockyard.yml").write_text("registry: {delete_enabled: perhaps}\n")
    with pytest.raises(ConfigError, match="registry.delete_enabled"):
        load(environ={}, overrides={"data_dir": str(data)})


def test_trusted_proxies(tmp_path: Path) -> None:
    assert load(environ={}).server.trusted_proxies == ["127.0.0.1", "::1"]
    env = {"DOCKYARD_SERVER__TRUSTED_PROXIES": " 10.0.0.5 , 192.168.0.0/16,fd00::/8,, "}
    assert load(environ=env).server.trusted_proxies == ["10.0.0.5", "192.168.0.0/16", "fd00::/8"]
    f = tmp_path / "c.yml"
    f.write_text("server: {trusted_proxies: ['::1', 172.16.0.0/12]}\n")
    assert load(f, environ={}).server.trusted_proxies == ["::1", "172.16.0.0/12"]
    f.write_text("server: {trusted_proxies: []}\n")  # nobody's forwarded headers are believed
    assert load(f, environ={}).server.trusted_proxies == []
    for bad, message in [
        ("nginx.internal", r"'nginx.internal' is not an IP address or a CIDR network"),
        ("10.0.0.1,10.0.0.0/33", r"'10.0.0.0/33' is not a network"),
        ("10.0.0.5/24", r"'10.0.0.5/24' has host bits set \(the network is 10.0.0.0/24\)"),
        ("[::1]", r"'\[::1\]' is not an IP address"),
        ("*", r"'\*' is not accepted"),
    ]:
        with pytest.raises(ConfigError, match=r"server\.trusted_proxies .*" + message):
            load(environ={"DOCKYARD_SERVER__TRUSTED_PROXIES": bad})
    with pytest.raises(ConfigError, match="server.trusted_proxies: expected a list"):
        load(environ={}, overrides={"server.trusted_proxies": {"a": 1}})
