"""Every rule of an update (spec/notary.md §4) with real keys, certificates and signatures:
each accepted when kept and refused, with Notary's error, when broken."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from dockyard.trust import tuf, validation
from dockyard.trust.errors import InvalidUpdate, TrustError

GUN = "registry.example:5000/team/app"
NOW = datetime.datetime(2031, 6, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
LATER = NOW + 365 * DAY

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class Signer:
    private: PrivateKey
    key: tuf.Key

    @property
    def id(self) -> str:
        return self.key.id

    def sign(self, payload: bytes) -> tuple[str, str, bytes]:
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private.sign(payload, ec.ECDSA(hashes.SHA256())))
            return self.id, "ecdsa", r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if isinstance(self.private, rsa.RSAPrivateKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return self.id, "rsapss", self.private.sign(payload, pss, hashes.SHA256())
        return self.id, "eddsa", self.private.sign(payload)


def ec_signer() -> Signer:
    private = ec.generate_private_key(ec.SECP256R1())
    return Signer(private, tuf.Key.from_public_key(private.public_key()))


def _certificate(
    private: PrivateKey, cn: str, not_before: datetime.datetime, not_after: datetime.datetime
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    return builder.sign(private, hashes.SHA256())


def cert_signer(
    cn: str = GUN,
    *,
    private: PrivateKey | None = None,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 3650 * DAY,
) -> Signer:
    """A root key as docker makes it: the key wrapped in a self-signed certificate, CN = GUN."""
    private = private or ec.generate_private_key(ec.SECP256R1())
    return Signer(private, tuf.Key.from_certificate(_certificate(private, cn, not_before, not_after)))


def sha1_cert_signer() -> Signer:
    """An RSA root certificate signed with SHA-1 (cryptography no longer issues these, so the
    SHA-256 OID is swapped for SHA-1's, which has the same length, and the TBS re-signed)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(private, GUN, NOW - DAY, NOW + 3650 * DAY)
    sha256_oid, sha1_oid = bytes.fromhex("2a864886f70d01010b"), bytes.fromhex("2a864886f70d010105")
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes.replace(sha256_oid, sha1_oid)
    signature = private.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    der = der.replace(sha256_oid, sha1_oid)[: -len(signature)] + signature
    sha1_cert = x509.load_der_x509_certificate(der)
    assert sha1_cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA1
    return Signer(private, tuf.Key.from_certificate(sha1_cert))


def sign(signed: dict[str, Any], *signers: Signer, extra: list[tuple[str, str, bytes]] | None = None) -> bytes:
    payload = tuf.canonical_json(signed)
    return tuf.envelope(signed, [s.sign(payload) for s in signers] + (extra or []))


def role_entry(signers: list[Signer], threshold: int = 1) -> dict[str, Any]:
    return {"keyids": [s.id for s in signers], "threshold": threshold}


class Repo:
    """One GUN's keys, the metadata a client would upload, and what the server stored."""

    def __init__(self) -> None:
        self.root_keys = [cert_signer()]
        self.targets_key = ec_signer()
        self.snapshot_key = ec_signer()
        self.timestamp_key = ec_signer()
        self.stored: dict[str, bytes] = {}

    def root_signed(
        self, version: int = 1, *, root_keys: list[Signer] | None = None, threshold: int = 1, expires: Any = LATER
    ) -> dict[str, Any]:
        root_keys = root_keys if root_keys is not None else self.root_keys
        everyone = [*root_keys, self.targets_key, self.snapshot_key, self.timestamp_key]
        return {
            "_type": "Root",
            "version": version,
            "expires": tuf.format_time(expires),
            "consistent_snapshot": False,
            "keys": {s.id: s.key.to_json() for s in everyone},
            "roles": {
                "root": role_entry(root_keys, threshold),
                "targets": role_entry([self.targets_key]),
                "snapshot": role_entry([self.snapshot_key]),
                "timestamp": role_entry([self.timestamp_key]),
            },
        }

    def root(self, version: int = 1, **kwargs: Any) -> bytes:
        signers = kwargs.pop("signers", None)
        signed = self.root_signed(version, **kwargs)
        return sign(signed, *(signers if signers is not None else kwargs.get("root_keys", self.root_keys)))

    def targets(
        self,
        version: int = 1,
        *,
        targets: dict[str, Any] | None = None,
        delegations: list[tuple[str, list[Signer], list[str]]] | None = None,
        signers: list[Signer] | None = None,
        expires: datetime.datetime = LATER,
    ) -> bytes:
        return sign(
            targets_signed(version, targets, delegations, expires),
            *(signers if signers is not None else [self.targets_key]),
        )

    def server_held(self) -> dict[str, set[str]]:
        return {"snapshot": {self.snapshot_key.id}, "timestamp": {self.timestamp_key.id}}

    def update(self, uploads: dict[str, bytes], **kwargs: Any) -> validation.ValidatedUpdate:
        held = kwargs.pop("server_held", self.server_held())
        return validation.validate_update(GUN, uploads, self.stored, kwargs.pop("now", NOW), held)

    def accept(self, uploads: dict[str, bytes]) -> validation.ValidatedUpdate:
        """Validate and store, as the server would (with a server-made snapshot if needed)."""
        result = self.update(uploads)
        for f in result.files:
            self.stored[f.role] = f.content
        if result.needs_snapshot:
            roles = {r: b for r, b in self.stored.items() if r not in ("snapshot", "timestamp")}
            self.stored["snapshot"] = sign(
                validation.build_snapshot(self.stored.get("snapshot"), roles, NOW), self.snapshot_key
            )
        return result

    def refused(self, uploads: dict[str, bytes], name: str, match: str, **kwargs: Any) -> InvalidUpdate:
        with pytest.raises(InvalidUpdate, match=match) as e:
            self.update(uploads, **kwargs)
        assert e.value.code == "INVALID_UPDATE" and e.value.status == 400
        assert e.value.detail["Name"] == name
        return e.value

    def code(self, uploads: dict[str, bytes], code: str, match: str | None = None) -> None:
        with pytest.raises(TrustError, match=match) as e:
            self.update(uploads)
        assert e.value.code == code


def targets_signed(
    version: int = 1,
    targets: dict[str, Any] | None = None,
    delegations: list[tuple[str, list[Signer], list[str]]] | None = None,
    expires: datetime.datetime = LATER,
) -> dict[str, Any]:
    signed: dict[str, Any] = {
        "_type": "Targets",
        "version": version,
        "expires": tuf.format_time(expires),
        "targets": targets if targets is not None else {"latest": target(b"manifest")},
    }
    if delegations:
        keys = {s.id: s.key.to_json() for _, signers, _ in delegations for s in signers}
        roles = [{**role_entry(signers), "name": name, "paths": paths} for name, signers, paths in delegations]
        signed["delegations"] = {"keys": keys, "roles": roles}
    return signed


def target(data: bytes) -> dict[str, Any]:
    return {"length": len(data), "hashes": {"sha256": tuf.b64(hashlib.sha256(data).digest())}}


def snapshot_signed(files: dict[str, bytes], version: int = 1, expires: datetime.datetime = LATER) -> dict[str, Any]:
    return {
        "_type": "Snapshot",
        "version": version,
        "expires": tuf.format_time(expires),
        "meta": {role: tuf.make_file_meta(data) for role, data in files.items()},
    }


@pytest.fixture
def repo() -> Repo:
    return Repo()


@pytest.fixture
def pushed(repo: Repo) -> Repo:
    """A repository after docker's first push: root v1 + targets v1, server-made snapshot."""
    repo.accept({"root": repo.root(), "targets": repo.targets()})
    return repo


# --- first push, names, envelopes (rules 1, 12) ----------------------------------------------


def test_first_push_is_accepted_and_the_server_must_make_the_snapshot(repo: Repo) -> None:
    root, targets = repo.root(), repo.targets()
    result = repo.update({"root": root, "targets": targets})
    assert [(f.role, f.version) for f in result.files] == [("root", 1), ("targets", 1)]
    assert [f.content for f in result.files] == [root, targets]
    assert result.files[0].sha256 == hashlib.sha256(root).hexdigest()
    assert result.needs_snapshot
    assert result.root.role_keyids("snapshot") == (repo.snapshot_key.id,)


def test_no_root_stored_or_uploaded(repo: Repo) -> None:
    repo.refused({"targets": repo.targets()}, "ErrValidation", "no pre-existing root")


def test_the_first_snapshot_needs_targets(repo: Repo) -> None:
    repo.refused({"root": repo.root()}, "ErrValidation", "before targets exist")


def test_role_names_and_envelopes(pushed: Repo) -> None:
    pushed.code({"targets/Releases": pushed.targets(2)}, "INVALID_ROLE")
    pushed.code({"targets": b'{"signed": {"version": 2}}'}, "MALFORMED_JSON")
    pushed.code({"targets": b'{"signed": {"version": 2.0, "expires": "2040-01-01T00:00:00Z"}}'}, "MALFORMED_JSON")
    # Even the ignored timestamp must be a TUF document.
    pushed.code({"targets": pushed.targets(2), "timestamp": b"nope"}, "MALFORMED_JSON")


def test_uploaded_timestamp_is_ignored(pushed: Repo) -> None:
    stale = sign({"_type": "Timestamp", "version": 1, "expires": tuf.format_time(NOW - DAY), "meta": {}})
    result = pushed.update({"targets": pushed.targets(2), "timestamp": stale})
    assert [f.role for f in result.files] == ["targets"]


def test_stored_lookup_may_be_a_function(pushed: Repo) -> None:
    result = validation.validate_update(
        GUN, {"targets": pushed.targets(2)}, pushed.stored.get, NOW, pushed.server_held()
    )
    assert [f.role for f in result.files] == ["targets"]


# --- root (rules 2-6) ------------------------------------------------------------------------


def test_root_version_must_be_current_or_next(repo: Repo, pushed: Repo) -> None:
    repo.refused({"root": repo.root(3), "targets": repo.targets()}, "ErrBadRoot", "root version 3 skips versions")
    pushed.accept({"root": pushed.root(2)})
    pushed.accept({"root": pushed.root(3)})
    pushed.accept({"root": pushed.root(4)})
    pushed.refused({"root": pushed.root(3)}, "ErrBadRoot", "root version 3 is older than stored version 4")
    pushed.refused({"root": pushed.root(6)}, "ErrBadRoot", "root version 6 skips versions")
    pushed.code({"root": pushed.root(4)}, "VERSION", "root version 4 is not newer than stored version 4")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s["roles"].pop("snapshot"), "the snapshot role is missing"),
        (lambda s: s["roles"]["targets"].update(threshold=0), "threshold must be at least 1"),
        (lambda s: s["roles"]["timestamp"]["keyids"].append("ab" * 32), "that keys does not hold"),
        (lambda s: s.update(_type="Targets"), "not Root"),
        (lambda s: s.update(version=0), "version must be at least 1"),
    ],
)
def test_root_structure(repo: Repo, change: Any, match: str) -> None:
    signed = repo.root_signed()
    change(signed)
    repo.refused({"root": sign(signed, *repo.root_keys), "targets": repo.targets()}, "ErrBadRoot", match)


