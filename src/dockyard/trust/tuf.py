"""TUF metadata as Notary writes it (spec/notary.md §3): canonical JSON, keys and their IDs,
signature checks, and the four role types, parsed from the exact bytes a client uploaded.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import malformed_json

ROLE_TYPES = {"root": "Root", "targets": "Targets", "snapshot": "Snapshot", "timestamp": "Timestamp"}
BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
X509_TYPES = ("ecdsa-x509", "rsa-x509")
KEY_TYPES = ("ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519")


# --- canonical JSON --------------------------------------------------------------------------


def _string(s: str) -> str:
    # Go's canonical encoder escapes only the quote and the backslash; all else is raw UTF-8.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _canonical(obj: Any, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, float):
        raise ValueError("canonical JSON has no floating-point numbers")
    elif isinstance(obj, str):
        out.append(_string(obj))
    elif isinstance(obj, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(obj)):
            if not isinstance(key, str):
                raise ValueError("canonical JSON object keys are strings")
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _canonical(obj[key], out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    else:
        raise ValueError(f"canonical JSON cannot encode {type(obj).__name__}")


def canonical_json(obj: Any) -> bytes:
    """Keys sorted, no whitespace, integers only: the bytes a TUF signature covers."""
    out: list[str] = []
    _canonical(obj, out)
    return "".join(out).encode()


def _no_floats(text: str) -> int:
    raise ValueError(f"{text} is not an integer")


def loads(raw: bytes) -> Any:
    """JSON as TUF allows it (integers only)."""
    return json.loads(raw, parse_float=_no_floats, parse_constant=_no_floats)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not valid base64") from None


# --- keys ------------------------------------------------------------------------------------


def key_id(keytype: str, public_b64: str) -> str:
    """TUF key ID: SHA-256 of the canonical public key JSON (for x509 types, of the PEM)."""
    return sha256_hex(canonical_json({"keytype": keytype, "keyval": {"private": None, "public": public_b64}}))


@dataclass(frozen=True)
class Key:
    keytype: str
    public_b64: str
    public: bytes  # DER SubjectPublicKeyInfo, PEM certificate, or raw ed25519 bytes

    @property
    def id(self) -> str:
        return key_id(self.keytype, self.public_b64)

    @classmethod
    def from_json(cls, data: Any) -> Key:
        if not isinstance(data, Mapping) or not isinstance(data.get("keyval"), Mapping):
            raise ValueError("a key is {keytype, keyval: {public}}")
        keytype = str(data.get("keytype", "")).lower()
        if keytype not in KEY_TYPES:
            raise ValueError(f"unsupported key type {data.get('keytype')!r}")
        public_b64 = data["keyval"].get("public")
        return cls(keytype, public_b64, unb64(public_b64, "keyval.public"))

    def certificate(self) -> x509.Certificate:
        if self.keytype not in X509_TYPES:
            raise ValueError(f"a {self.keytype} key is not a certificate")
        return x509.load_pem_x509_certificate(self.public)

    def public_key(self) -> Any:
        if self.keytype in X509_TYPES:
            return self.certificate().public_key()
        if self.keytype == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(self.public)
        return serialization.load_der_public_key(self.public)

    def verify(self, method: str, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` by this key over ``message`` is valid under ``method``."""
        try:
            public = self.public_key()
            method = method.lower()
            if isinstance(public, ec.EllipticCurvePublicKey) and method == "ecdsa":
                size = math.ceil(public.curve.key_size / 8)
                if len(signature) != 2 * size:  # raw R||S, as Go writes it
                    return False
                r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
                public.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
                return True
            if isinstance(public, rsa.RSAPublicKey) and method in ("rsapss", "pycrypto-pkcs#1 pss"):
                if public.key_size < 2048:
                    return False
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                public.verify(signature, message, pss, hashes.SHA256())
                return True
            if isinstance(public, rsa.RSAPublicKey) and method == "rsapkcs1v15":
                if public.key_size < 2048:
                    return False
                public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return True
            if isinstance(public, ed25519.Ed25519PublicKey) and method == "eddsa":
                public.verify(signature, message)
                return True
        except (InvalidSignature, ValueError, TypeError):
            return False
        return False


