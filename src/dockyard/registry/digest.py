"""Digests: parsing (OCI grammar), the algorithms we can verify, and hashers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from . import codes

_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
ENCODED = {
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha384": re.compile(r"^[a-f0-9]{96}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
}


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse(value: str | None, *, what: str = "digest") -> Digest:
    """Parse and validate; raise DIGEST_INVALID (400) for anything we cannot verify."""
    if not value:
        raise codes.RegistryError(codes.DIGEST_INVALID, f"{what} is missing")
    if len(value) > 256 or not _GRAMMAR.fullmatch(value):
        raise codes.RegistryError(codes.DIGEST_INVALID, f"invalid {what} {value[:100]!r}")
    algorithm, _, encoded = value.partition(":")
    pattern = ENCODED.get(algorithm)
    if pattern is None:
        raise codes.RegistryError(codes.DIGEST_INVALID, f"unsupported digest algorithm {algorithm!r}")
    if not pattern.fullmatch(encoded):
        raise codes.RegistryError(codes.DIGEST_INVALID, f"invalid {algorithm} digest {value[:100]!r}")
    return Digest(algorithm, encoded)


def is_digest(value: str) -> bool:
    return ":" in value


def hasher(algorithm: str) -> Any:
    return hashlib.new(algorithm)


def of_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
