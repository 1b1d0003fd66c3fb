"""Globally unique names (GUNs): ``<registry host[:port]>/<repository>``, as docker forms them.

The host part is what a client used to reach the registry; Dockyard keeps trust data per
GUN (the TUF root certificate names the GUN) and authorizes it as the repository it names.
"""

from __future__ import annotations

from ..registry.reference import NAME_RE


def split(gun: str) -> tuple[str, str] | None:
    """(host, repository) when ``gun`` is a registry host followed by a valid repository name.

    A host is recognised as docker does: it contains "." or ":", or is "localhost". Account
    names cannot contain either character, so a GUN never reads as a repository name."""
    host, sep, repository = gun.partition("/")
    if not sep or not (("." in host or ":" in host) or host == "localhost"):
        return None
    if not host or len(gun) > 512 or not NAME_RE.fullmatch(repository):
        return None
    return host, repository


def repository_of(gun: str) -> str | None:
    parts = split(gun)
    return parts[1] if parts else None