def test_root_keys_must_be_certificates(repo: Repo) -> None:
    repo.root_keys = [ec_signer()]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "root keys must be x509")


def test_root_certificate_common_name(repo: Repo) -> None:
    repo.root_keys = [cert_signer("registry.example:5000/team/other")]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "does not match the GUN")
    repo.root_keys = [cert_signer("registry.example:5000/team/*")]  # a wildcard for every GUN under it
    assert repo.update({"root": repo.root(), "targets": repo.targets()}).files
    repo.root_keys = [cert_signer("registry.example:5000/other/*")]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "does not match the GUN")


def test_root_certificate_validity_window(repo: Repo) -> None:
    repo.root_keys = [cert_signer(not_after=NOW - DAY, not_before=NOW - 9 * DAY)]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "certificate expired")
    repo.root_keys = [cert_signer(not_before=NOW + 2 * DAY)]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "not valid before")
    repo.root_keys = [cert_signer(not_before=NOW + DAY / 2)]  # a day of clock skew is allowed
    assert repo.update({"root": repo.root(), "targets": repo.targets()}).files


def test_root_certificate_not_sha1_and_rsa_at_least_2048_bits(repo: Repo) -> None:
    repo.root_keys = [sha1_cert_signer()]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "signed with SHA-1")
    repo.root_keys = [cert_signer(private=rsa.generate_private_key(public_exponent=65537, key_size=1024))]
    repo.refused({"root": repo.root(), "targets": repo.targets()}, "ErrBadRoot", "1024 bits; 2048 is the minimum")
    repo.root_keys = [cert_signer(private=rsa.generate_private_key(public_exponent=65537, key_size=2048))]
    assert repo.root_keys[0].key.keytype == "rsa-x509"
    assert repo.update({"root": repo.root(), "targets": repo.targets()}).files


