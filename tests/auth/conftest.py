"""A real OpenLDAP ``slapd`` for the auth tests, started as its own process on loopback.

One server per test session (per xdist worker): an mdb database in a temporary directory,
``ldap://`` (StartTLS offered) and ``ldaps://`` listeners on free 127.0.0.1 ports, and a
certificate issued by a CA made here. It needs the Debian packages ``slapd`` (server,
``/usr/lib/ldap/back_mdb.so``, ``/etc/ldap/schema``) and ``ldap-utils`` (``ldapwhoami``).

Directory tree (every user's password is ``<uid>-password``)::

    dc=example,dc=org
    ├── ou=people      alice (mail), bob (mail), carol (no mail), dave
    ├── ou=contractors dave (a second entry with uid=dave)
    ├── ou=services    cn=dockyard (the service account, password ``service-password``)
    └── ou=groups      devs (alice, bob; owner carol), ops (carol),
                       staff (alice, a member that does not exist, the service account)

Anyone may read everything except passwords, and the server accepts unauthenticated binds
(a DN with an empty password) as anonymous, so tests can prove the provider refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from ldap3 import NONE, Connection, Server  # type: ignore[import-untyped]

from dockyard.auth.ldap import LdapSettings
from dockyard.ca.authority import CertificateAuthority, IssuedCertificate, plain_pem
from tests.conftest import free_port

SLAPD = "/usr/sbin/slapd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = "/etc/ldap/schema"

BASE = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-secret"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
SERVICE_DN = f"cn=dockyard,ou=services,{BASE}"
SERVICE_PASSWORD = "service-password"


def user_dn(uid: str, ou: str = "people") -> str:
    return f"uid={uid},ou={ou},{BASE}"


def password_of(uid: str) -> str:
    return f"{uid}-password"


@dataclass(frozen=True)
class Slapd:
    ldap_url: str  # ldap://127.0.0.1:P, StartTLS available
    ldaps_url: str  # ldaps://127.0.0.1:P
    ldap_port: int
    ldaps_port: int
    ca_file: str  # the CA that issued the server certificate
    other_ca_file: str  # an unrelated CA
    wrong_name_cert: str  # issued by ca_file for "other.example" (key next to it, .key)
    log_path: Path

    def settings(self, **overrides: Any) -> LdapSettings:
        """Settings for the service account searching ou=people, over plain ldap:// unless overridden."""
        values: dict[str, Any] = {
            "url": self.ldap_url,
            "bind_dn": SERVICE_DN,
            "bind_password": SERVICE_PASSWORD,
            "user_search_base": PEOPLE,
            "timeout": 5.0,
        }
        values.update(overrides)
        return LdapSettings(**values)


# -- certificates ----------------------------------------------------------------------------------


def write_leaf(path: Path, issued: IssuedCertificate) -> None:
    """The certificate at ``path``, its key beside it (``.key``)."""
    path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(plain_pem(issued.key))
    key_path.chmod(0o600)


# -- slapd -------------------------------------------------------------------------------------------


def _ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


SLAPD_CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema

pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath {modules}
moduleload back_mdb

TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
TLSVerifyClient never

# Accept a DN with an empty password as an anonymous bind (RFC 4513 5.1.2), so the tests
# show the provider never lets such a bind count as a login.
allow bind_anon_dn

database mdb
suffix "{base}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/db
maxsize 16777216

access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""


def _entries() -> list[tuple[str, list[str], dict[str, Any]]]:
    def person(uid: str, cn: str, mail: str | None, ou: str = "people") -> tuple[str, list[str], dict[str, Any]]:
        attrs: dict[str, Any] = {"uid": uid, "cn": cn, "sn": cn.split()[-1], "userPassword": _ssha(password_of(uid))}
        if mail:
            attrs["mail"] = mail
        return user_dn(uid, ou), ["inetOrgPerson"], attrs

    def ou(name: str) -> tuple[str, list[str], dict[str, Any]]:
        return f"ou={name},{BASE}", ["organizationalUnit"], {"ou": name}

    def group(cn: str, members: list[str], **extra: Any) -> tuple[str, list[str], dict[str, Any]]:
        return f"cn={cn},{GROUPS}", ["groupOfNames"], {"cn": cn, "member": members, **extra}

    return [
        (BASE, ["dcObject", "organization"], {"dc": "example", "o": "Example"}),
        ou("people"),
        ou("contractors"),
        ou("services"),
        ou("groups"),
        person("alice", "Alice Liddell", "alice@example.org"),
        person("bob", "Bob Builder", "bob@example.org"),
        person("carol", "Carol Danvers", None),
        person("dave", "Dave Lister", "dave@example.org"),
        person("dave", "Dave Contractor", "dave@contractor.example", ou="contractors"),
        (
            SERVICE_DN,
            ["organizationalRole", "simpleSecurityObject"],
            {"cn": "dockyard", "userPassword": _ssha(SERVICE_PASSWORD)},
        ),
        group("devs", [user_dn("alice"), user_dn("bob")], owner=[user_dn("carol")]),
        group("ops", [user_dn("carol")]),
        group("staff", [user_dn("alice"), user_dn("ghost"), SERVICE_DN]),
    ]