def ecdsa_public_key_json(public_der: bytes) -> dict[str, Any]:
    """A server-held key as the key endpoints and roots show it."""
    return {"keytype": "ecdsa", "keyval": {"private": None, "public": b64(public_der)}}


# --- envelopes and roles ---------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    keyid: str
    method: str
    sig: bytes


@dataclass(frozen=True)
class Signed:
    """One role file: the exact bytes, the decoded ``signed`` object and its signatures."""

    role: str
    raw: bytes
    signed: Mapping[str, Any]
    signatures: tuple[Signature, ...]
    version: int
    expires: datetime.datetime

    @property
    def sha256(self) -> str:
        return sha256_hex(self.raw)

    def canonical(self) -> bytes:
        return canonical_json(self.signed)


def parse_time(text: Any) -> datetime.datetime:
    if not isinstance(text, str):
        raise ValueError("expires must be an RFC 3339 time")
    value = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError("expires must carry a time zone")
    return value


def format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_signed(role: str, raw: bytes) -> Signed:
    """The envelope of one role file; MALFORMED_JSON when it is not of that shape."""
    try:
        doc = loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
            raise ValueError("expected {signed, signatures}")
        signed = doc["signed"]
        sigs = doc.get("signatures") or []
        if not isinstance(sigs, list):
            raise ValueError("signatures must be a list")
        signatures = tuple(
            Signature(str(s["keyid"]), str(s.get("method", "")), unb64(s["sig"], "sig"))
            for s in sigs
            if isinstance(s, dict)
        )
        version = signed.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("version must be an integer")
        return Signed(role, raw, signed, signatures, version, parse_time(signed.get("expires")))
    except (ValueError, KeyError, TypeError) as e:
        raise malformed_json(f"{role}: not TUF metadata ({e})") from None


def base_role(role: str) -> str:
    return "targets" if role.startswith("targets/") else role


@dataclass(frozen=True)
class RoleKeys:
    keyids: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class Root:
    signed: Signed
    keys: dict[str, Key]
    roles: dict[str, RoleKeys]

    def role_keyids(self, role: str) -> tuple[str, ...]:
        entry = self.roles.get(role)
        return entry.keyids if entry else ()


def _role_keys(data: Any, where: str) -> RoleKeys:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected {{keyids, threshold}}")
    keyids = data.get("keyids")
    threshold = data.get("threshold")
    if not isinstance(keyids, list) or not all(isinstance(k, str) for k in keyids):
        raise ValueError(f"{where}: keyids must be a list of key IDs")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise ValueError(f"{where}: threshold must be at least 1")
    return RoleKeys(tuple(keyids), threshold)


def _keys(data: Any, where: str) -> dict[str, Key]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of key IDs to keys")
    out = {}
    for kid, raw in data.items():
        key = Key.from_json(raw)
        if key.id != kid:
            # A key listed under another ID would let one key count as several.
            raise ValueError(f"{where}: key {kid[:12]}… has ID {key.id[:12]}…")
        out[kid] = key
    return out


def root_from(signed: Signed) -> Root:
    s = signed.signed
    if s.get("_type") != "Root":
        raise ValueError(f"_type is {s.get('_type')!r}, not Root")
    if signed.version < 1:
        raise ValueError("version must be at least 1")
    keys = _keys(s.get("keys"), "keys")
    roles_raw = s.get("roles")
    if not isinstance(roles_raw, Mapping):
        raise ValueError("roles must be a mapping")
    roles = {}
    for name in BASE_ROLES:
        if name not in roles_raw:
            raise ValueError(f"the {name} role is missing")
        roles[name] = _role_keys(roles_raw[name], f"roles.{name}")
        missing = [k for k in roles[name].keyids if k not in keys]
        if missing:
            raise ValueError(f"roles.{name} names key {missing[0][:12]}… that keys does not hold")
    return Root(signed, keys, roles)


def parse_root(raw: bytes) -> Root:
    """A stored root (already validated when it was accepted)."""
    return root_from(parse_signed("root", raw))