def test_root_signatures(repo: Repo) -> None:
    intruder = cert_signer()
    forged = sign(repo.root_signed(), extra=[(repo.root_keys[0].id, "ecdsa", intruder.sign(b"x")[2])])
    repo.refused({"root": forged, "targets": repo.targets()}, "ErrBadRoot", "signed by 0 of threshold 1")
    # Bytes changed after signing.
    tampered = json.loads(repo.root())
    tampered["signed"]["expires"] = tuf.format_time(NOW + 9000 * DAY)
    raw = json.dumps(tampered).encode()
    repo.refused({"root": raw, "targets": repo.targets()}, "ErrBadRoot", "signed by 0 of threshold 1")
    # A signature by a key the root does not know is ignored, not an error.
    unknown = sign(repo.root_signed(), *repo.root_keys, ec_signer())
    assert repo.update({"root": unknown, "targets": repo.targets()}).files


def test_root_threshold_two(repo: Repo) -> None:
    repo.root_keys = [cert_signer(), cert_signer()]
    one = repo.root(threshold=2, signers=repo.root_keys[:1])
    repo.refused({"root": one, "targets": repo.targets()}, "ErrBadRoot", "signed by 1 of threshold 2")
    twice = sign(repo.root_signed(threshold=2), repo.root_keys[0], repo.root_keys[0])
    repo.refused({"root": twice, "targets": repo.targets()}, "ErrBadRoot", "signed by 1 of threshold 2")
    assert repo.update({"root": repo.root(threshold=2), "targets": repo.targets()}).files


