"""LDAP authentication: find a user with a service account, then bind as that user.

Every call opens its own ldap3 connection, so one provider can be shared by threads.
``authenticate`` returns None when the directory says no (unknown user, wrong or empty
password, ambiguous match) and raises LdapError when the directory cannot be used
(unreachable, TLS failure, service account refused, unexpected result codes).

Two things ldap3 does not do for us, done here:

* TLS: ldap3 checks host names with ``ssl.match_hostname`` (deprecated in 3.10, removed in
  3.12, where ldap3's fallback rejects IP addresses). ``_Tls`` lets the standard library's
  SSLContext verify the chain and the name (DNS or IP SAN) during the handshake.
* Empty passwords: a simple bind with a DN and no password is an *unauthenticated* bind
  (RFC 4513 5.1.2) that some servers accept as anonymous. Passwords that are empty, or that
  SASLprep reduces to nothing, are refused before any bind is attempted.
"""

from __future__ import annotations

import ast
import logging
import math
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from ldap3 import ANONYMOUS, BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls  # type: ignore[import-untyped]
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError  # type: ignore[import-untyped]
from ldap3.protocol.sasl.sasl import sasl_prep  # type: ignore[import-untyped]
from ldap3.utils.conv import escape_filter_chars  # type: ignore[import-untyped]
from ldap3.utils.dn import safe_dn  # type: ignore[import-untyped]

log = logging.getLogger("dockyard.auth.ldap")

_WHERE = "auth.ldap"
_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,256}")
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+")

# LDAP result codes (RFC 4511 appendix A) that this module tells apart.
_SUCCESS = 0
_SIZE_LIMIT_EXCEEDED = 4
_NO_SUCH_OBJECT = 32
_INVALID_DN_SYNTAX = 34
_INVALID_CREDENTIALS = 49
_INSUFFICIENT_ACCESS = 50
# A user bind refused for reasons of the account, not the directory: the login fails.
_USER_REFUSED = {
    19,  # constraintViolation (password policy: locked, expired)
    48,  # inappropriateAuthentication
    _INSUFFICIENT_ACCESS,
    53,  # unwillingToPerform (disabled account, unauthenticated bind disallowed)
}


class LdapError(Exception):
    """The directory could not be used (unreachable, TLS failure, bad service bind).

    Not raised for a wrong user password."""


