from __future__ import annotations

import pytest

from dockyard.registry import codes, digest, mediatypes
from dockyard.registry.reference import check_name, check_tag
from dockyard.registry.services.uploads import parse_content_range


@pytest.mark.parametrize("name", ["a", "a/b", "a-b/c_d/e.f", "a__b", "a---b", "0/1/2", "x" * 255])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a/",
        "/a",
        "a//b",
        "..",
        "a/../b",
        "a/./b",
        "-a",
        "a-",
        "a..b",
        "a b",
        "%2e",
        "x" * 256,
        "a\n",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(codes.RegistryError) as e:
        check_name(name)
    assert e.value.code is codes.NAME_INVALID


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A" * 128])
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a" * 129, "a/b", "a:b"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(codes.RegistryError):
        check_tag(tag)


def test_digests() -> None:
    d = digest.parse("sha256:" + "a" * 64)
    assert (d.algorithm, d.hex, str(d)) == ("sha256", "a" * 64, "sha256:" + "a" * 64)
    assert digest.parse("sha512:" + "0" * 128).algorithm == "sha512"
    for bad in ("sha256:" + "A" * 64, "sha256:abc", "blake3:" + "a" * 64, "sha256", "", "sha256:" + "a" * 65):
        with pytest.raises(codes.RegistryError) as e:
            digest.parse(bad)
        assert e.value.code is codes.DIGEST_INVALID
    assert str(digest.of_bytes(b"")) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_accept_parsing() -> None:
    accepted = mediatypes.parse_accept(
        [f"{mediatypes.OCI_INDEX};q=0.5, {mediatypes.DOCKER_LIST}", f" {mediatypes.OCI_MANIFEST} "]
    )
    assert accepted == {mediatypes.OCI_INDEX, mediatypes.DOCKER_LIST, mediatypes.OCI_MANIFEST}
    assert mediatypes.accepts(frozenset(), mediatypes.OCI_INDEX)
    assert mediatypes.accepts(frozenset({"*/*"}), mediatypes.OCI_INDEX)
    assert not mediatypes.accepts(frozenset({mediatypes.DOCKER_MANIFEST}), mediatypes.OCI_MANIFEST)
    assert mediatypes.accepts(frozenset({mediatypes.OCI_MANIFEST}), mediatypes.DOCKER_MANIFEST)


def test_content_range() -> None:
    assert parse_content_range("0-99") == (0, 99)
    assert parse_content_range("bytes 5-9/10") == (5, 9)
    for bad in ("", "5", "9-5", "a-b", "-1-5"):
        with pytest.raises(codes.RegistryError):
            parse_content_range(bad)


def test_error_envelope_lists_every_error() -> None:
    err = codes.RegistryError(codes.MANIFEST_BLOB_UNKNOWN, "one", detail="d1")
    err.also(codes.RegistryError(codes.MANIFEST_BLOB_UNKNOWN, "two", detail="d2"))
    assert err.entries() == [
        {"code": "MANIFEST_BLOB_UNKNOWN", "message": "one", "detail": "d1"},
        {"code": "MANIFEST_BLOB_UNKNOWN", "message": "two", "detail": "d2"},
    ]