def test_root_rotation_needs_the_old_and_the_new_keys(pushed: Repo) -> None:
    old, new = pushed.root_keys, [cert_signer()]
    only_new = pushed.root(2, root_keys=new)
    pushed.refused({"root": only_new}, "ErrBadRoot", "root rotation: signed by 0 of threshold 1 keys of the stored")
    only_old = pushed.root(2, root_keys=new, signers=old)
    pushed.refused({"root": only_old}, "ErrBadRoot", "signed by 0 of threshold 1 of its own root keys")
    result = pushed.accept({"root": pushed.root(2, root_keys=new, signers=old + new)})
    assert result.root.role_keyids("root") == (new[0].id,)
    # From now on the new key alone is enough, the old one alone is not.
    pushed.refused({"root": pushed.root(3, root_keys=new, signers=old)}, "ErrBadRoot", "root rotation")
    assert pushed.update({"root": pushed.root(3, root_keys=new, signers=new)}).files


def test_expired_root(repo: Repo) -> None:
    expired = repo.root(expires=NOW - DAY)
    repo.refused({"root": expired, "targets": repo.targets()}, "ErrBadRoot", "root expired at")


def test_stored_root_is_not_checked_for_expiry(pushed: Repo) -> None:
    later = NOW + 400 * DAY  # the stored root (and targets) have expired by now
    result = pushed.update({"targets": pushed.targets(2, expires=later + DAY)}, now=later)
    assert [f.role for f in result.files] == ["targets"]