@dataclass(frozen=True)
class LdapSettings:
    url: str  # ldap://host:port or ldaps://host:port
    bind_dn: str = ""  # service account used to search; "" = anonymous search
    bind_password: str = ""
    user_search_base: str = ""
    user_filter: str = "(uid={username})"  # {username} is escaped with ldap3's escape_filter_chars before substitution
    username_attribute: str = "uid"
    full_name_attribute: str = "cn"
    email_attribute: str = "mail"
    start_tls: bool = False
    ca_file: str | None = None  # PEM bundle to verify the server certificate (ldaps or StartTLS)
    tls_verify: bool = True
    group_member_attribute: str = "member"  # default attribute listing member DNs on group entries
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme not in ("ldap", "ldaps") or not self.url.lower().startswith(("ldap://", "ldaps://")):
            raise ValueError(f"{_WHERE}.url: expected ldap://host[:port] or ldaps://host[:port], got {self.url!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"{_WHERE}.url: invalid port in {self.url!r}") from None
        if not parts.hostname or parts.username or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{_WHERE}.url: expected ldap://host[:port] or ldaps://host[:port], got {self.url!r}")
        if self.start_tls and scheme == "ldaps":
            raise ValueError(f"{_WHERE}.start_tls: only for ldap:// URLs; ldaps:// is already encrypted")
        if self.bind_dn and not self.bind_password:
            raise ValueError(f"{_WHERE}.bind_password: required when bind_dn is set")
        if self.bind_password and not self.bind_dn:
            raise ValueError(f"{_WHERE}.bind_dn: required when bind_password is set")
        if self.user_search_base and not _is_dn(self.user_search_base):
            raise ValueError(f"{_WHERE}.user_search_base: not a DN: {self.user_search_base!r}")
        if "{username}" not in self.user_filter or not (
            self.user_filter.startswith("(") and self.user_filter.endswith(")")
        ):
            raise ValueError(
                f"{_WHERE}.user_filter: expected a parenthesised filter containing {{username}}, "
                f"got {self.user_filter!r}"
            )
        for name in ("username_attribute", "full_name_attribute", "email_attribute", "group_member_attribute"):
            value = getattr(self, name)
            if not _ATTRIBUTE.fullmatch(value):
                raise ValueError(f"{_WHERE}.{name}: not an attribute name: {value!r}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"{_WHERE}.timeout: expected a positive number of seconds, got {self.timeout!r}")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def use_ssl(self) -> bool:
        return self.url.lower().startswith("ldaps://")

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (636 if self.use_ssl else 389)

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> LdapSettings:
        """Build from the ``auth.ldap`` configuration block (YAML values or environment strings)."""
        if not isinstance(params, Mapping):
            raise ValueError(f"{_WHERE}: expected a mapping, got {params!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown setting {_WHERE}.{unknown[0]} (known here: {', '.join(sorted(known))})")
        if not params.get("url"):
            raise ValueError(f"{_WHERE}.url: required (ldap://host:port or ldaps://host:port)")
        kwargs: dict[str, Any] = {}
        for name, value in params.items():
            where = f"{_WHERE}.{name}"
            if name in ("start_tls", "tls_verify"):
                kwargs[name] = _as_bool(value, where)
            elif name == "timeout":
                kwargs[name] = _as_seconds(value, where)
            elif name == "ca_file":
                kwargs[name] = None if value is None or value == "" else _as_str(value, where)
            else:
                kwargs[name] = _as_str(value, where)
        return cls(**kwargs)


def _as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError(f"{where}: expected true or false, got {value!r}")


def _as_seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: expected a number of seconds, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number of seconds, got {value!r}") from None


@dataclass(frozen=True)
class LdapUser:
    username: str
    dn: str
    full_name: str
    email: str


class _Tls(Tls):  # type: ignore[misc]
    """ldap3's Tls with one prepared SSLContext that checks the chain and the host name in the handshake."""

    def __init__(self, context: ssl.SSLContext, verify: bool) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
        self._context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


def _tls_context(settings: LdapSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise LdapError(f"cannot load {_WHERE}.ca_file {settings.ca_file!r}: {e}") from e
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _is_dn(text: str) -> bool:
    try:
        safe_dn(text)
    except LDAPException:
        return False
    return True


def _values(attributes: Mapping[str, Any], name: str) -> list[str]:
    """An attribute's values as strings, whatever the case of its name or the shape ldap3 gives it."""
    for key, value in attributes.items():
        if key.lower() == name.lower():
            if isinstance(value, (list, tuple)):
                return [str(v) for v in value]
            return [] if value is None else [str(value)]
    return []


def _user_search_filter(settings: LdapSettings, username: str) -> str:
    """The search filter for one username, escaped so it can only ever match that name."""
    return settings.user_filter.replace("{username}", escape_filter_chars(username))


def _password_is_empty(password: str) -> bool:
    """True for a password that would make a simple bind unauthenticated (empty after SASLprep)."""
    if not password:
        return True
    try:
        return not sasl_prep(password)
    except LDAPException:  # SASLprep refuses it, and so would the bind
        return True


class LdapProvider:
    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._tls: _Tls | None = None
        if settings.use_ssl or settings.start_tls:
            if not settings.tls_verify:
                log.warning("%s.tls_verify is off: the directory's certificate is not checked", _WHERE)
            self._tls = _Tls(_tls_context(settings), settings.tls_verify)
        # ldap3 packs the receive timeout into SO_RCVTIMEO as whole seconds.
        self._receive_timeout = max(1, math.ceil(settings.timeout))

    def authenticate(self, username: str, password: str) -> LdapUser | None:
        """Synchronous (callers run it in a thread). Search the user with the service bind, then bind as the
        user's DN with the password. None for unknown user, wrong password, EMPTY password (never allow an
        unauthenticated/anonymous simple bind to count as success), or ambiguous search (>1 entry). LdapError for
        infrastructure failures."""
        if not isinstance(username, str) or not _USERNAME.fullmatch(username):
            return None
        if not isinstance(password, str) or _password_is_empty(password):
            return None
        s = self.settings
        attributes = [s.username_attribute, s.full_name_attribute, s.email_attribute]
        with self._service() as conn:
            self._run(
                conn.search,
                s.user_search_base,
                _user_search_filter(s, username),
                search_scope=SUBTREE,
                attributes=attributes,
                size_limit=2,
            )
            code = conn.result["result"]
            entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
            if code == _SIZE_LIMIT_EXCEEDED or len(entries) > 1:
                log.warning("LDAP login %r refused: the search matched more than one entry", username)
                return None
            if code == _NO_SUCH_OBJECT:
                raise LdapError(f"{_WHERE}.user_search_base {s.user_search_base!r} does not exist")
            if code != _SUCCESS:
                raise LdapError(f"user search failed: {_describe(conn)}")
        if not entries:
            return None
        dn: str = entries[0]["dn"]
        attrs: Mapping[str, Any] = entries[0].get("attributes") or {}
        names = _values(attrs, s.username_attribute)
        if not dn or not names:
            log.warning("LDAP login %r refused: entry %r has no %s", username, dn, s.username_attribute)
            return None
        if not self._user_bind(dn, password):
            return None
        canonical = next((n for n in names if n.lower() == username.lower()), names[0])
        full_names = _values(attrs, s.full_name_attribute)
        emails = _values(attrs, s.email_attribute)
        return LdapUser(canonical, dn, full_names[0] if full_names else "", emails[0] if emails else "")

    def group_members(self, group_dn: str, member_attribute: str | None = None) -> list[str]:
        """Usernames (username_attribute of each member entry) of the group's members, sorted; members whose
        entry does not exist or lacks the attribute are skipped. LdapError if the group does not exist or the
        directory fails."""
        s = self.settings
        attribute = member_attribute or s.group_member_attribute
        if not _ATTRIBUTE.fullmatch(attribute):
            raise LdapError(f"not an attribute name: {attribute!r}")
        if not _is_dn(group_dn):
            raise LdapError(f"group {group_dn!r} does not exist (not a DN)")
        usernames: set[str] = set()
        with self._service() as conn:
            self._run(conn.search, group_dn, "(objectClass=*)", search_scope=BASE, attributes=[attribute])
            code = conn.result["result"]
            if code in (_NO_SUCH_OBJECT, _INVALID_DN_SYNTAX):
                raise LdapError(f"group {group_dn!r} does not exist")
            entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
            if code != _SUCCESS or not entries:
                raise LdapError(f"reading group {group_dn!r} failed: {_describe(conn)}")
            for member in _values(entries[0].get("attributes") or {}, attribute):
                if not _is_dn(member):
                    log.debug("LDAP group %r: skipping member %r (not a DN)", group_dn, member)
                    continue
                self._run(conn.search, member, "(objectClass=*)", search_scope=BASE, attributes=[s.username_attribute])
                code = conn.result["result"]
                if code in (_NO_SUCH_OBJECT, _INVALID_DN_SYNTAX, _INSUFFICIENT_ACCESS):  # gone, or hidden from us
                    log.debug("LDAP group %r: skipping member %r (%s)", group_dn, member, conn.result["description"])
                    continue
                if code != _SUCCESS:
                    raise LdapError(f"reading member {member!r} of {group_dn!r} failed: {_describe(conn)}")
                for found in conn.response or []:
                    if found.get("type") == "searchResEntry":
                        names = _values(found.get("attributes") or {}, s.username_attribute)
                        if names:
                            usernames.add(names[0])
        return sorted(usernames)

    def check(self) -> None:
        """Bind with the service account and read the search base; LdapError if that fails (for health checks)."""
        base = self.settings.user_search_base
        with self._service() as conn:
            self._run(conn.search, base, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
            if conn.result["result"] != _SUCCESS:
                raise LdapError(f"cannot read {_WHERE}.user_search_base {base!r}: {_describe(conn)}")

    # -- connections -----------------------------------------------------------------------------

    def _connection(self, user: str | None, password: str | None) -> Connection:
        s = self.settings
        server = Server(s.host, port=s.port, use_ssl=s.use_ssl, get_info=NONE, connect_timeout=s.timeout, tls=self._tls)
        return Connection(
            server,
            user=user,
            password=password,
            authentication=SIMPLE if user else ANONYMOUS,
            receive_timeout=self._receive_timeout,
            raise_exceptions=False,
            read_only=True,
            auto_referrals=False,
            auto_bind=False,
        )

    def _open(self, conn: Connection) -> None:
        """Connect and, if configured, start TLS; LdapError with what went wrong otherwise."""
        s = self.settings
        where = f"{'ldaps' if s.use_ssl else 'ldap'}://{s.host}:{s.port}"
        try:
            conn.open(read_server_info=False)
            if s.start_tls:
                conn.start_tls(read_server_info=False)
        except (LDAPException, OSError) as e:
            # ldap3 re-raises TLS failures as its own exceptions, keeping only the text of the SSLError.
            tls = isinstance(e, (ssl.SSLError, LDAPStartTLSError)) or "ssl" in str(e).lower()
            if tls:
                raise LdapError(f"TLS with {where} failed: {_reason(e)}") from e
            raise LdapError(f"cannot reach the LDAP server {where}: {_reason(e)}") from e

    @contextmanager
    def _service(self) -> Iterator[Connection]:
        """A connection bound as the service account (or anonymously)."""
        s = self.settings
        conn = self._connection(s.bind_dn or None, s.bind_password or None)
        try:
            self._open(conn)
            self._run(conn.bind)
            if conn.result["result"] != _SUCCESS:
                who = f"as {s.bind_dn!r}" if s.bind_dn else "anonymously"
                raise LdapError(f"the LDAP service bind {who} failed: {_describe(conn)}")
            yield conn
        finally:
            _close(conn)

    def _user_bind(self, dn: str, password: str) -> bool:
        """Bind as the user on a connection of its own: True if the directory accepts the password."""
        conn = self._connection(dn, password)
        try:
            self._open(conn)
            self._run(conn.bind)
            code, why = conn.result["result"], _describe(conn)
        finally:
            _close(conn)
        if code == _SUCCESS:
            return True
        if code == _INVALID_CREDENTIALS:
            log.info("LDAP login refused for %r: invalid credentials", dn)
            return False
        if code in _USER_REFUSED:
            log.warning("LDAP login refused for %r: %s", dn, why)
            return False
        raise LdapError(f"LDAP bind as {dn!r} failed: {why}")

    def _run(self, operation: Any, *args: Any, **kwargs: Any) -> None:
        """Run one ldap3 operation; network and protocol failures become LdapError (results stay on conn)."""
        try:
            operation(*args, **kwargs)
        except (LDAPException, OSError) as e:
            raise LdapError(f"LDAP server {self.settings.host}:{self.settings.port}: {_reason(e)}") from e


def _reason(e: BaseException) -> str:
    """The readable part of an ldap3 exception (ldap3 nests messages as reprs of argument tuples)."""
    text = str(e)
    while text.startswith("(") and text.endswith(",)"):
        try:
            inner = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            break
        if not (isinstance(inner, tuple) and len(inner) == 1 and isinstance(inner[0], str)):
            break
        text = inner[0]
    for prefix in ("socket ssl wrapping error: ", "wrap socket error: ", "socket connection error while opening: "):
        text = text.removeprefix(prefix)
    return text


def _describe(conn: Connection) -> str:
    result = conn.result or {}
    text = f"{result.get('description', 'unknown')} ({result.get('result', '?')})"
    if result.get("message"):
        text += f": {result['message']}"
    return text


def _close(conn: Connection) -> None:
    """Unbind if the session is up, and always release the socket (ldap3 leaks it when open fails)."""
    try:
        if not conn.closed:
            conn.unbind()
    except (LDAPException, OSError):
        pass
    sock: socket.socket | None = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()
