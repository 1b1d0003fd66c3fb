"""Repository names and tags (distribution-spec grammars)."""

from __future__ import annotations

import re

from . import codes

NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
NAME_MAX = 255


def check_name(name: str) -> str:
    """The grammar alone keeps names away from the filesystem: no '..', no leading '/',
    no '%', and names are never turned into storage paths anyway."""
    if len(name) > NAME_MAX:
        raise codes.RegistryError(codes.NAME_INVALID, f"repository name longer than {NAME_MAX} characters")
    if not NAME_RE.fullmatch(name):
        raise codes.RegistryError(codes.NAME_INVALID, f"invalid repository name {name[:300]!r}")
    return name


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise codes.RegistryError(codes.TAG_INVALID, f"invalid tag {tag[:200]!r}")
    return tag