# --- targets and delegations (rule 7) --------------------------------------------------------


def test_targets_signatures(pushed: Repo) -> None:
    pushed.refused({"targets": pushed.targets(2, signers=[ec_signer()])}, "ErrBadTargets", "signed by 0 of threshold 1")
    tampered = json.loads(pushed.targets(2))
    tampered["signed"]["targets"]["evil"] = target(b"evil")
    pushed.refused({"targets": json.dumps(tampered).encode()}, "ErrBadTargets", "targets: signed by 0 of threshold 1")
    # Another role's key does not count for targets.
    pushed.refused({"targets": pushed.targets(2, signers=[pushed.snapshot_key])}, "ErrBadTargets", "signed by 0")


def test_targets_replayed_or_expired(pushed: Repo) -> None:
    pushed.code(
        {"targets": pushed.stored["targets"]}, "VERSION", "targets version 1 is not newer than stored version 1"
    )
    pushed.accept({"targets": pushed.targets(5)})
    pushed.code({"targets": pushed.targets(4)}, "VERSION", "targets version 4 is not newer than stored version 5")
    pushed.refused({"targets": pushed.targets(6, expires=NOW - DAY)}, "ErrBadTargets", "targets expired at")


def test_targets_structure(pushed: Repo) -> None:
    signed = targets_signed(2)
    signed["_type"] = "Root"
    pushed.refused({"targets": sign(signed, pushed.targets_key)}, "ErrBadTargets", "not Targets")
    bad = targets_signed(2, delegations=[("targets/a/b", [ec_signer()], [""])])
    pushed.refused({"targets": sign(bad, pushed.targets_key)}, "ErrBadTargets", "direct children")


def test_signature_under_a_key_id_that_is_not_the_keys(repo: Repo) -> None:
    # The root lists the targets key under the ID of another key, and the signature uses that ID.
    signed = repo.root_signed()
    wrong_id = ec_signer().id
    signed["keys"][wrong_id] = signed["keys"].pop(repo.targets_key.id)
    signed["roles"]["targets"]["keyids"] = [wrong_id]
    payload = tuf.canonical_json(targets_signed())
    sig = (wrong_id, "ecdsa", repo.targets_key.sign(payload)[2])
    targets = tuf.envelope(targets_signed(), [sig])
    repo.refused({"root": sign(signed, *repo.root_keys), "targets": targets}, "ErrBadTargets", "has the ID")


def test_delegation_signed_by_the_keys_its_parent_assigns(pushed: Repo) -> None:
    releases = ec_signer()
    parent = pushed.targets(2, delegations=[("targets/releases", [releases], [""])])
    child = sign(targets_signed(1), releases)
    result = pushed.accept({"targets": parent, "targets/releases": child})
    assert [f.role for f in result.files] == ["targets", "targets/releases"]
    # Later the delegation alone, with the parent loaded from the store.
    assert pushed.update({"targets/releases": sign(targets_signed(2), releases)}).files
    pushed.refused(
        {"targets/releases": sign(targets_signed(2), pushed.targets_key)},
        "ErrBadTargets",
        "targets/releases: signed by 0 of threshold 1 keys",
    )


