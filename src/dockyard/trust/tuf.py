"""TUF metadata as Notary writes it (spec/notary.md §3): canonical JSON, keys and their IDs,
signature checks, and the four role types, parsed from the exact bytes a client uploaded.

Public API (all pure; no I/O):

- ``canonical_json(obj) -> bytes``; ``loads(raw) -> Any`` (integers only).
- ``Key`` (``from_json``, ``id``, ``canonical_id``, ``verify``), ``key_id``, ``canonical_key_id``.
- ``parse_signed(role, raw) -> Signed`` (MALFORMED_JSON on a bad envelope), then
  ``root_from`` / ``targets_from`` / ``snapshot_from`` / ``timestamp_from`` (``ValueError`` naming
  the broken structure rule), or the shortcuts ``parse_root`` / ``parse_targets`` /
  ``parse_snapshot`` / ``parse_timestamp``.
- ``count_valid(signed, keys, keyids)``: distinct valid signatures among the allowed key IDs.
- ``make_file_meta(bytes)``, ``envelope(signed, sigs)``, ``sign_envelope(signed, key_id, sign)``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import MalformedJSON

ROLE_TYPES = {"root": "Root", "targets": "Targets", "snapshot": "Snapshot", "timestamp": "Timestamp"}
BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
X509_TYPES = ("ecdsa-x509", "rsa-x509")
KEY_TYPES = ("ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519")
SIGNATURE_METHODS = ("ecdsa", "eddsa", "rsapss", "rsapkcs1v15", "pycrypto-pkcs#1 pss")
MIN_RSA_BITS = 2048
HASH_SIZES = {"sha256": 32, "sha512": 64}  # the hashes notary checks; others are carried, not checked


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
        # Code-point order equals the UTF-8 byte order Go sorts by.
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


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_json(obj: Any) -> bytes:
    """Keys sorted, no whitespace, only ``"`` and ``\\`` escaped, UTF-8, integers only:
    the bytes a TUF signature covers (docker/go ``MarshalCanonical``)."""
    out: list[str] = []
    _canonical(obj, out)
    # A lone surrogate (``"\\ud800"`` in the input) is not UTF-8; Go decodes it as U+FFFD.
    return _LONE_SURROGATE.sub("\ufffd", "".join(out)).encode()


def canonical_json_of_parsed(obj: Any) -> bytes:
    """``canonical_json`` of what ``loads`` returned (string keys, no floats by construction),
    through the C encoder: the same bytes whenever its output holds no escape at all, as TUF
    metadata almost never does; otherwise the encoder above."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if "\\" in text:  # an escape: json.dumps escapes control characters too, Go's encoder does not
        return canonical_json(obj)
    return _LONE_SURROGATE.sub("\ufffd", text).encode()


def _no_floats(text: str) -> int:
    raise ValueError(f"{text} is not an integer")


