"""LdapProvider against a real slapd (see conftest.py for the directory it serves)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dockyard.auth.ldap import LdapError, LdapProvider, LdapSettings, LdapUser, _user_search_filter
from tests.auth.conftest import GROUPS, PEOPLE, SERVICE_DN, Slapd, password_of, user_dn
from tests.conftest import free_port

# -- logging in ------------------------------------------------------------------------------------


def test_login_returns_the_user(slapd: Slapd) -> None:
    user = LdapProvider(slapd.settings()).authenticate("alice", password_of("alice"))
    assert user == LdapUser("alice", user_dn("alice"), "Alice Liddell", "alice@example.org")


def test_login_without_mail_gives_an_empty_email(slapd: Slapd) -> None:
    user = LdapProvider(slapd.settings()).authenticate("carol", password_of("carol"))
    assert user == LdapUser("carol", user_dn("carol"), "Carol Danvers", "")


def test_username_comes_back_as_the_directory_spells_it(slapd: Slapd) -> None:
    user = LdapProvider(slapd.settings()).authenticate("ALICE", password_of("alice"))
    assert user is not None and user.username == "alice"


def test_anonymous_search_when_no_service_account(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings(bind_dn="", bind_password=""))
    assert provider.authenticate("bob", password_of("bob")) == LdapUser(
        "bob", user_dn("bob"), "Bob Builder", "bob@example.org"
    )


@pytest.mark.parametrize("password", ["wrong", password_of("bob"), " ", password_of("alice") + " "])
def test_wrong_password(slapd: Slapd, password: str) -> None:
    assert LdapProvider(slapd.settings()).authenticate("alice", password) is None


def test_unknown_user(slapd: Slapd) -> None:
    assert LdapProvider(slapd.settings()).authenticate("mallory", "anything") is None


def test_empty_password_is_refused_although_the_server_would_accept_it(slapd: Slapd) -> None:
    # The server takes a DN with an empty password as an anonymous bind (RFC 4513 5.1.2) ...
    whoami = subprocess.run(
        ["ldapwhoami", "-x", "-H", slapd.ldap_url, "-D", user_dn("alice"), "-w", ""],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "LDAPNOINIT": "1"},
    )
    assert (whoami.returncode, whoami.stdout.strip()) == (0, "anonymous"), whoami.stderr
    # ... which must never count as logging in.
    provider = LdapProvider(slapd.settings())
    assert provider.authenticate("alice", "") is None
    # U+00AD is "mapped to nothing" by SASLprep: an empty password in disguise.
    assert provider.authenticate("alice", "\u00ad") is None
    assert provider.authenticate("alice", "\u200b\u00ad") is None


def test_ambiguous_search_is_refused(slapd: Slapd) -> None:
    # uid=dave exists under ou=people and under ou=contractors.
    whole_tree = LdapProvider(slapd.settings(user_search_base="dc=example,dc=org"))
    assert whole_tree.authenticate("dave", password_of("dave")) is None
    people_only = LdapProvider(slapd.settings())
    user = people_only.authenticate("dave", password_of("dave"))
    assert user is not None and user.dn == user_dn("dave")


@pytest.mark.parametrize(
    "username",
    ["*", "alice)(uid=*", "admin*", "alic*", "a*e", "alice)", "(uid=alice)", "alice\\2a", "alice\x00", "al ice", ""],
)
def test_filter_injection_is_refused(slapd: Slapd, username: str) -> None:
    provider = LdapProvider(slapd.settings())
    # alice's real password: a filter that matched her entry would log in.
    assert provider.authenticate(username, password_of("alice")) is None


def test_search_filter_escapes_the_username(slapd: Slapd) -> None:
    # Names never get this far (they are checked first); the escaping is the second line of defence.
    settings = slapd.settings(user_filter="(&(objectClass=inetOrgPerson)(uid={username}))")
    assert _user_search_filter(settings, "alice)(uid=*") == r"(&(objectClass=inetOrgPerson)(uid=alice\29\28uid=\2a))"
    assert _user_search_filter(settings, "a\\b") == r"(&(objectClass=inetOrgPerson)(uid=a\5cb))"


def test_custom_filter_and_attributes(slapd: Slapd) -> None:
    settings = slapd.settings(
        user_filter="(&(objectClass=inetOrgPerson)(mail={username}))",
        username_attribute="mail",
        full_name_attribute="sn",
    )
    user = LdapProvider(settings).authenticate("bob@example.org", password_of("bob"))
    assert user == LdapUser("bob@example.org", user_dn("bob"), "Builder", "bob@example.org")


def test_concurrent_logins(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings())
    attempts = [("alice", password_of("alice")), ("bob", password_of("bob")), ("carol", "wrong")] * 10
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: provider.authenticate(*a), attempts))
    assert [r.username if r else None for r in results] == ["alice", "bob", None] * 10


# -- groups ----------------------------------------------------------------------------------------


def test_group_members(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings())
    assert provider.group_members(f"cn=devs,{GROUPS}") == ["alice", "bob"]
    assert provider.group_members(f"cn=ops,{GROUPS}") == ["carol"]


def test_group_members_skips_missing_entries_and_entries_without_username(slapd: Slapd) -> None:
    # staff: alice, uid=ghost (no such entry), the service account (no uid).
    assert LdapProvider(slapd.settings()).group_members(f"cn=staff,{GROUPS}") == ["alice"]


def test_group_members_with_another_attribute(slapd: Slapd) -> None:
    assert LdapProvider(slapd.settings()).group_members(f"cn=devs,{GROUPS}", "owner") == ["carol"]


@pytest.mark.parametrize("group", [f"cn=nobody,{GROUPS}", "cn=devs,dc=elsewhere,dc=org", "not a dn"])
def test_unknown_group(slapd: Slapd, group: str) -> None:
    with pytest.raises(LdapError, match="does not exist"):
        LdapProvider(slapd.settings()).group_members(group)


# -- TLS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_start_tls_with_the_ca(slapd: Slapd, host: str) -> None:
    settings = slapd.settings(url=f"ldap://{host}:{slapd.ldap_port}", start_tls=True, ca_file=slapd.ca_file)
    provider = LdapProvider(settings)
    provider.check()
    assert provider.authenticate("alice", password_of("alice")) is not None


@pytest.mark.parametrize("which", ["none", "other"])
def test_start_tls_with_an_untrusted_certificate(slapd: Slapd, which: str) -> None:
    ca_file = None if which == "none" else slapd.other_ca_file
    provider = LdapProvider(slapd.settings(start_tls=True, ca_file=ca_file))
    with pytest.raises(LdapError, match="TLS"):
        provider.authenticate("alice", password_of("alice"))
    with pytest.raises(LdapError, match="TLS"):
        provider.check()


def test_ldaps_with_the_ca(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings(url=slapd.ldaps_url, ca_file=slapd.ca_file))
    provider.check()
    assert provider.authenticate("bob", password_of("bob")) is not None
    assert provider.group_members(f"cn=devs,{GROUPS}") == ["alice", "bob"]


def test_ldaps_with_an_untrusted_certificate(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings(url=slapd.ldaps_url, ca_file=slapd.other_ca_file))
    with pytest.raises(LdapError, match="TLS"):
        provider.authenticate("bob", password_of("bob"))


def test_tls_verify_off_accepts_any_certificate(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings(url=slapd.ldaps_url, ca_file=slapd.other_ca_file, tls_verify=False))
    assert provider.authenticate("bob", password_of("bob")) is not None


@pytest.fixture
def wrong_name_tls_server(slapd: Slapd) -> Iterator[int]:
    """A TLS listener whose certificate comes from the right CA but names another host."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(slapd.wrong_name_cert, slapd.wrong_name_cert.removesuffix(".pem") + ".key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):  # the client gives up on the certificate, as it should
                    context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_ldaps_checks_the_host_name(slapd: Slapd, wrong_name_tls_server: int) -> None:
    url = f"ldaps://127.0.0.1:{wrong_name_tls_server}"
    provider = LdapProvider(slapd.settings(url=url, ca_file=slapd.ca_file))
    with pytest.raises(LdapError, match="TLS.*(match|mismatch)"):
        provider.check()