def test_delegation_must_be_declared_by_its_parent(pushed: Repo) -> None:
    rogue = ec_signer()
    pushed.refused(
        {"targets/releases": sign(targets_signed(1), rogue)}, "ErrBadTargets", "not declared as a delegation"
    )
    pushed.refused(
        {"targets/a/b": sign(targets_signed(1), rogue)}, "ErrBadTargets", "its parent targets/a does not exist"
    )


def test_delegation_targets_within_its_paths(pushed: Repo) -> None:
    team, sub = ec_signer(), ec_signer()
    parent = pushed.targets(2, delegations=[("targets/team", [team], ["team/"])])
    inside = sign(targets_signed(1, {"team/app": target(b"m")}), team)
    outside = sign(targets_signed(1, {"other/app": target(b"m")}), team)
    pushed.refused(
        {"targets": parent, "targets/team": outside}, "ErrBadTargets", "target 'other/app' is outside the paths"
    )
    pushed.accept({"targets": parent, "targets/team": inside})
    # A grandchild's paths are narrowed to its parent's: "other/" is dropped, "team/x/" stays.
    team_v2 = sign(
        targets_signed(2, {"team/app": target(b"m")}, [("targets/team/sub", [sub], ["team/x/", "other/"])]), team
    )
    ok = sign(targets_signed(1, {"team/x/1": target(b"m")}), sub)
    escaped = sign(targets_signed(1, {"other/1": target(b"m")}), sub)
    pushed.refused({"targets/team": team_v2, "targets/team/sub": escaped}, "ErrBadTargets", "outside the paths")
    assert pushed.update({"targets/team": team_v2, "targets/team/sub": ok}).files


# --- snapshot (rules 8, 9) and timestamp key (rule 10) ---------------------------------------


def test_uploaded_snapshot_is_checked_against_every_loaded_file(repo: Repo) -> None:
    root, targets = repo.root(), repo.targets()
    good = sign(snapshot_signed({"root": root, "targets": targets}), repo.snapshot_key)
    result = repo.update({"root": root, "targets": targets, "snapshot": good})
    assert not result.needs_snapshot and [f.role for f in result.files] == ["root", "targets", "snapshot"]

    stale = sign(snapshot_signed({"root": root, "targets": repo.targets(2)}), repo.snapshot_key)
    repo.refused(
        {"root": root, "targets": targets, "snapshot": stale},
        "ErrBadSnapshot",
        "snapshot: hash of targets does not match",
    )
    wrong_key = sign(snapshot_signed({"root": root, "targets": targets}), repo.targets_key)
    repo.refused({"root": root, "targets": targets, "snapshot": wrong_key}, "ErrBadSnapshot", "signed by 0")
    expired = sign(snapshot_signed({"root": root, "targets": targets}, expires=NOW - DAY), repo.snapshot_key)
    repo.refused({"root": root, "targets": targets, "snapshot": expired}, "ErrBadSnapshot", "snapshot expired")
    no_root = sign(snapshot_signed({"targets": targets}), repo.snapshot_key)
    repo.refused({"root": root, "targets": targets, "snapshot": no_root}, "ErrBadSnapshot", "sha256 of root")


def test_uploaded_snapshot_must_list_loaded_delegations(pushed: Repo) -> None:
    releases = ec_signer()
    parent = pushed.targets(2, delegations=[("targets/releases", [releases], [""])])
    child = sign(targets_signed(1), releases)
    files = {"root": pushed.stored["root"], "targets": parent}
    partial = sign(snapshot_signed(files, version=2), pushed.snapshot_key)
    pushed.refused(
        {"targets": parent, "targets/releases": child, "snapshot": partial},
        "ErrBadSnapshot",
        "snapshot does not list targets/releases",
    )
    full = sign(snapshot_signed({**files, "targets/releases": child}, version=2), pushed.snapshot_key)
    assert pushed.update({"targets": parent, "targets/releases": child, "snapshot": full}).files
    replayed = sign(snapshot_signed({**files, "targets/releases": child}, version=1), pushed.snapshot_key)
    pushed.code({"targets": parent, "targets/releases": child, "snapshot": replayed}, "VERSION")