def _wait_for_ports(proc: subprocess.Popen[bytes], ports: list[int], log_path: Path, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with {proc.returncode}:{_hint()}\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"slapd did not listen on {pending} in {seconds:.0f} s:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.02)


def _hint() -> str:
    """Explain the usual reason a packaged slapd cannot use a temporary directory."""
    profile = Path("/etc/apparmor.d/usr.sbin.slapd")
    if profile.exists() and Path("/sys/kernel/security/apparmor").exists():
        return (
            f" (AppArmor profile {profile} is installed and may deny access to the temporary directory;"
            " see `dmesg | grep DENIED`; `aa-complain /usr/sbin/slapd` relaxes it)"
        )
    return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # slapd shuts down cleanly on SIGTERM
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    if not os.access(SLAPD, os.X_OK) or shutil.which("ldapwhoami") is None:
        pytest.fail("the LDAP tests need the Debian packages slapd and ldap-utils (`./run test` installs them)")
    d = tmp_path_factory.mktemp("slapd")
    (d / "db").mkdir()
    # Dockyard's own CA code makes the test CAs: a folder each, keys sealed with a throw-away KEK.
    ca = CertificateAuthority.create(d / "ldap-ca", os.urandom(32), name="Dockyard test LDAP")
    (d / "ca.pem").write_bytes(ca.pem)
    write_leaf(d / "server.pem", ca.issue("127.0.0.1", ["127.0.0.1", "localhost"]))
    (d / "other-ca.pem").write_bytes(CertificateAuthority.create(d / "other-ca", os.urandom(32), name="Other").pem)
    write_leaf(d / "wrong-name.pem", ca.issue("other.example", ["other.example"]))
    (d / "slapd.conf").write_text(
        SLAPD_CONF.format(
            schema=SCHEMA_DIR,
            modules=MODULE_PATH,
            dir=d,
            base=BASE,
            root_dn=ROOT_DN,
            root_password=ROOT_PASSWORD,
        )
    )
    ldap_port, ldaps_port = free_port(), free_port()
    while ldaps_port == ldap_port:
        ldaps_port = free_port()
    log_path = d / "slapd.log"
    urls = f"ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
    with open(log_path, "wb") as log:
        # -d keeps slapd in the foreground (so this Popen is the server) and logs connections
        # and operations (256 = stats) to the log file.
        proc = subprocess.Popen(
            [SLAPD, "-f", str(d / "slapd.conf"), "-h", urls, "-d", "256"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_ports(proc, [ldap_port, ldaps_port], log_path)
        server = Server("127.0.0.1", port=ldap_port, get_info=NONE)
        conn = Connection(server, ROOT_DN, ROOT_PASSWORD, auto_bind=True, raise_exceptions=True)
        try:
            for dn, classes, attrs in _entries():
                conn.add(dn, classes, attrs)
        finally:
            conn.unbind()  # ldap3's `with` leaves a connection bound before entering open
        yield Slapd(
            ldap_url=f"ldap://127.0.0.1:{ldap_port}",
            ldaps_url=f"ldaps://127.0.0.1:{ldaps_port}",
            ldap_port=ldap_port,
            ldaps_port=ldaps_port,
            ca_file=str(d / "ca.pem"),
            other_ca_file=str(d / "other-ca.pem"),
            wrong_name_cert=str(d / "wrong-name.pem"),
            log_path=log_path,
        )
    finally:
        _stop(proc)
    assert proc.returncode is not None, "slapd is still running"
    for port in (ldap_port, ldaps_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port} after slapd stopped"