def test_unreadable_ca_file(slapd: Slapd, tmp_path: Any) -> None:
    with pytest.raises(LdapError, match="ca_file"):
        LdapProvider(slapd.settings(url=slapd.ldaps_url, ca_file=str(tmp_path / "missing.pem")))


# -- the directory failing -------------------------------------------------------------------------


def test_unreachable_server(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings(url=f"ldap://127.0.0.1:{free_port()}", timeout=1.0))
    started = time.monotonic()
    with pytest.raises(LdapError, match="cannot reach"):
        provider.authenticate("alice", password_of("alice"))
    with pytest.raises(LdapError, match="cannot reach"):
        provider.check()
    assert time.monotonic() - started < 2


def test_server_that_never_answers(slapd: Slapd) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog) but never replies
        port = silent.getsockname()[1]
        provider = LdapProvider(slapd.settings(url=f"ldap://127.0.0.1:{port}", timeout=0.5))
        started = time.monotonic()
        with pytest.raises(LdapError):
            provider.authenticate("alice", password_of("alice"))
        assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "bind", [(SERVICE_DN, "wrong"), (f"cn=nobody,ou=services,{PEOPLE}", "service-password")], ids=["password", "dn"]
)
def test_bad_service_bind(slapd: Slapd, bind: tuple[str, str]) -> None:
    provider = LdapProvider(slapd.settings(bind_dn=bind[0], bind_password=bind[1]))
    with pytest.raises(LdapError, match="service bind.*invalidCredentials"):
        provider.authenticate("alice", password_of("alice"))
    with pytest.raises(LdapError, match="service bind"):
        provider.group_members(f"cn=devs,{GROUPS}")
    with pytest.raises(LdapError, match="service bind"):
        provider.check()


