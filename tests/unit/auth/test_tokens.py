from __future__ import annotations

import time
from pathlib import Path

import pytest

from dockyard.auth.keys import SigningKey, master_key
from dockyard.auth.scopes import Scope, parse, parse_one
from dockyard.auth.tokens import InvalidToken, TokenService


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    d = Path(tmp_path_factory.mktemp("keys"))
    return SigningKey.load_or_create(d, master_key(d), "dockyard")


def service(key: SigningKey, name: str = "dockyard") -> TokenService:
    return TokenService(key, "dockyard", name, ttl=300, refresh_ttl=3600)


PULL = [Scope("repository", "a/b", frozenset({"pull"}))]


def test_expiry_with_clock_skew_leeway(key: SigningKey) -> None:
    tokens = service(key)
    old, _, _ = tokens.issue("bob", PULL, now=time.time() - 330)  # expired 30 s ago: inside the 60 s leeway
    assert tokens.verify(old).allows("repository", "a/b", "pull")
    stale, _, _ = tokens.issue("bob", PULL, now=time.time() - 400)  # 100 s ago: refused
    with pytest.raises(InvalidToken):
        tokens.verify(stale)
    future, _, _ = tokens.issue("bob", PULL, now=time.time() + 30)  # a clock 30 s ahead: accepted
    assert tokens.verify(future).subject == "bob"


def test_tokens_of_one_service_are_refused_by_another(key: SigningKey) -> None:
    token, _, _ = service(key, "registry-a").issue("bob", PULL)
    with pytest.raises(InvalidToken):
        service(key, "registry-b").verify(token)
    refresh = service(key).issue_refresh("bob", "dockyard")
    with pytest.raises(InvalidToken):
        service(key).verify_refresh(refresh, "other")
    with pytest.raises(InvalidToken):
        service(key).verify(refresh)  # a refresh token is no access token


def test_key_survives_restart_encrypted(tmp_path: Path) -> None:
    kek = master_key(tmp_path)
    first = SigningKey.load_or_create(tmp_path, kek, "dockyard")
    again = SigningKey.load_or_create(tmp_path, master_key(tmp_path), "dockyard")
    assert first.kid == again.kid
    with pytest.raises(ValueError):
        SigningKey.load_or_create(tmp_path, b"x" * 32, "dockyard")  # wrong key-encryption key


def test_scope_grammar() -> None:
    s = parse_one("repository:127.0.0.1:5000/team/app:pull,push")
    assert s is not None and s.name == "127.0.0.1:5000/team/app" and s.actions == {"pull", "push"}
    p = parse_one("repository(plugin):team/plug:pull")
    assert p is not None and p.type == "repository" and p.resource_class == "plugin"
    assert parse_one("nonsense") is None and parse_one(":x:pull") is None
    assert [str(x) for x in parse(["repository:a/b:pull registry:catalog:*", "repository:c/d:push"])] == [
        "repository:a/b:pull",
        "registry:catalog:*",
        "repository:c/d:push",
    ]
