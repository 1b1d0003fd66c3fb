"""Updates a notary server must refuse, built in Python the way the notary client builds them
and POSTed over HTTP to a real Dockyard: each refusal carries Notary's code and detail Name,
the message names the rule, and nothing of a refused update is stored. Also the changefeed."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from dockyard.trust.tuf import canonical_json
from tests.conftest import RunningServer, start_server
from tests.helpers import push_image

pytestmark = pytest.mark.xdist_group("trust-refusals")

NOW = datetime.datetime.now(datetime.UTC)
LATER = NOW + datetime.timedelta(days=365)
PAST = NOW - datetime.timedelta(days=1)


def when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_id(key_json: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(key_json)).hexdigest()


@dataclass
class Signer:
    """A private key and the TUF key JSON it is known by."""

    private: ec.EllipticCurvePrivateKey
    json: dict[str, Any]

    @property
    def id(self) -> str:
        return key_id(self.json)

    def sign(self, payload: bytes) -> str:
        r, s = decode_dss_signature(self.private.sign(payload, ec.ECDSA(hashes.SHA256())))
        return b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def ecdsa_key() -> Signer:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Signer(private, {"keytype": "ecdsa", "keyval": {"private": None, "public": b64(der)}})


def root_key(cn: str, algorithm: Any = None) -> Signer:  # Any: SHA-1 on purpose
    """What docker and notary make for a root: a self-signed ecdsa-x509 certificate, CN = GUN."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .sign(private, algorithm or hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return Signer(private, {"keytype": "ecdsa-x509", "keyval": {"private": None, "public": b64(pem)}})


def envelope(signed: dict[str, Any], signers: Sequence[Signer]) -> bytes:
    payload = canonical_json(signed)
    signatures = [{"keyid": s.id, "method": "ecdsa", "sig": s.sign(payload)} for s in signers]
    return canonical_json({"signed": signed, "signatures": signatures})


def file_meta(data: bytes) -> dict[str, Any]:
    return {
        "length": len(data),
        "hashes": {"sha256": b64(hashlib.sha256(data).digest()), "sha512": b64(hashlib.sha512(data).digest())},
    }