def test_missing_server_snapshot_key_is_a_hierarchy_error(pushed: Repo) -> None:
    err = pushed.refused(
        {"targets": pushed.targets(2)}, "ErrBadHierarchy", "does not hold", server_held={"timestamp": {"x"}}
    )
    assert err.detail == {
        "Name": "ErrBadHierarchy",
        "Error": {"Msg": err.reason, "Missing": "snapshot"},
    }
    assert err.entry()["code"] == "INVALID_UPDATE"
    # A key the server holds but the root does not list does not help either.
    pushed.refused(
        {"targets": pushed.targets(2)},
        "ErrBadHierarchy",
        "snapshot",
        server_held={"snapshot": {ec_signer().id}, "timestamp": {pushed.timestamp_key.id}},
    )


def test_missing_server_timestamp_key(pushed: Repo) -> None:
    err = pushed.refused(
        {"targets": pushed.targets(2)},
        "ErrBadRoot",
        "no timestamp keys exist on the server",
        server_held={"snapshot": {pushed.snapshot_key.id}},
    )
    assert err.detail == {"Name": "ErrBadRoot", "Error": {"Msg": "no timestamp keys exist on the server"}}


# --- what the server generates ---------------------------------------------------------------


def test_built_snapshot_and_timestamp(pushed: Repo) -> None:
    first = tuf.parse_snapshot(pushed.stored["snapshot"])
    assert first.signed.version == 1
    assert first.signed.expires == NOW + validation.SNAPSHOT_LIFETIME
    assert set(first.meta) == {"root", "targets"}
    assert first.meta["targets"].matches(pushed.stored["targets"])
    assert set(first.meta["root"].hashes) == {"sha256", "sha512"}
    assert first.meta["root"].length == len(pushed.stored["root"])

    targets_v2 = pushed.targets(2)
    signed = validation.build_snapshot(pushed.stored["snapshot"], {"targets": targets_v2}, NOW)
    assert signed["version"] == 2 and set(signed["meta"]) == {"root", "targets"}  # root's entry kept
    assert signed["meta"]["root"] == first.signed.signed["meta"]["root"]
    # What the server builds passes the rules a client upload must pass.
    snapshot = sign(signed, pushed.snapshot_key)
    assert not pushed.update({"targets": targets_v2, "snapshot": snapshot}).needs_snapshot

    explicit = validation.build_snapshot(None, {"root": b"r"}, NOW, expires=NOW + DAY, version=7)
    assert explicit["version"] == 7 and tuf.parse_time(explicit["expires"]) == NOW + DAY

    ts = validation.build_timestamp(None, snapshot, NOW)
    assert ts["_type"] == "Timestamp" and ts["version"] == 1
    assert tuf.parse_time(ts["expires"]) == NOW + datetime.timedelta(days=14)
    ts_file = tuf.sign_envelope(
        ts, pushed.timestamp_key.id, lambda _kid, payload: pushed.timestamp_key.sign(payload)[2]
    )
    parsed = tuf.parse_timestamp(ts_file)
    assert tuf.count_valid(
        parsed.signed, {pushed.timestamp_key.id: pushed.timestamp_key.key}, [pushed.timestamp_key.id]
    )
    assert validation.names_snapshot(ts_file, snapshot)
    assert not validation.names_snapshot(ts_file, pushed.stored["snapshot"])
    assert validation.build_timestamp(ts_file, snapshot, NOW)["version"] == 2


def test_default_lifetimes_follow_notary() -> None:
    assert datetime.timedelta(days=3650) == validation.ROOT_LIFETIME
    assert validation.TARGETS_LIFETIME == validation.SNAPSHOT_LIFETIME == datetime.timedelta(days=3 * 365)
    assert datetime.timedelta(days=14) == validation.TIMESTAMP_LIFETIME
