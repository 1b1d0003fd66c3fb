"""Canonical JSON, key IDs, signatures and role parsing as Notary computes them."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dockyard.trust import tuf
from dockyard.trust.errors import InvalidUpdate, TrustError

from .test_validation import GUN, cert_signer, ec_signer, sign, target


def test_canonical_json_sorts_keys_and_escapes_only_quote_and_backslash() -> None:
    doc = {"b": [1, True, None, -7], "a": {"z": "é<>&\n\t\u2028", "y": 'q"\\/'}, "": {}}
    expected = '{"":{},"a":{"y":"q\\"\\\\/","z":"é<>&\n\t\u2028"},"b":[1,true,null,-7]}'
    assert tuf.canonical_json(doc) == expected.encode()


def test_canonical_json_unicode_is_raw_utf8_and_sorted_by_code_point() -> None:
    doc = {"ü": 1, "z": 2, "😀": "日本", "Z": 3}
    assert tuf.canonical_json(doc) == '{"Z":3,"z":2,"ü":1,"😀":"日本"}'.encode()
    # A lone surrogate cannot be UTF-8; Go reads it as U+FFFD.
    assert tuf.canonical_json(tuf.loads(b'"\\ud800"')) == '"\ufffd"'.encode()


def test_canonical_json_refuses_floats_and_other_types() -> None:
    with pytest.raises(ValueError, match="floating"):
        tuf.canonical_json({"x": 1.5})
    with pytest.raises(ValueError):
        tuf.canonical_json({1: "x"})
    with pytest.raises(ValueError):
        tuf.canonical_json({"x": b"bytes"})


@pytest.mark.parametrize(
    "raw",
    [
        b'{"b": [1, true, null, -7, 12345678901234567890], "a": {"z": "\\u00e9<>&/", "": {}}}',
        b'{"quote": "q\\"x", "backslash": "a\\\\b", "control": "line\\nbreak\\t\\u0001"}',
        '{"ü": 1, "z": 2, "😀": "日本", "Z": 3, "sep": "\u2028", "esc": "\\u00e9"}'.encode(),
        b'{"lone": "\\ud800", "deep": [[[{"k": [{}]}]]]}',
    ],
)
def test_canonical_json_of_parsed_data_equals_the_general_encoder(raw: bytes) -> None:
    doc = tuf.loads(raw)
    assert tuf.canonical_json_of_parsed(doc) == tuf.canonical_json(doc)


def test_loads_refuses_floats() -> None:
    for raw in (b'{"version": 1.0}', b'{"version": 1e3}', b'{"version": NaN}'):
        with pytest.raises(ValueError):
            tuf.loads(raw)
    assert tuf.loads(b'{"version": 2}') == {"version": 2}


def test_key_id_is_the_sha256_of_the_canonical_public_key() -> None:
    public = base64.b64encode(b"\x01\x02").decode()
    expected = hashlib.sha256(
        ('{"keytype":"ecdsa","keyval":{"private":null,"public":"' + public + '"}}').encode()
    ).hexdigest()
    assert tuf.key_id("ecdsa", public) == expected
    assert tuf.Key.from_json({"keytype": "ecdsa", "keyval": {"public": public}}).id == expected
    # Go re-encodes the decoded bytes, so line breaks in the base64 do not change the ID.
    assert tuf.Key.from_json({"keytype": "ecdsa", "keyval": {"public": public[:2] + "\n" + public[2:]}}).id == expected


def test_canonical_key_id_of_a_certificate_is_that_of_its_public_key() -> None:
    root = cert_signer()
    bare = tuf.Key.from_public_key(root.private.public_key())
    assert root.key.keytype == "ecdsa-x509" and bare.keytype == "ecdsa"
    assert root.key.canonical_id == bare.id != root.key.id
    assert bare.canonical_id == bare.id
    assert root.key.certificate().subject.rfc4514_string() == f"CN={GUN}"


def _raw_ecdsa(key: ec.EllipticCurvePrivateKey, message: bytes, size: int) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def test_signatures_of_every_method_verify_and_tampering_fails() -> None:
    message = b"canonical bytes"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ecdsa = tuf.Key.from_public_key(ec_key.public_key())
    raw = _raw_ecdsa(ec_key, message, 32)
    assert ecdsa.verify("ECDSA", raw, message)
    assert not ecdsa.verify("ecdsa", raw, message + b"!")
    assert not ecdsa.verify("ecdsa", raw[:-1], message)  # wrong length for P-256
    assert not ecdsa.verify("ecdsa", ec_key.sign(message, ec.ECDSA(hashes.SHA256())), message)  # DER, not R||S
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert tuf.Key.from_public_key(p384.public_key()).verify("ecdsa", _raw_ecdsa(p384, message, 48), message)

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pub = tuf.Key.from_public_key(rsa_key.public_key())
    pss = rsa_key.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    assert rsa_pub.verify("rsapss", pss, message)
    assert rsa_pub.verify("PyCrypto-PKCS#1 PSS", pss, message)
    assert not rsa_pub.verify("rsapss", pss, message + b"!")
    assert not rsa_pub.verify("rsapkcs1v15", pss, message)
    assert rsa_pub.verify("rsapkcs1v15", rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256()), message)
    assert not rsa_pub.verify("ecdsa", pss, message)

    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pub = tuf.Key.from_public_key(ed.public_key())
    assert ed_pub.keytype == "ed25519" and len(ed_pub.public) == 32
    assert ed_pub.verify("eddsa", ed.sign(message), message)
    assert not ed_pub.verify("eddsa", ed.sign(message), message + b"!")
    assert not ed_pub.verify("ecdsa", ed.sign(message), message)


def test_rsa_below_2048_bits_never_verifies() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key = tuf.Key.from_public_key(small.public_key())
    message = b"m"
    assert not key.verify("rsapkcs1v15", small.sign(message, padding.PKCS1v15(), hashes.SHA256()), message)


def test_certificate_keys_verify_and_mislabelled_keys_do_not() -> None:
    root = cert_signer()
    _, method, sig = root.sign(b"m")
    assert root.key.verify(method, sig, b"m")
    # An "rsa" key that holds EC bytes is not an RSA key, nor an EC one.
    mislabelled = tuf.Key("rsa", tuf.b64(ec_signer().key.public), ec_signer().key.public)
    with pytest.raises(ValueError):
        mislabelled.public_key()
    unknown = tuf.Key.from_json({"keytype": "dsa", "keyval": {"public": "AAAA"}})
    assert not unknown.verify("ecdsa", b"", b"")


def test_envelopes_round_trip_and_count_distinct_valid_keys() -> None:
    a, b = ec_signer(), ec_signer()
    keys = {a.id: a.key, b.id: b.key}
    now = datetime.datetime.now(datetime.UTC)
    signed = {"_type": "Targets", "version": 3, "expires": tuf.format_time(now), "targets": {}}
    unknown = ("0" * 64, "ecdsa", b"\0" * 64)  # a key nobody listed: ignored, not an error
    raw = sign(signed, a, b, a, extra=[unknown])  # a duplicate signature counts once
    parsed = tuf.parse_signed("targets", raw)
    assert parsed.raw == raw and parsed.sha256 == hashlib.sha256(raw).hexdigest()
    assert parsed.version == 3 and parsed.expires.tzinfo is not None
    assert tuf.count_valid(parsed, keys, keys) == 2
    assert tuf.count_valid(parsed, keys, [a.id]) == 1
    assert tuf.count_valid(parsed, keys, []) == 0
    with pytest.raises(ValueError, match="has the ID"):
        tuf.count_valid(parsed, {a.id: b.key}, [a.id])


def test_sign_envelope_uses_the_callable_over_canonical_bytes() -> None:
    signer = ec_signer()
    seen: list[tuple[str, bytes]] = []

    def sign_with(kid: str, payload: bytes) -> bytes:
        seen.append((kid, payload))
        return signer.sign(payload)[2]

    signed = {"_type": "Timestamp", "version": 1, "expires": "2040-01-01T00:00:00Z", "meta": {}}
    parsed = tuf.parse_signed("timestamp", tuf.sign_envelope(signed, signer.id, sign_with))
    assert seen == [(signer.id, tuf.canonical_json(signed))]
    assert parsed.signatures[0].method == "ecdsa"
    assert tuf.count_valid(parsed, {signer.id: signer.key}, [signer.id]) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"signed": 1}',
        b'{"signed": {"version": "1"}}',
        b'{"signed": {"version": 1}}',
        b'{"signed": {"version": 1, "expires": "tomorrow"}}',
        b'{"signed": {"version": 1, "expires": "2040-01-01T00:00:00Z"}, "signatures": [1]}',
        b'{"signed": {"version": 1, "expires": "2040-01-01T00:00:00Z"}, "signatures": [{"sig": "!"}]}',
        b"\xff",
    ],
)
def test_malformed_envelopes(raw: bytes) -> None:
    with pytest.raises(TrustError) as e:
        tuf.parse_signed("targets", raw)
    assert e.value.code == "MALFORMED_JSON" and e.value.status == 400


def test_method_is_lower_cased_on_read() -> None:
    doc = b'{"signed":{"version":1,"expires":"2040-01-01T00:00:00Z"},'
    doc += b'"signatures":[{"keyid":"k","method":"ECDSA","sig":""}]}'
    assert tuf.parse_signed("root", doc).signatures[0].method == "ecdsa"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-02T03:04:05Z", datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)),
        ("2030-01-02T03:04:05.123456789Z", datetime.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)),
        ("2030-01-02T03:04:05.5+02:00", datetime.datetime(2030, 1, 2, 1, 4, 5, 500000, tzinfo=datetime.UTC)),
        ("2030-01-02t03:04:05-07:30", datetime.datetime(2030, 1, 2, 10, 34, 5, tzinfo=datetime.UTC)),
    ],
)
def test_expires_is_parsed_as_rfc3339(text: str, expected: datetime.datetime) -> None:
    assert tuf.parse_time(text) == expected


@pytest.mark.parametrize("text", ["2030-01-02", "2030-01-02T03:04:05", "2030-01-02 03:04:05Z", "soon", 5])
def test_expires_must_be_rfc3339_with_a_zone(text: object) -> None:
    with pytest.raises(ValueError):
        tuf.parse_time(text)


def test_role_names() -> None:
    assert all(tuf.is_role_name(n) for n in ("root", "targets", "targets/releases", "targets/a/b-c_d"))
    bad = ("targets/", "targets/../x", "targets/A", "other", "targets//x", "targets/x/", "targets/" + "a" * 250)
    assert not any(tuf.is_role_name(n) for n in bad)
    assert tuf.is_child("targets", "targets/releases") and not tuf.is_child("targets", "targets/a/b")
    assert tuf.base_role("targets/x") == "targets" and tuf.parent_of("targets/a/b") == "targets/a"


def test_file_meta() -> None:
    data = b"file bytes"
    meta = tuf.parse_file_meta(tuf.make_file_meta(data), "x")
    assert meta.length == len(data) and meta.matches(data) and not meta.matches(data + b"!")
    assert meta.hashes["sha512"] == hashlib.sha512(data).digest()
    only_other = tuf.FileMeta(len(data), {"md5": b"x"})
    assert not only_other.matches(data)  # no hash notary checks: no match
    with pytest.raises(ValueError, match="32"):
        tuf.parse_file_meta({"length": 1, "hashes": {"sha256": tuf.b64(b"short")}}, "x")
    with pytest.raises(ValueError, match="required"):
        tuf.file_meta({"length": 1, "hashes": {}}, "x")
    assert tuf.file_meta(target(data), "t") == (len(data), {"sha256": hashlib.sha256(data).digest()})


def _parse(signed: dict[str, object], role: str) -> tuf.Signed:
    return tuf.parse_signed(role, sign(signed))


def test_snapshot_and_timestamp_structure() -> None:
    expires = "2040-01-01T00:00:00Z"
    meta = {"root": tuf.make_file_meta(b"r"), "targets": tuf.make_file_meta(b"t")}
    snap = tuf.snapshot_from(_parse({"_type": "Snapshot", "version": 1, "expires": expires, "meta": meta}, "snapshot"))
    assert snap.meta["targets"].matches(b"t")
    for broken in ({"root": meta["root"]}, {**meta, "timestamp": meta["root"]}):
        with pytest.raises(ValueError):
            tuf.snapshot_from(_parse({"_type": "Snapshot", "version": 1, "expires": expires, "meta": broken}, "s"))
    ts = {"_type": "Timestamp", "version": 2, "expires": expires, "meta": {"snapshot": tuf.make_file_meta(b"s")}}
    assert tuf.timestamp_from(_parse(ts, "timestamp")).snapshot.matches(b"s")
    with pytest.raises(ValueError, match="not Timestamp"):
        tuf.timestamp_from(_parse({**ts, "_type": "Snapshot"}, "timestamp"))
    with pytest.raises(ValueError, match="snapshot"):
        tuf.timestamp_from(_parse({**ts, "meta": {}}, "timestamp"))


def test_targets_with_delegations_parse() -> None:
    key = ec_signer()
    signed = {
        "_type": "Targets",
        "version": 1,
        "expires": "2040-01-01T00:00:00Z",
        "targets": {"v1": {**target(b"m"), "custom": {"any": ["thing"]}}},
        "delegations": {
            "keys": {key.id: key.key.to_json()},
            "roles": [{"name": "targets/releases", "keyids": [key.id], "threshold": 1, "paths": [""]}],
        },
    }
    parsed = tuf.targets_from(_parse(signed, "targets"))
    assert parsed.delegations["targets/releases"].paths == ("",)
    assert parsed.keys[key.id] == key.key
    signed["delegations"]["roles"][0]["keyids"] = ["f" * 64]  # type: ignore[index]
    with pytest.raises(ValueError, match="delegations.keys does not hold"):
        tuf.targets_from(_parse(signed, "targets"))


def test_invalid_update_detail_has_the_shape_the_notary_client_decodes() -> None:
    err = InvalidUpdate("ErrBadTargets", "targets: signed by 0 of threshold 1 keys")
    assert err.entry() == {
        "code": "INVALID_UPDATE",
        "message": "ErrBadTargets: targets: signed by 0 of threshold 1 keys",
        "detail": {"Name": "ErrBadTargets", "Error": {"Msg": "targets: signed by 0 of threshold 1 keys"}},
    }
    with pytest.raises(ValueError):
        InvalidUpdate("ErrSomethingElse", "x")


def test_public_key_bytes_round_trip() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert tuf.ecdsa_public_key_json(der) == tuf.Key.from_public_key(private.public_key()).to_json()