def loads(raw: bytes) -> Any:
    """JSON as TUF allows it (integers only; NaN and floats are refused with ``ValueError``)."""
    return json.loads(raw, parse_float=_no_floats, parse_constant=_no_floats)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any, what: str) -> bytes:
    """Standard base64 as Go decodes ``[]byte`` (line breaks ignored)."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not valid base64") from None


# --- keys ------------------------------------------------------------------------------------


def key_id(keytype: str, public_b64: str) -> str:
    """TUF key ID: SHA-256 of the canonical public key JSON (for x509 types, of the PEM)."""
    return sha256_hex(canonical_json({"keytype": keytype, "keyval": {"private": None, "public": public_b64}}))


@dataclass(frozen=True)
class Key:
    """A public key as TUF lists it. Unknown key types are kept (Go does) but never verify."""

    keytype: str
    public_b64: str
    public: bytes  # DER SubjectPublicKeyInfo, PEM certificate, or raw ed25519 bytes

    @property
    def id(self) -> str:
        # Go hashes the re-encoded bytes, not the string it was sent.
        return key_id(self.keytype, b64(self.public))

    @property
    def canonical_id(self) -> str:
        """The ID clients name private keys by: for x509 types, that of the bare public key."""
        return canonical_key_id(self)

    @classmethod
    def from_json(cls, data: Any) -> Key:
        if not isinstance(data, Mapping) or not isinstance(data.get("keyval"), Mapping):
            raise ValueError("a key is {keytype, keyval: {public}}")
        keytype = data.get("keytype")
        if not isinstance(keytype, str):
            raise ValueError("keytype must be a string")
        public_b64 = data["keyval"].get("public")
        return cls(keytype, public_b64, unb64(public_b64, "keyval.public"))

    @classmethod
    def from_public_key(cls, public: Any) -> Key:
        """The ``ecdsa``/``rsa``/``ed25519`` key for a cryptography public key object."""
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return cls("ed25519", b64(raw), raw)
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if isinstance(public, ec.EllipticCurvePublicKey):
            return cls("ecdsa", b64(der), der)
        if isinstance(public, rsa.RSAPublicKey):
            return cls("rsa", b64(der), der)
        raise ValueError(f"no TUF key type for {type(public).__name__}")

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> Key:
        """The ``ecdsa-x509``/``rsa-x509`` key holding this certificate as PEM."""
        pem = cert.public_bytes(serialization.Encoding.PEM)
        public = cert.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            return cls("ecdsa-x509", b64(pem), pem)
        if isinstance(public, rsa.RSAPublicKey):
            return cls("rsa-x509", b64(pem), pem)
        raise ValueError(f"no x509 TUF key type for {type(public).__name__}")

    def to_json(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": b64(self.public)}}

    def certificate(self) -> x509.Certificate:
        if self.keytype not in X509_TYPES:
            raise ValueError(f"a {self.keytype} key is not a certificate")
        return x509.load_pem_x509_certificate(self.public)

    def public_key(self) -> Any:
        """The cryptography key object; ``ValueError`` if the bytes do not hold the declared type."""
        if self.keytype in X509_TYPES:
            public: Any = self.certificate().public_key()
        elif self.keytype == "ed25519":
            public = ed25519.Ed25519PublicKey.from_public_bytes(self.public)
        elif self.keytype in ("ecdsa", "rsa"):
            public = serialization.load_der_public_key(self.public)
        else:
            raise ValueError(f"unsupported key type {self.keytype!r}")
        family = {"ecdsa": ec.EllipticCurvePublicKey, "rsa": rsa.RSAPublicKey, "ed25519": ed25519.Ed25519PublicKey}
        if not isinstance(public, family[self.keytype.removesuffix("-x509")]):
            raise ValueError(f"a {self.keytype} key holds a {type(public).__name__}")
        return public

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
            if isinstance(public, rsa.RSAPublicKey) and method in ("rsapss", "pycrypto-pkcs#1 pss", "rsapkcs1v15"):
                if public.key_size < MIN_RSA_BITS:
                    return False
                if method == "rsapkcs1v15":
                    public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                else:
                    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                    public.verify(signature, message, pss, hashes.SHA256())
                return True
            if isinstance(public, ed25519.Ed25519PublicKey) and method == "eddsa":
                public.verify(signature, message)
                return True
        except (InvalidSignature, ValueError, TypeError):
            return False
        return False


def canonical_key_id(key: Key) -> str:
    """Notary's ``CanonicalKeyID``: an x509 key's ID is that of the public key inside the cert."""
    if key.keytype not in X509_TYPES:
        return key.id
    return Key.from_public_key(key.certificate().public_key()).id


def ecdsa_public_key_json(public_der: bytes) -> dict[str, Any]:
    """A server-held key as the key endpoints and roots show it."""
    return {"keytype": "ecdsa", "keyval": {"private": None, "public": b64(public_der)}}


# --- times -----------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_time(text: Any) -> datetime.datetime:
    """An RFC 3339 time (fractions of any length, ``Z`` or an offset) as an aware datetime."""
    if not isinstance(text, str):
        raise ValueError("expires must be an RFC 3339 time")
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"expires {text!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))  # Go keeps nanoseconds; microseconds suffice here
    if m.group(8):
        tz = datetime.UTC
    else:
        offset = datetime.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if offset >= datetime.timedelta(hours=24):
            raise ValueError(f"expires {text!r} has an impossible offset")
        tz = datetime.timezone(-offset if m.group(9) == "-" else offset)
    return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- envelopes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    keyid: str
    method: str  # lower-cased
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

    @property
    def type(self) -> Any:
        return self.signed.get("_type")

    def canonical(self) -> bytes:
        return canonical_json_of_parsed(self.signed)

    def expired(self, now: datetime.datetime) -> bool:
        return self.expires < now  # Go: expires.Before(now)


def parse_signed(role: str, raw: bytes) -> Signed:
    """The envelope of one role file; MALFORMED_JSON when it is not of that shape."""
    try:
        doc = loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
            raise ValueError("expected {signed, signatures}")
        signed = doc["signed"]
        sigs = doc.get("signatures") or []
        if not isinstance(sigs, list) or not all(isinstance(s, dict) for s in sigs):
            raise ValueError("signatures must be a list of {keyid, method, sig}")
        signatures = tuple(
            Signature(str(s.get("keyid", "")), str(s.get("method", "")).lower(), unb64(s.get("sig"), "sig"))
            for s in sigs
        )
        version = signed.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("version must be an integer")
        return Signed(role, raw, signed, signatures, version, parse_time(signed.get("expires")))
    except (ValueError, TypeError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedJSON(f"{role}: not TUF metadata ({e})") from None


def count_valid(signed: Signed, keys: Mapping[str, Key], keyids: Iterable[str]) -> int:
    """Distinct keys among ``keyids`` with a valid signature; unknown key IDs are ignored.

    ``ValueError`` if a signature names a key whose computed ID differs (notary's ErrInvalidKeyID):
    otherwise one key listed under several IDs would count several times."""
    allowed = set(keyids)
    message = signed.canonical()
    valid: set[str] = set()
    for sig in signed.signatures:
        key = keys.get(sig.keyid) if sig.keyid in allowed else None
        if key is None:
            continue
        if key.id != sig.keyid:
            raise ValueError(f"key {sig.keyid[:12]}… has the ID {key.id[:12]}…")
        if sig.keyid not in valid and key.verify(sig.method, sig.sig, message):
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


def sign_envelope(
    signed: Mapping[str, Any], key_id: str, sign: Callable[[str, bytes], bytes], method: str = "ecdsa"
) -> bytes:
    """Sign the canonical bytes of ``signed`` with ``sign(key_id, payload) -> raw signature``
    (raw R||S for ecdsa) and return the role file. An async signer does the same with
    ``canonical_json`` and ``envelope``."""
    return envelope(signed, [(key_id, method, sign(key_id, canonical_json(signed)))])


def expires_of(raw: bytes) -> datetime.datetime:
    return parse_signed("file", raw).expires


# --- file meta -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileMeta:
    length: int
    hashes: Mapping[str, bytes]
    custom: Any = None

    def matches(self, data: bytes) -> bool:
        """Notary's ``CheckHashes``: every sha256/sha512 listed matches, and at least one is listed
        (lengths are not compared)."""
        checked = 0
        for alg, value in self.hashes.items():
            if alg in HASH_SIZES:
                if hashlib.new(alg, data).digest() != value:
                    return False
                checked += 1
        return checked > 0


def parse_file_meta(meta: Any, where: str, *, require_hash: bool = True) -> FileMeta:
    if not isinstance(meta, Mapping):
        raise ValueError(f"{where}: expected {{length, hashes}}")
    length = meta.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ValueError(f"{where}: length must be a non-negative integer")
    raw_hashes = meta.get("hashes") or {}
    if not isinstance(raw_hashes, Mapping):
        raise ValueError(f"{where}: hashes must be a mapping")
    hashes_ = {alg: unb64(value, f"{where} hash {alg}") for alg, value in raw_hashes.items()}
    for alg, size in HASH_SIZES.items():
        if alg in hashes_ and len(hashes_[alg]) != size:
            raise ValueError(f"{where}: {alg} hash has {len(hashes_[alg])} bytes, not {size}")
    if require_hash and not any(alg in hashes_ for alg in HASH_SIZES):
        raise ValueError(f"{where}: a sha256 or sha512 hash is required")
    return FileMeta(length, hashes_, meta.get("custom"))


def file_meta(meta: Any, where: str) -> tuple[int, dict[str, bytes]]:
    """Length and decoded hashes of a ``{length, hashes}`` entry (at least one hash required)."""
    parsed = parse_file_meta(meta, where)
    return parsed.length, dict(parsed.hashes)


def make_file_meta(data: bytes) -> dict[str, Any]:
    """Length and SHA-256 + SHA-512, as notary records the files it names."""
    return {
        "length": len(data),
        "hashes": {"sha256": b64(hashlib.sha256(data).digest()), "sha512": b64(hashlib.sha512(data).digest())},
    }


# --- roles -----------------------------------------------------------------------------------


def base_role(role: str) -> str:
    return "targets" if role.startswith("targets/") else role


_DELEGATION_CHARS = re.compile(r"[-a-z0-9_/]+", re.ASCII)


def is_role_name(name: str) -> bool:
    """root, snapshot, timestamp, targets, or a clean ``targets/…`` delegation name."""
    if name in BASE_ROLES:
        return True
    if not name.startswith("targets/") or len(name) >= 256 or not _DELEGATION_CHARS.fullmatch(name):
        return False
    # path.Clean(name) == name: no empty segments and no trailing slash (dots are not allowed at all).
    return all(name.split("/"))


def is_child(parent: str, name: str) -> bool:
    return name.startswith(parent + "/") and "/" not in name[len(parent) + 1 :] and is_role_name(name)


def parent_of(role: str) -> str:
    return role.rsplit("/", 1)[0]


@dataclass(frozen=True)
class RoleKeys:
    keyids: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class Root:
    signed: Signed
    keys: dict[str, Key]
    roles: dict[str, RoleKeys]
    consistent_snapshot: bool = False

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
    return {kid: Key.from_json(raw) for kid, raw in data.items()}


def _common(signed: Signed, expected: str) -> None:
    if signed.type != expected:
        raise ValueError(f"_type is {signed.type!r}, not {expected}")
    if signed.version < 1:
        raise ValueError("version must be at least 1")


def root_from(signed: Signed) -> Root:
    """Root structure (rule 3): _type, version ≥ 1, all four roles, thresholds ≥ 1, keys present."""
    _common(signed, "Root")
    s = signed.signed
    keys = _keys(s.get("keys"), "keys")
    roles_raw = s.get("roles")
    if not isinstance(roles_raw, Mapping):
        raise ValueError("roles must be a mapping")
    roles = {}
    for name in BASE_ROLES:
        if roles_raw.get(name) is None:
            raise ValueError(f"the {name} role is missing")
        roles[name] = _role_keys(roles_raw[name], f"roles.{name}")
        missing = [k for k in roles[name].keyids if k not in keys]
        if missing:
            raise ValueError(f"roles.{name} names key {missing[0][:12]}… that keys does not hold")
    return Root(signed, keys, roles, s.get("consistent_snapshot") is True)


def parse_root(raw: bytes) -> Root:
    """A stored root (already validated when it was accepted)."""
    return root_from(parse_signed("root", raw))


@dataclass(frozen=True)
class Delegation:
    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...]  # prefixes; "" = everything


@dataclass(frozen=True)
class Targets:
    signed: Signed
    targets: dict[str, Mapping[str, Any]]
    keys: dict[str, Key] = field(default_factory=dict)
    delegations: dict[str, Delegation] = field(default_factory=dict)


def targets_from(signed: Signed) -> Targets:
    """Targets structure (rule 7): _type Targets, version ≥ 1, ``{length, hashes}`` targets, and
    delegations to direct children only, each with threshold ≥ 1, known keys and string paths."""
    _common(signed, "Targets")
    if signed.role != "targets" and not is_role_name(signed.role):
        raise ValueError(f"{signed.role!r} is not a targets role name")
    s = signed.signed
    targets = s.get("targets") or {}
    if not isinstance(targets, Mapping):
        raise ValueError("targets must be a mapping")
    for name, meta in targets.items():
        parse_file_meta(meta, f"target {name}", require_hash=False)
    raw_delegations = s.get("delegations") or {}
    if not isinstance(raw_delegations, Mapping):
        raise ValueError("delegations must be a mapping")
    keys = _keys(raw_delegations.get("keys") or {}, "delegations.keys")
    delegations: dict[str, Delegation] = {}
    entries = raw_delegations.get("roles") or []
    if not isinstance(entries, list):
        raise ValueError("delegations.roles must be a list")
    for entry in entries:
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


def parse_targets(role: str, raw: bytes) -> Targets:
    return targets_from(parse_signed(role, raw))


@dataclass(frozen=True)
class Snapshot:
    signed: Signed
    meta: dict[str, FileMeta]


def snapshot_from(signed: Signed) -> Snapshot:
    """Snapshot structure: root and targets listed with a sha256, no snapshot/timestamp entries."""
    _common(signed, "Snapshot")
    raw_meta = signed.signed.get("meta")
    if not isinstance(raw_meta, Mapping):
        raise ValueError("meta must be a mapping")
    meta = {role: parse_file_meta(m, f"meta {role}", require_hash=False) for role, m in raw_meta.items()}
    for role in ("root", "targets"):
        if role not in meta or "sha256" not in meta[role].hashes:
            raise ValueError(f"meta lacks the sha256 of {role}")
    for role in ("snapshot", "timestamp"):
        if role in meta:
            raise ValueError(f"meta must not list {role}")
    return Snapshot(signed, meta)


def parse_snapshot(raw: bytes) -> Snapshot:
    return snapshot_from(parse_signed("snapshot", raw))


@dataclass(frozen=True)
class Timestamp:
    signed: Signed
    snapshot: FileMeta


def timestamp_from(signed: Signed) -> Timestamp:
    """Timestamp structure: meta.snapshot with a sha256."""
    _common(signed, "Timestamp")
    raw_meta = signed.signed.get("meta")
    if not isinstance(raw_meta, Mapping) or "snapshot" not in raw_meta:
        raise ValueError("meta must list the snapshot")
    snapshot = parse_file_meta(raw_meta["snapshot"], "meta snapshot")
    if "sha256" not in snapshot.hashes:
        raise ValueError("meta lacks the sha256 of snapshot")
    return Timestamp(signed, snapshot)


def parse_timestamp(raw: bytes) -> Timestamp:
    return timestamp_from(parse_signed("timestamp", raw))