def test_check(slapd: Slapd) -> None:
    LdapProvider(slapd.settings()).check()
    with pytest.raises(LdapError, match="user_search_base"):
        LdapProvider(slapd.settings(user_search_base="ou=nowhere,dc=example,dc=org")).check()


def test_missing_search_base_is_an_error_not_an_unknown_user(slapd: Slapd) -> None:
    provider = LdapProvider(slapd.settings(user_search_base="ou=nowhere,dc=example,dc=org"))
    with pytest.raises(LdapError, match="does not exist"):
        provider.authenticate("alice", password_of("alice"))


# -- settings --------------------------------------------------------------------------------------


def test_from_parameters_defaults() -> None:
    s = LdapSettings.from_parameters({"url": "ldaps://ldap.example.org"})
    assert s == LdapSettings(url="ldaps://ldap.example.org")
    assert (s.host, s.port, s.use_ssl) == ("ldap.example.org", 636, True)
    assert (s.user_filter, s.username_attribute, s.timeout, s.tls_verify) == ("(uid={username})", "uid", 10.0, True)


def test_from_parameters_accepts_environment_strings() -> None:
    s = LdapSettings.from_parameters(
        {
            "url": "LDAP://[::1]:1389/",
            "bind_dn": SERVICE_DN,
            "bind_password": "x",
            "start_tls": "true",
            "tls_verify": "off",
            "timeout": "2.5",
            "ca_file": "",
        }
    )
    assert (s.host, s.port, s.use_ssl, s.start_tls, s.tls_verify, s.timeout, s.ca_file) == (
        "::1",
        1389,
        False,
        True,
        False,
        2.5,
        None,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, r"auth\.ldap\.url: required"),
        ({"url": ""}, r"auth\.ldap\.url: required"),
        ({"url": "http://ldap.example.org"}, r"auth\.ldap\.url: expected ldap://"),
        ({"url": "ldap.example.org:389"}, r"auth\.ldap\.url: expected ldap://"),
        ({"url": "ldap://"}, r"auth\.ldap\.url: expected ldap://"),
        ({"url": "ldap://host/dc=example,dc=org"}, r"auth\.ldap\.url: expected ldap://"),
        ({"url": "ldap://host:notaport"}, r"auth\.ldap\.url: invalid port"),
        ({"url": "ldap://host", "password": "x"}, r"unknown setting auth\.ldap\.password"),
        ({"url": 389}, r"auth\.ldap\.url: expected a string"),
        ({"url": "ldap://host", "bind_dn": ["cn=a"]}, r"auth\.ldap\.bind_dn: expected a string"),
        ({"url": "ldap://host", "start_tls": "maybe"}, r"auth\.ldap\.start_tls: expected true or false"),
        ({"url": "ldap://host", "tls_verify": 1}, r"auth\.ldap\.tls_verify: expected true or false"),
        ({"url": "ldap://host", "timeout": "soon"}, r"auth\.ldap\.timeout: expected a number"),
        ({"url": "ldap://host", "timeout": True}, r"auth\.ldap\.timeout: expected a number"),
        ({"url": "ldap://host", "timeout": 0}, r"auth\.ldap\.timeout: expected a positive"),
        ({"url": "ldap://host", "timeout": "nan"}, r"auth\.ldap\.timeout: expected a positive"),
        ({"url": "ldap://host", "ca_file": 7}, r"auth\.ldap\.ca_file: expected a string"),
        ({"url": "ldaps://host", "start_tls": True}, r"auth\.ldap\.start_tls: only for ldap://"),
        ({"url": "ldap://host", "bind_dn": SERVICE_DN}, r"auth\.ldap\.bind_password: required"),
        ({"url": "ldap://host", "bind_password": "x"}, r"auth\.ldap\.bind_dn: required"),
        ({"url": "ldap://host", "user_filter": "uid={username}"}, r"auth\.ldap\.user_filter"),
        ({"url": "ldap://host", "user_filter": "(uid=alice)"}, r"auth\.ldap\.user_filter"),
        ({"url": "ldap://host", "username_attribute": "u id"}, r"auth\.ldap\.username_attribute"),
        ({"url": "ldap://host", "group_member_attribute": ""}, r"auth\.ldap\.group_member_attribute"),
    ],
)
def test_from_parameters_rejects(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LdapSettings.from_parameters(params)
