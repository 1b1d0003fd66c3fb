"""Canonical JSON, key IDs and signatures as Notary computes them."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dockyard.trust import tuf
from dockyard.trust.errors import TrustError


def test_canonical_json_sorts_keys_and_escapes_only_quote_and_backslash() -> None:
    doc = {"b": [1, True, None], "a": {"z": "é<>&\n", "y": 'q"\\'}}
    assert tuf.canonical_json(doc) == '{"a":{"y":"q\\"\\\\","z":"é<>&\n"},"b":[1,true,null]}'.encode()
    with pytest.raises(ValueError, match="floating"):
        tuf.canonical_json({"x": 1.5})


def test_loads_refuses_floats() -> None:
    with pytest.raises(ValueError):
        tuf.loads(b'{"version": 1.0}')
    assert tuf.loads(b'{"version": 2}') == {"version": 2}


def test_key_id_is_the_sha256_of_the_canonical_public_key() -> None:
    public = base64.b64encode(b"\x01\x02").decode()
    expected = hashlib.sha256(
        ('{"keytype":"ecdsa","keyval":{"private":null,"public":"' + public + '"}}').encode()
    ).hexdigest()
    assert tuf.key_id("ecdsa", public) == expected


def _der(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_signatures_of_every_method_verify_and_tampering_fails() -> None:
    message = b"canonical bytes"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(ec_key.sign(message, ec.ECDSA(hashes.SHA256())))
    ecdsa = tuf.Key("ecdsa", base64.b64encode(_der(ec_key)).decode(), _der(ec_key))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert ecdsa.verify("ECDSA", raw, message)
    assert not ecdsa.verify("ecdsa", raw, message + b"!")
    assert not ecdsa.verify("ecdsa", raw[:-1], message)  # wrong length for P-256

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pub = tuf.Key("rsa", base64.b64encode(_der(rsa_key)).decode(), _der(rsa_key))
    pss = rsa_key.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    assert rsa_pub.verify("rsapss", pss, message)
    assert not rsa_pub.verify("rsapkcs1v15", pss, message)
    assert rsa_pub.verify("rsapkcs1v15", rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256()), message)

    ed = ed25519.Ed25519PrivateKey.generate()
    ed_raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ed_pub = tuf.Key("ed25519", base64.b64encode(ed_raw).decode(), ed_raw)
    assert ed_pub.verify("eddsa", ed.sign(message), message)
    assert not ed_pub.verify("ecdsa", ed.sign(message), message)


def test_envelopes_round_trip_and_count_distinct_valid_keys() -> None:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    tuf_keys = {}
    for k in keys:
        key = tuf.Key("ecdsa", base64.b64encode(_der(k)).decode(), _der(k))
        tuf_keys[key.id] = key
    now = datetime.datetime.now(datetime.UTC)
    signed = {"_type": "Targets", "version": 3, "expires": tuf.format_time(now), "targets": {}}
    payload = tuf.canonical_json(signed)
    sigs = []
    for k, kid in zip(keys, tuf_keys, strict=True):
        r, s = decode_dss_signature(k.sign(payload, ec.ECDSA(hashes.SHA256())))
        sigs.append((kid, "ecdsa", r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    sigs.append(("0" * 64, "ecdsa", b"\0" * 64))  # an unknown key: ignored, not an error
    parsed = tuf.parse_signed("targets", tuf.envelope(signed, sigs + sigs[:1]))  # a duplicate counts once
    assert parsed.version == 3 and parsed.expires.tzinfo is not None
    assert tuf.count_valid(parsed, tuf_keys, tuf_keys) == 2
    assert tuf.count_valid(parsed, tuf_keys, list(tuf_keys)[:1]) == 1


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"signed": 1}', b'{"signed": {"version": "1"}}', b'{"signed": {"version": 1}}'],
)
def test_malformed_envelopes(raw: bytes) -> None:
    with pytest.raises(TrustError) as e:
        tuf.parse_signed("targets", raw)
    assert e.value.code == "MALFORMED_JSON"


def test_role_names() -> None:
    assert all(tuf.is_role_name(n) for n in ("root", "targets", "targets/releases", "targets/a/b-c_d"))
    assert not any(tuf.is_role_name(n) for n in ("targets/", "targets/../x", "targets/A", "other", "targets//x"))
    assert tuf.is_child("targets", "targets/releases") and not tuf.is_child("targets", "targets/a/b")


def test_key_listed_under_another_id_is_refused() -> None:
    k = ec.generate_private_key(ec.SECP256R1())
    key = {"keytype": "ecdsa", "keyval": {"private": None, "public": base64.b64encode(_der(k)).decode()}}
    with pytest.raises(ValueError, match="has ID"):
        tuf._keys({"f" * 64: key}, "keys")