@dataclass(frozen=True)
class Delegation:
    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Targets:
    signed: Signed
    targets: dict[str, Mapping[str, Any]]
    keys: dict[str, Key] = field(default_factory=dict)
    delegations: dict[str, Delegation] = field(default_factory=dict)


def targets_from(signed: Signed) -> Targets:
    s = signed.signed
    if s.get("_type") != "Targets":
        raise ValueError(f"_type is {s.get('_type')!r}, not Targets")
    if signed.version < 1:
        raise ValueError("version must be at least 1")
    targets = s.get("targets") or {}
    if not isinstance(targets, Mapping):
        raise ValueError("targets must be a mapping")
    for name, meta in targets.items():
        file_meta(meta, f"target {name}")
    raw_delegations = s.get("delegations") or {}
    if not isinstance(raw_delegations, Mapping):
        raise ValueError("delegations must be a mapping")
    keys = _keys(raw_delegations.get("keys") or {}, "delegations.keys")
    delegations: dict[str, Delegation] = {}
    for entry in raw_delegations.get("roles") or []:
        if not isinstance(entry, Mapping):
            raise ValueError("each delegation is a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not is_child(signed.role, name):
            raise ValueError(f"{signed.role} may only delegate to its direct children, not {name!r}")
        rk = _role_keys(entry, f"delegation {name}")
        missing = [k for k in rk.keyids if k not in keys]
        if missing:
            raise ValueError(f"delegation {name} names key {missing[0][:12]}… that delegations.keys does not hold")
        paths = entry.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError(f"delegation {name}: paths must be a list of strings")
        delegations[name] = Delegation(name, rk.keyids, rk.threshold, tuple(paths))
    return Targets(signed, dict(targets), keys, delegations)


def file_meta(meta: Any, where: str) -> tuple[int, dict[str, bytes]]:
    if not isinstance(meta, Mapping):
        raise ValueError(f"{where}: expected {{length, hashes}}")
    length = meta.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ValueError(f"{where}: length must be a non-negative integer")
    raw_hashes = meta.get("hashes")
    if not isinstance(raw_hashes, Mapping) or not raw_hashes:
        raise ValueError(f"{where}: hashes are required")
    return length, {alg: unb64(value, f"{where} hash {alg}") for alg, value in raw_hashes.items()}


def make_file_meta(data: bytes) -> dict[str, Any]:
    """Length and SHA-256 + SHA-512, as notary records the files it names."""
    return {
        "length": len(data),
        "hashes": {"sha256": b64(hashlib.sha256(data).digest()), "sha512": b64(hashlib.sha512(data).digest())},
    }


def is_child(parent: str, name: str) -> bool:
    return name.startswith(parent + "/") and "/" not in name[len(parent) + 1 :] and is_role_name(name)


def is_role_name(name: str) -> bool:
    """root, snapshot, timestamp, targets, or a clean ``targets/…`` delegation name."""
    if name in BASE_ROLES:
        return True
    if not name.startswith("targets/") or len(name) >= 256:
        return False
    rest = name[len("targets/") :]
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_/")
    parts = rest.split("/")
    return bool(rest) and set(rest) <= allowed and all(p and p not in (".", "..") for p in parts)


def count_valid(signed: Signed, keys: Mapping[str, Key], keyids: Iterable[str]) -> int:
    """Distinct keys among ``keyids`` with a valid signature; unknown key IDs are ignored."""
    allowed = set(keyids)
    message = signed.canonical()
    valid: set[str] = set()
    for sig in signed.signatures:
        if sig.keyid in allowed and sig.keyid not in valid:
            key = keys.get(sig.keyid)
            if key is not None and key.verify(sig.method, sig.sig, message):
                valid.add(sig.keyid)
    return len(valid)


def envelope(signed: Mapping[str, Any], signatures: list[tuple[str, str, bytes]]) -> bytes:
    """A role file: ``signed`` plus signatures (key ID, method, raw signature bytes)."""
    return canonical_json(
        {
            "signed": signed,
            "signatures": [{"keyid": kid, "method": method, "sig": b64(sig)} for kid, method, sig in signatures],
        }
    )


def expires_of(raw: bytes) -> datetime.datetime:
    return parse_signed("file", raw).expires