@dataclass
class Collection:
    """One GUN's keys as a notary client holds them, and builders of its role files."""

    server: RunningServer
    gun: str
    root_keys: list[Signer]
    targets_key: Signer = field(default_factory=ecdsa_key)
    snapshot_key: Signer | None = None  # set: the client signs the snapshot (notary init -p)
    server_keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def root(
        self,
        version: int = 1,
        expires: datetime.datetime = LATER,
        keys: Sequence[Signer] | None = None,
        threshold: int = 1,
        sign_with: Sequence[Signer] | None = None,
    ) -> bytes:
        keys = list(keys if keys is not None else self.root_keys)
        snapshot = self.snapshot_key.json if self.snapshot_key else self.server_keys["snapshot"]
        role_keys = {
            "root": [k.json for k in keys],
            "targets": [self.targets_key.json],
            "snapshot": [snapshot],
            "timestamp": [self.server_keys["timestamp"]],
        }
        all_keys = {key_id(k): k for ks in role_keys.values() for k in ks}
        roles = {
            role: {"keyids": [key_id(k) for k in ks], "threshold": threshold if role == "root" else 1}
            for role, ks in role_keys.items()
        }
        signed = {
            "_type": "Root",
            "consistent_snapshot": False,
            "expires": when(expires),
            "keys": all_keys,
            "roles": roles,
            "version": version,
        }
        return envelope(signed, keys if sign_with is None else sign_with)

    def targets(
        self,
        version: int,
        targets: dict[str, bytes] | None = None,
        delegations: dict[str, Any] | None = None,
        expires: datetime.datetime = LATER,
        sign_with: Sequence[Signer] | None = None,
        _type: str = "Targets",
    ) -> bytes:
        signed = {
            "_type": _type,
            "delegations": delegations or {"keys": {}, "roles": []},
            "expires": when(expires),
            "targets": {name: file_meta(data) for name, data in (targets or {}).items()},
            "version": version,
        }
        return envelope(signed, [self.targets_key] if sign_with is None else sign_with)

    def snapshot(self, version: int, files: dict[str, bytes], expires: datetime.datetime = LATER) -> bytes:
        assert self.snapshot_key is not None
        signed = {
            "_type": "Snapshot",
            "expires": when(expires),
            "meta": {role: file_meta(data) for role, data in files.items()},
            "version": version,
        }
        return envelope(signed, [self.snapshot_key])

    # --- HTTP ----------------------------------------------------------------------------

    def post(self, files: dict[str, bytes], gun: str | None = None) -> httpx.Response:
        with self.server.client() as http:
            return http.post(
                f"/v2/{gun or self.gun}/_trust/tuf/",
                files=[("files", (role, content, "application/octet-stream")) for role, content in files.items()],
            )

    def get(self, name: str) -> httpx.Response:
        with self.server.client() as http:
            return http.get(f"/v2/{self.gun}/_trust/tuf/{name}")

    def version_of(self, role: str) -> int:
        r = self.get(f"{role}.json")
        assert r.status_code == 200, r.text
        return int(r.json()["signed"]["version"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("refusals") / "data")
    yield s
    s.stop()


_count = 0


def collection(
    server: RunningServer, client_snapshot: bool = False, root_cn: str | None = None, **root: Any
) -> Collection:
    """A new repository and the keys for its GUN (server keys fetched as notary does)."""
    global _count
    _count += 1
    repo = f"refusals/r{_count}"
    with server.client() as http:
        push_image(http, repo, "v1", layers=1)
    gun = f"{server.host}/{repo}"
    c = Collection(server, gun, [root_key(root_cn or gun, **root)])
    if client_snapshot:
        c.snapshot_key = ecdsa_key()
    with server.client() as http:
        for role in ("timestamp", "snapshot") if not client_snapshot else ("timestamp",):
            r = http.get(f"/v2/{gun}/_trust/tuf/{role}.key")
            assert r.status_code == 200, r.text
            c.server_keys[role] = r.json()
    return c


def published(server: RunningServer, client_snapshot: bool = False) -> Collection:
    """A collection with root v1 and targets v1 accepted."""
    c = collection(server, client_snapshot)
    root, targets = c.root(), c.targets(1, {"v1": b"one"})
    files = {"root": root, "targets": targets}
    if client_snapshot:
        files["snapshot"] = c.snapshot(1, {"root": root, "targets": targets})
    r = c.post(files)
    assert r.status_code == 200, r.text
    return c


def refused(r: httpx.Response, code: str, name: str | None, *words: str) -> None:
    """The single error has ``code``, detail Name ``name``, and a message with every word."""
    assert r.status_code == 400, r.text
    (error,) = r.json()["errors"]
    assert error["code"] == code, error
    if name is not None:
        assert error["detail"]["Name"] == name, error
        assert isinstance(error["detail"]["Error"]["Msg"], str), error
    text = (error["message"] + json.dumps(error.get("detail"))).lower()
    for word in words:
        assert word.lower() in text, error


def unchanged(c: Collection, root: int, targets: int) -> None:
    """The stored versions are still these, and no higher one can be fetched."""
    assert (c.version_of("root"), c.version_of("targets")) == (root, targets)
    assert c.get(f"{root + 1}.root.json").status_code == 404
    assert c.get(f"{targets + 1}.targets.json").status_code == 404


# --- expiry ------------------------------------------------------------------------------------


def test_expired_root_is_refused(server: RunningServer) -> None:
    c = collection(server)
    refused(c.post({"root": c.root(expires=PAST), "targets": c.targets(1)}), "INVALID_UPDATE", "ErrBadRoot", "expired")
    assert c.get("root.json").status_code == 404  # nothing stored


def test_expired_targets_is_refused(server: RunningServer) -> None:
    c = published(server)
    refused(c.post({"targets": c.targets(2, expires=PAST)}), "INVALID_UPDATE", "ErrBadTargets", "expired")
    unchanged(c, 1, 1)


def test_expired_snapshot_is_refused(server: RunningServer) -> None:
    c = published(server, client_snapshot=True)
    root = c.get("root.json").content
    targets = c.targets(2, {"v2": b"two"})
    snapshot = c.snapshot(2, {"root": root, "targets": targets}, expires=PAST)
    refused(c.post({"targets": targets, "snapshot": snapshot}), "INVALID_UPDATE", "ErrBadSnapshot", "expired")
    unchanged(c, 1, 1)
    assert c.version_of("snapshot") == 1


# --- the root certificate ----------------------------------------------------------------------


def test_root_certificate_must_name_the_gun(server: RunningServer) -> None:
    c = collection(server, root_cn="registry.example/someone/else")
    r = c.post({"root": c.root(), "targets": c.targets(1)})
    refused(r, "INVALID_UPDATE", "ErrBadRoot", "common name", "does not match the GUN")
    assert c.get("root.json").status_code == 404


def test_root_certificate_signed_with_sha1_is_refused(server: RunningServer) -> None:
    try:
        c = collection(server, algorithm=hashes.SHA1())  # noqa: S303 - the point of the test
    except Exception as e:  # cryptography or OpenSSL may refuse to make SHA-1 signatures at all
        pytest.skip(f"cannot build a SHA-1 signed certificate here: {e}")
    refused(c.post({"root": c.root(), "targets": c.targets(1)}), "INVALID_UPDATE", "ErrBadRoot", "SHA-1")
    assert c.get("root.json").status_code == 404


# --- root signatures and versions --------------------------------------------------------------


def test_root_rotation_needs_the_old_roots_signature(server: RunningServer) -> None:
    c = published(server)
    new = root_key(c.gun)
    only_new = c.root(version=2, keys=[new], sign_with=[new])
    refused(c.post({"root": only_new}), "INVALID_UPDATE", "ErrBadRoot", "rotation", "signed by 0 of threshold 1")
    unchanged(c, 1, 1)
    # Signed by both the old and the new root key, the same rotation is accepted.
    both = c.root(version=2, keys=[new], sign_with=[new, c.root_keys[0]])
    assert c.post({"root": both}).status_code == 200
    assert c.version_of("root") == 2


def test_root_versions_cannot_be_skipped(server: RunningServer) -> None:
    c = published(server)
    refused(c.post({"root": c.root(version=3)}), "INVALID_UPDATE", "ErrBadRoot", "root version 3", "skips versions")
    unchanged(c, 1, 1)


def test_root_threshold_two_with_one_signature(server: RunningServer) -> None:
    c = collection(server)
    second = root_key(c.gun)
    keys = [c.root_keys[0], second]
    one = c.root(keys=keys, threshold=2, sign_with=[second])
    refused(c.post({"root": one, "targets": c.targets(1)}), "INVALID_UPDATE", "ErrBadRoot", "1 of threshold 2")
    assert c.get("root.json").status_code == 404
    both = c.root(keys=keys, threshold=2)
    assert c.post({"root": both, "targets": c.targets(1)}).status_code == 200


# --- targets and delegations -------------------------------------------------------------------


def _delegations(key: Signer, name: str, paths: list[str]) -> dict[str, Any]:
    return {"keys": {key.id: key.json}, "roles": [{"name": name, "keyids": [key.id], "threshold": 1, "paths": paths}]}


def _delegated(c: Collection, key: Signer, version: int, targets: dict[str, bytes]) -> bytes:
    signed = {
        "_type": "Targets",
        "delegations": {"keys": {}, "roles": []},
        "expires": when(LATER),
        "targets": {name: file_meta(data) for name, data in targets.items()},
        "version": version,
    }
    return envelope(signed, [key])


def test_delegation_must_be_declared_by_its_parent(server: RunningServer) -> None:
    c = published(server)
    key = ecdsa_key()
    r = c.post({"targets/undeclared": _delegated(c, key, 1, {"x": b"x"})})
    refused(r, "INVALID_UPDATE", "ErrBadTargets", "targets/undeclared", "not declared", "parent")
    assert c.get("targets/undeclared.json").status_code == 404
    # A grandchild whose parent delegation does not exist at all.
    r = c.post({"targets/a/b": _delegated(c, key, 1, {"x": b"x"})})
    refused(r, "INVALID_UPDATE", "ErrBadTargets", "targets/a/b", "parent")


def test_targets_outside_the_delegated_paths_are_refused(server: RunningServer) -> None:
    c = published(server)
    key = ecdsa_key()
    declared = c.targets(2, {"v1": b"one"}, delegations=_delegations(key, "targets/releases", ["releases/"]))
    assert c.post({"targets": declared}).status_code == 200
    inside = _delegated(c, key, 1, {"releases/1.0": b"ok"})
    outside = _delegated(c, key, 1, {"releases/1.0": b"ok", "nightly/1": b"no"})
    r = c.post({"targets/releases": outside})
    refused(r, "INVALID_UPDATE", "ErrBadTargets", "'nightly/1'", "outside the paths delegated")
    assert c.get("targets/releases.json").status_code == 404
    assert c.post({"targets/releases": inside}).status_code == 200


def test_signature_by_an_unknown_key_is_ignored_while_a_valid_one_counts(server: RunningServer) -> None:
    c = published(server)
    stranger = ecdsa_key()
    both = c.targets(2, {"v2": b"two"}, sign_with=[stranger, c.targets_key])
    assert c.post({"targets": both}).status_code == 200
    assert c.version_of("targets") == 2
    alone = c.targets(3, {"v3": b"three"}, sign_with=[stranger])
    refused(c.post({"targets": alone}), "INVALID_UPDATE", "ErrBadTargets", "signed by 0 of threshold 1")
    unchanged(c, 1, 2)


# --- snapshots ---------------------------------------------------------------------------------


def test_client_snapshot_with_a_wrong_hash_is_refused(server: RunningServer) -> None:
    c = published(server, client_snapshot=True)
    root = c.get("root.json").content
    targets = c.targets(2, {"v2": b"two"})
    stale = c.snapshot(2, {"root": root, "targets": c.targets(2, {"other": b"bytes"})})
    refused(c.post({"targets": targets, "snapshot": stale}), "INVALID_UPDATE", "ErrBadSnapshot", "hash of targets")
    unchanged(c, 1, 1)
    good = c.snapshot(2, {"root": root, "targets": targets})
    assert c.post({"targets": targets, "snapshot": good}).status_code == 200
    assert (c.version_of("targets"), c.version_of("snapshot")) == (2, 2)


def test_no_snapshot_and_no_server_snapshot_key(server: RunningServer) -> None:
    c = published(server, client_snapshot=True)
    r = c.post({"targets": c.targets(2)})
    refused(r, "INVALID_UPDATE", "ErrBadHierarchy", "snapshot")
    assert r.json()["errors"][0]["detail"]["Error"]["Missing"] == "snapshot"
    unchanged(c, 1, 1)


# --- server keys: rows written unsynced, recovered from the signer -------------------------------


def _server_key_rows(server: RunningServer, gun: str) -> set[tuple[str, str]]:
    with sqlite3.connect(server.data_dir / "db" / "dockyard.db") as db:
        return {(role, kid) for role, kid in db.execute("SELECT role, key_id FROM trust_keys WHERE gun = ?", (gun,))}


def test_server_key_rows_lost_before_publishing_are_recovered_from_the_signer(server: RunningServer) -> None:
    c = collection(server)
    expected = {("timestamp", key_id(c.server_keys["timestamp"])), ("snapshot", key_id(c.server_keys["snapshot"]))}
    assert _server_key_rows(server, c.gun) == expected
    # What a power failure right after GET <role>.key may undo: the rows are written unsynced.
    with sqlite3.connect(server.data_dir / "db" / "dockyard.db") as db:
        db.execute("DELETE FROM trust_keys WHERE gun = ?", (c.gun,))
    assert _server_key_rows(server, c.gun) == set()
    r = c.post({"root": c.root(), "targets": c.targets(1, {"v1": b"one"})})
    assert r.status_code == 200, r.text
    assert _server_key_rows(server, c.gun) == expected
    assert c.version_of("timestamp") == 1 and c.version_of("snapshot") == 1


def test_another_guns_server_key_is_never_borrowed(server: RunningServer) -> None:
    mine, theirs = collection(server), collection(server)
    mine.server_keys["timestamp"] = theirs.server_keys["timestamp"]  # the signer holds it, for their GUN
    r = mine.post({"root": mine.root(), "targets": mine.targets(1)})
    refused(r, "INVALID_UPDATE", "ErrBadRoot", "no timestamp keys exist on the server")
    assert mine.get("root.json").status_code == 404
    assert ("timestamp", key_id(theirs.server_keys["timestamp"])) not in _server_key_rows(server, mine.gun)


# --- replays and a refused update leaves nothing behind ----------------------------------------


def test_replayed_old_versions_are_refused(server: RunningServer) -> None:
    c = published(server)
    first_targets = c.get("targets.json").content
    first_root = c.get("root.json").content
    assert c.post({"targets": c.targets(2, {"v2": b"two"})}).status_code == 200
    refused(c.post({"targets": first_targets}), "VERSION", None, "targets version 1", "not newer")
    refused(c.post({"targets": c.targets(2, {"again": b"2"})}), "VERSION", None, "targets version 2")
    refused(c.post({"root": first_root}), "VERSION", None, "root version 1")
    unchanged(c, 1, 2)


def test_nothing_of_a_refused_update_is_stored(server: RunningServer) -> None:
    c = published(server)
    before = {name: c.get(name).content for name in ("root.json", "targets.json", "snapshot.json")}
    new = root_key(c.gun)
    good_root = c.root(version=2, keys=[new], sign_with=[new, c.root_keys[0]])
    bad_targets = c.targets(2, {"v2": b"two"}, expires=PAST)  # the root alone would be fine
    refused(c.post({"root": good_root, "targets": bad_targets}), "INVALID_UPDATE", "ErrBadTargets", "expired")
    after = {name: c.get(name).content for name in before}
    assert after == before
    unchanged(c, 1, 1)


def test_a_gun_for_another_host_is_refused(server: RunningServer) -> None:
    c = collection(server)
    other = "registry.elsewhere.example/" + c.gun.split("/", 1)[1]
    r = c.post({"root": c.root(), "targets": c.targets(1)}, gun=other)
    refused(r, "INVALID_GUN", None, "registry.elsewhere.example", "not this registry")
    with server.client() as http:
        r = http.get(f"/v2/{other}/_trust/tuf/timestamp.key")
    refused(r, "INVALID_GUN", None, "not this registry")


# --- the changefeed ----------------------------------------------------------------------------


def _feed(server: RunningServer, gun: str | None, **params: str) -> dict[str, Any]:
    path = f"/v2/{gun}/_trust/changefeed" if gun else "/v2/_trust/changefeed"
    with server.client() as http:
        r = http.get(path, params=params)
    assert r.status_code == 200, r.text
    feed: dict[str, Any] = r.json()
    assert feed["count"] == len(feed["records"])
    return feed


def test_changefeed_records_paging_order_and_deletion(server: RunningServer) -> None:
    c = published(server)
    for version in (2, 3, 4):
        assert c.post({"targets": c.targets(version, {f"v{version}": b"x"})}).status_code == 200
    feed = _feed(server, c.gun, records="100")
    records = feed["records"]
    assert [rec["Version"] for rec in records] == [1, 2, 3, 4]  # one per timestamp
    assert all(rec["GUN"] == c.gun and rec["Category"] == "update" for rec in records)
    timestamp = c.get("timestamp.json")
    assert records[-1]["SHA256"] == hashlib.sha256(timestamp.content).hexdigest()
    assert datetime.datetime.fromisoformat(records[0]["CreatedAt"]).tzinfo is not None
    ids = [int(rec["ID"]) for rec in records]
    assert ids == sorted(ids)

    # Paging forward: change_id is the last ID seen, exclusive.
    page1 = _feed(server, c.gun, records="2")["records"]
    page2 = _feed(server, c.gun, records="2", change_id=page1[-1]["ID"])["records"]
    page3 = _feed(server, c.gun, records="2", change_id=page2[-1]["ID"])["records"]
    assert [r["ID"] for r in page1 + page2] == [r["ID"] for r in records] and page3 == []

    # Negative records: newest first, backwards from change_id (or from the latest with -1).
    newest = _feed(server, c.gun, records="-2", change_id="-1")["records"]
    assert [r["Version"] for r in newest] == [4, 3]
    back = _feed(server, c.gun, records="-10", change_id=newest[-1]["ID"])["records"]
    assert [r["Version"] for r in back] == [2, 1]

    # The global feed holds this GUN's records too.
    everything = _feed(server, None, records="1000")["records"]
    assert [r["ID"] for r in everything if r["GUN"] == c.gun] == [r["ID"] for r in records]

    # DELETE: the files go, a deletion record is written.
    with server.client() as http:
        assert http.delete(f"/v2/{c.gun}/_trust/tuf/").status_code == 200
    assert c.get("root.json").status_code == 404
    last = _feed(server, c.gun, records="-1", change_id="-1")["records"]
    assert len(last) == 1 and last[0]["Category"] == "deletion" and last[0]["GUN"] == c.gun
    assert int(last[0]["ID"]) > ids[-1]

    with server.client() as http:
        for params in ({"records": "many"}, {"change_id": "x", "records": "1"}, {}):
            r = http.get(f"/v2/{c.gun}/_trust/changefeed", params=params)
            assert r.status_code == 400 and r.json()["errors"][0]["code"] == "INVALID_PARAMETERS", r.text


def test_uploaded_timestamp_is_ignored(server: RunningServer) -> None:
    c = published(server)
    forged = envelope({"_type": "Timestamp", "expires": when(LATER), "meta": {}, "version": 99}, [c.targets_key])
    assert c.post({"targets": c.targets(2), "timestamp": forged}).status_code == 200
    assert c.version_of("timestamp") == 2  # made by the server, not the 99 uploaded
